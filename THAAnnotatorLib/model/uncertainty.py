"""The network's own doubt about a hip: does its answer survive a small shift of its view?

Test-time augmentation: the hip's ROI is placed again with its center moved
:data:`SHIFT_MM` medially and :data:`SHIFT_MM` posteriorly, the network labels that view, and
the two label sets are compared on the scan's voxels as a Dice per class (1: the same labels).
The network was trained with random ROI shifts of up to 20 mm (:mod:`.training`; the ROI's
center comes from :mod:`.localize`, some millimetres off the head), so a shift this size is
well inside what it learned: a hip it has understood gets the same labels, and labels that
move with the view are a guess. A left-right flip was not used: the left hip's ROI is
mirrored so that every ROI the network saw has the head on the same side, and a flipped view
is one it has never seen, which would measure the flip rather than the hip.

To keep the cost down only every :data:`SLICE_STEP`-th slice that holds a label is labelled
again (about a third of the ROI's slices). A hip whose agreement falls below
:data:`MIN_AGREEMENT_DICE` in either class is marked for review; the thresholds were chosen on
seeds 0-3 of the sweep and of phantoms like the training ones, and their recall and false
alarms measured on held-out seeds 4-7 (``benchmarks/model_flag.py``; figures in
Resources/MODEL_CARD.md).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..metrics import dice
from ..result import ACETABULUM, FEMORAL_HEAD
from .roi import RoiPlacement

SHIFT_MM = 8.0
"""Medial and posterior shift (mm, each) of the second view's ROI center."""
SLICE_STEP = 2
"""Of the slices holding a label, every SLICE_STEP-th is labelled again."""
CLASS_KEYS = {ACETABULUM: "acetabulum", FEMORAL_HEAD: "femoral_head"}
"""The classes' keys in the agreement records (``model_agreement`` in annotation.json)."""
MIN_AGREEMENT_DICE = {"acetabulum": 0.915, "femoral_head": 0.965}
"""A hip whose Dice between the two views falls below this in either class is marked for
review (the pair with the largest recall minus false-alarm rate on seeds 0-3 of
``benchmarks/model_flag.py``: recall 54 of 65 failing hips, no false alarm on 5 good ones)."""


def shifted_view(placement: RoiPlacement, rows: np.ndarray) -> RoiPlacement:
    """The ROI of ``placement``'s slices at ``rows`` (indices into ``placement.slices``), its
    center moved :data:`SHIFT_MM` medially and posteriorly."""
    z, y, x = placement.center_zyx
    spacing = placement.spacing_mm
    medial = 1.0 if placement.side == "right" else -1.0  # canonical x points to patient left
    center = (z, y + SHIFT_MM / spacing[1], x + medial * SHIFT_MM / spacing[2])
    return RoiPlacement(placement.side, center, placement.slices[rows], spacing, placement.spec)


def shift_agreement(labels: np.ndarray, placement: RoiPlacement,
                    relabel: Callable[[RoiPlacement], np.ndarray]) -> dict[str, float]:
    """Dice per class between a hip's labels and those of the shifted view.

    Parameters
    ----------
    labels : (n, y, x) final class labels of the hip on ``placement.slices`` (0/1/2).
    placement : the ROI the labels came from.
    relabel : labels the slices of a placement the same way (network, back onto the same
        voxels, the same clean-up) and returns them as (len(slices), y, x).

    Returns
    -------
    {"acetabulum": Dice, "femoral_head": Dice}, each 0-1 (1 where neither view has the class).
    """
    rows = np.flatnonzero(labels.any(axis=(1, 2)))[::SLICE_STEP]
    shifted = relabel(shifted_view(placement, rows))
    return {key: round(dice(labels[rows] == cls, shifted == cls), 3)
            for cls, key in CLASS_KEYS.items()}


def doubt_warnings(agreement: dict[str, float]) -> list[str]:
    """A warning when either class's agreement falls below its :data:`MIN_AGREEMENT_DICE`."""
    if all(agreement[key] >= low for key, low in MIN_AGREEMENT_DICE.items()):
        return []
    return [f"the model's labels change when its view moves {SHIFT_MM:g} mm: Dice "
            f"{agreement['acetabulum']:.3f} (acetabulum) and {agreement['femoral_head']:.3f} "
            f"(femoral head) between the two views, where it is at least "
            f"{MIN_AGREEMENT_DICE['acetabulum']:g} and {MIN_AGREEMENT_DICE['femoral_head']:g} on "
            f"hips it segments well: check this hip"]
