"""Agreement measures between label masks."""
from __future__ import annotations

import numpy as np

from .result import segment_code


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice similarity coefficient 2|A & B| / (|A| + |B|) of two masks of the same shape.

    Nonzero voxels count as foreground. Two empty masks agree perfectly (1.0); an empty mask
    against a non-empty one scores 0.0.
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"Mask shapes differ: {a.shape} and {b.shape}.")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def segment_dice(codes: np.ndarray, reference_codes: np.ndarray, side: str, cls: int) -> float:
    """Dice of one hip's class between two segment-code maps (as :attr:`Annotation.side_labels`)."""
    code = segment_code(side, cls)
    return dice(codes == code, reference_codes == code)
