"""A second chance for a head sphere that failed the surface check: refit it to the head's
surface found along rays in 3-D.

The per-slice circles can all follow the acetabulum when the start was off (at 2 mm voxels a
head merged with its acetabulum in the initial slice's bone mask gives a start circle a few mm
too large, and AHS then prefers the acetabular wall's circle). The sphere they give is then
wrong but consistent, and only the surface check notices. In 3-D the joint space still shows
where the slices did not: rays cast from the sphere's center (inside the head even when that
center is several mm off) meet the head's cortex and its fall into the joint space first, before
the acetabulum. A sphere fitted to those falls, with the rays cast again from its center a few
times, lands on the head.

Measured on phantoms at 2 mm voxels (seeds 0-15, 32 hips, HU rounded; benchmarks/surface_check.py):
the 8 spheres the per-slice circles got wrong (diameter 3.5-11.5 mm off) were refitted to within
0.7 mm in diameter and 0.3 mm in center. At 3 mm voxels the joint space is too faint for this:
the refits were about as wrong as the spheres they replaced, and one of them passed the plain
check; so a refit is taken only when it passes the check with twice the drop asked of a first
fit (``RECOVERY_MIN_DROP_HU``), which no 3 mm refit did (those hips stay flagged). With 5 mm
slices rays through the thick slabs put the surface high: started from right spheres (1 mm /
5 mm, seeds 0-3), six of eight refits came out 3.5-7 mm too high; the gate refused those six,
but on a 5 mm phantom with a 1 mm joint space it let through a refit 3.4 mm off. So there is
no refit where slices are more than ``MAX_SLICE_MM`` apart (the method's design limit).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .geometry import along_rays, fit_sphere_least_squares, sphere_directions, trimmed_fit
from .sphere import Sphere
from .surface_check import MIN_DROP_HU

# Rays: a Fibonacci lattice of _RAYS directions, those pointing down by more than _MIN_UP (as a
# z component) left out: below the equator the neck leaves the head without a joint space.
_RAYS, _MIN_UP = 400, -0.2
# Along each ray from _START_SHARE of the radius to _BEYOND_MM past the sphere, every _STEP_MM.
_START_SHARE, _BEYOND_MM, _STEP_MM = 0.4, 8.0, 0.25
# A fall counts when the brightest point up to _WINDOW_MM before it and the darkest up to
# _WINDOW_MM after it differ by at least MIN_DROP_HU and _STRONG_SHARE of the ray's largest
# such drop: inside the head, trabecular texture at ~1 mm voxels falls by a few hundred HU too,
# but less than the cortex into the joint space.
_WINDOW_MM = 3.0
_STRONG_SHARE = 0.5
# Points farther than max(_INLIER_MM, _INLIER_MEDIANS x their median) from the sphere are left
# out of its next fit; rays cast again from the new center _ROUNDS times.
_INLIER_MM, _INLIER_MEDIANS = 1.5, 2.5
_INLIER_PASSES, _ROUNDS = 4, 4
_MIN_POINTS = 30
RECOVERY_MIN_DROP_HU = 2.0 * MIN_DROP_HU
"""A refitted sphere replaces the first one only when the surface check finds this drop."""
MAX_SLICE_MM = 3.0
"""No refit in scans with slices farther apart than this (mm): rays through thick slabs put the
surface several mm high (see the module's notes)."""


def surface_points_mm(hu: np.ndarray, sphere: Sphere, spacing_mm: np.ndarray) -> np.ndarray:
    """Where each ray from the sphere's center first falls from bone into the joint space:
    the steepest point of its first strong fall. (n, 3) points in mm (z, y, x)
    of ``hu``'s grid (index x spacing); rays without such a fall give none."""
    directions = sphere_directions(_RAYS, _MIN_UP)
    radii = np.arange(_START_SHARE * sphere.radius_mm, sphere.radius_mm + _BEYOND_MM, _STEP_MM)
    profiles = along_rays(hu, sphere.center_mm, directions, radii, spacing_mm, order=1,
                          mode="nearest")
    window = int(round(_WINDOW_MM / _STEP_MM))
    before = ndimage.maximum_filter1d(profiles, window + 1, axis=1, origin=window // 2)
    after = ndimage.minimum_filter1d(profiles, window + 1, axis=1, origin=-(window // 2))
    slope = np.gradient(profiles, axis=1)
    steepest = np.zeros(profiles.shape, dtype=bool)
    steepest[:, 1:-1] = (slope[:, 1:-1] < 0) & (slope[:, 1:-1] <= slope[:, :-2]) & (
        slope[:, 1:-1] <= slope[:, 2:])
    drop = np.where(steepest, before - after, 0.0)
    strong = np.maximum(MIN_DROP_HU, _STRONG_SHARE * drop.max(axis=1, keepdims=True))
    falls = steepest & (drop >= strong)
    found = falls.any(axis=1)
    first = np.argmax(falls, axis=1)[found]
    return sphere.center_mm + radii[first][:, None] * directions[found]


def refit_to_surface(hu: np.ndarray, sphere: Sphere,
                     spacing_mm: np.ndarray) -> tuple[Sphere, np.ndarray] | None:
    """The sphere fitted to :func:`surface_points_mm`, recast from its own center
    ``_ROUNDS`` times, with the points it rests on (mm); None with too few points."""
    spacing_mm = np.asarray(spacing_mm, float)
    current, inliers = sphere, None
    for _ in range(_ROUNDS):
        points = surface_points_mm(hu, current, spacing_mm)
        if len(points) < _MIN_POINTS:
            return None
        trimmed = trimmed_fit(points, fit_sphere_least_squares, miss_mm, _MIN_POINTS,
                              _INLIER_PASSES, _INLIER_MM, _INLIER_MEDIANS)
        if trimmed is None:
            return None
        (center, radius), keep = trimmed
        current, inliers = Sphere(center, radius), points[keep]
    return current, inliers


def miss_mm(points_mm: np.ndarray, fitted: tuple[np.ndarray, float]) -> np.ndarray:
    """Signed distance (mm) of each point from a fitted sphere (center, radius): + outside."""
    return np.linalg.norm(points_mm - fitted[0], axis=1) - fitted[1]
