"""How much bone fills the acetabulum's edge voxels along the slice axis, read from the CT.

Bone extraction keeps every voxel that bone partly fills, and the acetabulum's label with it:
a mask's edge, halfway between a voxel in and one out, lies up to half a voxel outside the
bone, and a rim thinner than a slice reads a whole slice thick. At 4-5 mm slices that put the
roof's lateral edge 4-6 deg lateral of the drawn one on the sweep. The CT keeps the share: a
voxel that bone fills by f stands about f of the bone's contrast over soft tissue. Each label
voxel at the label's edge along the slice axis (a slice above or below it is not acetabulum)
takes that share, clipped to 0-1, instead of 1. Interpolated linearly between voxel centers,
the share's half level lies within 0.09 of a slice of a flat surface that crosses a slice
anywhere, where a mask's lies within half a slice.

Only along the slice axis, and only where it is the coarse one: a voxel inside the bone is left
whole, since spongy bone is darker than the cortex and would read as partly empty; and where
slices are about as fine as pixels, a voxel's deficit is as much in-plane partial volume or
spongy bone as a slice's partial fill.
"""
from __future__ import annotations

import numpy as np

FULL_PERCENTILE = 90.0
"""The bone's full contrast: this percentile of the acetabulum's HU near the hip (its cortex)."""
MIN_SLICE_SHARE = 1.5
"""Slices at least this many times the pixel size get the share; finer ones keep the label. On
the real 3 mm isotropic CT beside the project the share, read along z alone against a cortex
of 519 HU, dropped 665 of the acetabulum's 2937 voxels near the hip and cut its posterior wall
(posterior sector angle 106 -> 26 deg)."""
MAX_EDGE_SHIFT_SHARE = 0.5
"""The share moves an edge by at most half a slice; a value it draws in farther is the label's,
one it reads farther out is withheld (:func:`..geometry.measure_geometry`)."""
MIN_CONTRAST_HU = 100.0
"""Below this contrast between that bone and the soft tissue the CT tells no share: the label's
edge voxels stay whole."""


def edge_fill(hu: np.ndarray, acetabulum: np.ndarray, levels: tuple[float, float] | None,
              spacing_mm) -> np.ndarray:
    """The acetabulum's fill (float32, 0-1) from the CT ``hu`` (HU) and its label
    ``acetabulum``, both cropped around one hip (canonical z, y, x; voxel size
    ``spacing_mm``), and the hip's ``levels`` (:func:`bone_levels_hu`): 1 inside the label,
    the CT's share at the label's edge voxels along z (its HU between the soft tissue's level
    and the acetabulum's full one), 0 outside. Slices finer than :data:`MIN_SLICE_SHARE`
    pixels keep the label."""
    label = np.asarray(acetabulum, bool)
    fill = label.astype(np.float32)
    slice_mm, row_mm, column_mm = (float(s) for s in spacing_mm)
    if levels is None or slice_mm < MIN_SLICE_SHARE * min(row_mm, column_mm):
        return fill
    soft_hu, full_hu = levels
    if full_hu - soft_hu < MIN_CONTRAST_HU:
        return fill
    # the crop's first and last slices count their outer neighbour as themselves: the box
    # may cut through bone, and a cut is no edge
    below = np.concatenate([label[:1], label[:-1]])
    above = np.concatenate([label[1:], label[-1:]])
    edge = label & ~(below & above)
    fill[edge] = np.clip((hu[edge] - soft_hu) / (full_hu - soft_hu), 0.0, 1.0)
    return fill


def bone_levels_hu(hu: np.ndarray, acetabulum: np.ndarray,
                   bone: np.ndarray) -> tuple[float, float] | None:
    """The soft tissue's level (median HU of the voxels outside the bone mask) and the
    acetabulum's full one (:data:`FULL_PERCENTILE` of its label's HU, its cortex), around one
    hip; None without either."""
    label, soft = np.asarray(acetabulum, bool), ~np.asarray(bone, bool)
    if not label.any() or not soft.any():
        return None
    return float(np.median(hu[soft])), float(np.percentile(hu[label], FULL_PERCENTILE))
