"""Randomized training data (issue 19, item 1): sweep anatomy rendered with random appearance
and deformation, labelled with the sweep's truth, as a slice dataset that trains.

Fast: the anatomy at 3 mm x 1.5 mm voxels and a 64-pixel ROI.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from THAAnnotatorLib import cli
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.model.config import TrainOptions
from THAAnnotatorLib.model.dataset import SliceDataset
from THAAnnotatorLib.model.labelfiles import LabelMap
from THAAnnotatorLib.model.roi import HU_WINDOW, RoiSpec
from THAAnnotatorLib.model.synth import crop_box, render_hip
from THAAnnotatorLib.model.synth_dataset import build_synth_dataset
from THAAnnotatorLib.model.synth_ranges import SynthRanges
from THAAnnotatorLib.model.training import SliceSamples, train
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD
from THAAnnotatorLib.sweep import generate_sweep_case
from THAAnnotatorLib.sweep.generate import CANCELLOUS, CORTEX, MARROW, METAL, TISSUES
from THAAnnotatorLib.sweep.truth import sweep_truth_labels

ROI = RoiSpec(size_mm=160.0, pixels=64, half_height_mm=40.0)
FAST = SynthRanges(anatomy_spacing_mm=(3.0, 1.5, 1.5))
NO_DEFORMATION = replace(FAST, rotate_deg=0.0, scale=0.0, shear=0.0, translate_mm=0.0,
                         elastic_mm=0.0)
BONE = (CORTEX, CANCELLOUS, MARROW)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hip():
    """The right hip of sweep scan typical 1 at FAST's voxels: tissue map, labels, center."""
    case = generate_sweep_case("typical", 1, spacing_mm=FAST.anatomy_spacing_mm)
    labels = LabelMap(sweep_truth_labels(case), sided=True).classes_for_side("right", (0, 0))
    center = case.volume.ras_mm_to_index(np.asarray(case.hips["right"].center_ras_mm))
    return case, labels, center


def render(hip, ranges=FAST, seed=0):
    case, labels, center = hip
    return render_hip(case.tissue_map, labels, case.volume.spacing_mm, center, ROI, ranges, seed)


def test_the_sweep_s_tissue_map_matches_its_bones_and_metal():
    case = generate_sweep_case("metal", 1, spacing_mm=(3.0, 1.5, 1.5))  # left hip implanted
    bone_tissue = np.isin(case.tissue_map, BONE)
    np.testing.assert_array_equal(bone_tissue, case.part_map > 0)
    assert (case.tissue_map == METAL).sum() > 1000
    assert not (case.part_map[case.tissue_map == METAL]).any()
    assert set(np.unique(case.tissue_map)) <= set(range(len(TISSUES)))


def test_renderings_repeat_for_a_seed_and_differ_across_seeds(hip):
    first, again, other = render(hip, seed=0), render(hip, seed=0), render(hip, seed=1)
    np.testing.assert_array_equal(first.hu, again.hu)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert first.draws == again.draws
    assert first.draws != other.draws
    assert np.abs(first.hu - other.hu).mean() > 10.0
    assert (first.labels != other.labels).any()


def test_appearance_leaves_the_labels_which_follow_the_deformation(hip):
    case, labels, center = hip
    plain = replace(FAST, tissue_mean_hu={t: (0.0, 100.0) for t in TISSUES}, noise_hu=(0.0, 0.0),
                    gamma=(1.0, 1.0), streaks=0)
    a, b = render(hip, FAST, seed=3), render(hip, plain, seed=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.tissue, b.tissue)
    assert np.abs(a.hu - b.hu).mean() > 10.0
    # without deformation the labels are the truth's, cropped; with it they move, and stay on
    # the deformed bone (the truth's labels fill the few holes of the bone: 99 % lies on it)
    # with the head center inside the head
    box = crop_box(case.tissue_map.shape, case.volume.spacing_mm, center, ROI, FAST.margin_mm)
    still = render(hip, NO_DEFORMATION, seed=3)
    np.testing.assert_array_equal(still.labels, labels[box])
    np.testing.assert_allclose(still.center_zyx, center - still.crop_start)
    assert (a.labels != labels[box]).sum() > 200
    for rendering in (a, still):
        assert np.isin(rendering.tissue[rendering.labels > 0], BONE).mean() > 0.98
        inside = tuple(np.round(rendering.center_zyx).astype(int))
        assert rendering.labels[inside] == FEMORAL_HEAD
        assert (rendering.labels == ACETABULUM).sum() > 500


