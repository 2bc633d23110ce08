"""Shared, expensive fixtures of the model and AAR tests (this module has no tests itself).

One small workspace is built once per test run, also when pytest-xdist runs several workers
(a file lock guards it): two coarse generated phantoms annotated by the pipeline, a slice
dataset of their hips (64 x 64 ROI pixels, to keep the tests fast), a copy of it whose labels
are the phantoms' truth except for five corrupted joint slices, and a small U-Net trained on
that copy. Training on truth rather than on the pipeline's labels keeps these tests about the
model and AAR machinery, independent of the pipeline's accuracy (tested on its own). Tests must not change
these files; a test that modifies a dataset copies it first (:func:`copy_dataset`).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from THAAnnotatorLib.model.build import PhantomRecipe, add_phantom_scans
from THAAnnotatorLib.model.config import TrainOptions
from THAAnnotatorLib.model.dataset import SliceDataset
from THAAnnotatorLib.model.roi import RoiSpec
from THAAnnotatorLib.model.training import train

TEST_ROI = RoiSpec(size_mm=160.0, pixels=64, half_height_mm=40.0)
TEST_RECIPES = [PhantomRecipe(seed=s, spacing_mm=(3.0, 1.6, 1.6), head_radius_mm=(24.0, 23.0),
                              noise_hu=10.0, spongy=False) for s in (1, 2)]
TEST_TRAINING = TrainOptions(epochs=30, batch_size=8, learning_rate=5e-3, seed=0, device="cpu",
                             augment=False, channels=(8, 16, 32), strides=(2, 2))
CORRUPTED_COUNT = 5


@dataclass
class Workspace:
    """Paths of the shared test files."""

    root: Path

    @property
    def clean(self) -> Path:
        """Dataset with the pipeline's labels; also holds scans/, truth/ and pipeline/."""
        return self.root / "clean"

    @property
    def noisy(self) -> Path:
        """Copy of ``clean`` with the truth as labels, five joint slices' labels corrupted."""
        return self.root / "noisy"

    @property
    def model(self) -> Path:
        """Model trained on ``noisy``."""
        return self.root / "model"

    @property
    def corrupted(self) -> list[tuple[str, str, int]]:
        """(scan, side, canonical slice) of the corrupted slices."""
        return [tuple(x) for x in json.loads((self.root / "corrupted.json").read_text())]


def _rewrite(dataset: SliceDataset, number: int, data) -> None:
    case = dataset.cases[number]
    dataset.write_case({k: v for k, v in case.items() if k not in ("id", "file", "has_truth")}, data)


def _truth_labels_with_corruption(dataset: SliceDataset, count: int, seed: int) -> list[list]:
    """Make the truth the labels, then corrupt ``count`` random joint slices: swap the classes
    of the first three, shift the others by a sixth of the ROI. Returns their
    (scan, side, slice)."""
    joint = []
    for number in range(len(dataset.cases)):
        data = dataset.load_case(number)
        data.label = data.truth.copy()
        _rewrite(dataset, number, data)
        joint += [(number, row) for row, label in enumerate(data.label)
                  if (label == 1).any() and (label == 2).any()]
    rng = np.random.default_rng(seed)
    chosen = [joint[i] for i in rng.choice(len(joint), count, replace=False)]
    for k, (number, row) in enumerate(chosen):
        data = dataset.load_case(number)
        label = data.label[row]
        if k < 3:
            data.label[row] = np.choose(label, [0, 2, 1])
        else:
            data.label[row] = np.roll(label, label.shape[1] // 6, axis=1)
        _rewrite(dataset, number, data)
    dataset.save_index()
    return [[dataset.cases[n]["scan"], dataset.cases[n]["side"], dataset.cases[n]["slices"][r]]
            for n, r in chosen]


def _build(root: Path) -> None:
    clean = SliceDataset.create(root / "clean", TEST_ROI)
    add_phantom_scans(clean, TEST_RECIPES, keep_scans=True)
    clean.save_index()
    shutil.copytree(root / "clean" / "cases", root / "noisy" / "cases")
    shutil.copy(root / "clean" / "dataset.json", root / "noisy" / "dataset.json")
    corrupted = _truth_labels_with_corruption(SliceDataset.open(root / "noisy"), CORRUPTED_COUNT, seed=0)
    (root / "corrupted.json").write_text(json.dumps(corrupted))
    train(root / "noisy", root / "model", TEST_TRAINING, show_progress=False)
    (root / "complete").touch()


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    """The shared workspace, built on first use (once across xdist workers)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by its workers
    root = base / "model-workspace"
    with FileLock(str(root) + ".lock"):
        if not (root / "complete").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            _build(root)
    return Workspace(root)


def copy_dataset(source: Path, target: Path) -> Path:
    """A private copy of a dataset's index and cases (scans and truth are not copied)."""
    shutil.copytree(source / "cases", target / "cases")
    shutil.copy(source / "dataset.json", target / "dataset.json")
    return target
