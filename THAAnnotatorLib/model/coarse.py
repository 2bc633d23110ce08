"""Coarse copies of a fine scan: the same anatomy as a scanner with large voxels would show it.

Real hip CTs come with voxels of up to 3 mm and more (the shared real CT has 3 mm in every
direction), where the pipeline cannot resolve the joint space and its labels are unreliable. A
network trained only on fine scans has never seen such partial-volume images. A coarse copy
gives it that view with labels that are right: the fine scan is averaged over the large voxels,
and the labels the pipeline made on the fine scan are carried over to them by majority.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from ..volume import Volume

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class CoarseGrid:
    """A grid of larger voxels laid over a canonical volume, covering the same extent.

    Attributes
    ----------
    ratio : coarse voxel size over the fine one along canonical (z, y, x).
    shape : coarse array shape (whole coarse voxels inside the fine field of view).
    index_to_lps : 4 x 4 matrix, coarse canonical indices -> LPS mm (directions kept).
    """

    ratio: np.ndarray
    shape: tuple[int, int, int]
    index_to_lps: np.ndarray

    @classmethod
    def over(cls, volume: Volume, voxel_mm: float) -> "CoarseGrid":
        """The grid of ``voxel_mm`` cubes over ``volume``, its first voxel at the fine corner.

        Axes whose fine voxels are already as large or larger are resampled, not averaged.
        """
        if not voxel_mm > 0:
            raise ValueError("voxel_mm must be a positive size in mm.")
        ratio = voxel_mm / np.asarray(volume.spacing_mm, dtype=float)
        shape = tuple(int(n // r) for n, r in zip(volume.shape, ratio))
        if min(shape) < 1:
            raise ValueError(f"A {voxel_mm} mm voxel is larger than the volume.")
        # coarse voxel j spans fine voxels [j r, (j + 1) r): its center is fine index j r + (r - 1) / 2
        coarse_to_fine = np.eye(4)
        coarse_to_fine[:3, :3] = np.diag(ratio)
        coarse_to_fine[:3, 3] = (ratio - 1.0) / 2.0
        return cls(ratio=ratio, shape=shape, index_to_lps=volume.index_to_lps @ coarse_to_fine)

    @cached_property
    def _fine_positions(self) -> list[np.ndarray]:
        """Fine fractional (z, y, x) index of every coarse voxel center: three arrays of
        ``shape``, made once for the image and every label code."""
        axes = [np.arange(n) * r + (r - 1.0) / 2.0 for n, r in zip(self.shape, self.ratio)]
        return np.meshgrid(*axes, indexing="ij")

    def average(self, fine: np.ndarray) -> np.ndarray:
        """``fine`` (canonical, float) as the coarse voxels see it: float32 of ``shape``.

        A Gaussian whose full width at half maximum is one coarse voxel (less the fine voxel's
        own width) stands in for the scanner's slice profile and in-plane blur.
        """
        sigma = _FWHM_TO_SIGMA * np.sqrt(np.maximum(self.ratio ** 2 - 1.0, 0.0))
        smooth = ndimage.gaussian_filter(np.asarray(fine, dtype=np.float32), sigma)
        return ndimage.map_coordinates(smooth, self._fine_positions, order=1,
                                       mode="nearest").astype(np.float32)

    def volume(self, fine: Volume, noise_hu: float = 0.0,
               rng: np.random.Generator | None = None) -> Volume:
        """The coarse CT of ``fine``, with fresh Gaussian noise of ``noise_hu`` (HU) added
        (averaging removes most of the fine scan's own noise)."""
        hu = self.average(fine.hu)
        if noise_hu > 0:
            rng = rng or np.random.default_rng()
            hu += rng.normal(0.0, noise_hu, hu.shape).astype(np.float32)
        return Volume(hu=hu, index_to_lps=self.index_to_lps.copy(),
                      source_axes=fine.source_axes, source_flipped=fine.source_flipped)

    def labels(self, fine_codes: np.ndarray) -> np.ndarray:
        """A label map (any integer codes) carried over: each coarse voxel takes the code that
        covers most of it."""
        codes = np.unique(fine_codes)
        shares = np.stack([self.average(fine_codes == code) for code in codes])
        return codes[np.argmax(shares, axis=0)].astype(fine_codes.dtype)
