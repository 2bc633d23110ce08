"""Finding each hip's ROI center in a new scan from its bone mask, without the AFS pipeline.

The femoral head is the thickest bone of the hip region: with each axial slice's bone filled
(cortex ring plus its inside), the point of one side farthest from any non-bone voxel (largest
value of the 3-D Euclidean distance transform, in mm) lies inside the head, or in the head and
acetabulum together where the joint space is not resolved. Columns near the midline are left
out, so the sacrum and vertebral bodies cannot win. On generated phantoms the point found lies
5-10 mm from the true head center (toward the acetabulum and up); the network is trained with
ROI shifts of that size (:mod:`.training`), so this is accurate enough to place the ROI.
The transform runs on a grid of about 2.5 mm, and only over the bone's bounding box, which keeps
it to a fraction of a second.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..afs.frame import SideFrame
from ..volume import IN_SLICE_FOUR_NEIGHBOURS, Volume

MIDLINE_MARGIN_MM = 40.0
"""Bone closer than this to the body's midline (mm, left-right) is not searched."""
MIN_THICKNESS_MM = 10.0
"""A head must reach at least this far (mm) from the nearest non-bone voxel to be found."""
GRID_MM = 2.5
"""Approximate voxel size (mm) of the grid the distance transform runs on."""


def locate_head(volume: Volume, bone: np.ndarray, frame: SideFrame) -> np.ndarray | None:
    """Approximate femoral head center of one hip.

    Parameters
    ----------
    volume : the scan (canonical layout).
    bone : canonical bone mask of the scan (e.g. from :func:`~THAAnnotatorLib.bone.extract_bone`).
    frame : the hip's side of the scan (:meth:`SideFrame.for_side`).

    Returns
    -------
    Fractional canonical (z, y, x) index of the center, or None when no bone of that side is
    at least :data:`MIN_THICKNESS_MM` thick.
    """
    spacing = np.asarray(volume.spacing_mm, float)
    step = np.maximum(1, np.round(GRID_MM / spacing).astype(int))
    mask = frame.view(bone)
    box = _block_aligned_box(mask, step)
    if box is None:
        return None
    start, stop = box
    # the grid's blocks inside the box, with a layer of non-bone where the box ends inside the
    # side (none where it meets the scan's edge, beyond which nothing is known to be non-bone):
    # the hole filling and the transform then give every block the value they give it on the
    # whole side, on a fraction of the voxels
    before, after = (start > 0).astype(int), (stop < mask.shape).astype(int)
    crop = mask[tuple(slice(a, b) for a, b in zip(start, stop))]
    coarse = np.pad(_block_any(crop, step), list(zip(before, after)))
    filled = ndimage.binary_fill_holes(coarse, structure=IN_SLICE_FOUR_NEIGHBOURS)
    coarse_spacing = spacing * step
    depth = ndimage.distance_transform_edt(filled, sampling=coarse_spacing)
    origin = start // step - before  # the side's grid index of the first block of ``depth``
    # side-frame x runs lateral -> medial; the midline is at the frame's last column
    columns = origin[2] + np.arange(depth.shape[2])
    medial_mm = (mask.shape[2] - 0.5 - (columns + 0.5) * step[2]) * spacing[2]
    depth[..., medial_mm < MIDLINE_MARGIN_MM] = 0.0
    best = np.unravel_index(int(np.argmax(depth)), depth.shape)
    if depth[best] < MIN_THICKNESS_MM:
        return None
    # center of the coarse block, in side-frame voxel indices
    fine = (np.asarray(best, float) + origin + 0.5) * step - 0.5
    return frame.to_canonical_zyx(fine)


def _block_aligned_box(mask: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """[start, stop) voxel indices per axis of the bounding box of the nonzero voxels of a 3-D
    mask, widened to whole blocks of ``step`` voxels (stop clipped to the shape); None when all
    are zero."""
    plane = mask.any(axis=0)  # one pass over the mask; the slices' range is sought in the box
    rows, cols = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    if rows.size == 0:
        return None
    slices = np.flatnonzero(mask[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].any(axis=(1, 2)))
    first = np.array([slices[0], rows[0], cols[0]])
    last = np.array([slices[-1], rows[-1], cols[-1]])
    return first // step * step, np.minimum(-(-(last + 1) // step) * step, mask.shape)


def _block_any(mask: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Reduce a 3-D mask by whole blocks of ``step`` voxels: True where any voxel is nonzero."""
    padded_shape = [int(np.ceil(n / s)) * s for n, s in zip(mask.shape, step)]
    padded = np.zeros(padded_shape, dtype=bool)
    padded[tuple(slice(0, n) for n in mask.shape)] = mask
    blocks = padded.reshape(padded_shape[0] // step[0], step[0], padded_shape[1] // step[1], step[1],
                            padded_shape[2] // step[2], step[2])
    return blocks.any(axis=(1, 3, 5))
