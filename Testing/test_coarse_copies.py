"""Coarse copies of generated scans for training (``slice-dataset --coarse-copies``)."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from test_model import model_cli
from test_model_fixtures import TEST_ROI

from THAAnnotatorLib import io
from THAAnnotatorLib.labels import truth_side_labels
from THAAnnotatorLib.metrics import dice
from THAAnnotatorLib.model.build import PhantomRecipe, add_phantom_scans
from THAAnnotatorLib.model.coarse import CoarseGrid
from THAAnnotatorLib.model.dataset import SliceDataset
from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, SIDES, segment_code


def _centroid_ras_mm(volume, mask: np.ndarray) -> np.ndarray:
    return volume.index_to_ras_mm(np.argwhere(mask).mean(axis=0))


def test_a_coarse_copy_keeps_the_anatomy_its_size_and_place():
    phantom = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), fov_mm=(80.0, 200.0, 320.0), seed=4,
                               noise_hu=0.0)
    fine = phantom.volume
    grid = CoarseGrid.over(fine, 3.0)
    coarse = grid.volume(fine)
    assert np.allclose(coarse.spacing_mm, 3.0)
    # the coarse voxels start where the fine ones do and cover the field of view but for a rest
    # smaller than one coarse voxel
    fine_corner = fine.index_to_ras_mm(np.full(3, -0.5))
    assert np.allclose(coarse.index_to_ras_mm(np.full(3, -0.5)), fine_corner, atol=1e-6)
    uncovered = np.asarray(fine.shape) * fine.spacing_mm - np.asarray(coarse.shape) * 3.0
    assert np.all((uncovered >= 0) & (uncovered < 3.0)), uncovered

    truth = truth_side_labels(phantom)
    carried = grid.labels(truth)
    for side in SIDES:
        head = segment_code(side, FEMORAL_HEAD)
        fine_mm3 = (truth == head).sum() * np.prod(fine.spacing_mm)
        coarse_mm3 = (carried == head).sum() * 27.0
        assert abs(coarse_mm3 / fine_mm3 - 1) < 0.05, (side, fine_mm3, coarse_mm3)
        shift = _centroid_ras_mm(coarse, carried == head) - _centroid_ras_mm(fine, truth == head)
        assert np.linalg.norm(shift) < 1.0, (side, shift)
    # averaging keeps the mean intensity over the region the coarse voxels cover (HU from
    # -1000 to over 1000 here)
    covered = tuple(slice(0, int(round(n * r))) for n, r in zip(coarse.shape, grid.ratio))
    assert abs(coarse.hu.mean() - fine.hu[covered].mean()) < 3.0
    noisy = grid.volume(fine, noise_hu=20.0, rng=np.random.default_rng(0))
    assert abs(np.std(noisy.hu - coarse.hu) - 20.0) < 0.5


def test_phantom_datasets_take_coarse_copies_with_the_fine_labels_carried_over(tmp_path):
    recipe = PhantomRecipe(seed=3, spacing_mm=(3.0, 1.6, 1.6), head_radius_mm=(24.0, 23.0),
                           noise_hu=10.0, spongy=False)
    dataset = SliceDataset.create(tmp_path / "ds", TEST_ROI)
    assert add_phantom_scans(dataset, [recipe], keep_scans=True,
                             coarse_voxels_mm=(4.0,)) == [recipe.name]
    dataset.save_index()
    dataset = SliceDataset.open(tmp_path / "ds")
    coarse_name = f"{recipe.name}_4mm"
    fine_sides = {c["side"] for c in dataset.cases if c["scan"] == recipe.name}
    assert fine_sides == set(SIDES)
    assert {c["side"] for c in dataset.cases if c["scan"] == coarse_name} == fine_sides
    for number, case in enumerate(dataset.cases):
        if case["scan"] != coarse_name:
            continue
        assert case["spacing_mm"] == [4.0, 4.0, 4.0]
        assert 19 <= len(case["slices"]) <= 21  # +-40 mm in 4 mm slices
        data = dataset.load_case(number)
        for cls in (ACETABULUM, FEMORAL_HEAD):
            score = dice(data.label == cls, data.truth == cls)
            assert score > 0.8, (case["id"], cls, score)

    # the coarse CT and its truth are kept for whole-scan scoring; no pipeline output (the
    # pipeline never ran on the copy)
    scan = io.read_scan(tmp_path / "ds" / "scans" / f"{coarse_name}.nii.gz")
    assert np.allclose(scan.volume.spacing_mm, 4.0)
    truth = sitk.ReadImage(str(tmp_path / "ds" / "truth" / f"{coarse_name}.nii.gz"))
    assert truth.GetSize() == scan.reference.GetSize()
    assert truth.GetOrigin() == scan.reference.GetOrigin()
    assert set(np.unique(sitk.GetArrayFromImage(truth))) == {0, 1, 2}
    assert not (tmp_path / "ds" / "pipeline" / coarse_name).exists()
    assert (tmp_path / "ds" / "pipeline" / recipe.name).is_dir()


def test_coarse_copies_need_phantoms_and_sizes_of_a_millimetre_or_more(tmp_path, capsys):
    assert model_cli("slice-dataset", tmp_path / "a", "--scan", tmp_path / "x.nii.gz",
                     "--annotation", tmp_path, "--coarse-copies", "3") == 2
    assert "--coarse-copies" in capsys.readouterr().err
    assert model_cli("slice-dataset", tmp_path / "b", "--phantoms", "1",
                     "--coarse-copies", "0.5") == 2
    assert "at least 1 mm" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
