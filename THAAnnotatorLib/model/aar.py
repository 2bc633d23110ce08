"""AAR: active-learning annotation refinement (paper, section 3.3).

A network trained on the dataset predicts every training slice; where prediction and label
disagree most, the label is most likely wrong. The uncertainty of a slice is eq. (6),

    U = 1 / (Dice(prediction, label) + eps),

with the Dice pooled over the two foreground classes,
``2 * sum_c |P_c & L_c| / sum_c (|P_c| + |L_c|)`` for c in {acetabulum, femoral head}, so a
shifted boundary and swapped classes both lower it; a slice where both are empty has Dice 1.
The K most uncertain slices form the review queue; after they are corrected (in 3D Slicer's
Segment Editor), the corrections replace those labels in the dataset and the network is
trained again.

The review queue (``review_queue.json``, read by the Slicer module; ``review_queue.csv`` has
the same rows) is::

    {"version": 1,
     "dataset": "/abs/path/to/dataset",
     "model": {"path": "/abs/path/to/model", "sha256": "..."},
     "uncertainty": "1 / (Dice(prediction, label) + 1e-06), Dice pooled over acetabulum and femoral head",
     "slices_scored": 5297,          # slices showing both classes (see score_slices)
     "scans": {"ct001": {"scan_path": "/data/ct001.nii.gz", "labels_path": ".../labels.seg.nrrd"}},
     "items": [{"scan": "ct001", "side": "right", "slice": 41,
                "uncertainty": 4.71, "dice": {"acetabulum": 0.52, "femoral_head": 0.11},
                "thumbnail": "thumbnails/ct001_right_041.png",
                "corrected": false,
                "position_ras_mm": [R, A, S], "source_slice": {"axis": "k", "index": 41}}, ...]}

Items are sorted by decreasing uncertainty. ``slice`` is the canonical slice index (0 = most
inferior); ``source_slice`` is the same slice as an index of the scan file's own voxel axes
(what Slicer shows); ``position_ras_mm`` is the ROI center on that slice, for jumping there;
``thumbnail`` is relative to the queue file's folder and shows the CT with the label (left)
and the prediction (right) outlined: acetabulum orange, femoral head blue.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import uuid
from collections.abc import Callable, Collection
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, some_names
from ..io import volume_from_sitk
from ..metrics import dice
from ..result import ACETABULUM, FEMORAL_HEAD
from ..volume import Volume
from .build import scan_id_from_path
from .dataset import SliceDataset, reference_from_dict
from .files import replace_folder, write_bytes_atomic, write_json_atomic
from .inference import predict_probabilities
from .labelfiles import read_label_file
from .network import LoadedModel
from .roi import RoiPlacement, sample_labels

EPSILON = 1e-6
"""eps of eq. (6): keeps U finite where prediction and label do not overlap at all."""
REVIEW_FOLDER = "review"
QUEUE_JSON, QUEUE_CSV, THUMBNAILS = "review_queue.json", "review_queue.csv", "thumbnails"
QUEUE_VERSION = 1
_CLASS_KEYS = {ACETABULUM: "acetabulum", FEMORAL_HEAD: "femoral_head"}
_OUTLINE_BGR = {ACETABULUM: (40, 140, 255), FEMORAL_HEAD: (255, 140, 40)}


def pooled_dice(prediction: np.ndarray, label: np.ndarray) -> float:
    """Dice over the foreground classes together (see the module docstring); 1.0 if both empty."""
    overlap = total = 0
    for cls in _CLASS_KEYS:
        p, m = prediction == cls, label == cls
        overlap += int(np.count_nonzero(p & m))
        total += int(np.count_nonzero(p)) + int(np.count_nonzero(m))
    return 1.0 if total == 0 else 2.0 * overlap / total


def uncertainty(prediction: np.ndarray, label: np.ndarray) -> float:
    """Eq. (6): 1 / (pooled Dice + eps) of one slice."""
    return 1.0 / (pooled_dice(prediction, label) + EPSILON)


def _has_both_classes(label: np.ndarray) -> bool:
    return bool((label == ACETABULUM).any() and (label == FEMORAL_HEAD).any())


def score_slices(dataset: SliceDataset, model: LoadedModel, batch_size: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Uncertainty and per-class Dice of the dataset's slices that show the joint.

    As in the paper's dataset (section 4), the slices scored are those whose label holds both
    acetabulum and femoral head; the ROI's slices above and below the head (label all
    background, kept for training) are not, since there "the label says nothing is there" is
    the one thing the pipeline cannot get wrong in a way worth a manual look.

    Returns
    -------
    One dict per scored slice, in dataset order: scan, side, slice, case (number), row, uncertainty,
    dice ({"acetabulum", "femoral_head"}), corrected.
    """
    if model.config.roi != dataset.roi:
        raise InputError(
            f"The model reads ROIs of {model.config.roi.to_dict()} but the dataset has "
            f"{dataset.roi.to_dict()}; use a model trained on this kind of dataset.")
    scores = []
    for number, case in enumerate(dataset.cases):
        data = dataset.load_case(number)
        rows = [row for row, label in enumerate(data.label) if _has_both_classes(label)]
        if not rows:
            continue
        probabilities = predict_probabilities(model, data.image[rows], batch_size)
        predictions = probabilities.argmax(dim=1).cpu().numpy()
        for row, prediction in zip(rows, predictions):
            label = data.label[row]
            scores.append({
                "scan": case["scan"], "side": case["side"], "slice": case["slices"][row],
                "case": number, "row": row,
                "uncertainty": uncertainty(prediction, label),
                "dice": {key: dice(prediction == cls, label == cls) for cls, key in _CLASS_KEYS.items()},
                "corrected": bool(data.corrected[row]),
            })
        if progress is not None:
            progress(number + 1, len(dataset.cases))
    return scores


