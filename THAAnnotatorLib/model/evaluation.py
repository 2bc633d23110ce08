"""Scoring label maps against reference label maps: Dice and HD95 per class, scan and mean.

Label maps are matched by scan name. In a folder, the label map of scan ``<name>`` is either
``<name>/labels.nii.gz`` (an output folder of ``annotate`` / ``predict``; also
``<name>/labels.seg.nrrd``) or a file ``<name>.nii.gz`` / ``.nii`` / ``.nrrd`` / ``.seg.nrrd``
/ ``.mha``; a folder that itself holds ``labels.nii.gz`` is one scan named after the folder.
Both sides' labels count together (classes 1 acetabulum, 2 femoral head; side codes 1..4 are
folded into classes). The prediction is resampled (nearest neighbour) onto the reference's grid.
Reference label maps exported by ``tha-annotator export`` mark the half of a hip that was not
annotated with an ignore label, which their ``dataset.json`` (nnU-Net) or ``datalist.json``
(MONAI) declares; those voxels are left out of the scores, in both maps, as nnU-Net does.

HD95 is the 95th percentile of the symmetric surface distances, in mm, computed with MONAI's
``compute_hausdorff_distance`` on the voxel spacing; it is undefined (None) when the class is
empty in one of the two maps, and 0 when both are empty.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.metrics import compute_hausdorff_distance

from ..errors import InputError
from ..io import volume_from_sitk
from ..metrics import dice
from ..outputs import LABELS_FILE, SEGMENTATION_FILE
from ..result import ACETABULUM, CLASS_NAMES, FEMORAL_HEAD
from .build import scan_id_from_path
from .labelfiles import read_label_file

_LABEL_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".mha")


def find_label_maps(folder: str | Path) -> dict[str, Path]:
    """Scan name -> label map file in ``folder`` (naming rules in the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; pass a folder of label maps.")
    for name in (LABELS_FILE, SEGMENTATION_FILE):
        if (folder / name).is_file():
            return {folder.name: folder / name}
    found = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            for name in (LABELS_FILE, SEGMENTATION_FILE):
                if (entry / name).is_file():
                    found[entry.name] = entry / name
                    break
        elif entry.name.lower().endswith(_LABEL_SUFFIXES):
            found.setdefault(scan_id_from_path(entry), entry)
    return found


_EXPORT_INDEXES = ("dataset.json", "datalist.json")


def declared_ignore_label(folder: str | Path) -> tuple[int, Path] | None:
    """The ignore label an export declares for the label maps in ``folder``, and the file that
    declares it: nnU-Net's ``dataset.json`` (``"labels": {"ignore": 3}``) or MONAI's
    ``datalist.json`` (``"labels": {"3": "ignore"}``) in ``folder`` or the folder above it;
    None where none does."""
    folder = Path(folder)
    for place in (folder, folder.parent):
        for name in _EXPORT_INDEXES:
            try:
                labels = json.loads((place / name).read_text(encoding="utf-8"))["labels"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not isinstance(labels, dict):
                continue
            if isinstance(labels.get("ignore"), int):
                return labels["ignore"], place / name
            for key, value in labels.items():
                if value == "ignore" and str(key).isdigit():
                    return int(key), place / name
    return None


def _classes(values: np.ndarray, sided: bool) -> np.ndarray:
    out = np.array(values, dtype=np.uint8, copy=True)
    if sided:
        foreground = out > 0
        out[foreground] = (out[foreground] - 1) % 2 + 1
    return out


def hd95_mm(prediction: np.ndarray, reference: np.ndarray, spacing_mm) -> float | None:
    """95 % Hausdorff distance (mm) between two 3-D masks; None if exactly one is empty."""
    p_any, r_any = bool(prediction.any()), bool(reference.any())
    if not p_any and not r_any:
        return 0.0
    if p_any != r_any:
        return None
    # crop to the union's bounding box (plus a margin) to keep the distance transforms small
    union = np.argwhere(prediction | reference)
    low = np.maximum(union.min(axis=0) - 2, 0)
    high = union.max(axis=0) + 3
    box = tuple(slice(a, b) for a, b in zip(low, high))
    p = torch.from_numpy(np.ascontiguousarray(prediction[box]))[None, None]
    r = torch.from_numpy(np.ascontiguousarray(reference[box]))[None, None]
    with warnings.catch_warnings():  # MONAI warns about its own deprecated internal argument
        warnings.simplefilter("ignore", FutureWarning)
        distance = compute_hausdorff_distance(p, r, include_background=True, percentile=95,
                                              spacing=[float(s) for s in spacing_mm])
    return float(distance.item())


@dataclass
class ScanScore:
    """Dice and HD95 (mm) per class of one scan; keys are class names."""

    scan: str
    dice: dict[str, float]
    hd95_mm: dict[str, float | None]


def score_label_maps(prediction_path: Path, reference_path: Path, scan: str,
                     ignore_label: int | None = None) -> ScanScore:
    """Score one predicted label map against its reference; ``ignore_label``: the reference's
    value for voxels left out of the scores (its other values are classes, not side codes)."""
    try:
        reference_image = sitk.ReadImage(str(reference_path))
    except RuntimeError as error:
        raise InputError(f"The reference label map {reference_path} is not readable.") from error
    reference_map = read_label_file(reference_path, reference_image)
    geometry = volume_from_sitk(reference_image, name=f"The label map {reference_path.name}")
    prediction_map = read_label_file(prediction_path, reference_image)
    if ignore_label is None:
        reference = _classes(reference_map.values, reference_map.sided)
        ignored = None
    else:
        ignored = reference_map.values == ignore_label
        reference = np.where(ignored, 0, reference_map.values).astype(np.uint8)
    prediction = _classes(prediction_map.values, prediction_map.sided)
    if ignored is not None:
        prediction[ignored] = 0
    dices, distances = {}, {}
    for cls in (ACETABULUM, FEMORAL_HEAD):
        name = CLASS_NAMES[cls]
        dices[name] = dice(prediction == cls, reference == cls)
        distances[name] = hd95_mm(prediction == cls, reference == cls, geometry.spacing_mm)
    return ScanScore(scan, dices, distances)


def evaluate_folders(prediction_dir: str | Path, reference_dir: str | Path) -> list[ScanScore]:
    """Score every scan that has a label map in both folders; voxels of the ignore label that
    ``reference_dir``'s export declares (:func:`declared_ignore_label`) are left out.

    Raises
    ------
    InputError : no scan name is found in both folders.
    """
    predictions = find_label_maps(prediction_dir)
    references = find_label_maps(reference_dir)
    common = sorted(set(predictions) & set(references))
    if not common:
        raise InputError(
            f"No scan has a label map in both {prediction_dir} ({len(predictions)} found) and "
            f"{reference_dir} ({len(references)} found); name them alike (<scan>/labels.nii.gz "
            "or <scan>.nii.gz).")
    declared = declared_ignore_label(reference_dir)
    ignore_label = None if declared is None else declared[0]
    return [score_label_maps(predictions[s], references[s], s, ignore_label) for s in common]


def mean_scores(scores: list[ScanScore]) -> dict[str, dict[str, float | None]]:
    """Mean Dice and HD95 per class over scans (HD95 over the scans where it is defined),
    and their mean over the two classes under ``"mean"``."""
    out: dict[str, dict[str, float | None]] = {}
    for name in CLASS_NAMES.values():
        distances = [s.hd95_mm[name] for s in scores if s.hd95_mm[name] is not None]
        out[name] = {"dice": float(np.mean([s.dice[name] for s in scores])),
                     "hd95_mm": float(np.mean(distances)) if distances else None}
    classes = list(out.values())
    distances = [c["hd95_mm"] for c in classes if c["hd95_mm"] is not None]
    out["mean"] = {"dice": float(np.mean([c["dice"] for c in classes])),
                   "hd95_mm": float(np.mean(distances)) if distances else None}
    return out


def format_table(scores: list[ScanScore]) -> str:
    """A plain-text table: one row per scan and class, then the means."""
    def number(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = [f"{'scan':<24} {'class':<14} {'Dice':>7} {'HD95 mm':>8}"]
    for score in scores:
        for name in CLASS_NAMES.values():
            lines.append(f"{score.scan:<24} {name:<14} {score.dice[name]:>7.4f} "
                         f"{number(score.hd95_mm[name], 2):>8}")
    for name, values in mean_scores(scores).items():
        lines.append(f"{'MEAN (' + str(len(scores)) + ' scans)':<24} {name:<14} "
                     f"{values['dice']:>7.4f} {number(values['hd95_mm'], 2):>8}")
    return "\n".join(lines)
