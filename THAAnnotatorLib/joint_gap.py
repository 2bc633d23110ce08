"""The joint space's own voxels where the bone mask bridges it: neither femur nor pelvis.

Bone extraction blurs before it cuts, so a joint space one or two voxels wide (1-2 mm, the usual
adult joint at sub-millimetre pixels) comes out of it as bone: its voxels, partly filled with
cortex on both sides, read 200-400 HU. The femur / pelvis split then gave them to one bone or
the other, and the graph cut along the joint (:mod:`.joint_cut`), for which anything brighter
than spongy bone is bone, followed the sphere through them: the acetabulum's label took the
joint space and a voxel of the head's surface (on the sweep, hips with a 1.5-2 mm joint had
acetabulum Dice 0.935 at the median, 0.96-0.98 with wider joints).

Seen along the ray from the head's center, such a voxel lies in a dip between two walls of
cortex, one inwards (the head's) and one outwards (the acetabulum's), each within
``_REACH_MM``: it is in the dip's lower half, between its floor and the dimmer wall (the
half-maximum rule of :mod:`.afs.half_maximum`, taken across the joint, where blur from both
walls lifts the floor above half the cortex). Spongy bone between two cortices where the
acetabulum's cortices fold together dips too; its inner wall is the acetabulum's inner cortex,
farther out than the head's surface, and wider dips are left to bone extraction, which sees a
joint that wide.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from .afs.head_ellipsoid import HeadShape

# Joint fluid and cartilage (HU), the level a wide joint space shows.
_FLUID_HU = 50.0
# A wall of the joint is cortex: brighter than this (HU) after partial volume; spongy bone
# (80-350 HU) is not a wall.
_MIN_WALL_HU = 400.0
# A dip shallower than this share of its wall's height above fluid is noise or texture.
_MIN_DIP_SHARE = 0.25
# How far (mm) along the ray each wall is looked for, and how finely.
_REACH_MM, _STEP_MM = 2.5, 0.25
# A joint space the bone mask bridges is at most this wide (mm) between its walls' edges; a
# wider one is dark at its middle and bone extraction leaves it out.
_MAX_WIDTH_MM = 3.0
# The inner wall is the head's own surface: its edge lies within these distances (mm) inside and
# outside the fitted sphere. Behind the acetabulum's inner cortex (on the sweep 1.2-3 mm thick,
# 0.6-1.2 mm in low-density bone) the edge of a fold lies farther out.
_INNER_EDGE_MM = (1.0, 0.75)
_SMOOTH_MM = 0.5


def joint_gap(hu: np.ndarray, shell: np.ndarray, center_idx: np.ndarray, radius_mm: float,
              spacing_mm: np.ndarray, head_shape: HeadShape | None = None) -> np.ndarray:
    """The voxels of ``shell`` (bool, z y x) that lie in the joint space's dip (bool).

    ``center_idx`` is the head sphere's center in (z, y, x) indices of ``hu`` (HU), and
    ``radius_mm`` its radius; the rays run from the center through each voxel. For a head that
    is not a sphere, its ``head_shape`` (mm, index x spacing of ``hu``) is the surface the inner
    wall's edge is measured from.
    """
    gap = np.zeros(shell.shape, dtype=bool)
    voxels = np.argwhere(shell)
    if not len(voxels):
        return gap
    spacing_mm = np.asarray(spacing_mm, float)
    smooth = ndimage.gaussian_filter(hu.astype(np.float32), _SMOOTH_MM / spacing_mm)
    offsets_mm = (voxels - center_idx) * spacing_mm
    length_mm = np.linalg.norm(offsets_mm, axis=1)
    unit_idx = offsets_mm / np.maximum(length_mm, 1e-6)[:, None] / spacing_mm  # indices per mm
    steps_mm = np.arange(_STEP_MM, _REACH_MM + 1e-6, _STEP_MM)

    def along(sign: float) -> np.ndarray:
        """(steps, voxels): smoothed HU along each ray, from the voxel inwards (-1) or out."""
        points = voxels[None] + sign * steps_mm[:, None, None] * unit_idx[None]
        values = ndimage.map_coordinates(smooth, points.reshape(-1, 3).T, order=1, mode="nearest")
        return values.reshape(len(steps_mm), len(voxels))

    own = smooth[tuple(voxels.T)]
    inward, outward = along(-1.0), along(+1.0)
    columns = np.arange(len(voxels))
    peak_in, peak_out = inward.argmax(axis=0), outward.argmax(axis=0)
    wall = np.minimum(inward[peak_in, columns], outward[peak_out, columns])
    # the dip's floor: the darkest point between the two walls' peaks
    before_peak = np.arange(len(steps_mm))[:, None]
    floor = np.minimum(own, np.minimum(
        np.where(before_peak <= peak_in, inward, np.inf).min(axis=0),
        np.where(before_peak <= peak_out, outward, np.inf).min(axis=0)))
    half = (floor + wall) / 2.0
    reach = np.append(steps_mm, np.inf)  # an edge not met within reach is infinitely far
    never = np.ones((1, len(voxels)), dtype=bool)
    to_inner = reach[np.argmax(np.vstack([inward >= half, never]), axis=0)]
    to_outer = reach[np.argmax(np.vstack([outward >= half, never]), axis=0)]
    if head_shape is None:  # the inner wall's edge, off the head's surface
        inner_edge_mm = length_mm - to_inner - radius_mm
    else:
        finite = np.isfinite(to_inner)
        edge_mm = voxels * spacing_mm - np.where(finite, to_inner, 0.0)[:, None] * unit_idx * spacing_mm
        inner_edge_mm = np.where(finite, -head_shape.depth_mm(edge_mm), np.inf)
    dip = ((wall >= _MIN_WALL_HU) & (wall - floor >= _MIN_DIP_SHARE * (wall - _FLUID_HU))
           & (own < half) & (to_inner + to_outer <= _MAX_WIDTH_MM)
           & (inner_edge_mm >= -_INNER_EDGE_MM[0]) & (inner_edge_mm <= _INNER_EDGE_MM[1]))
    gap[tuple(voxels[dip].T)] = True
    return gap
