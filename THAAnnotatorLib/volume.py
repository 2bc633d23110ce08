"""Canonical in-memory CT volume.

Every reader (files, Slicer volume nodes, the phantom) produces a :class:`Volume` whose array
axes are ordered (z, y, x) and point patient Superior, Posterior and Left (LPS+). The
permutation is decided from the direction cosines, never from array position, so the same
scan stored in LPS or RAS gives the same canonical array. Only axis permutations and flips are
applied (no resampling), so labels map back to the source array exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

# canonical array axis -> LPS world axis it follows (z -> S, y -> P, x -> L)
_CANONICAL_WORLD_AXES = (2, 1, 0)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

IN_SLICE_FOUR_NEIGHBOURS = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], dtype=bool)
"""Structuring element of the canonical (z, y, x) layout joining a voxel to its four neighbours
in its own axial slice only: per-slice work (hole filling, dilation) over a whole volume."""


@dataclass
class Volume:
    """A CT volume in canonical (z, y, x) = (S, P, L) axis order.

    Attributes
    ----------
    hu : float32 array (z, y, x), Hounsfield units.
    index_to_lps : 4 x 4 matrix mapping homogeneous canonical array indices (z, y, x, 1) to
        LPS patient coordinates in mm.
    source_axes : for each canonical axis, the axis of the source array it came from.
    source_flipped : for each canonical axis, whether it was reversed relative to the source.
    """

    hu: np.ndarray
    index_to_lps: np.ndarray
    source_axes: tuple[int, int, int] = (0, 1, 2)
    source_flipped: tuple[bool, bool, bool] = (False, False, False)

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel size in mm along the canonical (z, y, x) axes."""
        return np.linalg.norm(self.index_to_lps[:3, :3], axis=0)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)

    def index_to_ras_mm(self, zyx: np.ndarray) -> np.ndarray:
        """Map canonical (z, y, x) indices, shape (..., 3), to RAS patient coordinates in mm."""
        zyx = np.asarray(zyx, dtype=float)
        homog = np.concatenate([zyx, np.ones(zyx.shape[:-1] + (1,))], axis=-1)
        return (homog @ (_LPS_TO_RAS @ self.index_to_lps).T)[..., :3]

    def ras_mm_to_index(self, ras: np.ndarray) -> np.ndarray:
        """Map RAS coordinates in mm, shape (..., 3), to fractional canonical (z, y, x) indices."""
        ras = np.asarray(ras, dtype=float)
        homog = np.concatenate([ras, np.ones(ras.shape[:-1] + (1,))], axis=-1)
        inv = np.linalg.inv(_LPS_TO_RAS @ self.index_to_lps)
        return (homog @ inv.T)[..., :3]

    def to_source_layout(self, array: np.ndarray) -> np.ndarray:
        """Return a canonical-layout array (e.g. a label map) in the source array's layout."""
        out = array
        flips = tuple(ax for ax, f in enumerate(self.source_flipped) if f)
        if flips:
            out = np.flip(out, axis=flips)
        # canonical axis c came from source axis source_axes[c]; invert that permutation
        return np.ascontiguousarray(np.moveaxis(out, range(3), self.source_axes))

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """Shape of the array in the source layout (the shape :meth:`to_source_layout` returns)."""
        shape = [0, 0, 0]
        for canon_axis, src in enumerate(self.source_axes):
            shape[src] = self.hu.shape[canon_axis]
        return tuple(shape)

    def source_index_to_lps(self) -> np.ndarray:
        """4 x 4 matrix mapping homogeneous source-array indices to LPS coordinates in mm.

        The source array is the one :meth:`to_source_layout` returns, indexed in its own axis
        order; ``canonicalize(self.to_source_layout(self.hu), self.source_index_to_lps())``
        rebuilds this volume.
        """
        canonical_to_source = np.zeros((4, 4))
        canonical_to_source[3, 3] = 1.0
        for canon_axis, (src, flip) in enumerate(zip(self.source_axes, self.source_flipped)):
            canonical_to_source[src, canon_axis] = -1.0 if flip else 1.0
            canonical_to_source[src, 3] = (self.hu.shape[canon_axis] - 1) if flip else 0.0
        return self.index_to_lps @ np.linalg.inv(canonical_to_source)


def canonicalize(array: np.ndarray, array_index_to_lps: np.ndarray) -> Volume:
    """Reorder a 3-D array to canonical (S, P, L) axes.

    Parameters
    ----------
    array : 3-D array in any axis order.
    array_index_to_lps : 4 x 4 matrix mapping homogeneous indices of ``array`` (in its own axis
        order) to LPS coordinates in mm.
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise InputError(f"Expected a 3-D volume, got an array with {array.ndim} dimension(s).")
    m = np.asarray(array_index_to_lps, dtype=float)
    cosines = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)
    source_axes: list[int] = []
    for world_axis in _CANONICAL_WORLD_AXES:
        weights = np.abs(cosines[world_axis]).copy()
        weights[source_axes] = -1.0
        source_axes.append(int(np.argmax(weights)))
    flipped = tuple(bool(cosines[w, s] < 0) for w, s in zip(_CANONICAL_WORLD_AXES, source_axes))
    data = np.moveaxis(array, source_axes, range(3))
    perm = np.zeros((4, 4))
    perm[3, 3] = 1.0
    for canon_axis, (src, flip) in enumerate(zip(source_axes, flipped)):
        n = array.shape[src]
        # source index along src = (n - 1 - c) if flipped else c
        perm[src, canon_axis] = -1.0 if flip else 1.0
        perm[src, 3] = (n - 1) if flip else 0.0
    flip_axes = tuple(ax for ax, f in enumerate(flipped) if f)
    if flip_axes:
        data = np.flip(data, axis=flip_axes)
    return Volume(
        hu=np.ascontiguousarray(data, dtype=np.float32),
        index_to_lps=m @ perm,
        source_axes=tuple(source_axes),
        source_flipped=flipped,
    )
