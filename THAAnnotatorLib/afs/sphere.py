"""The 3-D femoral head model: a sphere fitted to the per-slice circles."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# With sections at most half a slice from the equator, R exceeds max r_k only by a few percent.
_MAX_RADIUS_OVER_LARGEST_SECTION = 1.15
# Sections farther than this (mm) from the fitted sphere are left out of the refit.
_SECTION_TOLERANCE_MM = 2.0
_REFITS = 3
# Sections smaller than this share of the sphere's radius are left out of the refit.
_MIN_SECTION_SHARE = 0.6


@dataclass
class Sphere:
    """Sphere in side-frame mm coordinates (z, y, x) = index * spacing."""

    center_mm: np.ndarray
    radius_mm: float


def fit_sphere(z_mm: np.ndarray, centers_yx_mm: np.ndarray, radii_mm: np.ndarray) -> Sphere:
    """Sphere through per-slice circles (slice height z, in-plane center, radius; all mm).

    In-plane center: the median of the slice centers (the prototype took the most frequent
    one; the median is its robust continuous counterpart). Radius and center height from
    r_k^2 = R^2 - (z_k - c_z)^2, which is linear in the unknowns: r_k^2 + z_k^2 = a + b z_k
    with c_z = b / 2 and R^2 = a + c_z^2, refitted without the sections that miss the sphere
    by more than ``_SECTION_TOLERANCE_MM`` (circles that followed the neck or the acetabulum).
    With too few slices, or a fit that does not give a real sphere, the prototype's model is
    used: R = max r_k, centered on the slices' span. That is also the case when the sections
    do not shrink toward the poles as a sphere's do (R would come out well above max r_k):
    they then follow something else than the head at the ends, typically the acetabulum in a
    coarse scan.
    """
    z_mm, radii_mm = np.asarray(z_mm, float), np.asarray(radii_mm, float)
    centers_yx_mm = np.asarray(centers_yx_mm, float)
    fallback = Sphere(np.array([(z_mm.min() + z_mm.max()) / 2.0, *np.median(centers_yx_mm, axis=0)]),
                      float(radii_mm.max()))
    keep = np.ones(len(z_mm), dtype=bool)
    sphere = None
    for _ in range(_REFITS):
        if keep.sum() < 3 or np.ptp(z_mm[keep]) == 0:
            break
        sphere = least_squares_sphere(z_mm[keep], centers_yx_mm[keep], radii_mm[keep])
        if sphere is None:
            break
        section = np.array([section_radius_mm(sphere, z) for z in z_mm])
        # near the poles a section is smeared by the slice thickness: leave those out too
        keep = (np.abs(section - radii_mm) <= _SECTION_TOLERANCE_MM) & (
            radii_mm >= _MIN_SECTION_SHARE * sphere.radius_mm)
    if sphere is None or keep.sum() < 3:
        return fallback
    if not 0.9 <= sphere.radius_mm / radii_mm[keep].max() <= _MAX_RADIUS_OVER_LARGEST_SECTION:
        return fallback
    # the in-plane center too comes from the sections that fit the sphere
    sphere.center_mm[1:] = np.median(centers_yx_mm[keep], axis=0)
    return sphere


def least_squares_sphere(z_mm: np.ndarray, centers_yx_mm: np.ndarray,
                         radii_mm: np.ndarray) -> Sphere | None:
    """The sphere whose sections at heights ``z_mm`` best match ``radii_mm``; None if none."""
    design = np.column_stack([np.ones_like(z_mm), z_mm])
    (a, b), *_ = np.linalg.lstsq(design, radii_mm**2 + z_mm**2, rcond=None)
    cz = b / 2.0
    r2 = a + cz * cz
    if r2 <= 0 or not (z_mm.min() - radii_mm.max() <= cz <= z_mm.max() + radii_mm.max()):
        return None
    return Sphere(np.array([cz, *np.median(centers_yx_mm, axis=0)]), float(np.sqrt(r2)))


def section_radius_mm(sphere: Sphere, z_mm: float) -> float:
    """Radius of the sphere's section at height ``z_mm`` (0 beyond its poles)."""
    return float(np.sqrt(max(sphere.radius_mm**2 - (z_mm - sphere.center_mm[0]) ** 2, 0.0)))
