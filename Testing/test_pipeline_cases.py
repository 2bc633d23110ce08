"""Whole-scan cases from the command line: a scan without hips and a hip with an implant (either
side, through `annotate` and `predict`)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from THAAnnotatorLib import cli
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk
from THAAnnotatorLib.pipeline import METAL_MESSAGE, annotate, resolution_warnings
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, segment_code

SPACING = (2.0, 1.0, 1.0)  # mm


def _write(phantom, path):
    sitk.WriteImage(phantom_to_sitk(phantom), str(path))
    return path


def test_scan_without_hips_is_refused_and_nothing_is_written(tmp_path, capsys):
    scan = _write(generate_phantom(spacing_mm=SPACING, hips=False, seed=3), tmp_path / "spine.nii.gz")
    out = tmp_path / "out"
    assert cli.main(["annotate", str(scan), "--out", str(out), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: No hip could be segmented"), lines
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spine.nii.gz"]


@pytest.mark.parametrize("command, implant", [
    ("annotate", "left"), ("annotate", "right"), ("predict", "right")])
def test_implant_side_is_reported_and_the_other_hip_is_segmented(tmp_path, capsys, command,
                                                                 implant):
    other = {"left": "right", "right": "left"}[implant]
    phantom = generate_phantom(spacing_mm=SPACING, metal_side=implant, seed=2)
    scan = _write(phantom, tmp_path / "implant.nii.gz")
    out = tmp_path / "out"
    assert cli.main([command, str(scan), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"{implant} hip: {METAL_MESSAGE}" in printed or \
        f"{implant} hip: metal - {METAL_MESSAGE}" in printed, printed
    report = json.loads((out / "annotation.json").read_text())
    sides = report["sides"]
    assert sides[implant]["status"] == "metal" and sides[implant]["message"] == METAL_MESSAGE
    assert sides[other]["status"] == "segmented"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labels.seg.nrrd")))
    assert set(np.unique(labels)) == {0, *(segment_code(other, cls)
                                           for cls in (ACETABULUM, FEMORAL_HEAD))}
    if command == "annotate":  # the model fits no sphere
        truth_mm = 2 * phantom.heads[other].radius_mm
        assert abs(sides[other]["head_diameter_mm"] - truth_mm) <= 1.5


def test_hips_in_scans_coarser_than_the_method_was_made_for_carry_a_warning():
    assert resolution_warnings(np.array([2.0, 1.0, 1.0])) == []
    (slices,) = resolution_warnings(np.array([5.0, 0.8, 0.8]))
    assert slices.startswith("slices 5 mm apart are farther than the 3 mm")
    # a voxel just over the limit says so, not that it is the limit itself
    pixels, slices = resolution_warnings(np.array([4.57, 1.04, 1.04]))
    assert pixels.startswith("in-plane voxels of 1.04 mm are coarser than the 1 mm")
    assert slices.startswith("slices 4.57 mm apart")
    annotation = annotate(generate_phantom(spacing_mm=(3.0, 1.5, 1.5), seed=0).volume)
    for result in annotation.sides.values():
        assert result.status == "segmented"
        assert any(w.startswith("in-plane voxels of 1.5 mm are coarser than the 1 mm")
                   for w in result.warnings), result.warnings
