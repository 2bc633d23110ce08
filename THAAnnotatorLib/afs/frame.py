"""Per-side working frame: one half of the canonical volume, mirrored for the left hip.

In the side frame the patient's lateral side is at low x for both hips, so every AFS step
is written once (the authors' prototype mirrored the image for the same reason, but decided
the side from array position; here the side comes from the canonical LPS axes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..volume import Volume

# Pixels above this (HU) belong to the patient's body rather than the air around it.
_BODY_HU = -300.0


def body_midline_x(volume: Volume) -> int:
    """Canonical x index of the body's left-right centre (mean x of the body's voxels)."""
    per_column = (volume.hu > _BODY_HU).sum(axis=(0, 1))
    if per_column.sum() == 0:
        return volume.shape[2] // 2
    return int(round(float(np.average(np.arange(per_column.size), weights=per_column))))


@dataclass(frozen=True)
class SideFrame:
    """The x range [x_start, x_stop) of one side; ``mirrored`` for the left hip."""

    side: str
    x_start: int
    x_stop: int
    mirrored: bool

    @classmethod
    def for_side(cls, volume: Volume, side: str) -> "SideFrame":
        midline = body_midline_x(volume)
        if side == "right":  # canonical x points to patient left, so right is below the midline
            return cls(side, 0, midline, False)
        return cls(side, midline, volume.shape[2], True)

    @property
    def width(self) -> int:
        return self.x_stop - self.x_start

    def view(self, array: np.ndarray) -> np.ndarray:
        """The side's part of a canonical (z, y, x) array, lateral at low x."""
        part = array[..., self.x_start:self.x_stop]
        return part[..., ::-1] if self.mirrored else part

    def paste(self, target: np.ndarray, values: np.ndarray, where: np.ndarray) -> None:
        """Write ``values`` at ``where`` (both side-frame arrays) into the canonical ``target``."""
        view = self.view(target)  # a view, so assignments reach ``target``
        view[where] = values[where] if np.ndim(values) else values

    def to_canonical_x(self, x_frame: np.ndarray | float) -> np.ndarray | float:
        """Map side-frame x (fractional allowed) to canonical x."""
        if self.mirrored:
            return self.x_stop - 1 - np.asarray(x_frame, dtype=float)
        return self.x_start + np.asarray(x_frame, dtype=float)

    def to_frame_x(self, x_canonical: np.ndarray | float) -> np.ndarray | float:
        """Map canonical x (fractional allowed) to side-frame x."""
        if self.mirrored:
            return self.x_stop - 1 - np.asarray(x_canonical, dtype=float)
        return np.asarray(x_canonical, dtype=float) - self.x_start

    def to_canonical_zyx(self, zyx_frame: np.ndarray) -> np.ndarray:
        pts = np.array(zyx_frame, dtype=float, copy=True)
        pts[..., 2] = self.to_canonical_x(pts[..., 2])
        return pts
