"""The per-hip region of interest (ROI) the network sees, and resampling into and out of it.

The ROI of one hip is a stack of axial slices of the scan, each resampled to a square grid of
``pixels`` x ``pixels`` covering ``size_mm`` x ``size_mm`` around the femoral head center, so
every sample has the same physical scale whatever the scan's voxel size (paper, section 5.1:
256 x 256 inputs). Slices are those whose center lies within ``half_height_mm`` of the head
center along S-I. ROI rows run anterior -> posterior; ROI columns run lateral -> medial for
both hips (the left hip's ROI is mirrored), so the network learns one hip shape, not two.

All coordinates here are canonical array indices (z, y, x) = (S, P, L) of
:class:`~THAAnnotatorLib.volume.Volume`, fractional where stated.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ..result import ACETABULUM, FEMORAL_HEAD, SIDES
from ..volume import IN_SLICE_FOUR_NEIGHBOURS

HU_WINDOW = (-125.0, 275.0)
"""CT values are clipped to this window, in HU, and scaled to [0, 1] (paper, section 5.1)."""
OUTSIDE_HU = -1024.0
"""Value, in HU, given to ROI pixels that fall outside the scan."""


@dataclass(frozen=True)
class RoiSpec:
    """Size and sampling of the ROI.

    Attributes
    ----------
    size_mm : side of the square in-plane ROI, in mm. The default, 160 mm, holds the joint
        region (labels lie within 2 x the head radius, about 50 mm, of the head center) with
        room for a head center that is off by up to about 25 mm.
    pixels : ROI grid size per axis (paper: 256); pixel size is ``size_mm / pixels``.
    half_height_mm : slices within this S-I distance (mm) of the head center are in the ROI;
        beyond the head (radius about 20-28 mm) they are all background, which teaches the
        network where the joint ends.
    """

    size_mm: float = 160.0
    pixels: int = 256
    half_height_mm: float = 40.0

    @property
    def pixel_mm(self) -> float:
        """In-plane size of one ROI pixel, in mm."""
        return self.size_mm / self.pixels

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RoiPlacement:
    """Where one hip's ROI lies in a scan.

    Attributes
    ----------
    side : "right" or "left".
    center_zyx : head center, fractional canonical (z, y, x) index.
    slices : canonical z indices of the ROI's slices, ascending (inferior first).
    spacing_mm : the scan's voxel size along canonical (z, y, x), in mm.
    spec : the ROI's size and sampling.
    """

    side: str
    center_zyx: tuple[float, float, float]
    slices: np.ndarray
    spacing_mm: tuple[float, float, float]
    spec: RoiSpec

    @property
    def _column_sign(self) -> float:
        # canonical x points to patient Left: lateral is low x on the right hip, high x on the left
        return 1.0 if self.side == "right" else -1.0

    def row_to_y(self, rows: np.ndarray) -> np.ndarray:
        """Fractional canonical y of ROI rows (row 0 is anterior)."""
        half = (self.spec.pixels - 1) / 2.0
        return self.center_zyx[1] + (np.asarray(rows, float) - half) * self.spec.pixel_mm / self.spacing_mm[1]

    def col_to_x(self, cols: np.ndarray) -> np.ndarray:
        """Fractional canonical x of ROI columns (column 0 is lateral)."""
        half = (self.spec.pixels - 1) / 2.0
        return self.center_zyx[2] + self._column_sign * (np.asarray(cols, float) - half) \
            * self.spec.pixel_mm / self.spacing_mm[2]

    def y_to_row(self, y: np.ndarray) -> np.ndarray:
        """Fractional ROI row of canonical y indices (inverse of :meth:`row_to_y`)."""
        half = (self.spec.pixels - 1) / 2.0
        return (np.asarray(y, float) - self.center_zyx[1]) * self.spacing_mm[1] / self.spec.pixel_mm + half

    def x_to_col(self, x: np.ndarray) -> np.ndarray:
        """Fractional ROI column of canonical x indices (inverse of :meth:`col_to_x`)."""
        half = (self.spec.pixels - 1) / 2.0
        return self._column_sign * (np.asarray(x, float) - self.center_zyx[2]) \
            * self.spacing_mm[2] / self.spec.pixel_mm + half


def place_roi(volume_shape: tuple[int, int, int], spacing_mm, center_zyx, side: str,
              spec: RoiSpec = RoiSpec()) -> RoiPlacement:
    """The ROI of one hip around a head center.

    Parameters
    ----------
    volume_shape : canonical (z, y, x) shape of the scan.
    spacing_mm : voxel size along canonical (z, y, x), in mm.
    center_zyx : femoral head center, fractional canonical index.
    side : "right" or "left".
    spec : ROI size and sampling.

    Returns
    -------
    RoiPlacement; its ``slices`` may be empty when the center lies far outside the scan.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    spacing = tuple(float(s) for s in spacing_mm)
    center = tuple(float(c) for c in center_zyx)
    reach = spec.half_height_mm / spacing[0]
    z = np.arange(volume_shape[0])
    # the small tolerance keeps a slice exactly at the edge in, whatever float rounding the
    # scan's stored geometry went through
    slices = z[np.abs(z - center[0]) <= reach + 1e-3]
    return RoiPlacement(side, center, slices, spacing, spec)


def normalize_hu(hu: np.ndarray) -> np.ndarray:
    """Clip HU to :data:`HU_WINDOW` and scale to [0, 1] (float32)."""
    low, high = HU_WINDOW
    return ((np.clip(hu, low, high) - low) / (high - low)).astype(np.float32)


def _sample(array: np.ndarray, placement: RoiPlacement, order: int, cval: float) -> np.ndarray:
    """Resample ``array`` (canonical z, y, x) onto the ROI grid: (n_slices, pixels, pixels)."""
    n = placement.spec.pixels
    ys = placement.row_to_y(np.arange(n))
    xs = placement.col_to_x(np.arange(n))
    out = np.empty((len(placement.slices), n, n), dtype=np.float32)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    for i, k in enumerate(placement.slices):
        out[i] = ndimage.map_coordinates(array[int(k)], [yy, xx], order=order, mode="constant",
                                         cval=cval, prefilter=False)
    return out


def sample_image(hu: np.ndarray, placement: RoiPlacement) -> np.ndarray:
    """ROI slices of a CT (canonical HU array), bilinear, normalised: float32 in [0, 1]."""
    return normalize_hu(_sample(hu, placement, order=1, cval=OUTSIDE_HU))


def sample_labels(labels: np.ndarray, placement: RoiPlacement) -> np.ndarray:
    """ROI slices of a class label map (canonical, 0/1/2), nearest neighbour, holes filled: uint8."""
    return fill_label_holes(_sample(labels, placement, order=0, cval=0).astype(np.uint8))


def fill_label_holes(labels: np.ndarray) -> np.ndarray:
    """Fill background holes inside each class region, slice by slice (paper, Table 4).

    Parameters
    ----------
    labels : (n, rows, cols) class labels, 0 background, 1 acetabulum, 2 femoral head.

    Returns
    -------
    A copy where background pixels enclosed by one class take that class; pixels of the other
    class are never overwritten.
    """
    out = np.array(labels, dtype=np.uint8, copy=True)
    for cls in (FEMORAL_HEAD, ACETABULUM):
        filled = ndimage.binary_fill_holes(out == cls, structure=IN_SLICE_FOUR_NEIGHBOURS)
        out[filled & (out == 0)] = cls
    return out
