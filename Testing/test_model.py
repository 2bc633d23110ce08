"""The learned model: slice dataset, training, saved weights, whole-scan prediction, evaluation.

The shared workspace (two coarse phantoms, a 64 x 64 pixel slice dataset, a small U-Net trained
on it) comes from ``test_model_fixtures``; see there.
"""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from safetensors.torch import load_file, save_file
from scipy import ndimage

from test_model_fixtures import TEST_RECIPES, TEST_ROI, copy_dataset, workspace  # noqa: F401

from THAAnnotatorLib import cli, io
from THAAnnotatorLib.afs.frame import SideFrame
from THAAnnotatorLib.bone import extract_bone
from THAAnnotatorLib.cli_model import add_model_commands
from THAAnnotatorLib.cli_types import OneLineErrorParser
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.metrics import dice
from THAAnnotatorLib.model.build import PHANTOM_FOV_MM
from THAAnnotatorLib.model.config import (CPU_BATCH_SIZE, GPU_BATCH_SIZE, ModelConfig,
                                           inference_batch_size)
from THAAnnotatorLib.model.dataset import SliceDataset
from THAAnnotatorLib.model.files import sha256_file
from THAAnnotatorLib.model.inference import (clear_acetabulum_outside_head_slices,
                                             predict_probabilities, predict_scan, roi_to_voxels)
from THAAnnotatorLib.model.labelfiles import read_label_file
from THAAnnotatorLib.model.localize import locate_head
from THAAnnotatorLib.model.network import (BUNDLED_MODEL_DIR, MODEL_FILE, WEIGHTS_FILE, LoadedModel,
                                           build_network, load_model, resolve_device, save_model)
from THAAnnotatorLib.model.roi import place_roi, sample_labels
from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.pipeline import annotate
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, SIDES, segment_code
from THAAnnotatorLib.volume import Volume

MODEL_COMMANDS = ("slice-dataset", "train", "predict", "review-queue", "apply-corrections", "evaluate")


