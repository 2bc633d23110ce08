"""Does the fitted head sphere sit on a visible head surface? A check of the AFS result.

Every step before this one works slice by slice. This one looks at the result in 3-D: the mean
HU of the voxels of the head's upper half (where the acetabulum covers it, a joint space away),
binned by their distance from the fitted sphere's surface. On a right sphere this radial profile
shows the head's cortex just inside the surface, then a drop into the joint space just outside,
and it falls fastest at the surface itself. Averaging thousands of voxels at every sub-voxel
offset makes the profile finer than the voxels and steady under noise.

A sphere that followed something else (the acetabulum, or head and acetabulum merged in a scan
too coarse to show the joint space) shows neither. Measured on phantoms (99 hips at 0.8-3 mm
in-plane and 1.25-5 mm slices, HU rounded; benchmarks/surface_check.py), before the refit a
failed check triggers (afs/surface_refit.py): the spheres that were right (diameter within 1 mm)
had drops of 419-814 HU and their fastest fall within 0.5 mm of the sphere; all 19 that were
grossly wrong (diameter 3.5-17 mm off) were flagged (drops 36-219 HU; those above 150 HU had
their fastest fall more than 1 mm off). Not flagged: one sphere 3.4 mm too large and 2.7 mm
low (2 mm voxels; drop 359 HU, fall at the sphere). A narrowed joint space (osteoarthritis)
lowers the drop on real scans; no such scan with a reference was at hand to measure by how
much. The real 3 mm CT in ``../shared`` shows 130 HU: its joint space is not resolved.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import parabola_vertex_offset, voxels_within
from .slice_fit import MIN_SURFACE_CONTRAST_HU
from .sphere import Sphere

# Profile: distances from the sphere's surface (mm, + outside) in bins of _BIN_MM.
_REACH_MM, _BIN_MM = 8.0, 0.5
# The cortex is looked for up to _CORTEX_MM inside the surface, the joint space up to
# _JOINT_MM outside it.
_CORTEX_MM, _JOINT_MM = 3.0, 4.0
# The same cortex-to-joint-space drop snap_to_surface asks of each normal, here of the mean.
MIN_DROP_HU = MIN_SURFACE_CONTRAST_HU
# Farthest (mm) the fastest fall may lie from the sphere's surface.
MAX_EDGE_OFFSET_MM = 1.0
# A joint space narrowed to less than a voxel shows as a valley between the head's cortex and
# the acetabulum's: a fall at least _VALLEY_FALL_SHARE as steep as the steepest one and
# MIN_DROP_HU deep, then a rise of at least _VALLEY_RISE_HU before that steepest fall, which is
# then the acetabulum's cortex into its spongy bone. A bin's mean over thousands of voxels
# varies by a few HU under noise of 60 HU; narrowed joints on the sweep fell 270-530 HU into
# their valley and rose 40-210 HU after it.
_VALLEY_FALL_SHARE, _VALLEY_RISE_HU = 0.5, 25.0


@dataclass
class SurfaceCheck:
    """The radial profile around a fitted head sphere, summarised.

    ``drop_hu``: brightest mean HU up to 3 mm inside the surface minus the darkest up to 4 mm
    outside. ``edge_offset_mm``: where the profile falls fastest, relative to the surface
    (+ outside, mm), or, where ``valley``, where it falls into a joint-space valley.
    ``valley``: the profile falls into a valley and rises again to a second cortex (the
    acetabulum's) before its fastest fall: a joint space too narrow for a drop to soft tissue.
    """

    drop_hu: float
    edge_offset_mm: float
    valley: bool = False

    @property
    def passed(self) -> bool:
        return self.drop_hu >= MIN_DROP_HU and abs(self.edge_offset_mm) <= MAX_EDGE_OFFSET_MM

    def warnings(self) -> list[str]:
        if self.drop_hu < MIN_DROP_HU:
            return [f"no clear femoral head surface at the fitted sphere (cortex to joint space "
                    f"{self.drop_hu:.0f} HU, expected at least {MIN_DROP_HU:g} HU): the joint "
                    f"space may not be visible in this scan; check this hip"]
        if abs(self.edge_offset_mm) > MAX_EDGE_OFFSET_MM:
            where = "outside" if self.edge_offset_mm > 0 else "inside"
            return [f"the sharpest edge around the head lies {abs(self.edge_offset_mm):.1f} mm "
                    f"{where} the fitted sphere: the sphere may have followed the acetabulum; "
                    f"check this hip"]
        return []


def radial_profile(hu: np.ndarray, sphere: Sphere,
                   spacing_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean HU of the voxels above the sphere's center, by distance from its surface.

    ``hu`` is (z, y, x) with z running upward and ``sphere`` in its mm coordinates (index x
    spacing). Returns (bin centers in mm, + outside; mean HU, NaN in empty bins).
    """
    spacing_mm = np.asarray(spacing_mm, float)
    center = sphere.center_mm
    lo_mm = center - (sphere.radius_mm + _REACH_MM)
    lo_mm[0] = center[0]  # the upper half only
    box = voxels_within(lo_mm, center + sphere.radius_mm + _REACH_MM, spacing_mm, hu.shape)
    edges = np.arange(-_REACH_MM, _REACH_MM + _BIN_MM / 2, _BIN_MM)
    centers = (edges[:-1] + edges[1:]) / 2
    if any(b.stop <= b.start for b in box):
        return centers, np.full(centers.size, np.nan)
    axes = [np.arange(b.start, b.stop) * s - c for b, s, c in zip(box, spacing_mm, center)]
    distance = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2
                       + axes[2][None, None, :] ** 2) - sphere.radius_mm
    block = hu[box]
    near = np.abs(distance) < _REACH_MM
    which = np.digitize(distance[near], edges) - 1
    counts = np.bincount(which, minlength=centers.size)[:centers.size]
    sums = np.bincount(which, weights=block[near].astype(float),
                       minlength=centers.size)[:centers.size]
    with np.errstate(invalid="ignore", divide="ignore"):
        return centers, np.where(counts > 0, sums / counts, np.nan)


