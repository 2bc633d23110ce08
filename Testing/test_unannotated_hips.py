"""Hips the pipeline did not annotate (issue 22, items 1 and 5).

An export marks an un-annotated hip's half of the scan with the ignore label (not background),
and a scan whose requested hips all hold metal implants is a result, not bad input.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from THAAnnotatorLib import cli
from THAAnnotatorLib.batch.build import build_dataset
from THAAnnotatorLib.batch.export import IGNORE_LABEL, export_build
from THAAnnotatorLib.batch.manifest import read_manifest
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk
from THAAnnotatorLib.pipeline import METAL_MESSAGE

# small, quick phantoms (as in test_batch): the bookkeeping is under test, not the accuracy
SPACING_MM = (3.0, 1.5, 1.5)
FOV_MM = (120.0, 240.0, 360.0)


def _write(path: Path, storage: str = "LPS", **kwargs) -> Path:
    phantom = generate_phantom(spacing_mm=SPACING_MM, fov_mm=FOV_MM, **kwargs)
    sitk.WriteImage(phantom_to_sitk(phantom, storage=storage), str(path), useCompression=True)
    return path


def _lps_x(image: sitk.Image) -> np.ndarray:
    """The LPS x (mm, + to the patient's left) of every voxel, in the array's (k, j, i) layout."""
    size = image.GetSize()
    i, j, k = np.meshgrid(*(np.arange(n) for n in size), indexing="ij")
    index = np.stack([i, j, k]).reshape(3, -1).astype(float)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    points = (np.asarray(image.GetOrigin())[:, None]
              + direction @ (np.asarray(image.GetSpacing())[:, None] * index))
    return points[0].reshape(size).transpose(2, 1, 0)


def _check_ignored_side(label: sitk.Image, ignored: str) -> None:
    """``ignored``'s half of the body is the ignore label, the other half holds the hip's
    acetabulum and head and no ignore label."""
    array = sitk.GetArrayFromImage(label)
    x = _lps_x(label)
    left = x > 0  # the phantom's body is centred on x = 0
    ignored_half = left if ignored == "left" else ~left
    # the region's edge is the body's midline (its voxels' mean x, within a few mm of x = 0):
    # 10 mm away from x = 0, each half is all or none of it
    far = np.abs(x) > 10.0
    assert np.all(array[ignored_half & far] == IGNORE_LABEL)
    assert not np.any(array[~ignored_half & far] == IGNORE_LABEL)
    kept = array[~ignored_half]
    assert {1, 2} <= set(np.unique(kept).tolist())


def test_right_only_build_exports_the_left_half_as_ignore(tmp_path, capsys):
    scans = tmp_path / "scans"
    scans.mkdir()
    _write(scans / "ras.nii.gz", storage="RAS", seed=0)  # stored x reversed: the half must follow
    out = tmp_path / "out"
    assert cli.main(["build-dataset", str(scans), str(out), "--side", "right", "--workers", "1",
                     "--quiet"]) == 0
    dest = tmp_path / "Dataset503_Right"
    capsys.readouterr()
    assert cli.main(["export", str(out), "--format", "nnunet", str(dest), "--quiet"]) == 0
    assert ("1 hip(s) not annotated (not asked for, metal or not found) labelled ignore (3) over "
            "their half of the scan: ras left") in capsys.readouterr().out
    meta = json.loads((dest / "dataset.json").read_text())
    assert meta["labels"]["ignore"] == IGNORE_LABEL == max(meta["labels"].values())
    assert sorted(meta["labels"].values()) == list(range(len(meta["labels"])))
    _check_ignored_side(sitk.ReadImage(str(dest / "labelsTr" / "ras.nii.gz")), "left")
    assert json.loads((dest / "export.json").read_text())["ignored_hips"] == {"ras": ["left"]}

    monai = tmp_path / "monai"
    export_build(out, monai, "monai")
    assert json.loads((monai / "datalist.json").read_text())["labels"][str(IGNORE_LABEL)] \
        == "ignore"
    _check_ignored_side(sitk.ReadImage(str(monai / "labels" / "ras.nii.gz")), "left")


@pytest.fixture(scope="module")
def implant_build(tmp_path_factory):
    """A build of one scan with a left implant, both sides asked for, and one of the same scan
    with only the left side asked for (all requested hips metal)."""
    root = tmp_path_factory.mktemp("implant")
    scans = root / "scans"
    scans.mkdir()
    _write(scans / "implant.nii.gz", seed=0, metal_side="left")
    both = build_dataset(scans, root / "both", workers=1)
    left = build_dataset(scans, root / "left", sides=("left",), workers=1)
    return root, both, left


@pytest.mark.parametrize("include_flagged", [False, True])
def test_a_metal_hip_is_exported_as_ignore(implant_build, tmp_path, include_flagged):
    root, both, _ = implant_build
    (record,) = both.records
    assert record["status"] == "done" and record["results"]["left"]["status"] == "metal"
    dest = tmp_path / "Dataset504_Metal"
    export_build(root / "both", dest, "nnunet", include_flagged=include_flagged)
    assert json.loads((dest / "dataset.json").read_text())["labels"]["ignore"] == IGNORE_LABEL
    _check_ignored_side(sitk.ReadImage(str(dest / "labelsTr" / "implant.nii.gz")), "left")


def test_a_scan_whose_requested_hips_are_all_metal_is_done(implant_build, tmp_path):
    root, _, left = implant_build
    (record,) = left.records
    assert record["status"] == "done", record["reasons"]
    assert record["sides_found"] == [] and record["results"]["left"]["status"] == "metal"
    assert record["reasons"] == [f"left hip: {METAL_MESSAGE}"]
    counts = read_manifest(root / "left")["counts"]
    assert counts["done"] == 1 and counts["failed"] == 0
    case = root / "left" / "cases" / "implant"
    assert (case / "annotation.json").is_file()
    assert not sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels.nii.gz"))).any()
    # nothing to learn from: an export leaves it out and says why
    with pytest.raises(InputError, match="no hip annotated"):
        export_build(root / "left", tmp_path / "Dataset505_None", "nnunet")


def test_annotate_an_all_metal_scan_writes_its_results_and_exits_0(tmp_path, capsys):
    scan = _write(tmp_path / "implant.nii.gz", seed=2, metal_side="left")
    out = tmp_path / "out"
    assert cli.main(["annotate", str(scan), "--out", str(out), "--side", "left", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"left hip: {METAL_MESSAGE}" in printed
    report = json.loads((out / "annotation.json").read_text())
    assert list(report["sides"]) == ["left"] and report["sides"]["left"]["status"] == "metal"
    for name in ("labels.nii.gz", "labels.seg.nrrd"):
        assert not sitk.GetArrayFromImage(sitk.ReadImage(str(out / name))).any()
    assert (out / "bone.nii.gz").is_file() and (out / "overview.png").is_file()


def test_slice_dataset_passes_over_an_all_metal_case(implant_build, tmp_path, capsys):
    """An all-metal case has empty label maps: `slice-dataset` adds no hip of it, says so, and
    goes on to the next source (it stopped with "no labels inside the scan's volume")."""
    pytest.importorskip("torch")
    root, _, left = implant_build
    (record,) = left.records
    dataset = tmp_path / "ds"
    assert cli.main(["slice-dataset", str(dataset), "--build", str(root / "left"),
                     "--build", str(root / "both"), "--roi-pixels", "32"]) == 0, \
        capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "implant: no hip(s) added" in printed
    assert "implant: right hip(s) added" in printed
    # only the all-metal build: nothing to add, and the error says why
    assert cli.main(["slice-dataset", str(tmp_path / "none"), "--build", str(root / "left"),
                     "--roi-pixels", "32"]) == 2
    error = capsys.readouterr().err
    assert "No hip was added" in error and "not segmented" in error
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("layout", ["nnunet", "monai"])
def test_evaluate_leaves_an_exports_ignore_label_out(tmp_path, capsys, layout):
    """An export's label maps hold 3 (ignore) over an un-annotated hip's half; `evaluate` against
    them must leave those voxels out, not read 3 as a side code (the left acetabulum), which
    scored a network that labels both hips, right on the annotated one, acetabulum Dice 0.5."""
    pytest.importorskip("monai")
    shape = (8, 24, 40)
    truth = np.zeros(shape, np.uint8)
    truth[2:6, 8:16, 4:10], truth[2:6, 8:16, 10:14] = 1, 2  # the right hip
    truth[:, :, 20:] = IGNORE_LABEL  # the left half: a hip not annotated
    prediction = truth.copy()
    prediction[prediction == IGNORE_LABEL] = 0
    prediction[2:6, 8:16, 26:30], prediction[2:6, 8:16, 30:36] = 2, 1  # the left hip, predicted
    export = tmp_path / ("Dataset510_Right" if layout == "nnunet" else "monai")
    labels = export / ("labelsTr" if layout == "nnunet" else "labels")
    labels.mkdir(parents=True)
    if layout == "nnunet":
        (export / "dataset.json").write_text(json.dumps({"labels": {
            "background": 0, "acetabulum": 1, "femoral_head": 2, "ignore": IGNORE_LABEL}}))
    else:
        (export / "datalist.json").write_text(json.dumps({"labels": {
            "0": "background", "1": "acetabulum", "2": "femoral_head",
            str(IGNORE_LABEL): "ignore"}, "training": [], "validation": []}))
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(truth), str(labels / "case.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(prediction), str(predictions / "case.nii.gz"))
    scores = tmp_path / "scores.json"
    assert cli.main(["evaluate", str(predictions), str(labels), "--json", str(scores)]) == 0
    mean = json.loads(scores.read_text())["mean"]
    assert mean["acetabulum"]["dice"] == 1.0 and mean["femoral head"]["dice"] == 1.0
    assert mean["acetabulum"]["hd95_mm"] == 0.0
    assert "ignore" in capsys.readouterr().out
