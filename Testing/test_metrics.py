"""Dice coefficient."""
import numpy as np
import pytest

from THAAnnotatorLib.metrics import dice


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
