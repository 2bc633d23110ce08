"""The femoral head's height refined on the partial volume of thick slices.

A circle found in a thick slice does not follow the sphere's section at the slice's middle: near
the head's top the slab holds sections from the largest to none, and the circle drifts toward one
of them. The sphere through the circles is then a few tenths of a millimetre too low or too high
(at 1 mm / 5 mm slices, -0.21 +/- 0.51 mm on the phantoms), which decides whether the slab at the
head's top counts as a head slice, with its whole plate of acetabular roof.

Here the height comes from the voxels themselves. Around its upper part the head is concentric
layers (cancellous bone, cortex, joint space), so there the intensity is a function f of the
distance to the head's center alone, and a voxel holds the mean of f over its slab's thickness.
For a candidate center height, f is the smooth radial profile (linear in its knot values) that
explains the voxels best; the height whose profile leaves the least residual is kept. Voxels at
every angle from the pole down to near the equator share one profile, which is what fixes the
height. At 1 mm / 5 mm slices this brings the phantoms' centers to -0.04 +/- 0.09 mm of the
truth (at most 0.18 mm off; benchmarks/slab_height.py).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from .geometry import parabola_vertex_offset, voxels_within
from .sphere import Sphere

# The head's upper part used: directions up to this angle from the pole (deg). Nearer the
# equator and below it, the neck and the acetabulum's rim break the layers.
_CONE_DEG = 80.0
# The layers used, mm from the head surface: cortex and the bone under it, and the joint space.
_INNER_MM, _OUTER_MM = 6.0, 2.0
# Knot spacing of the radial profile (mm) and the weight of its smoothness (second differences).
_KNOT_MM, _SMOOTHNESS = 0.5, 1.0
# Heights tried (mm from the circles' sphere): coarse steps over the range, then fine ones.
_SEARCH_MM, _COARSE_MM, _FINE_MM = 2.0, 0.25, 0.05
# Points per voxel along its slab at most this far apart (mm), as the profile's knots.
_SUBSAMPLE_MM = _KNOT_MM
# Slices at least this many pixels thick: the model averages over the slab, not over the pixel.
MIN_SLICE_OVER_PIXEL = 1.5
# The best height is kept only when its residual is at least this share below the median over
# the heights tried (noise alone: about 0.1 %; the phantoms' heads at 3-5 mm slices: 3-46 %).
_MIN_CONTRAST = 0.02


def refine_height_on_slabs(hu: np.ndarray, sphere: Sphere,
                           spacing_mm: np.ndarray) -> tuple[Sphere, float | None]:
    """``sphere`` (side-frame mm) with its center height refitted to the slabs' partial volume,
    and the shift (mm, up positive); the sphere unchanged and None where the slices are not
    thicker than ``MIN_SLICE_OVER_PIXEL`` pixels, or the height is not clear (its minimum at
    the search's end, or not ``_MIN_CONTRAST`` below the other heights)."""
    spacing_mm = np.asarray(spacing_mm, dtype=float)
    if spacing_mm[0] < MIN_SLICE_OVER_PIXEL * float(np.max(spacing_mm[1:])):
        return sphere, None
    voxels = HeadLayers(hu, sphere, spacing_mm)
    if voxels.count < 10 * voxels.knots.size:  # too few voxels to pin the profile down
        return sphere, None
    coarse = np.arange(-_SEARCH_MM, _SEARCH_MM + _COARSE_MM / 2, _COARSE_MM)
    costs = np.array([voxels.residual(dz) for dz in coarse])
    best = int(np.argmin(costs))
    if best in (0, coarse.size - 1) or costs[best] > (1.0 - _MIN_CONTRAST) * np.median(costs):
        return sphere, None
    fine = coarse[best] + np.arange(-_COARSE_MM, _COARSE_MM + _FINE_MM / 2, _FINE_MM)
    costs = np.array([voxels.residual(dz) for dz in fine])
    best = int(np.argmin(costs))
    if best in (0, fine.size - 1):
        return sphere, None
    shift = fine[best] + _FINE_MM * float(parabola_vertex_offset(*costs[best - 1:best + 2]))
    center = sphere.center_mm.copy()
    center[0] += shift
    return Sphere(center, sphere.radius_mm), float(shift)


class HeadLayers:
    """The voxels in the head's upper layers, and the residual of the best radial profile for a
    center height and, for a head flattened on top (:mod:`.head_flattening`), a polar
    semi-axis shorter than the radius or a flat top."""

    def __init__(self, hu: np.ndarray, sphere: Sphere, spacing_mm: np.ndarray,
                 min_polar_share: float = 1.0):
        """``min_polar_share``: the shortest polar semi-axis :meth:`residual` will be asked
        for, as a share of the radius; the voxels kept reach ``_INNER_MM`` inside that
        spheroid too."""
        self.slab_mm = spacing_mm[0]
        self.radius_mm = radius = sphere.radius_mm
        center = sphere.center_mm
        cos_cone = np.cos(np.radians(_CONE_DEG))
        lo_mm = center - (radius + _OUTER_MM)
        hi_mm = center + (radius + _OUTER_MM)
        lo_mm[0] = center[0] + (radius - _INNER_MM) * cos_cone * min_polar_share
        box = voxels_within(lo_mm, hi_mm, spacing_mm, hu.shape)
        # voxel centers relative to the sphere's center, mm
        z, y, x = (np.arange(b.start, b.stop) * s - c for b, s, c in zip(box, spacing_mm, center))
        height = z[:, None, None]
        in_plane2 = y[None, :, None] ** 2 + x[None, None, :] ** 2
        distance = np.sqrt(height**2 + in_plane2)
        flattest = np.sqrt((height / min_polar_share) ** 2 + in_plane2)
        keep = ((flattest >= radius - _INNER_MM) & (distance <= radius + _OUTER_MM)
                & (height >= cos_cone * distance))
        self.height = np.broadcast_to(height, keep.shape)[keep]
        self.in_plane2 = np.broadcast_to(in_plane2, keep.shape)[keep]
        self.values = hu[box][keep].astype(float)
        self.count = self.values.size
        # the profile must reach every point of every slab at every height and shape tried
        reach = self.slab_mm / 2 + _SEARCH_MM + _KNOT_MM
        # (a flatter head's surface lies deeper: its voxels reach that much farther either way)
        flatter = (1.0 - min_polar_share) * radius
        self.knots = np.arange(radius - _INNER_MM - flatter - reach,
                               radius + _OUTER_MM + flatter + reach + _KNOT_MM, _KNOT_MM)
        second = np.diff(np.eye(self.knots.size), 2, axis=0)
        self.smoothness = _SMOOTHNESS * second.T @ second
        n = int(np.ceil(self.slab_mm / _SUBSAMPLE_MM))
        self.offsets = ((np.arange(n) + 0.5) / n - 0.5) * self.slab_mm
        # the design matrix's row of each point (the voxel it samples), the same at every height
        self.rows = np.repeat(np.arange(self.count), n)

    def residual(self, shift_mm: float, polar_share: float = 1.0,
                 top_mm: float | None = None) -> float:
        """Sum of squared residuals (HU^2) of the best profile with the center ``shift_mm`` up
        and the head's layers concentric to a spheroid whose vertical semi-axis is
        ``polar_share`` x the radius (1: the sphere), cut flat ``top_mm`` above the center
        where given."""
        n_knots = self.knots.size
        heights = self.height[:, None] + self.offsets[None, :] - shift_mm
        in_plane2 = self.in_plane2[:, None]
        if polar_share == 1.0:
            depth = np.sqrt(heights**2 + in_plane2)
        else:  # the radius plus the distance to the spheroid, to first order: (F - 1) / |grad F|
            equator2, pole2 = self.radius_mm**2, (polar_share * self.radius_mm) ** 2
            level = np.sqrt(in_plane2 / equator2 + heights**2 / pole2)
            slope = np.sqrt(in_plane2 / equator2**2 + heights**2 / pole2**2) / np.maximum(level, 1e-9)
            depth = self.radius_mm + (level - 1.0) / np.maximum(slope, 1e-9)
        if top_mm is not None:  # outside the cut's plane by its distance above it, at least
            depth = np.maximum(depth, self.radius_mm + heights - top_mm)
        position = (depth - self.knots[0]) / _KNOT_MM
        left = np.clip(np.floor(position).astype(int), 0, n_knots - 2)
        n = self.offsets.size
        right_share = np.clip(position - left, 0.0, 1.0) / n
        design = sparse.csr_matrix(
            (np.concatenate([(1.0 / n - right_share).ravel(), right_share.ravel()]),
             (np.concatenate([self.rows, self.rows]),
              np.concatenate([left.ravel(), left.ravel() + 1]))),
            shape=(self.count, n_knots))
        profile = np.linalg.solve((design.T @ design).toarray() + self.smoothness,
                                  design.T @ self.values)
        misfit = design @ profile - self.values
        return float(misfit @ misfit)
