"""AAR: the uncertainty of eq. (6), the review queue, and taking corrections into the dataset."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from test_model import model_cli
from test_model_fixtures import CORRUPTED_COUNT, TEST_RECIPES, copy_dataset, workspace  # noqa: F401

from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.io import read_scan
from THAAnnotatorLib.model.aar import (EPSILON, apply_corrections, load_queue, pooled_dice,
                                       uncertainty)
from THAAnnotatorLib.model.dataset import SliceDataset
from THAAnnotatorLib.model.labelfiles import read_label_file
from THAAnnotatorLib.outputs import write_outputs
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, Annotation, segment_code


def test_uncertainty_is_the_inverse_pooled_foreground_dice():
    label = np.zeros((8, 8), np.uint8)
    label[1:4, 1:4] = ACETABULUM
    label[4:7, 4:7] = FEMORAL_HEAD
    assert pooled_dice(label, label) == 1.0
    assert uncertainty(label, label) == pytest.approx(1.0)
    swapped = np.choose(label, [0, 2, 1])
    assert pooled_dice(swapped, label) == 0.0
    assert uncertainty(swapped, label) == pytest.approx(1.0 / EPSILON)
    half = label.copy()
    half[4:7, 4:7] = 0  # the head missed: 2 * 9 / (9 + 18)
    assert pooled_dice(half, label) == pytest.approx(2 / 3)
    empty = np.zeros_like(label)
    assert pooled_dice(empty, empty) == 1.0


@pytest.fixture()
def queue_dir(workspace, tmp_path):
    """A private copy of the noisy dataset with a fresh top-10 review queue."""
    dataset = copy_dataset(workspace.noisy, tmp_path / "noisy")
    assert model_cli("review-queue", dataset, "--model", workspace.model, "--top-k", "10",
                     "--device", "cpu") == 0
    return dataset


def test_the_corrupted_slices_lead_the_review_queue(workspace, queue_dir, capsys):
    queue = load_queue(queue_dir / "review" / "review_queue.json")
    assert len(queue["items"]) == 10
    queued = [(i["scan"], i["side"], i["slice"]) for i in queue["items"]]
    assert set(workspace.corrupted) <= set(queued), (workspace.corrupted, queued)
    total = len(SliceDataset.open(queue_dir).samples)
    print(f"{CORRUPTED_COUNT} corrupted of {total} slices ({queue['slices_scored']} showing the "
          f"joint): ranks {sorted(queued.index(c) + 1 for c in workspace.corrupted)}")

    uncertainties = [i["uncertainty"] for i in queue["items"]]
    assert uncertainties == sorted(uncertainties, reverse=True)
    assert queue["version"] == 1 and queue["dataset"] == str(queue_dir.resolve())
    for item in queue["items"]:
        assert set(item) >= {"scan", "side", "slice", "uncertainty", "dice", "thumbnail", "corrected"}
        assert set(item["dice"]) == {"acetabulum", "femoral_head"} and item["corrected"] is False
        thumbnail = cv2.imread(str(queue_dir / "review" / item["thumbnail"]))
        assert thumbnail.shape == (64, 128, 3)
        assert item["source_slice"] == {"axis": "k", "index": item["slice"]}
        assert queue["scans"][item["scan"]]["scan_path"].endswith(f"{item['scan']}.nii.gz")
    with open(queue_dir / "review" / "review_queue.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["scan"], r["side"], int(r["slice"])) for r in rows] == queued


def _queued_rows(dataset: SliceDataset, queue: dict, scan: str) -> dict[int, list[int]]:
    rows: dict[int, list[int]] = {}
    for item in queue["items"]:
        if item["scan"] == scan:
            number = dataset.case_number(scan, item["side"])
            rows.setdefault(number, []).append(dataset.cases[number]["slices"].index(item["slice"]))
    return rows


@pytest.mark.parametrize("kind", ["nifti", "cropped_seg_nrrd"])
def test_corrections_replace_the_queued_labels_and_keep_the_originals(workspace, queue_dir,
                                                                       tmp_path, kind):
    scan = TEST_RECIPES[0].name
    truth_file = workspace.clean / "truth" / f"{scan}.nii.gz"
    if kind == "nifti":
        corrections = truth_file
    else:
        # what Slicer saves after editing: a segmentation cropped to its segments' extent
        loaded = read_scan(workspace.clean / "scans" / f"{scan}.nii.gz")
        truth = read_label_file(truth_file, loaded.reference).values
        codes = np.zeros_like(truth)
        half = loaded.volume.shape[2] // 2
        for cls in (ACETABULUM, FEMORAL_HEAD):
            codes[..., :half][truth[..., :half] == cls] = segment_code("right", cls)
            codes[..., half:][truth[..., half:] == cls] = segment_code("left", cls)
        annotation = Annotation(bone=(codes > 0).astype(np.uint8), side_labels=codes, sides={})
        written = write_outputs(tmp_path / "full", loaded.reference, loaded.volume, annotation, Params())
        image = sitk.ReadImage(str(written["labels.seg.nrrd"]))
        nonzero = np.argwhere(sitk.GetArrayViewFromImage(image))
        low, high = nonzero.min(axis=0)[::-1], nonzero.max(axis=0)[::-1]
        cropped = sitk.RegionOfInterest(image, [int(h - l + 1) for l, h in zip(low, high)],
                                        [int(v) for v in low])
        for key in image.GetMetaDataKeys():
            cropped.SetMetaData(key, image.GetMetaData(key))
        assert cropped.GetSize() != image.GetSize()
        corrections = tmp_path / f"{scan}.seg.nrrd"
        sitk.WriteImage(cropped, str(corrections), useCompression=True)

    before = SliceDataset.open(queue_dir)
    queue = load_queue(queue_dir / "review" / "review_queue.json")
    rows = _queued_rows(before, queue, scan)
    old = {n: before.load_case(n) for n in range(len(before.cases))}
    assert model_cli("apply-corrections", queue_dir, corrections, "--scan", scan) == 0

    after = SliceDataset.open(queue_dir)
    for number, data in old.items():
        new = after.load_case(number)
        changed = rows.get(number, [])
        if not changed:
            np.testing.assert_array_equal(new.label, data.label)
            assert not new.corrected.any()
            continue
        np.testing.assert_array_equal(new.label_original, data.label)
        np.testing.assert_array_equal(new.label[changed], data.truth[changed])
        keep = [r for r in range(len(data.label)) if r not in changed]
        np.testing.assert_array_equal(new.label[keep], data.label[keep])
        assert sorted(np.flatnonzero(new.corrected)) == sorted(changed)
    marked = load_queue(queue_dir / "review" / "review_queue.json")["items"]
    assert [i["corrected"] for i in marked] == [i["scan"] == scan for i in marked]
    with open(queue_dir / "review" / "review_queue.csv", newline="") as stream:
        rows_csv = list(csv.DictReader(stream))
    assert [(r["scan"], r["side"], int(r["slice"]), r["corrected"]) for r in rows_csv] == [
        (i["scan"], i["side"], i["slice"], str(i["corrected"])) for i in marked]


def test_corrections_for_an_unqueued_scan_or_a_bad_file_are_refused(workspace, queue_dir, tmp_path):
    truth_file = workspace.clean / "truth" / f"{TEST_RECIPES[0].name}.nii.gz"
    with pytest.raises(InputError, match="no slices of scan"):
        apply_corrections(queue_dir, truth_file, scan="some_other_scan")
    junk = tmp_path / f"{TEST_RECIPES[0].name}.nii.gz"
    junk.write_bytes(b"not an image")
    with pytest.raises(InputError, match="not a readable image"):
        apply_corrections(queue_dir, junk)
    assert json.loads((queue_dir / "review" / "review_queue.json").read_text())["items"][0]["corrected"] is False


def test_review_queue_never_replaces_a_folder_that_is_not_a_queue(workspace, queue_dir, tmp_path,
                                                                   capsys, monkeypatch):
    """`review-queue --out` replaces an earlier queue, but refuses (exit 2, before scoring) a
    folder holding anything else: it deleted a user's files, or the dataset itself with
    ``--out DATASET`` (issue 22, item 6). An empty folder is written into."""
    from THAAnnotatorLib.model import aar

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("\\documentclass{article}\n")
    scored = []
    monkeypatch.setattr(aar, "score_slices", lambda *a, **k: scored.append(1) or [])
    for folder in (mine, queue_dir):
        before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
        assert model_cli("review-queue", queue_dir, "--model", workspace.model, "--top-k", "3",
                         "--device", "cpu", "--out", folder) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and str(folder) in error and "review_queue.json" in error
        assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert scored == []
    monkeypatch.undo()
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, queue_dir / "review"):  # a new queue, then one replaced by another
        assert model_cli("review-queue", queue_dir, "--model", workspace.model, "--top-k", "3",
                         "--device", "cpu", "--out", folder) == 0
        assert len(load_queue(folder / "review_queue.json")["items"]) == 3