def test_tissue_intensities_are_drawn_from_their_ranges(hip):
    means = {t: (-100.0 + 30 * k, -80.0 + 30 * k) for k, t in enumerate(TISSUES)}
    ranges = replace(NO_DEFORMATION, tissue_mean_hu=means, tissue_std_hu=(10.0, 20.0),
                     bias_coefficient=(0.0, 0.0), streaks=0, slice_mm=(0.01, 0.01),
                     pixel_mm=(0.01, 0.01), noise_hu=(0.0, 0.0), gamma=(1.0, 1.0))
    for seed in range(3):
        rendering = render(hip, ranges, seed)
        present = np.unique(rendering.tissue)
        assert len(present) >= 6
        for code in present:
            name = TISSUES[code]
            drawn_mean = rendering.draws["tissue_mean_hu"][name]
            drawn_std = rendering.draws["tissue_std_hu"][name]
            assert means[name][0] <= drawn_mean <= means[name][1], name
            assert 10.0 <= drawn_std <= 20.0, name
            values = rendering.hu[rendering.tissue == code]
            if values.size > 2000:
                assert values.mean() == pytest.approx(drawn_mean, abs=2.0), name
                assert values.std() == pytest.approx(drawn_std, rel=0.1), name
    # the defaults: every image lies in the network's window, every draw in its range
    for seed in range(2):
        rendering = render(hip, FAST, seed)
        assert HU_WINDOW[0] <= rendering.hu.min() and rendering.hu.max() <= HU_WINDOW[1]
        for name, value in rendering.draws["tissue_mean_hu"].items():
            low, high = FAST.tissue_mean_hu[name]
            assert low - 0.05 <= value <= high + 0.05, name
        assert FAST.slice_mm[0] <= rendering.draws["slice_mm"] <= FAST.slice_mm[1]
        assert FAST.noise_hu[0] <= rendering.draws["noise_hu"] <= FAST.noise_hu[1]