def model_cli(*argv) -> int:
    """Run a model command the way ``tha-annotator`` does (InputError -> exit code 2)."""
    parser = OneLineErrorParser(prog="tha-annotator")
    add_model_commands(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args([str(a) for a in argv])
    except SystemExit as exit_info:  # an option out of its range, refused as it is read
        return exit_info.code
    try:
        return args.run(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def test_model_commands_are_registered_in_the_main_cli():
    choices = cli.build_parser()._subparsers._group_actions[0].choices
    for command in MODEL_COMMANDS:
        assert command in choices, f"`tha-annotator {command}` is not wired into cli.py"


# ---------------------------------------------------------------------------------- dataset
def test_dataset_holds_normalised_roi_slices_with_filled_labels(workspace):
    dataset = SliceDataset.open(workspace.clean)
    phantoms = {r.name: generate_phantom(spacing_mm=r.spacing_mm, fov_mm=PHANTOM_FOV_MM, seed=r.seed,
                                         head_radius_mm=r.head_radius_mm, spongy=r.spongy,
                                         noise_hu=r.noise_hu) for r in TEST_RECIPES}
    volumes = {name: p.volume for name, p in phantoms.items()}
    heads = {name: {s: h.center_ras_mm for s, h in p.heads.items()} for name, p in phantoms.items()}
    assert dataset.roi == TEST_ROI
    # hips the pipeline marks for review are left out (seed 2's left head at 1.6 mm / 3 mm is
    # refitted in 3-D, 49.4 -> 46.4 mm, true 46.0; measured), all others are in
    annotations = {name: annotate(volume) for name, volume in volumes.items()}
    unflagged = {(name, side) for name, a in annotations.items() for side in SIDES
                 if a.sides[side].status == "segmented" and not a.sides[side].needs_review}
    assert len(unflagged) >= 3
    assert {(c["scan"], c["side"]) for c in dataset.cases} == unflagged
    assert len(dataset.samples) == sum(len(c["slices"]) for c in dataset.cases)
    index = json.loads((workspace.clean / "dataset.json").read_text())
    assert index["version"] == 1 and index["classes"]["2"] == "femoral head"
    for number, case in enumerate(dataset.cases):
        data = dataset.load_case(number)
        n = len(case["slices"])
        assert data.image.shape == data.label.shape == data.truth.shape == (n, 64, 64)
        assert 0.0 <= data.image.min() and data.image.max() <= 1.0 and data.image.std() > 0.05
        assert set(np.unique(data.label)) <= {0, 1, 2} and set(np.unique(data.truth)) <= {0, 1, 2}
        # consecutive 3 mm slices spanning up to +-40 mm around the head center
        assert np.all(np.diff(case["slices"]) == 1) and 20 <= n <= 28
        for cls in (ACETABULUM, FEMORAL_HEAD):
            mask = data.label == cls
            filled = np.stack([ndimage.binary_fill_holes(m) for m in mask])
            assert not (filled & (data.label == 0)).any(), "a label has a background hole"
        # columns run lateral -> medial on both hips: the head lies lateral of the acetabulum
        joint = (data.truth == ACETABULUM).any(axis=(1, 2)) & (data.truth == FEMORAL_HEAD).any(axis=(1, 2))
        head_col = np.argwhere(data.truth[joint] == FEMORAL_HEAD)[:, 2].mean()
        cup_col = np.argwhere(data.truth[joint] == ACETABULUM)[:, 2].mean()
        assert head_col < cup_col, case["id"]
        # the true head center lands where the ROI mapping says: the truth's head disk on the
        # slice nearest to it is centred there (within 2 pixels = 5 mm)
        true_center = volumes[case["scan"]].ras_mm_to_index(np.array(heads[case["scan"]][case["side"]]))
        placement = place_roi(volumes[case["scan"]].shape, case["spacing_mm"], case["center_zyx"],
                              case["side"], TEST_ROI)
        row = int(np.argmin(np.abs(placement.slices - true_center[0])))
        disk = ndimage.binary_opening(data.truth[row] == FEMORAL_HEAD, iterations=2)
        centroid = np.argwhere(disk).mean(axis=0)
        expected = (placement.y_to_row(true_center[1]), placement.x_to_col(true_center[2]))
        assert np.abs(centroid - expected).max() < 2.0, (case["id"], centroid, expected)


def test_slice_dataset_from_pipeline_outputs_matches_the_phantom_build(workspace, tmp_path, capsys):
    name = TEST_RECIPES[0].name
    code = model_cli("slice-dataset", tmp_path / "ds",
                     "--scan", workspace.clean / "scans" / f"{name}.nii.gz",
                     "--annotation", workspace.clean / "pipeline" / name,
                     "--roi-pixels", TEST_ROI.pixels)
    assert code == 0, capsys.readouterr().err
    rebuilt = SliceDataset.open(tmp_path / "ds")
    original = SliceDataset.open(workspace.clean)
    assert len(rebuilt.cases) == 2
    for side in SIDES:
        a = rebuilt.load_case(rebuilt.case_number(name, side))
        b = original.load_case(original.case_number(name, side))
        assert rebuilt.cases[rebuilt.case_number(name, side)]["slices"] == \
            original.cases[original.case_number(name, side)]["slices"]
        np.testing.assert_array_equal(a.label, b.label)
        # the kept scan is int16 HU; float16 storage: well under 1 HU of difference
        assert np.abs(a.image - b.image).max() < 0.004
        assert a.truth is None


def test_slice_dataset_rejects_unpaired_options(tmp_path, capsys):
    assert model_cli("slice-dataset", tmp_path / "ds", "--scan", tmp_path / "x.nii.gz") == 2
    assert "annotation" in capsys.readouterr().err
    assert model_cli("slice-dataset", tmp_path / "ds") == 2
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("other_name", ["same", "letter case"])
def test_slice_dataset_refuses_two_scans_that_would_share_a_name(workspace, tmp_path, capsys,
                                                                  other_name):
    """Two --scan files with one name (p1/ct.nii.gz, p2/ct.nii.gz), or names that differ only in
    letter case (one file on macOS and Windows), would be one scan's cases in the dataset: the
    second silently replaced the first's. Refused before any work, nothing written."""
    name = TEST_RECIPES[0].name
    scan = workspace.clean / "scans" / f"{name}.nii.gz"
    other = tmp_path / "p2" / (f"{name}.nii.gz" if other_name == "same" else f"{name.upper()}.nii.gz")
    other.parent.mkdir()
    shutil.copy(scan, other)
    annotation = workspace.clean / "pipeline" / name
    assert model_cli("slice-dataset", tmp_path / "ds", "--scan", scan, "--annotation", annotation,
                     "--scan", other, "--annotation", annotation,
                     "--roi-pixels", TEST_ROI.pixels) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(other) in error and str(scan) in error, error
    assert not (tmp_path / "ds").exists()
    # the same against a dataset that already holds the first scan
    assert model_cli("slice-dataset", tmp_path / "ds", "--scan", scan, "--annotation", annotation,
                     "--roi-pixels", TEST_ROI.pixels) == 0
    before = (tmp_path / "ds" / "dataset.json").read_bytes()
    if other_name == "letter case":
        assert model_cli("slice-dataset", tmp_path / "ds", "--scan", other, "--annotation",
                         annotation, "--roi-pixels", TEST_ROI.pixels) == 2
        assert str(other) in capsys.readouterr().err
        assert (tmp_path / "ds" / "dataset.json").read_bytes() == before
        assert sorted(p.name for p in (tmp_path / "ds" / "cases").iterdir()) == [
            f"{name}_left.npz", f"{name}_right.npz"]


@pytest.mark.parametrize("command", ["slice-dataset", "synth-dataset"])
def test_a_dataset_is_never_added_to_a_folder_holding_other_files(tmp_path, capsys, command):
    """A dataset folder is new, empty or a dataset (its dataset.json): one holding other files
    is refused before any work, as it had the dataset's files mixed in with them."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("\\documentclass{article}\n")
    options = ["--phantoms", "1"] if command == "slice-dataset" else ["--seeds", "1"]
    assert cli.main([command, str(mine), *options]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(mine) in error and "dataset.json" in error, error
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_a_failed_slice_dataset_leaves_an_empty_folder_empty(workspace, tmp_path, capsys):
    """A run into an empty folder that fails after adding a scan's cases leaves it empty, as one
    into a new folder leaves none, so the same command can be run again once fixed."""
    name = TEST_RECIPES[0].name
    scan = workspace.clean / "scans" / f"{name}.nii.gz"
    dataset = tmp_path / "ds"
    dataset.mkdir()
    argv = ["slice-dataset", dataset, "--scan", scan, "--annotation",
            workspace.clean / "pipeline" / name, "--scan", tmp_path / "other.nii.gz",
            "--annotation", tmp_path / "missing", "--roi-pixels", TEST_ROI.pixels]
    assert model_cli(*argv) == 2
    assert "missing" in capsys.readouterr().err
    assert list(dataset.iterdir()) == []
    assert model_cli(*argv[:6], "--roi-pixels", TEST_ROI.pixels) == 0


def test_slice_dataset_adds_the_done_cases_of_a_build(workspace, tmp_path, capsys):
    name = TEST_RECIPES[0].name
    scan = workspace.clean / "scans" / f"{name}.nii.gz"
    build = tmp_path / "build"
    shutil.copytree(workspace.clean / "pipeline" / name, build / "cases" / "done_case")
    (build / "manifest.json").write_text(json.dumps({"cases": [
        {"case": "done_case", "source": str(scan.resolve()), "status": "done"},
        {"case": "failed_case", "source": str(tmp_path / "gone.nii.gz"), "status": "failed"}]}))
    assert model_cli("slice-dataset", tmp_path / "single", "--scan", scan, "--annotation",
                     build / "cases" / "done_case", "--roi-pixels", TEST_ROI.pixels) == 0
    code = model_cli("slice-dataset", tmp_path / "ds", "--build", build,
                     "--roi-pixels", TEST_ROI.pixels)
    assert code == 0, capsys.readouterr().err
    built, single = SliceDataset.open(tmp_path / "ds"), SliceDataset.open(tmp_path / "single")
    assert [(c["scan"], c["side"]) for c in built.cases] == [("done_case", s) for s in SIDES]
    for side in SIDES:
        a = built.load_case(built.case_number("done_case", side))
        b = single.load_case(single.case_number(name, side))
        assert built.cases[built.case_number("done_case", side)]["slices"] == \
            single.cases[single.case_number(name, side)]["slices"]
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_array_equal(a.image, b.image)


def test_slice_dataset_rejects_a_folder_without_manifest(tmp_path, capsys):
    assert model_cli("slice-dataset", tmp_path / "ds", "--build", tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "manifest.json" in err
    assert not (tmp_path / "ds").exists()


def test_slice_dataset_that_adds_no_hip_fails_and_leaves_no_folder(workspace, tmp_path, capsys):
    """Every hip of the only source marked for review: one error line saying why, exit 2, and
    no dataset folder (issue 22)."""
    name = TEST_RECIPES[0].name
    annotation = tmp_path / name
    shutil.copytree(workspace.clean / "pipeline" / name, annotation)
    report = json.loads((annotation / "annotation.json").read_text(encoding="utf-8"))
    for side in SIDES:
        report["sides"][side]["needs_review"] = True
    (annotation / "annotation.json").write_text(json.dumps(report), encoding="utf-8")
    capsys.readouterr()
    code = model_cli("slice-dataset", tmp_path / "ds",
                     "--scan", workspace.clean / "scans" / f"{name}.nii.gz",
                     "--annotation", annotation, "--roi-pixels", TEST_ROI.pixels)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "No hip was added" in err and "2 hip(s) marked for review" in err
    assert not (tmp_path / "ds").exists()


def test_roi_resampling_round_trips_to_the_scan_voxels():
    phantom = generate_phantom(spacing_mm=(3.0, 1.6, 1.6), fov_mm=(60.0, 200.0, 300.0), seed=3)
    volume = phantom.volume
    bone = (phantom.part_map > 0).astype(np.uint8)
    width = volume.shape[2]
    for side, x_range in (("right", (0, width // 2)), ("left", (width // 2, width))):
        center = volume.ras_mm_to_index(np.array(phantom.heads[side].center_ras_mm))
        placement = place_roi(volume.shape, volume.spacing_mm, center, side, TEST_ROI)
        roi = sample_labels(bone, placement)
        onehot = torch.from_numpy(np.stack([roi == c for c in range(3)], axis=1).astype(np.float32))
        back = roi_to_voxels(onehot, placement, volume.shape[1], x_range)
        original = bone[placement.slices][..., x_range[0]:x_range[1]]
        # distance (mm) of each voxel from the ROI's center line, along y and along x
        dy = np.abs(np.arange(volume.shape[1]) - center[1])[:, None] * volume.spacing_mm[1]
        dx = np.abs(np.arange(*x_range) - center[2])[None, :] * volume.spacing_mm[2]
        reach = np.maximum(dy, dx)
        inside = reach < TEST_ROI.size_mm / 2 - 2 * TEST_ROI.pixel_mm
        assert dice(back[:, inside], original[:, inside]) > 0.9, side
        assert not back[:, reach > TEST_ROI.size_mm / 2 + TEST_ROI.pixel_mm].any(), side


def test_acetabulum_is_kept_only_in_slices_that_hold_femoral_head():
    labels = np.zeros((4, 6, 6), dtype=np.uint8)
    labels[:, 1:3, 1:3] = ACETABULUM   # acetabulum in every slice
    labels[1:3, 3:5, 3:5] = FEMORAL_HEAD  # head in slices 1 and 2 only
    expected = labels.copy()
    expected[[0, 3]] = 0
    clear_acetabulum_outside_head_slices(labels)
    np.testing.assert_array_equal(labels, expected)


def test_head_localisation_lands_near_the_true_head_center():
    phantom = generate_phantom(spacing_mm=(3.0, 1.6, 1.6), fov_mm=(100.0, 280.0, 400.0), seed=4)
    bone = extract_bone(phantom.volume)
    for side in SIDES:
        frame = SideFrame.for_side(phantom.volume, side)
        found = phantom.volume.index_to_ras_mm(locate_head(phantom.volume, bone, frame))
        assert np.linalg.norm(found - phantom.heads[side].center_ras_mm) < 15.0, side


def test_bone_cut_by_the_scan_edge_counts_as_going_on_beyond_it():
    """The thickest bone is searched over the bone's bounding box only; where that box meets the
    scan's first or last slice the bone is not taken to end there (a cone of bone widest at the
    scan's edge is thickest at that edge), where it ends inside the scan it does."""
    spacing_mm = 2.5
    z, y, x = np.mgrid[0:20, 0:80, 0:160] * spacing_mm
    volume = Volume(np.zeros(z.shape, np.float32), np.diag([spacing_mm] * 3 + [1.0]))
    axis_yx = np.array([40, 30])  # right hip side: x below the midline (80), 125 mm lateral of it
    radius_mm = 24.0 - 0.6 * z  # widest at the first slice
    cone = np.hypot(y - axis_yx[0] * spacing_mm, x - axis_yx[1] * spacing_mm) <= radius_mm
    frame = SideFrame.for_side(volume, "right")
    for bone, widest in ((cone, 0), (cone[::-1], 19), (np.pad(cone[:-4], ((4, 0), (0, 0), (0, 0))), None)):
        center = locate_head(volume, bone.astype(np.uint8), frame)
        np.testing.assert_allclose(center[1:], axis_yx)
        if widest is None:  # the widest slice lies inside the scan, with non-bone beyond it
            assert 5 < center[0] < 12, center
        else:
            assert center[0] == widest, center
    assert locate_head(volume, np.zeros(volume.shape, np.uint8), frame) is None


# --------------------------------------------------------------------------------- training
def test_training_lowers_the_loss_and_writes_a_checked_model(workspace):
    info = json.loads((workspace.model / MODEL_FILE).read_text())
    losses = [entry["loss"] for entry in info["training"]["history"]]
    assert len(losses) == 30
    assert losses[-1] < 0.6 * losses[0] and min(losses[-5:]) < min(losses[:5])
    assert info["sha256"] == sha256_file(workspace.model / WEIGHTS_FILE)
    assert info["architecture"]["channels"] == [8, 16, 32]
    assert (workspace.model / "checkpoints" / "last.pt").is_file()


def test_resumed_training_continues_exactly_where_it_stopped(workspace, tmp_path, capsys):
    common = ["--channels", "4", "8", "--strides", "2", "--batch-size", "16", "--device", "cpu",
              "--quiet", "--max-shift-mm", "10"]
    train = ("train", workspace.clean, "--out")
    assert model_cli(*train, tmp_path / "straight", "--epochs", "2", *common) == 0
    # a run stopped after its first epoch (the learning rate of epoch 1 does not depend on the
    # planned number of epochs), then continued to two
    assert model_cli(*train, tmp_path / "resumed", "--epochs", "1", *common) == 0
    assert model_cli(*train, tmp_path / "resumed", "--epochs", "2", *common) == 2
    assert "--resume" in capsys.readouterr().err
    assert model_cli(*train, tmp_path / "resumed", "--epochs", "2", *common, "--resume") == 0
    checkpoint = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == 2
    straight = load_file(str(tmp_path / "straight" / WEIGHTS_FILE))
    resumed = load_file(str(tmp_path / "resumed" / WEIGHTS_FILE))
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(straight[name], resumed[name], rtol=0, atol=1e-6)
    history = json.loads((tmp_path / "resumed" / MODEL_FILE).read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_training_refuses_a_folder_holding_a_model_or_other_files(workspace, tmp_path, capsys):
    """`train --out` into a folder that holds files (a model without a checkpoint, such as the
    bundled one, or anything else) stops before training and leaves it as it was; it replaced
    the model's weights silently (issue 22, item 6). An empty folder is written into."""
    common = ("--epochs", "1", "--channels", "4", "8", "--strides", "2", "--device", "cpu",
              "--quiet")
    model = tmp_path / "model"
    model.mkdir()
    for name in (MODEL_FILE, WEIGHTS_FILE):
        shutil.copy(workspace.model / name, model / name)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    for folder in (model, other):
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert model_cli("train", workspace.clean, "--out", folder, *common) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and str(folder) in error and "choose" in error, error
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert model_cli("train", workspace.clean, "--out", empty, *common) == 0
    assert (empty / WEIGHTS_FILE).is_file()


def test_fine_tuning_starts_from_the_given_model_and_keeps_its_architecture(workspace, tmp_path, capsys):
    """--init-from: the run starts from the saved weights (its first epoch's loss is that of a
    trained network, not of random weights), takes the architecture from the model, records
    where it started, and refuses another architecture or ROI."""
    started = json.loads((workspace.model / MODEL_FILE).read_text())
    common = ("--epochs", "1", "--lr", "1e-4", "--no-augment", "--device", "cpu", "--quiet")
    assert model_cli("train", workspace.noisy, "--out", tmp_path / "tuned",
                     "--init-from", workspace.model, *common) == 0
    tuned = json.loads((tmp_path / "tuned" / MODEL_FILE).read_text())
    assert tuned["architecture"] == started["architecture"]
    assert tuned["training"]["initial_weights_sha256"] == started["sha256"]
    assert tuned["training"]["options"]["init_from"] == str(workspace.model)
    scratch_first, trained_last = (started["training"]["history"][i]["loss"] for i in (0, -1))
    assert tuned["training"]["history"][0]["loss"] < min(0.5 * scratch_first, 2 * trained_last)

    assert model_cli("train", workspace.noisy, "--out", tmp_path / "other", "--init-from",
                     workspace.model, "--channels", "4", "8", "--strides", "2", *common) == 2
    assert "keeps its architecture" in capsys.readouterr().err
    wider = copy_dataset(workspace.noisy, tmp_path / "wider")
    index = json.loads((wider / "dataset.json").read_text())
    index["roi"]["size_mm"] = 200.0
    (wider / "dataset.json").write_text(json.dumps(index))
    assert model_cli("train", wider, "--out", tmp_path / "roi", "--init-from", workspace.model,
                     *common) == 2
    assert "ROI" in capsys.readouterr().err
    assert not (tmp_path / "other").exists() and not (tmp_path / "roi").exists()


# ------------------------------------------------------------------------------ saved weights
def test_saved_and_reloaded_weights_give_identical_predictions(tmp_path):
    config = ModelConfig(channels=(4, 8, 16), strides=(2, 2), roi=TEST_ROI)
    torch.manual_seed(3)
    network = build_network(config).eval()
    save_model(tmp_path / "m", network, config)
    images = np.random.default_rng(0).random((5, 64, 64), dtype=np.float32)
    in_memory = LoadedModel(network, config, {}, torch.device("cpu"))
    expected = predict_probabilities(in_memory, images, batch_size=2)
    first = load_model(tmp_path / "m", device="cpu")
    assert first.config == config
    assert torch.equal(predict_probabilities(first, images, batch_size=2), expected)
    save_model(tmp_path / "again", first.network, first.config)
    second = load_model(tmp_path / "again", "cpu")
    assert torch.equal(predict_probabilities(second, images, batch_size=2), expected)
    # instance normalisation: a slice's prediction does not depend on its batch (up to rounding)
    torch.testing.assert_close(predict_probabilities(second, images, batch_size=5), expected)
    assert sha256_file(tmp_path / "m" / WEIGHTS_FILE) == sha256_file(tmp_path / "again" / WEIGHTS_FILE)


def test_missing_corrupt_or_tampered_weights_are_refused(workspace, tmp_path, capsys):
    model = shutil.copytree(workspace.model, tmp_path / "model", ignore=shutil.ignore_patterns("checkpoints"))
    weights = model / WEIGHTS_FILE
    original = weights.read_bytes()

    # one flipped bit deep inside a tensor
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    weights.write_bytes(bytes(tampered))
    with pytest.raises(InputError, match="SHA-256"):
        load_model(model, "cpu")
    scan = workspace.clean / "scans" / f"{TEST_RECIPES[0].name}.nii.gz"
    assert model_cli("predict", scan, "--out", tmp_path / "out", "--model", model) == 2
    assert "SHA-256" in capsys.readouterr().err and not (tmp_path / "out").exists()

    # other weights with a matching recorded hash but not the recorded architecture
    save_file({"w": torch.zeros(3)}, str(weights))
    info = json.loads((model / MODEL_FILE).read_text())
    (model / MODEL_FILE).write_text(json.dumps({**info, "sha256": sha256_file(weights)}))
    with pytest.raises(InputError, match="do not fit"):
        load_model(model, "cpu")

    weights.unlink()
    with pytest.raises(InputError, match="missing"):
        load_model(model, "cpu")
    (model / MODEL_FILE).write_text("{not json")
    with pytest.raises(InputError, match="damaged"):
        load_model(model, "cpu")
    with pytest.raises(InputError, match="No model found"):
        load_model(tmp_path / "nowhere", "cpu")


def test_asking_for_a_gpu_that_is_not_there_is_a_clear_error():
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


def test_auto_device_takes_the_gpu_when_there_is_one_and_batches_for_it(monkeypatch):
    for gpu, kind, batch in ((True, "cuda", GPU_BATCH_SIZE), (False, "cpu", CPU_BATCH_SIZE)):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
        device = resolve_device("auto")
        assert device.type == kind and inference_batch_size(device.type) == batch
    assert CPU_BATCH_SIZE < GPU_BATCH_SIZE  # on the CPU large batches are slower


# ---------------------------------------------------------------------------------- predict
def test_predict_writes_pipeline_style_labels_in_the_scan_geometry(workspace, tmp_path, capsys):
    name = TEST_RECIPES[0].name
    scan_path = workspace.clean / "scans" / f"{name}.nii.gz"
    out = tmp_path / "pred" / name
    assert model_cli("predict", scan_path, "--out", out, "--model", workspace.model,
                     "--device", "cpu", "--batch-size", "7") == 0
    printed = capsys.readouterr().out
    assert "right hip: segmented" in printed and "left hip: segmented" in printed
    for file in ("labels.nii.gz", "labels.seg.nrrd", "bone.nii.gz", "annotation.json", "prediction.json"):
        assert (out / file).is_file(), file
    scan = sitk.ReadImage(str(scan_path))
    labels = sitk.ReadImage(str(out / "labels.nii.gz"))
    assert labels.GetSize() == scan.GetSize()
    np.testing.assert_allclose(labels.GetSpacing(), scan.GetSpacing())
    np.testing.assert_allclose(labels.GetOrigin(), scan.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(labels.GetDirection(), scan.GetDirection())
    assert set(np.unique(sitk.GetArrayViewFromImage(labels))) == {0, 1, 2}

    # side codes sit on their own side (RAS +x = patient right) and match the truth
    loaded = io.read_scan(scan_path)
    codes = read_label_file(out / "labels.seg.nrrd", loaded.reference)
    truth = read_label_file(workspace.clean / "truth" / f"{name}.nii.gz", loaded.reference).values
    assert codes.sided
    for side in SIDES:
        head = codes.values == segment_code(side, FEMORAL_HEAD)
        x_ras = loaded.volume.index_to_ras_mm(np.argwhere(head).mean(axis=0))[0]
        assert (x_ras > 0) == (side == "right"), side
        half = (np.arange(head.shape[2]) < head.shape[2] // 2) == (side == "right")
        # a deliberately tiny network (64 x 64 ROI, 30 s of training): well aligned, not precise
        assert dice(head, (truth == FEMORAL_HEAD) & half[None, None, :]) > 0.5, side
    report = json.loads((out / "prediction.json").read_text())
    assert report["model"]["sha256"] == sha256_file(workspace.model / WEIGHTS_FILE)


# --------------------------------------------------------------------------------- evaluate
def test_evaluate_prints_dice_and_hd95_per_scan_class_and_mean(workspace, tmp_path, capsys):
    truth_dir = workspace.clean / "truth"
    assert model_cli("evaluate", workspace.clean / "pipeline", truth_dir, "--json", tmp_path / "s.json") == 0
    table = capsys.readouterr().out
    scores = json.loads((tmp_path / "s.json").read_text())
    assert [s["scan"] for s in scores["scans"]] == [r.name for r in TEST_RECIPES]
    for recipe in TEST_RECIPES:
        assert table.count(recipe.name) == 2
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_dir / f"{recipe.name}.nii.gz")))
        predicted = sitk.GetArrayFromImage(
            sitk.ReadImage(str(workspace.clean / "pipeline" / recipe.name / "labels.nii.gz")))
        entry = next(s for s in scores["scans"] if s["scan"] == recipe.name)
        for cls, name in ((ACETABULUM, "acetabulum"), (FEMORAL_HEAD, "femoral head")):
            assert entry["dice"][name] == pytest.approx(dice(predicted == cls, reference == cls))
            assert entry["hd95_mm"][name] > 0
    assert "MEAN (2 scans)" in table
    assert scores["mean"]["mean"]["dice"] == pytest.approx(np.mean(
        [s["dice"][c] for s in scores["scans"] for c in ("acetabulum", "femoral head")]))

    assert model_cli("evaluate", truth_dir, truth_dir, "--json", tmp_path / "same.json") == 0
    same = json.loads((tmp_path / "same.json").read_text())["mean"]["mean"]
    assert same == {"dice": 1.0, "hd95_mm": 0.0}
    assert model_cli("evaluate", tmp_path, truth_dir) == 2


def test_label_nifti_with_nan_voxels_is_refused(tmp_path):
    labels = np.zeros((6, 6, 6), np.float32)
    labels[2:4, 2:4, 2:4] = FEMORAL_HEAD
    labels[0, 0, 0] = np.nan  # SimpleITK's NIfTI reader would return it as 0, background
    path = tmp_path / "labels.nii.gz"
    image = sitk.GetImageFromArray(labels)
    sitk.WriteImage(image, str(path))
    with pytest.raises(InputError, match=r"labels\.nii\.gz contains 1 NaN and 0 infinite voxel"):
        read_label_file(path, image)


# ----------------------------------------------------------------------------- bundled model
def test_bundled_model_loads_with_its_recorded_hash():
    model = load_model(device="cpu")
    assert model.info["sha256"] == sha256_file(BUNDLED_MODEL_DIR / WEIGHTS_FILE)
    assert model.config.roi.pixels == 256
    assert (BUNDLED_MODEL_DIR / WEIGHTS_FILE).stat().st_size < 8 * 2**20
    card = (BUNDLED_MODEL_DIR.parent / "MODEL_CARD.md").read_text()
    assert model.info["sha256"] in card


def test_bundled_model_labels_do_not_depend_on_the_batch_size():
    """The CPU's default batch is small for speed (``CPU_BATCH_SIZE``): a scan's labels, its
    hips' statuses and their shifted-view agreement are those of any other batch size."""
    volume = generate_phantom(spacing_mm=(3.0, 3.0, 3.0), seed=1003).volume
    model = load_model(device="cpu")
    default = predict_scan(volume, model)
    assert all(result.status == "segmented" for result in default.sides.values())
    for batch_size in (3, 16):
        other = predict_scan(volume, model, batch_size=batch_size)
        np.testing.assert_array_equal(other.side_labels, default.side_labels)
        assert other.sides == default.sides


def test_prediction_reports_bone_extraction_slice_by_slice_and_each_hip_s_stages():
    """Bone extraction takes about half of a prediction (1.6 s of 3.1 s on a 512 x 512 x 200
    scan): its bar moves slice by slice, then through each hip's network and shifted view."""
    volume = generate_phantom(spacing_mm=(3.0, 3.0, 3.0), seed=1003).volume
    reported = []
    predict_scan(volume, load_model(device="cpu"),
                 progress=lambda fraction, message: reported.append((fraction, message)))
    fractions = [fraction for fraction, _ in reported]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    extraction = {fraction for fraction, message in reported if message == "bone extraction"}
    assert len(extraction) >= 10
    assert {"right hip: shifted view", "left hip: shifted view"} <= {m for _, m in reported}


@pytest.mark.xfail(reason="known gap (see Resources/MODEL_CARD.md): the phantom-trained model "
                          "reaches Dice 0.66 against the pipeline's right femoral head on this "
                          "3 mm clinical CT, not the 0.8 asked for; on 3 mm phantoms the pipeline "
                          "is the less accurate of the two (benchmarks/coarse_scans.py), on this "
                          "CT its surface check flags its own head (no joint space resolved), and "
                          "the model has never seen real anatomy", strict=True,
                   raises=AssertionError)
def test_bundled_model_finds_the_real_ct_right_head_where_the_pipeline_does(shared_ct_path):
    # strict: the day the model agrees, this test must be made a plain one. Only the agreement
    # is expected to fail: the hips' statuses (left metal, right segmented) are checked, not
    # expected to fail, by test_model_presence's real-CT test, and an error is no AssertionError
    scan = io.read_scan(shared_ct_path)
    predicted = predict_scan(scan.volume, load_model(device="cpu"))
    pipeline = annotate(scan.volume)
    code = segment_code("right", FEMORAL_HEAD)
    agreement = dice(predicted.side_labels == code, pipeline.side_labels == code)
    assert agreement >= 0.8, f"right femoral head Dice model vs pipeline {agreement:.3f}"


def test_the_model_marks_a_hip_of_a_scan_coarser_than_the_method_for_review(shared_ct_path):
    """On the real 3 mm CT the pipeline flags the right hip; the model, which fits no sphere
    and so has no surface check, marks it for review too, saying why (it said "no" before).
    What it labels there is a femoral head: 20-60 ml, and at least 80 % of it bone (issue 19;
    weights trained on synthetic hips with pixels of at most 1.5 mm labelled 63 ml there, 60 %
    of it bone, reaching 12 mm down into the neck)."""
    scan = io.read_scan(shared_ct_path)
    predicted = predict_scan(scan.volume, load_model(device="cpu"))
    right = predicted.sides["right"]
    assert right.status == "segmented"
    assert right.needs_review
    assert any("this method was made for" in w for w in right.warnings), right.warnings
    # what it found is a femoral head: head-sized, and bone (the bone mask predict extracts)
    head = predicted.side_labels == segment_code("right", FEMORAL_HEAD)
    head_ml = head.sum() * np.prod(scan.volume.spacing_mm) / 1000.0
    assert 20.0 <= head_ml <= 60.0, f"right femoral head {head_ml:.1f} ml"
    in_bone = (head & (predicted.bone > 0)).sum() / head.sum()
    assert in_bone >= 0.8, f"{in_bone:.2f} of the right femoral head label is bone"
