"""The femoral head's size as a surgeon's template takes it: the sphere fitted to the head's
articular surface, the whole head but where the neck leaves it.

The slices' sphere (:mod:`.sphere`) follows the head's sections, most of all the large ones
near its equator, so on a head that is not a sphere (an ellipsoid, a top flattened by
osteoarthritis) its diameter is that of the head's middle, not of its bearing surface: on the
sweep's non-spherical heads (seeds 0-15, 32 hips) 11 were more than 1.5 mm off the sphere fitted
to their articular surface. Here rays from the center, in every direction more than
``ARTICULAR_FROM_NECK_DEG`` from the neck's axis, find the head's surface; a sphere is fitted to
those points in 3-D.

Each ray's surface is the steepest fall of the CT within ``_WINDOW_MM`` of where the head's
label ends along it, or that end itself where the steepest point is the window's edge (no fall
there: bone on bone in a closed joint, where a fall just beyond is the acetabulum's cortex into
its spongy bone; a joint closed to 0 mm with a bony bridge read 1.5-1.7 mm too large without
this). The label, cut along the joint space by :mod:`..joint_cut`, places the
surface to within a voxel even in a narrowed joint, where the first strong fall outward is the
acetabulum's cortex into its spongy bone (rays looking for that fall alone put such heads
2.5-4 mm too large); the CT then places it finer than the voxels. Measured on the sweep's
captured hips (seeds 0-15): non-spherical heads within 1.5 mm 21 -> 25 of 32, narrowed joints
30 -> 31 of 32.
"""
from __future__ import annotations

import numpy as np

from .geometry import (along_rays, fit_sphere_least_squares, sphere_directions,
                       voxels_within)
from .sphere import Sphere

ARTICULAR_FROM_NECK_DEG = 70.0
"""Directions closer than this to the neck's axis are the neck's, not the bearing surface."""
# The neck's axis: toward the bone this far beyond the head's surface (mm), below its center
# and lateral of it (the neck leaves the head downward and laterally; the pelvis lies medial).
_NECK_SHELL_MM = (3.0, 15.0)
_RAYS = 1500
# Along each ray from _START_SHARE of the radius to _BEYOND_MM past the sphere, every _STEP_MM.
_START_SHARE, _BEYOND_MM, _STEP_MM = 0.4, 8.0, 0.25
# The surface is looked for this far (mm) either side of where the head's label ends.
_WINDOW_MM = 1.0
# Points farther than this (mm) from the fit are left out of the next one, _PASSES times.
_TRIM_MM, _PASSES = 3.0, 3
_MIN_POINTS = 200


def neck_axis(bone: np.ndarray, sphere: Sphere, spacing_mm: np.ndarray) -> np.ndarray | None:
    """Unit vector (z, y, x; side frame, lateral at low x) from the head's center toward the
    bone just beyond its surface, below the center and lateral of it; None without such bone."""
    spacing_mm = np.asarray(spacing_mm, float)
    near, far = sphere.radius_mm + _NECK_SHELL_MM[0], sphere.radius_mm + _NECK_SHELL_MM[1]
    box = voxels_within(sphere.center_mm - far, sphere.center_mm + far, spacing_mm, bone.shape)
    start = np.array([b.start for b in box])
    offsets = (np.argwhere(bone[box]) + start) * spacing_mm - sphere.center_mm
    distance = np.linalg.norm(offsets, axis=1)
    neck = offsets[(distance > near) & (distance < far) & (offsets[:, 0] < 0) & (offsets[:, 2] < 0)]
    if not len(neck):
        return None
    axis = neck.mean(axis=0)
    return axis / np.linalg.norm(axis)


def articular_sphere(hu: np.ndarray, head: np.ndarray, bone: np.ndarray, sphere: Sphere,
                     spacing_mm: np.ndarray) -> Sphere | None:
    """The sphere (side-frame mm) fitted to the head's articular surface, from ``sphere`` (the
    one its labels were made with), ``head`` (bool, its femoral head label) and the CT ``hu``;
    None where the neck's axis or too few surface points are found."""
    spacing_mm = np.asarray(spacing_mm, float)
    axis = neck_axis(bone, sphere, spacing_mm)
    if axis is None:
        return None
    directions = sphere_directions(_RAYS, -1.0)
    directions = directions[directions @ axis < np.cos(np.radians(ARTICULAR_FROM_NECK_DEG))]
    radii = np.arange(_START_SHARE * sphere.radius_mm, sphere.radius_mm + _BEYOND_MM, _STEP_MM)
    profiles = along_rays(hu, sphere.center_mm, directions, radii, spacing_mm, order=1,
                          mode="nearest")
    inside = along_rays(head.astype(np.uint8), sphere.center_mm, directions, radii, spacing_mm,
                        order=0, mode="constant") > 0
    slopes = np.gradient(profiles, axis=1)
    window = int(round(_WINDOW_MM / _STEP_MM))
    points = []
    for ray in np.flatnonzero(inside[:, 0] & ~inside.all(axis=1)):
        leaves = int(np.argmax(~inside[ray]))
        lo, hi = max(leaves - window, 1), min(leaves + window, len(radii) - 2)
        steepest = lo + int(np.argmin(slopes[ray, lo:hi + 1]))
        if steepest in (lo, hi):  # no fall near the label's edge: bone on bone, where the
            steepest = leaves  # cut along the joint is all there is to go by
        points.append(sphere.center_mm + radii[steepest] * directions[ray])
    if len(points) < _MIN_POINTS:
        return None
    points = np.asarray(points)
    keep = np.ones(len(points), dtype=bool)
    for _ in range(_PASSES):
        fitted = fit_sphere_least_squares(points[keep])
        if fitted is None:
            return None
        keep = np.abs(np.linalg.norm(points - fitted[0], axis=1) - fitted[1]) <= _TRIM_MM
        if keep.sum() < _MIN_POINTS:
            return None
    return Sphere(np.asarray(fitted[0], float), float(fitted[1]))