def test_ranges_are_checked():
    with pytest.raises(ValueError, match="slice_mm"):
        replace(FAST, slice_mm=(5.0, 1.0)).validate()
    with pytest.raises(ValueError, match="tissue_mean_hu"):
        replace(FAST, tissue_mean_hu={"air": (-1000.0, -900.0)}).validate()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A dataset of typical and narrow-joint seeds with narrow_joint held out, and a summary."""
    root = tmp_path_factory.mktemp("synth") / "data"
    summary = build_synth_dataset(root, seeds=[0, 1], renderings=2,
                                  classes=("typical", "narrow_joint"), hold_out=("narrow_joint",),
                                  ranges=FAST, roi=ROI)
    return root, summary


def test_a_held_out_class_never_appears_in_the_dataset(built):
    root, summary = built
    dataset = SliceDataset.open(root)
    assert summary.cases == len(dataset.cases) == 2 * 2 * 2  # seeds x hips x renderings
    assert {c["synth"]["class"] for c in dataset.cases} == {"typical"}
    assert not any("narrow" in c["id"] for c in dataset.cases)
    with pytest.raises(InputError, match="held out"):
        build_synth_dataset(root.parent / "none", [0], 1, classes=("metal",),
                            hold_out=("metal",), ranges=FAST, roi=ROI)
    assert not (root.parent / "none").exists()


def test_worker_processes_build_the_same_dataset_case_for_case(built, tmp_path):
    root, _ = built
    parallel = tmp_path / "parallel"
    summary = build_synth_dataset(parallel, seeds=[0, 1], renderings=2, classes=("typical",),
                                  ranges=FAST, roi=ROI, workers=2)
    serial, other = SliceDataset.open(root), SliceDataset.open(parallel)
    assert summary.scans == 2
    assert [c["id"] for c in other.cases] == [c["id"] for c in serial.cases]
    assert [c["synth"] for c in other.cases] == [c["synth"] for c in serial.cases]
    for number in range(len(serial.cases)):
        mine, theirs = serial.load_case(number), other.load_case(number)
        np.testing.assert_array_equal(mine.image, theirs.image)
        np.testing.assert_array_equal(mine.truth, theirs.truth)


def test_a_preloaded_dataset_gives_the_slices_a_lazy_one_reads(built):
    dataset = SliceDataset.open(built[0])
    kept = [1, 3]
    lazy = SliceSamples(dataset, "truth", kept)
    whole = SliceSamples(dataset, "truth", kept, preload=True)
    assert len(lazy) == len(whole) == sum(len(dataset.cases[n]["slices"]) for n in kept)
    rows = [len(lazy) - 1, 0, 5, 17]
    images, labels = whole.__getitems__(rows)
    assert images.shape == (4, 1, 64, 64) and images.dtype == torch.float16
    lazy_images, lazy_labels = lazy.__getitems__(rows)
    torch.testing.assert_close(images.float(), lazy_images, rtol=0, atol=0)
    torch.testing.assert_close(labels, lazy_labels, rtol=0, atol=0)
    number, row = lazy.index[17]
    expected = dataset.load_case(number)
    np.testing.assert_array_equal(images[3, 0].float().numpy(), expected.image[row])
    np.testing.assert_array_equal(labels[3, 0].numpy(), expected.truth[row])


def test_the_dataset_holds_truth_labels_and_trains(built, tmp_path):
    root, _ = built
    dataset = SliceDataset.open(root)
    assert dataset.roi == ROI
    for number, case in enumerate(dataset.cases):
        data = dataset.load_case(number)
        assert data.image.shape == (len(case["slices"]), 64, 64)
        np.testing.assert_array_equal(data.label, data.truth)
        assert (data.label == FEMORAL_HEAD).any() and (data.label == ACETABULUM).any()
        # columns run lateral -> medial on both hips: the head lies lateral of the acetabulum
        joint = ((data.label == ACETABULUM).any(axis=(1, 2))
                 & (data.label == FEMORAL_HEAD).any(axis=(1, 2)))
        head_col = np.argwhere(data.label[joint] == FEMORAL_HEAD)[:, 2].mean()
        cup_col = np.argwhere(data.label[joint] == ACETABULUM)[:, 2].mean()
        assert head_col < cup_col, case["id"]
        assert 0.0 <= data.image.min() and data.image.max() <= 1.0 and data.image.std() > 0.05
    result = train(root, tmp_path / "model",
                   TrainOptions(epochs=1, batch_size=16, device="cpu", channels=(4, 8),
                                strides=(2,), augment=True, max_shift_mm=10.0),
                   show_progress=False)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["loss"])
    assert (tmp_path / "model" / "model.safetensors").is_file()
    with pytest.raises(InputError, match="held-out class"):
        train(root, tmp_path / "none", TrainOptions(epochs=1, device="cpu", hold_out=("typical",)),
              show_progress=False)


def test_synth_dataset_command_checks_its_options_before_any_work(tmp_path, capsys):
    assert cli.main(["synth-dataset", str(tmp_path / "ds"), "--classes", "metal",
                     "--hold-out", "metal"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "held out" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["synth-dataset", str(blocker / "ds"), "--seeds", "1"]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
    with pytest.raises(SystemExit):
        cli.main(["synth-dataset", str(tmp_path / "ds"), "--renderings", "0"])


def test_synth_dataset_command_builds_a_dataset_without_the_held_out_class(tmp_path, capsys):
    code = cli.main(["synth-dataset", str(tmp_path / "ds"), "--classes", "typical", "noise",
                     "--hold-out", "noise", "--seeds", "1", "--first-seed", "2",
                     "--renderings", "1", "--anatomy-spacing-mm", "3", "1.5", "1.5",
                     "--roi-pixels", "32", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "added 2 hips" in captured.out and "held out: noise" in captured.out
    dataset = SliceDataset.open(tmp_path / "ds")
    assert dataset.roi.pixels == 32
    assert [c["id"] for c in dataset.cases] == ["typical_0002_r00_right", "typical_0002_r00_left"]
    assert all(c["spacing_mm"][0] == pytest.approx(3.0) for c in dataset.cases)


def test_training_leaves_a_held_out_class_s_cases_out(tmp_path):
    root = tmp_path / "data"
    build_synth_dataset(root, seeds=[3], renderings=1, classes=("typical", "noise"),
                        ranges=FAST, roi=ROI)
    dataset = SliceDataset.open(root)
    typical = [c for c in dataset.cases if c["synth"]["class"] == "typical"]
    assert 0 < len(typical) < len(dataset.cases)
    code = cli.main(["train", str(root), "--out", str(tmp_path / "model"), "--epochs", "1",
                     "--device", "cpu", "--channels", "4", "8", "--strides", "2",
                     "--hold-out", "noise", "--quiet"])
    assert code == 0
    record = json.loads((tmp_path / "model" / "model.json").read_text())["training"]
    assert record["cases"] == len(typical)
    assert record["slices"] == sum(len(c["slices"]) for c in typical)
    assert record["options"]["hold_out"] == ["noise"]
