"""Label edges at the bone's half-maximum surface, not the graph cut's.

A voxel that straddles a bone surface takes the bone's intensity in proportion to how much of
it is bone (partial volume). Bone extraction's cut follows a threshold near cancellous bone's
level, so a voxel only a third filled with cortex, far brighter than that, is kept: without
this step the acetabulum and the femoral head come out about one voxel too wide all around,
and with 5 mm slices, where oblique surfaces smear over a whole slab, by more. The remedy used
in CT bone measurement is a local threshold halfway between the soft tissue beside the surface
and the bone's peak near it: an edge voxel below it is less than half bone.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..volume import IN_SLICE_FOUR_NEIGHBOURS
from .geometry import disk_footprint

# Radius (mm) in which an edge voxel's bone peak is sought: the cortex it belongs to.
_PEAK_RADIUS_MM = 3.0
# Radius (mm) over which the soft tissue beside an edge voxel is averaged.
_TISSUE_RADIUS_MM = 5.0
# Darker than this (HU) is gas, not the tissue a bone surface borders.
_GAS_HU = -200.0


def trim_to_half_maximum(labels: np.ndarray, hu: np.ndarray, bone: np.ndarray,
                         spacing_mm: np.ndarray) -> np.ndarray:
    """``labels`` (uint8, z y x, 0 = none) without the edge voxels that are less than half bone.

    An edge voxel is a labelled one next (4-neighbours, in its slice) to soft tissue: neither
    bone nor labelled, nor gas. Its threshold is the mean of that tissue within
    ``_TISSUE_RADIUS_MM`` and the highest bone HU within ``_PEAK_RADIUS_MM``, halved. One voxel
    deep: a surface's partial-volume ramp is about one voxel wide, and going deeper would eat
    into cancellous bone, which lies below the cortex's half maximum but is wholly bone.
    """
    out = labels.copy()
    nonzero = np.argwhere(labels)
    if not len(nonzero):
        return out
    margin = np.concatenate([[0], np.ceil(_TISSUE_RADIUS_MM / spacing_mm[1:]).astype(int) + 1])
    lo = np.maximum(nonzero.min(axis=0) - margin, 0)
    hi = np.minimum(nonzero.max(axis=0) + margin + 1, labels.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    hu_box, bone_box, labelled = hu[box].astype(np.float32), bone[box].astype(bool), labels[box] > 0

    tissue = ~bone_box & ~labelled & (hu_box > _GAS_HU)
    edge = labelled & ndimage.binary_dilation(tissue, IN_SLICE_FOUR_NEIGHBOURS)
    disk = disk_footprint(_TISSUE_RADIUS_MM, spacing_mm[1:])[None].astype(np.float32)
    tissue_sum = ndimage.convolve(np.where(tissue, hu_box, 0.0), disk, mode="constant")
    tissue_count = ndimage.convolve(tissue.astype(np.float32), disk, mode="constant")
    peak = ndimage.maximum_filter(np.where(bone_box, hu_box, -np.inf),
                                  footprint=disk_footprint(_PEAK_RADIUS_MM, spacing_mm[1:])[None])
    # an edge voxel always has tissue beside it, so tissue_count > 0 wherever it is used
    half_maximum = (tissue_sum / np.maximum(tissue_count, 1.0) + peak) / 2.0
    out[box][edge & (hu_box < half_maximum)] = 0
    return out
