"""The model's hip-presence decision and its own doubt (issue 19, items 2 and 3).

`predict` must not label a scan without hips (it refuses it, exit code 2, nothing written, as
`annotate` does), must keep a hip with an implant "metal", and records per segmented hip its
agreement with a shifted view of itself, marking the hip for review when that is low.
End-to-end tests use the bundled model on coarse or small scans to keep them fast.
"""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from THAAnnotatorLib import cli, io
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.model.inference import predict_scan
from THAAnnotatorLib.model.network import load_model
from THAAnnotatorLib.model.presence import (MIN_ACETABULUM_SHARE, HeadShape, head_volume_range_ml,
                                            not_a_head_reason)
from THAAnnotatorLib.model.roi import RoiPlacement, RoiSpec
from THAAnnotatorLib.model.uncertainty import (MIN_AGREEMENT_DICE, SHIFT_MM, doubt_warnings,
                                               shift_agreement, shifted_view)
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD

SPACING_MM = np.array([1.0, 1.0, 1.0])


# ------------------------------------------------------------------- presence: the criteria
def _hip(head_radius_mm=24.0, cortex_hu=900.0, acetabulum_offset_mm=8.0, flat=False):
    """Side-frame labels and HU of a ball-shaped head (HU 300 inside, ``cortex_hu`` in its
    outer 2 mm) with an acetabulum shell beside it, ``acetabulum_offset_mm`` toward medial
    (+x), on 1 mm voxels; ``flat`` squashes the head to a 10 mm slab of the same width."""
    size = 120
    z, y, x = np.indices((size, size, size), dtype=float)
    c = size / 2.0
    r = np.sqrt((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2)
    head = np.abs(z - c) <= 5 if flat else r <= head_radius_mm
    if flat:
        head &= (np.abs(y - c) <= 40) & (np.abs(x - c) <= 40)
    labels = np.zeros(r.shape, dtype=np.uint8)
    labels[head] = FEMORAL_HEAD
    cup_r = np.sqrt((z - c) ** 2 + (y - c) ** 2 + (x - c - acetabulum_offset_mm) ** 2)
    cup = (cup_r > head_radius_mm + 1) & (cup_r <= head_radius_mm + 12) & ~head
    cup &= (x - c) * np.sign(acetabulum_offset_mm) > 0
    labels[cup] = ACETABULUM
    hu = np.full(r.shape, 300.0, dtype=np.float32)
    hu[head & (r > head_radius_mm - 2)] = cortex_hu
    return labels, hu


def test_a_ball_shaped_bony_head_with_a_medial_socket_is_a_hip():
    shape = HeadShape.measure(*_hip(), SPACING_MM)
    assert shape.roundness > 0.95 and shape.acetabulum_medial_mm > 0
    assert shape.head_ml == pytest.approx(4 / 3 * np.pi * 24.0 ** 3 / 1000, rel=0.03)
    assert not_a_head_reason(shape, Params()) is None


@pytest.mark.parametrize("hip, expected", [
    (dict(head_radius_mm=8.0), r"is 2\.\d ml, outside the 14-180 ml of a femoral head"),
    (dict(head_radius_mm=38.0), r"is 2\d\d\.\d ml, outside the 14-180 ml"),
    (dict(flat=True), r"not ball-shaped \(0\.[0-4]\d of it lies within the ball of its volume"),
    (dict(cortex_hu=330.0), r"holds no bone cortex \(its brightest 1 % reaches 330 HU"),
    (dict(acetabulum_offset_mm=-8.0), r"acetabulum lies \d+ mm lateral of its femoral head"),
])
def test_labels_that_are_not_a_head_in_its_socket_are_refused_saying_why(hip, expected):
    reason = not_a_head_reason(HeadShape.measure(*_hip(**hip), SPACING_MM), Params())
    assert reason is not None and re.search(expected, reason), reason


def test_a_head_without_acetabulum_is_refused():
    labels, hu = _hip()
    labels[labels == ACETABULUM] = 0
    shape = HeadShape.measure(labels, hu, SPACING_MM)
    assert shape.acetabulum_share == 0 and np.isnan(shape.acetabulum_medial_mm)
    assert not_a_head_reason(shape, Params()) == (
        "too little acetabulum beside the model's femoral head (0.00 times the head's volume, "
        f"under {MIN_ACETABULUM_SHARE:g})")


def test_the_head_volume_range_comes_from_the_project_head_sizes():
    low, high = head_volume_range_ml(Params())
    assert low == pytest.approx(0.5 * np.pi * 38.0 ** 3 / 6 / 1000)  # half the 38 mm ball
    assert high == pytest.approx(4 / 3 * np.pi * 35.0 ** 3 / 1000)  # the 35 mm radius ball


# -------------------------------------------------------------------- doubt: a shifted view
def _placement(side: str) -> RoiPlacement:
    return RoiPlacement(side, (10.0, 50.0, 60.0), np.arange(4, 16), (2.0, 0.8, 0.5), RoiSpec())


@pytest.mark.parametrize("side, medial", [("right", 1.0), ("left", -1.0)])
def test_the_shifted_view_moves_medially_and_posteriorly(side, medial):
    placement = _placement(side)
    view = shifted_view(placement, np.array([1, 3]))
    z, y, x = view.center_zyx
    assert z == 10.0 and y == pytest.approx(50.0 + SHIFT_MM / 0.8)
    assert x == pytest.approx(60.0 + medial * SHIFT_MM / 0.5)
    assert list(view.slices) == [5, 7] and view.side == side and view.spec == placement.spec


def test_agreement_is_the_dice_per_class_on_every_second_labelled_slice():
    labels = np.zeros((12, 10, 10), dtype=np.uint8)
    labels[2:9, 2:6, 2:6] = FEMORAL_HEAD
    labels[2:9, 6:8, 2:6] = ACETABULUM
    seen = []

    def relabel(view):  # the shifted view agrees on the head and loses half the acetabulum
        seen.append(view)
        out = labels[np.searchsorted(_placement("right").slices, view.slices)].copy()
        out[:, 7] = 0
        return out

    agreement = shift_agreement(labels, _placement("right"), relabel)
    assert list(seen[0].slices) == [6, 8, 10, 12]  # rows 2, 4, 6, 8 of slices 4..15
    assert agreement == {"acetabulum": pytest.approx(2 / 3, abs=1e-3), "femoral_head": 1.0}


def test_a_hip_the_shifted_view_disagrees_on_gets_a_warning_with_the_numbers():
    assert doubt_warnings(dict(MIN_AGREEMENT_DICE)) == []
    for key in MIN_AGREEMENT_DICE:
        doubted = {**MIN_AGREEMENT_DICE, key: MIN_AGREEMENT_DICE[key] - 0.001}
        (warning,) = doubt_warnings(doubted)
        assert (f"Dice {doubted['acetabulum']:.3f} (acetabulum) and "
                f"{doubted['femoral_head']:.3f} (femoral head)") in warning
        assert (f"at least {MIN_AGREEMENT_DICE['acetabulum']:g} and "
                f"{MIN_AGREEMENT_DICE['femoral_head']:g}") in warning
        assert f"moves {SHIFT_MM:g} mm" in warning and warning.endswith("check this hip")


# ------------------------------------------------------------------- the bundled model
@pytest.fixture(scope="module")
def bundled():
    return load_model(device="cpu")


def _predict_cli(scan, out, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["predict", str(scan), "--out", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_refused_without_writing(code, err, tmp_path, scan):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: No hip could be segmented"), lines
    assert "right hip: femoral head not found" in err and "left hip: femoral head not found" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [scan.name]


def test_predict_refuses_a_generated_scan_without_hips_and_writes_nothing(tmp_path, capsys):
    phantom = generate_phantom(spacing_mm=(3.0, 1.6, 1.6), fov_mm=(160.0, 280.0, 400.0),
                               hips=False, seed=0)
    scan = tmp_path / "spine.nii.gz"
    sitk.WriteImage(phantom_to_sitk(phantom), str(scan))
    code, _, err = _predict_cli(scan, tmp_path / "out", capsys)
    _assert_refused_without_writing(code, err, tmp_path, scan)


def test_predict_refuses_the_real_ct_cut_above_the_hips_and_writes_nothing(
        shared_ct_path, bundled, tmp_path, capsys):
    image = sitk.ReadImage(str(shared_ct_path))
    volume = io.read_scan(shared_ct_path).volume
    whole = predict_scan(volume, bundled)
    # 15 mm above the highest slice the model labels on the whole scan (the top of the right
    # head, where its acetabulum ends too): the ilium, the spine and the abdomen remain
    top = int(np.flatnonzero(whole.side_labels.any(axis=(1, 2))).max())
    ras_z = volume.index_to_ras_mm(np.array([top + 15.0 / volume.spacing_mm[0], 0.0, 0.0]))[2]
    k = int(np.ceil(image.TransformPhysicalPointToContinuousIndex(
        (0.0, 0.0, float(ras_z)))[2]))  # RAS and LPS share the S axis
    assert image.GetDirection()[8] > 0 and 0 < k < image.GetSize()[2] - 20
    scan = tmp_path / "above_hips.nii.gz"
    sitk.WriteImage(image[:, :, k:], str(scan))
    code, _, err = _predict_cli(scan, tmp_path / "out", capsys)
    _assert_refused_without_writing(code, err, tmp_path, scan)


def test_a_contrast_filled_ball_the_network_labels_is_no_hip(bundled):
    """Blood with contrast (300 HU), which bone extraction keeps, in a ball beside the spine, as
    a heart in a chest CT: the network labels it femoral head and acetabulum (measured: 178 ml
    of head), the presence decision refuses it for want of a bone cortex."""
    phantom = generate_phantom(spacing_mm=(3.0, 1.6, 1.6), fov_mm=(160.0, 280.0, 400.0),
                               hips=False, seed=0)
    volume = phantom.volume
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(volume.shape, volume.spacing_mm)],
                          indexing="ij")
    ball = ((z - 80) / 45) ** 2 + ((y - 120) / 45) ** 2 + ((x - 255) / 50) ** 2 <= 1
    hu = volume.hu.copy()
    hu[ball] = 300.0 + np.random.default_rng(0).normal(0.0, 15.0, int(ball.sum()))
    with pytest.raises(InputError, match=r"left hip: femoral head not found: the model's femoral "
                                         r"head holds no bone cortex"):
        predict_scan(dataclasses.replace(volume, hu=hu), bundled)


def test_predict_on_the_real_ct_keeps_the_implant_metal_and_reports_its_doubt_on_the_other(
        shared_ct_path, tmp_path, capsys):
    out = tmp_path / "out"
    code, printed, err = _predict_cli(shared_ct_path, out, capsys)
    assert code == 0, err
    report = json.loads((out / "annotation.json").read_text())["sides"]
    prediction = json.loads((out / "prediction.json").read_text())["sides"]
    assert report["left"]["status"] == prediction["left"]["status"] == "metal"
    assert report["left"]["model_agreement"] is None
    right = report["right"]
    assert right["status"] == "segmented" and right["needs_review"]
    assert any("this method was made for" in w for w in right["warnings"]), right["warnings"]
    agreement = right["model_agreement"]
    assert set(agreement) == {"acetabulum", "femoral_head"}
    assert all(0.0 <= value <= 1.0 for value in agreement.values())
    assert prediction["right"]["model_agreement"] == agreement
    assert prediction["right"]["warnings"] == right["warnings"]
    assert (f"agreement with a shifted view (Dice): acetabulum {agreement['acetabulum']:.3f}, "
            f"femoral head {agreement['femoral_head']:.3f}; needs review: yes") in printed
    assert "  warning: in-plane voxels of 3 mm" in printed


def test_predict_still_segments_both_hips_of_a_normal_phantom(bundled):
    phantom = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), fov_mm=(110.0, 280.0, 400.0), seed=1)
    annotation = predict_scan(phantom.volume, bundled)
    for side, result in annotation.sides.items():
        assert result.status == "segmented", (side, result.message)
        # a phantom like those it was trained on: it agrees with itself, no review
        assert all(result.model_agreement[key] >= low for key, low in MIN_AGREEMENT_DICE.items()), \
            result.model_agreement
        assert not result.needs_review, result.warnings
