"""Dice coefficient."""
import numpy as np
import pytest

from THAAnnotatorLib.metrics import dice, segment_dice
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, segment_code


def test_dice_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert dice(a, b) == 1.0  # both empty: perfect agreement
    a[:2] = True
    assert dice(a, b) == 0.0
    b[1:3] = True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0


def test_dice_rejects_different_shapes():
    with pytest.raises(ValueError):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))


def test_segment_dice_scores_one_hip_and_class():
    codes = np.zeros((1, 4, 4), dtype=np.uint8)
    codes[0, :2, :2] = segment_code("right", FEMORAL_HEAD)
    codes[0, 2:, 2:] = segment_code("left", ACETABULUM)
    other = codes.copy()
    other[0, 0, 0] = 0  # one of the right head's four voxels lost
    assert segment_dice(codes, other, "right", FEMORAL_HEAD) == pytest.approx(6 / 7)
    assert segment_dice(codes, other, "left", ACETABULUM) == 1.0
    assert segment_dice(codes, other, "left", FEMORAL_HEAD) == 1.0  # empty in both
