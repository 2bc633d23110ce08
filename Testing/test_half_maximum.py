"""Label edges at the bone's half-maximum surface (afs.half_maximum)."""
from __future__ import annotations

import numpy as np

from THAAnnotatorLib.afs.half_maximum import trim_to_half_maximum

TISSUE_HU, CORTEX_HU, CANCELLOUS_HU = 40.0, 1000.0, 250.0
SPACING_MM = np.array([5.0, 1.0, 1.0])


def _bone_square(outer_share: float):
    """One slice: soft tissue around a 20 x 20 px bone block (a 2 px cortex around cancellous
    bone), with a one-pixel rim around it that is ``outer_share`` bone (partial volume). The
    bone mask, as a graph cut near cancellous bone's level would give it, takes the rim too."""
    hu = np.full((1, 40, 40), TISSUE_HU, dtype=np.float32)
    hu[0, 10:30, 10:30] = CORTEX_HU
    hu[0, 12:28, 12:28] = CANCELLOUS_HU
    rim = np.zeros(hu.shape, dtype=bool)
    rim[0, 9:31, 9:31] = True
    rim[0, 10:30, 10:30] = False
    hu[rim] = TISSUE_HU + outer_share * (CORTEX_HU - TISSUE_HU)
    bone = np.zeros(hu.shape, dtype=np.uint8)
    bone[0, 9:31, 9:31] = 1
    return hu, bone, rim


def test_a_rim_less_than_half_bone_is_dropped_and_nothing_deeper():
    hu, bone, rim = _bone_square(outer_share=0.3)
    labels = bone.copy()
    bone[0, 16:24, 16:24] = 0  # cancellous bone the cut left out, filled in the labels
    trimmed = trim_to_half_maximum(labels, hu, bone, SPACING_MM)
    assert not trimmed[rim].any()
    # the cortex (bright) and the cancellous bone inside it (below the half maximum, but not
    # on the edge, nor made one by the filled hole) stay
    np.testing.assert_array_equal(trimmed[0, 10:30, 10:30], 1)
    assert labels[rim].all(), "the input labels are left as they were"


def test_a_rim_more_than_half_bone_stays():
    hu, bone, _ = _bone_square(outer_share=0.7)
    np.testing.assert_array_equal(trim_to_half_maximum(bone.copy(), hu, bone, SPACING_MM), bone)


def test_edges_against_other_labels_or_gas_are_not_trimmed():
    """Only soft tissue beside an edge makes it an edge: not the other label (head against
    acetabulum), not gas."""
    hu, bone, rim = _bone_square(outer_share=0.3)
    labels = bone * 1
    labels[0, 31:34, 9:31] = 2  # bright bone of the other label below: the rim's lower row touches it
    hu[0, 31:34, 9:31], bone[0, 31:34, 9:31] = CORTEX_HU, 1
    hu[0, :, :9] = -950.0  # gas left of the block
    trimmed = trim_to_half_maximum(labels, hu, bone, SPACING_MM)
    assert trimmed[0, 30, 12:28].all(), "the rim row against the other label stays"
    assert trimmed[0, 12:28, 9].all(), "the rim column against gas stays"
    assert not trimmed[0, 9, 12:28].any() and not trimmed[0, 12:28, 30].any()
    np.testing.assert_array_equal(trimmed[0, 31:34], labels[0, 31:34])


def test_no_labels_give_no_labels():
    hu, bone, _ = _bone_square(outer_share=0.3)
    empty = np.zeros_like(bone)
    np.testing.assert_array_equal(trim_to_half_maximum(empty, hu, bone, SPACING_MM), empty)