def select_top(scores: list[dict], top_k: int | None = None, top_percent: float | None = None) -> list[dict]:
    """The most uncertain slices: ``top_k`` of them, or ``top_percent`` % (rounded up)."""
    if (top_k is None) == (top_percent is None):
        raise InputError("Give either a number of slices (--top-k) or a percentage (--top-percent).")
    if top_percent is not None:
        if not 0 < top_percent <= 100:
            raise InputError(f"--top-percent must be in (0, 100], got {top_percent:g}.")
        top_k = int(np.ceil(len(scores) * top_percent / 100.0))
    if top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {top_k}.")
    ranked = sorted(scores, key=lambda s: (-s["uncertainty"], s["case"], s["row"]))
    return ranked[:top_k]


def thumbnail_png(image: np.ndarray, label: np.ndarray, prediction: np.ndarray) -> bytes:
    """PNG of one ROI slice twice, label outlined on the left, prediction on the right."""
    grey = cv2.cvtColor((np.clip(image, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    panels = []
    for title, mask in (("label", label), ("prediction", prediction)):
        panel = grey.copy()
        for cls, colour in _OUTLINE_BGR.items():
            contours, _ = cv2.findContours((mask == cls).astype(np.uint8), cv2.RETR_LIST,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(panel, contours, -1, colour, 1)
        cv2.putText(panel, title, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        panels.append(panel)
    ok, encoded = cv2.imencode(".png", np.hstack(panels))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _source_slice(volume: Volume, case: dict, canonical_z: int) -> dict:
    """Where a canonical slice of a case's scan (geometry in ``volume``) lies, for Slicer."""
    axis = volume.source_axes[0]
    index = volume.shape[0] - 1 - canonical_z if volume.source_flipped[0] else canonical_z
    ras = volume.index_to_ras_mm(np.array([canonical_z, *case["center_zyx"][1:]], float))
    return {"source_slice": {"axis": "kji"[axis], "index": int(index)},
            "position_ras_mm": [round(float(v), 2) for v in ras]}


def check_queue_folder(out_dir: str | Path) -> None:
    """Raise InputError for a queue folder that holds files but no ``review_queue.json``: a
    queue replaces its folder as a whole, and only an earlier queue may be replaced."""
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / QUEUE_JSON).is_file():
        held = sorted(entry.name for entry in out_dir.iterdir())
        raise InputError(
            f"The queue folder {out_dir} holds files ({some_names(held)}) but no "
            f"{QUEUE_JSON}, so it is not an earlier queue, which is all a new queue replaces; "
            "choose a new or empty folder.")


def write_review_queue(dataset_dir: str | Path, model: LoadedModel, model_dir: str | Path,
                       top_k: int | None = None, top_percent: float | None = None,
                       batch_size: int | None = None, out_dir: str | Path | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Path:
    """Score every slice, and write the queue of the most uncertain ones with thumbnails.

    Parameters
    ----------
    dataset_dir : the slice dataset.
    model : the network trained on it; ``model_dir`` is where it was loaded from (recorded).
    top_k, top_percent : how many slices to queue (exactly one of the two).
    batch_size : slices per forward pass (None: the device's default).
    out_dir : the queue folder; default ``<dataset>/review``. It is replaced as a whole, so it
        must be new, empty or an earlier queue (:func:`check_queue_folder`).
    progress : called with (cases done, cases).

    Returns
    -------
    Path of ``review_queue.json``.
    """
    dataset = SliceDataset.open(dataset_dir)
    out_dir = Path(out_dir) if out_dir is not None else dataset.root / REVIEW_FOLDER
    check_queue_folder(out_dir)
    scores = score_slices(dataset, model, batch_size, progress)
    chosen = select_top(scores, top_k, top_percent)
    staging = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        items = _write_thumbnails(dataset, model, chosen, staging, batch_size)
        queue = {
            "version": QUEUE_VERSION,
            "dataset": str(dataset.root.resolve()),
            "model": {"path": str(Path(model_dir).resolve()), "sha256": model.info.get("sha256")},
            "uncertainty": f"1 / (Dice(prediction, label) + {EPSILON:g}), Dice pooled over "
                           "acetabulum and femoral head",
            "slices_scored": len(scores),
            "scans": {case["scan"]: {"scan_path": case.get("scan_path"),
                                     "labels_path": case.get("labels_path")}
                      for case in dataset.cases},
            "items": items,
        }
        write_json_atomic(staging / QUEUE_JSON, queue)
        write_bytes_atomic(staging / QUEUE_CSV, _queue_csv(items).encode("utf-8"))
        replace_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / QUEUE_JSON


def _write_thumbnails(dataset: SliceDataset, model: LoadedModel, chosen: list[dict],
                      folder: Path, batch_size: int | None) -> list[dict]:
    """Write a thumbnail per chosen slice; return the queue items in ``chosen``'s order."""
    items: list[dict | None] = [None] * len(chosen)
    by_case: dict[int, list[int]] = {}
    for position, score in enumerate(chosen):
        by_case.setdefault(score["case"], []).append(position)
    for number, positions in by_case.items():
        case, data = dataset.cases[number], dataset.load_case(number)
        geometry = volume_from_sitk(reference_from_dict(case["reference"]))
        rows = [chosen[p]["row"] for p in positions]
        predictions = predict_probabilities(model, data.image[rows], batch_size).argmax(dim=1).cpu().numpy()
        for position, row, prediction in zip(positions, rows, predictions):
            score = chosen[position]
            name = f"{THUMBNAILS}/{case['scan']}_{case['side']}_{score['slice']:03d}.png"
            write_bytes_atomic(folder / name, thumbnail_png(data.image[row], data.label[row], prediction))
            items[position] = {
                "scan": score["scan"], "side": score["side"], "slice": score["slice"],
                "uncertainty": round(score["uncertainty"], 6),
                "dice": {k: round(v, 6) for k, v in score["dice"].items()},
                "thumbnail": name, "corrected": score["corrected"],
                **_source_slice(geometry, case, score["slice"]),
            }
    return items


def _queue_csv(items: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "scan", "side", "slice", "uncertainty", "dice_acetabulum",
                     "dice_femoral_head", "thumbnail", "corrected"])
    for rank, item in enumerate(items, start=1):
        writer.writerow([rank, item["scan"], item["side"], item["slice"], item["uncertainty"],
                         item["dice"]["acetabulum"], item["dice"]["femoral_head"],
                         item["thumbnail"], item["corrected"]])
    return buffer.getvalue()


def load_queue(path: str | Path) -> dict:
    """Read a review queue JSON file (see the module docstring)."""
    path = Path(path)
    try:
        queue = json.loads(path.read_text(encoding="utf-8"))
        if queue["version"] != QUEUE_VERSION or not isinstance(queue["items"], list):
            raise ValueError("unknown version")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"{path} is not a readable review queue; make one with `tha-annotator review-queue`.") from error
    return queue


def replace_labels(dataset: SliceDataset, replacements: dict[int, dict[int, np.ndarray]]) -> int:
    """Replace label slices of a dataset, keeping the first labels as ``label_original``.

    Parameters
    ----------
    dataset : the dataset (its case files are rewritten atomically, one by one).
    replacements : case number -> {row -> new (P, P) labels 0/1/2}.

    Returns
    -------
    Number of slices replaced.
    """
    changed = {}
    for number, rows in replacements.items():
        data = dataset.load_case(number)
        if data.label_original is None:
            data.label_original = data.label.copy()
        for row, labels in rows.items():
            data.label[row] = labels
            data.corrected[row] = True
        changed[number] = data
    for number, data in changed.items():
        case = dataset.cases[number]
        meta = {k: v for k, v in case.items() if k not in ("id", "file", "has_truth")}
        dataset.write_case(meta, data)
    dataset.save_index()
    return sum(len(rows) for rows in replacements.values())


def _correction_files(corrections: Path, scan: str | None) -> dict[str, Path]:
    """Scan name -> correction file, from one file (or a folder of ``<scan>.<suffix>`` files)."""
    if corrections.is_dir():
        found = {scan_id_from_path(p): p for p in sorted(corrections.iterdir())
                 if p.is_file() and scan_id_from_path(p) != p.name}
        if not found:
            raise InputError(
                f"The folder {corrections} holds no label files named after scans "
                "(<scan>.seg.nrrd or <scan>.nii.gz).")
        return found
    if not corrections.is_file():
        raise InputError(f"The corrections {corrections} do not exist; check the path.")
    return {scan or scan_id_from_path(corrections): corrections}


def apply_corrections(dataset_dir: str | Path, corrections: str | Path, scan: str | None = None,
                      queue_path: str | Path | None = None,
                      only: Collection[tuple[str, str, int]] | None = None) -> dict[str, int]:
    """Take corrected labels of queued slices into the dataset.

    Parameters
    ----------
    dataset_dir : the slice dataset.
    corrections : a label file in a scan's geometry (``.seg.nrrd`` saved from Slicer, or a
        label NIfTI), or a folder of such files named ``<scan>.seg.nrrd`` / ``<scan>.nii.gz``.
    scan : the scan a single file belongs to; default: the file's name without suffix.
    queue_path : the review queue; default ``<dataset>/review/review_queue.json``. Only the
        queue's slices of each scan are taken from the files; they are marked corrected there
        and in the ``.csv`` beside it (both rewritten atomically).

    Returns
    -------
    Scan name -> slices replaced.
    """
    dataset = SliceDataset.open(dataset_dir)
    queue_path = Path(queue_path) if queue_path else dataset.root / REVIEW_FOLDER / QUEUE_JSON
    queue = load_queue(queue_path)
    files = _correction_files(Path(corrections), scan)
    replacements: dict[int, dict[int, np.ndarray]] = {}
    applied: dict[str, int] = {}
    for scan_name, path in files.items():
        items = [item for item in queue["items"] if item["scan"] == scan_name
                 and (only is None or (scan_name, item["side"], item["slice"]) in only)]
        if not items:
            wanted = "" if only is None else " among those asked for (" + ", ".join(
                f"{name} {side} hip slice {number}" for name, side, number in sorted(only)) + ")"
            raise InputError(f"The review queue {queue_path} has no slices of scan {scan_name!r}{wanted}; "
                             "check the scan name (or pass --scan).")
        label_map = None
        for item in items:
            number = dataset.case_number(scan_name, item["side"])
            case = dataset.cases[number]
            if label_map is None:
                label_map = read_label_file(path, reference_from_dict(case["reference"]))
            try:
                row = case["slices"].index(item["slice"])
            except ValueError as error:
                raise InputError(f"Slice {item['slice']} of {scan_name} ({item['side']} hip) is not "
                                 "in the dataset; the queue belongs to another dataset.") from error
            placement = RoiPlacement(case["side"], tuple(case["center_zyx"]), np.array([item["slice"]]),
                                     tuple(case["spacing_mm"]), dataset.roi)
            classes = label_map.classes_for_side(case["side"], tuple(case["x_range"]))
            replacements.setdefault(number, {})[row] = sample_labels(classes, placement)[0]
            item["corrected"] = True
        applied[scan_name] = len(items)
    replace_labels(dataset, replacements)
    write_json_atomic(queue_path, queue)
    # the CSV beside the JSON (review_queue.csv) says the same, so it is rewritten too
    write_bytes_atomic(queue_path.with_suffix(".csv"), _queue_csv(queue["items"]).encode("utf-8"))
    return applied