def check_surface(hu: np.ndarray, sphere: Sphere, spacing_mm: np.ndarray) -> SurfaceCheck:
    """Summarise :func:`radial_profile` into the drop at the surface and the fastest fall."""
    offsets, profile = radial_profile(hu, sphere, spacing_mm)
    cortex = (offsets >= -_CORTEX_MM) & (offsets <= _BIN_MM)
    joint = (offsets >= 0.0) & (offsets <= _JOINT_MM)
    if np.isnan(profile[cortex]).all() or np.isnan(profile[joint]).all():
        return SurfaceCheck(0.0, float("nan"))  # the head's upper half is not in the scan
    drop = float(np.nanmax(profile[cortex]) - np.nanmin(profile[joint]))
    slopes = np.diff(profile)
    if np.isnan(slopes).all():
        return SurfaceCheck(drop, float("nan"))
    between = (offsets[1:] + offsets[:-1]) / 2
    steepest = int(np.nanargmin(slopes))
    peak = int(np.nanargmax(np.where(cortex, profile, np.nan)))
    valley = _valley_fall(profile, slopes, peak, steepest)
    edge = steepest if valley is None else valley
    # a parabola through the slopes around the edge places the fall between bins
    shift = 0.0
    if 0 < edge < slopes.size - 1 and np.isfinite(slopes[edge - 1:edge + 2]).all():
        shift = float(parabola_vertex_offset(*slopes[edge - 1:edge + 2]))
    return SurfaceCheck(drop, float(between[edge] + shift * _BIN_MM), valley is not None)


def _valley_fall(profile: np.ndarray, slopes: np.ndarray, peak: int, steepest: int) -> int | None:
    """The slope index of the first steep fall after the cortex ``peak`` (a bin index) into a
    valley ``MIN_DROP_HU`` below the fall's top, out of which the profile rises by
    ``_VALLEY_RISE_HU`` before the ``steepest`` fall; None if the first steep fall is the
    steepest or it leads to no such valley."""
    steep = _VALLEY_FALL_SHARE * slopes[steepest]
    for i in range(peak, steepest):
        local = (i == 0 or slopes[i] <= slopes[i - 1]) and slopes[i] <= slopes[i + 1]
        if local and slopes[i] <= steep:
            after = profile[i + 1:steepest + 1]  # from the fall's foot to the steepest fall
            if np.isnan(after).all():
                return None
            lowest = np.fmin.accumulate(after)  # the lowest point so far
            top = int(np.nanargmax(after - lowest))
            deep = np.nanmax(profile[peak:i + 1]) - lowest[top] >= MIN_DROP_HU
            return i if deep and after[top] - lowest[top] >= _VALLEY_RISE_HU else None
    return None
