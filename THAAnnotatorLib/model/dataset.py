"""The slice dataset on disk: one compressed ``.npz`` per scan and hip, and a JSON index.

Layout of a dataset folder::

    dataset.json            the index (format below)
    cases/<scan>_<side>.npz the ROI slices of one hip of one scan

``dataset.json``::

    {"version": 1,
     "roi": {"size_mm": 160.0, "pixels": 256, "half_height_mm": 40.0},
     "classes": {"0": "background", "1": "acetabulum", "2": "femoral head"},
     "cases": [{"id": "ct001_right", "scan": "ct001", "side": "right",
                "file": "cases/ct001_right.npz",
                "scan_path": "/data/ct001.nii.gz",      # the CT the slices came from
                "labels_path": "/out/ct001/labels.seg.nrrd",  # the pseudo labels (or null)
                "center_zyx": [z, y, x],                # ROI center, canonical fractional index
                "center_ras_mm": [R, A, S],
                "x_range": [start, stop],               # canonical x columns of this hip's half
                "spacing_mm": [sz, sy, sx],
                "reference": {"size": [...], "spacing": [...], "origin": [...], "direction": [...]},
                "slices": [k0, k1, ...],                # canonical z index of each npz row
                "has_truth": false}, ...]}

Each ``.npz`` holds ``image`` (float16, n x 256 x 256, HU window scaled to [0, 1]), ``label``
(uint8 0/1/2, the labels training uses), optionally ``truth`` (labels known to be right, kept for
experiments), and once corrections were applied ``label_original`` (the pseudo labels before
any correction) and ``corrected`` (bool per slice). A sample is one row of one case; the
samples of a dataset are numbered case by case, row by row, in index order.

Files are read only when needed (:meth:`SliceDataset.load_case`), and every write is atomic.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..result import CLASS_NAMES
from .files import atomic_path, write_json_atomic
from .roi import RoiSpec

INDEX_FILE = "dataset.json"
CASES_FOLDER = "cases"
FORMAT_VERSION = 1


@dataclass
class CaseData:
    """The arrays of one case (one hip of one scan); all have ``n`` rows (slices).

    Attributes
    ----------
    image : float32 (n, P, P), CT in [0, 1].
    label : uint8 (n, P, P), the labels used for training (pseudo labels, corrected ones).
    truth : uint8 (n, P, P) labels known to be right, or None.
    label_original : uint8 (n, P, P) pseudo labels before any correction, or None.
    corrected : bool (n,), which rows of ``label`` were replaced by corrections.
    """

    image: np.ndarray
    label: np.ndarray
    truth: np.ndarray | None = None
    label_original: np.ndarray | None = None
    corrected: np.ndarray | None = None

    def __post_init__(self):
        if self.corrected is None:
            self.corrected = np.zeros(len(self.label), dtype=bool)
        n = len(self.image)
        for name in ("label", "truth", "label_original", "corrected"):
            array = getattr(self, name)
            if array is not None and len(array) != n:
                raise ValueError(f"{name} has {len(array)} rows, image has {n}")


def reference_to_dict(reference: sitk.Image) -> dict:
    """A scan's geometry (size, spacing mm, origin mm LPS, direction) as JSON-ready values."""
    return {"size": list(reference.GetSize()), "spacing": list(reference.GetSpacing()),
            "origin": list(reference.GetOrigin()), "direction": list(reference.GetDirection())}


def reference_from_dict(geometry: dict) -> sitk.Image:
    """An empty uint8 image with the geometry stored by :func:`reference_to_dict`."""
    image = sitk.Image([int(n) for n in geometry["size"]], sitk.sitkUInt8)
    image.SetSpacing([float(v) for v in geometry["spacing"]])
    image.SetOrigin([float(v) for v in geometry["origin"]])
    image.SetDirection([float(v) for v in geometry["direction"]])
    return image


