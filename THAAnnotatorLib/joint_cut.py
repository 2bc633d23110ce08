"""The cut between femoral head and acetabulum where they meet: a graph cut (PyMaxflow) over a
shell around the head's fitted sphere.

The shell's bone belongs to femur or pelvis. Cutting between two voxels costs more the brighter
the darker of them is, so the cut runs through the joint space's intensity valley, which is
there, partly filled by partial volume, even where the bone mask joins head and acetabulum
(narrow joints, contact areas). Where no valley can be seen (bone on bone), a prior from the
sphere decides: each voxel labelled against its side of the sphere costs the same. A
non-spherical head keeps its own surface wherever a valley runs within a few mm of the sphere,
since crossing bright bone costs more than labelling that layer against the sphere. A joint
space filled by partial volume to the brightness of spongy bone is given as ``gap``
(:mod:`.joint_gap`): cutting through it costs as little as through fluid.
"""
from __future__ import annotations

import maxflow
import numpy as np
from scipy import ndimage

# Brightness of a voxel (smoothed HU): 0 at and below joint fluid, cartilage and soft tissue, 1
# at and above bone, spongy bone included. Physical CT values, not fitted to any scan: a cut
# through spongy bone (behind an acetabulum's inner cortex) must cost as much as one through
# cortex, or a joint closed to bone on bone would be cut there instead of at the sphere.
_DARK_HU, _BRIGHT_HU = 60.0, 200.0
# Cost of cutting a face of area 1 mm2 between two voxels of brightness b: _CUT_PER_MM2 x
# (_FLOOR + b^2). A voxel on the wrong side of the sphere costs _PRIOR_PER_MM3 per mm3, so moving
# the cut t mm off the sphere costs _PRIOR_PER_MM3 x t per mm2. Crossing bone (about 10 per mm2)
# costs as much as t = 7 mm: a valley that close to the sphere is followed (ellipsoidal and
# flattened heads). Through bone without a valley the cut stays at the sphere: moving it inwards
# saves area, about 20 / R per mm2 and mm on a head of radius R, less than the prior costs on
# any adult head (R > 15 mm).
_CUT_PER_MM2, _FLOOR, _PRIOR_PER_MM3 = 10.0, 0.02, 1.4
_SMOOTH_MM = 0.5
_HARD = 1e9
_AXES_STRUCTURES = [np.zeros((3, 3, 3)) for _ in range(3)]
for _axis, _structure in enumerate(_AXES_STRUCTURES):
    _structure[tuple(2 if a == _axis else 1 for a in range(3))] = 1


def cut_at_joint(hu: np.ndarray, free: np.ndarray, femur: np.ndarray, pelvis: np.ndarray,
                 distance_mm: np.ndarray, radius_mm: float, spacing_mm: np.ndarray,
                 gap: np.ndarray | None = None) -> np.ndarray:
    """Femur side (bool, same shape) of the cut over the ``free`` voxels (z, y, x); ``gap``
    (bool, optional) marks voxels of the joint space, dark to the cut whatever their HU.

    ``femur`` and ``pelvis`` are the voxels already assigned (hard); every other voxel that is
    not free is femur inside the sphere (the head's interior, bone or not), pelvis outside it.
    ``distance_mm`` is each voxel's distance to the head's center (for a head that is not a sphere,
    the radius less its depth inside that shape), ``radius_mm`` the radius.
    Free voxels take the side of a minimum cut; the result is only meaningful on them.
    """
    femur_side = np.zeros(femur.shape, dtype=bool)
    if not free.any():
        return femur_side
    spacing_mm = np.asarray(spacing_mm, float)
    around = ndimage.binary_dilation(free, iterations=2)
    box = tuple(slice(a.min(), a.max() + 1) for a in np.nonzero(around))
    free, around, distance = free[box], around[box], distance_mm[box]
    smooth = ndimage.gaussian_filter(hu[box].astype(np.float32), _SMOOTH_MM / spacing_mm)
    brightness = np.clip((smooth - _DARK_HU) / (_BRIGHT_HU - _DARK_HU), 0.0, 1.0)
    if gap is not None:
        brightness[gap[box]] = 0.0

    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes(free.shape)
    for axis, structure in enumerate(_AXES_STRUCTURES):
        # the face between each voxel and its neighbour further along ``axis``
        darker = np.minimum(brightness, np.roll(brightness, -1, axis=axis))
        face_mm2 = np.prod(np.delete(spacing_mm, axis))
        weights = _CUT_PER_MM2 * face_mm2 * (_FLOOR + darker**2)
        linked = around & np.roll(around, -1, axis=axis)
        index = [slice(None)] * 3
        index[axis] = -1
        linked[tuple(index)] = False  # np.roll wraps the last layer round to the first
        graph.add_grid_edges(nodes, weights=np.where(linked, weights, 0.0), structure=structure,
                             symmetric=True)

    prior = _PRIOR_PER_MM3 * float(np.prod(spacing_mm))  # one voxel
    hard_femur = around & ~free & (femur[box] | ((distance < radius_mm) & ~pelvis[box]))
    hard_pelvis = around & ~free & ~hard_femur
    # capacity to the source is paid by a voxel cut to the sink (pelvis), and the reverse
    to_pelvis = np.where(free & (distance < radius_mm), prior, 0.0)
    to_femur = np.where(free & (distance > radius_mm), prior, 0.0)
    graph.add_grid_tedges(nodes, np.where(hard_femur, _HARD, to_pelvis),
                          np.where(hard_pelvis, _HARD, to_femur))
    graph.maxflow()
    femur_side[box] = ~graph.get_grid_segments(nodes)
    return femur_side
