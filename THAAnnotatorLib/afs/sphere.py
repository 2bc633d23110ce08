"""The 3-D femoral head model: a sphere fitted to the per-slice circles."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


# With sections at most half a slice from the equator, R exceeds max r_k only by a few percent.
_MAX_RADIUS_OVER_LARGEST_SECTION = 1.15
# Sections farther than this (mm) from the fitted sphere are left out of the refit, however
# uncertain.
_SECTION_TOLERANCE_MM = 2.0
_REFITS = 3
# Sections smaller than this share of the sphere's radius are left out of the refit.
_MIN_SECTION_SHARE = 0.6
# Error (mm) of a section's radius where the sphere does not change across the slab: about
# half a pixel of the circle fits.
_SECTION_ERROR_MM = 0.5
# A section agrees with a candidate sphere when it misses it by at most this many errors.
_CONSENSUS_ERRORS = 2.0


@dataclass
class Sphere:
    """Sphere in side-frame mm coordinates (z, y, x) = index * spacing."""

    center_mm: np.ndarray
    radius_mm: float


def fit_sphere(z_mm: np.ndarray, centers_yx_mm: np.ndarray, radii_mm: np.ndarray,
               slab_mm: float = 0.0) -> Sphere:
    """Sphere through per-slice circles (slice height z, in-plane center, radius; all mm) of
    slices ``slab_mm`` thick.

    In-plane center: the median of the slice centers (the prototype took the most frequent
    one; the median is its robust continuous counterpart). Radius and center height from
    r_k^2 = R^2 - (z_k - c_z)^2, which is linear in the unknowns: r_k^2 + z_k^2 = a + b z_k
    with c_z = b / 2 and R^2 = a + c_z^2.

    A slice is a slab: where the sphere's section changes much across it (toward the poles,
    the more so the thicker the slices), the circle found in it does not follow the section at
    the slab's middle (at 5 mm, near the top it follows the one at the slab's upper face). Each
    section's expected error is therefore the change of the sphere's section across its slab,
    added in quadrature to ``_SECTION_ERROR_MM``, and the fit is weighted by it. Circles that
    followed the neck or the acetabulum (below the equator and at it, mostly) must not steer
    the start: the first set of sections is the consensus of the sphere through two sections
    that explains the others best (:func:`_consensus`, in the manner of MSAC). Then weighted
    refits, each without the sections that miss the sphere by more than ``_CONSENSUS_ERRORS``
    of their errors or ``_SECTION_TOLERANCE_MM``.
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
    keep, error_mm = _consensus(z_mm, centers_yx_mm, radii_mm, slab_mm)
    sphere = None
    for _ in range(_REFITS):
        if keep.sum() < 3 or np.ptp(z_mm[keep]) == 0:
            break
        sphere = least_squares_sphere(z_mm[keep], centers_yx_mm[keep], radii_mm[keep],
                                      error_mm[keep])
        if sphere is None:
            break
        error_mm = _section_errors_mm(sphere, z_mm, slab_mm)
        keep = _agreeing(sphere, z_mm, radii_mm, error_mm) & (
            radii_mm >= _MIN_SECTION_SHARE * sphere.radius_mm)
    if sphere is None or keep.sum() < 3:
        return fallback
    if not 0.9 <= sphere.radius_mm / radii_mm[keep].max() <= _MAX_RADIUS_OVER_LARGEST_SECTION:
        return fallback
    # the in-plane center too comes from the sections that fit the sphere
    sphere.center_mm[1:] = np.median(centers_yx_mm[keep], axis=0)
    return sphere


def _section_errors_mm(sphere: Sphere, z_mm: np.ndarray, slab_mm: float) -> np.ndarray:
    """Expected error (mm) of the circles found in slabs ``slab_mm`` thick centred at ``z_mm``."""
    spread = np.abs(section_radii_mm(sphere, z_mm + slab_mm / 2.0)
                    - section_radii_mm(sphere, z_mm - slab_mm / 2.0))
    return np.hypot(spread, _SECTION_ERROR_MM)