class SliceDataset:
    """A dataset folder: its index in memory, case arrays loaded on demand."""

    def __init__(self, root: Path, roi: RoiSpec, cases: list[dict]):
        self.root = Path(root)
        self.roi = roi
        self.cases = cases

    @classmethod
    def create(cls, root: str | Path, roi: RoiSpec = RoiSpec()) -> "SliceDataset":
        """Open the dataset in ``root``, or start an empty one there (written on first save):
        ``root`` must be a dataset, a new folder or an empty one (InputError otherwise)."""
        root = Path(root)
        if (root / INDEX_FILE).is_file():
            dataset = cls.open(root)
            if dataset.roi != roi:
                raise InputError(
                    f"The dataset {root} was built with ROI {dataset.roi.to_dict()}, not "
                    f"{roi.to_dict()}; build the new cases into another folder.")
            return dataset
        if root.is_file():
            raise InputError(f"The dataset path {root} is a file; choose a folder.")
        if root.is_dir() and any(root.iterdir()):
            raise InputError(
                f"The folder {root} holds files but no {INDEX_FILE}, so it is not a slice "
                "dataset to add to; choose a new or empty folder, so the dataset's files are not "
                "mixed with others.")
        return cls(root, roi, [])

    @classmethod
    def open(cls, root: str | Path) -> "SliceDataset":
        """Open an existing dataset folder.

        Raises
        ------
        InputError : there is no readable ``dataset.json`` of a known version in ``root``.
        """
        root = Path(root)
        index = root / INDEX_FILE
        if not index.is_file():
            raise InputError(
                f"{root} is not a slice dataset (it has no {INDEX_FILE}); build one with "
                "`tha-annotator slice-dataset`.")
        try:
            content = json.loads(index.read_text(encoding="utf-8"))
            version = content["version"]
            roi = RoiSpec(**content["roi"])
            cases = list(content["cases"])
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"The dataset index {index} is damaged; rebuild the dataset.") from error
        if version != FORMAT_VERSION:
            raise InputError(
                f"The dataset {root} has format version {version}; this version of THA Annotator "
                f"reads version {FORMAT_VERSION}. Rebuild it.")
        return cls(root, roi, cases)

    @property
    def samples(self) -> list[tuple[int, int]]:
        """(case number, row) of every sample, in dataset order."""
        return [(c, r) for c, case in enumerate(self.cases) for r in range(len(case["slices"]))]

    def case_number(self, scan: str, side: str) -> int:
        """Position in :attr:`cases` of the case of ``scan`` and ``side``."""
        for number, case in enumerate(self.cases):
            if case["scan"] == scan and case["side"] == side:
                return number
        raise InputError(f"The dataset {self.root} has no case for scan {scan!r}, {side} hip.")

    def load_case(self, number: int) -> CaseData:
        """Read the arrays of case ``number`` from its ``.npz`` file."""
        path = self.root / self.cases[number]["file"]
        try:
            with np.load(path) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, KeyError) as error:
            raise InputError(f"The dataset file {path} is missing or damaged; rebuild it.") from error
        return CaseData(
            image=arrays["image"].astype(np.float32),
            label=arrays["label"],
            truth=arrays.get("truth"),
            label_original=arrays.get("label_original"),
            corrected=arrays.get("corrected"),
        )

    def write_case(self, meta: dict, data: CaseData) -> None:
        """Store a case's arrays (atomically) and put ``meta`` into the index (not yet saved).

        ``meta`` holds the index fields of the module docstring except ``id``, ``file`` and
        ``has_truth``, which are filled in here. A case with the same scan and side is replaced in
        place (case numbers do not change).
        """
        case_id = f"{meta['scan']}_{meta['side']}"
        relative = f"{CASES_FOLDER}/{case_id}.npz"
        arrays = {"image": data.image.astype(np.float16), "label": data.label.astype(np.uint8),
                  "corrected": data.corrected.astype(bool)}
        if data.truth is not None:
            arrays["truth"] = data.truth.astype(np.uint8)
        if data.label_original is not None:
            arrays["label_original"] = data.label_original.astype(np.uint8)
        with atomic_path(self.root / relative) as temporary:
            with open(temporary, "wb") as stream:
                np.savez_compressed(stream, **arrays)
        entry = {"id": case_id, **meta, "file": relative, "has_truth": data.truth is not None}
        for number, case in enumerate(self.cases):
            if case["id"] == case_id:
                self.cases[number] = entry
                return
        self.cases.append(entry)

    def save_index(self) -> None:
        """Write ``dataset.json`` atomically."""
        write_json_atomic(self.root / INDEX_FILE, {
            "version": FORMAT_VERSION,
            "roi": self.roi.to_dict(),
            "classes": {"0": "background", **{str(k): v for k, v in CLASS_NAMES.items()}},
            "cases": self.cases,
        })