def _agreeing(sphere: Sphere, z_mm: np.ndarray, radii_mm: np.ndarray,
              error_mm: np.ndarray) -> np.ndarray:
    """Which sections miss ``sphere`` by at most ``_CONSENSUS_ERRORS`` of their errors, and by
    no more than ``_SECTION_TOLERANCE_MM`` however smeared (a circle around head and neck)."""
    tolerance_mm = np.minimum(_CONSENSUS_ERRORS * error_mm, _SECTION_TOLERANCE_MM)
    return np.abs(section_radii_mm(sphere, z_mm) - radii_mm) <= tolerance_mm


def _consensus(z_mm: np.ndarray, centers_yx_mm: np.ndarray, radii_mm: np.ndarray,
               slab_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The sections that agree with the best sphere through two of them, and their errors (mm).

    Every pair at two heights gives a sphere; its cost is a Gaussian negative log-likelihood
    of all sections with the outliers' share capped: per section, the squared miss in errors
    (at most ``_CONSENSUS_ERRORS`` squared) plus twice the log of the error. Without that
    second term a sphere could make sections agree by placing them near its poles, where they
    are uncertain (it took a 3 mm scan's neck for the head's lower half). Without any pair, all
    sections with the plain error.
    """
    best_cost, best = np.inf, None
    for pair in combinations(range(len(z_mm)), 2):
        pair = list(pair)
        if z_mm[pair[0]] == z_mm[pair[1]]:
            continue
        sphere = least_squares_sphere(z_mm[pair], centers_yx_mm[pair], radii_mm[pair])
        if sphere is None:
            continue
        error = _section_errors_mm(sphere, z_mm, slab_mm)
        miss = np.minimum(np.abs(section_radii_mm(sphere, z_mm) - radii_mm) / error, _CONSENSUS_ERRORS)
        cost = float(miss @ miss + 2.0 * np.log(error / _SECTION_ERROR_MM).sum())
        if cost < best_cost:
            best_cost, best = cost, (sphere, error)
    if best is None:
        return np.ones(len(z_mm), dtype=bool), np.full(len(z_mm), _SECTION_ERROR_MM)
    sphere, error = best
    return _agreeing(sphere, z_mm, radii_mm, error), error


def least_squares_sphere(z_mm: np.ndarray, centers_yx_mm: np.ndarray, radii_mm: np.ndarray,
                         error_mm: np.ndarray | None = None) -> Sphere | None:
    """The sphere whose sections at heights ``z_mm`` best match ``radii_mm``, each known to
    about ``error_mm`` (all equally well if None); None if there is none."""
    # an error e in r is one of about 2 r e in r^2, the quantity fitted
    weight = np.ones_like(z_mm) if error_mm is None else 1.0 / (2.0 * np.maximum(radii_mm, 1.0) * error_mm)
    design = np.column_stack([np.ones_like(z_mm), z_mm]) * weight[:, None]
    (a, b), *_ = np.linalg.lstsq(design, (radii_mm**2 + z_mm**2) * weight, rcond=None)
    cz = b / 2.0
    r2 = a + cz * cz
    if r2 <= 0 or not (z_mm.min() - radii_mm.max() <= cz <= z_mm.max() + radii_mm.max()):
        return None
    return Sphere(np.array([cz, *np.median(centers_yx_mm, axis=0)]), float(np.sqrt(r2)))


def section_radii_mm(sphere: Sphere, z_mm: np.ndarray) -> np.ndarray:
    """Radii of the sphere's sections at heights ``z_mm`` (0 beyond its poles)."""
    dz = np.asarray(z_mm, float) - sphere.center_mm[0]
    return np.sqrt(np.maximum(sphere.radius_mm**2 - dz * dz, 0.0))


def section_radius_mm(sphere: Sphere, z_mm: float) -> float:
    """Radius of the sphere's section at height ``z_mm`` (0 beyond its poles)."""
    return float(section_radii_mm(sphere, z_mm))
