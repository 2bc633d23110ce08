"""Review queue files (``tha-annotator review-queue``): reading them, recording a reviewed slice,
and moving the views to a queued slice with its segment selected for editing."""
from __future__ import annotations

import datetime
import json
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import vtk

import slicer
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.result import SIDES

from .mrml import matrixToArray, sliceCenterRas
from .results import measurements

REVIEW_QUEUE_FORMAT = """\
Review queue file: the review_queue.json that `tha-annotator review-queue` writes (format of
THAAnnotatorLib.model.aar, version 1): a UTF-8 JSON object whose "items" list holds the queued
slices, and whose "scans" object maps each scan name to {"scan_path", "labels_path"} (the review
loop opens these files). A bare list of items is accepted too. Each item has
  "scan"         string  the scan's name (a key of "scans"),
  "side"         string  "right" or "left",
  "slice"        integer axial slice index counted from the scan's most inferior slice (0), the
                         canonical z index of THAAnnotatorLib (as "slice_index" in annotation.json),
  "uncertainty"  number  how unsure the model is about this slice; larger is reviewed first,
and optionally
  "position_ras_mm" [R, A, S]  where to centre the views, mm (default: the head center from the
                         measurements table, else the views keep their in-plane position),
  "dice"         {"acetabulum": a, "femoral_head": f}: the class with the lower Dice is the
                         segment selected for editing (default: femoral head),
  "segment"      "acetabulum" or "femoral head": overrides that choice,
  "thumbnail"    path of a picture of the slice, relative to the queue file's folder,
  "corrected"    boolean; true once `apply-corrections` (or "Save correction and next", which
                         runs it) took the slice's corrected labels into the dataset,
  "reviewed"     boolean; the panel sets it, with "reviewed_at" (ISO 8601, UTC), when the
                         annotator has looked at the slice ("Mark reviewed", or saved a correction).
Items are listed by decreasing uncertainty; keys the module does not know are preserved."""
REVIEW_QUEUE_REQUIRED_KEYS = ("scan", "side", "slice", "uncertainty")


@dataclass
class ReviewEntry:
    """One slice of a review queue (see :data:`REVIEW_QUEUE_FORMAT`)."""

    scan: str
    side: str
    slice: int
    uncertainty: float
    reviewed: bool
    corrected: bool
    data: dict
    scanPath: str = ""
    labelsPath: str = ""
    thumbnailPath: str = ""

    @property
    def segmentId(self) -> str:
        """The segment to edit: "segment" if given, else the class with the lower Dice."""
        segment = self.data.get("segment")
        if segment is None:
            dice = self.data.get("dice")
            segment = "femoral head"
            if isinstance(dice, dict) and isinstance(dice.get("acetabulum"), (int, float)) \
                    and isinstance(dice.get("femoral_head"), (int, float)) and dice["acetabulum"] < dice["femoral_head"]:
                segment = "acetabulum"
        segment = str(segment).strip().lower().replace("_", " ")
        if segment not in ("femoral head", "acetabulum"):
            raise InputError(f'The review queue item for {self.scan} has segment "{segment}"; '
                             'use "femoral head" or "acetabulum".')
        return f"{self.side}_{segment.replace(' ', '_')}"


def readQueueDocument(path):
    """The queue file's JSON document and its list of items (InputError saying what is wrong)."""
    if not path:
        raise InputError("No review queue file is selected; choose the review_queue.json written by "
                         "tha-annotator review-queue.")
    try:
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
    except FileNotFoundError:
        raise InputError(f"The review queue file {path} does not exist; check the path.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"The review queue file {path} is not readable JSON ({error}); "
                         "make it again with tha-annotator review-queue.") from None
    items = document.get("items") if isinstance(document, dict) else document
    if not isinstance(items, list) or (isinstance(document, dict) and document.get("version", 1) != 1):
        raise InputError(f'The review queue file {path} is not a version 1 queue with an "items" list; '
                         "make it again with tha-annotator review-queue.")
    return document, items

def readReviewQueue(path) -> list[ReviewEntry]:
    """The items of a review queue file (:data:`REVIEW_QUEUE_FORMAT`), most uncertain first."""
    document, raw = readQueueDocument(path)
    scans = document.get("scans", {}) if isinstance(document, dict) else {}
    entries = []
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or any(key not in item for key in REVIEW_QUEUE_REQUIRED_KEYS):
            raise InputError(f"Item {number} of the review queue {path} lacks one of the keys "
                             f"{', '.join(REVIEW_QUEUE_REQUIRED_KEYS)}; make the queue again with "
                             "tha-annotator review-queue.")
        try:
            entry = ReviewEntry(str(item["scan"]), str(item["side"]), int(item["slice"]),
                                float(item["uncertainty"]), bool(item.get("reviewed", False)),
                                bool(item.get("corrected", False)), item)
        except (TypeError, ValueError):
            raise InputError(f'Item {number} of the review queue {path} has a "slice" or "uncertainty" '
                             "that is not a number; make the queue again with tha-annotator review-queue.") from None
        if entry.side not in SIDES or isinstance(item["slice"], bool) or item["slice"] != entry.slice:
            raise InputError(f'Item {number} of the review queue {path} needs "side" right or left and an '
                             'integer "slice"; make the queue again with tha-annotator review-queue.')
        info = scans.get(entry.scan) if isinstance(scans, dict) else None
        if isinstance(info, dict):
            entry.scanPath, entry.labelsPath = str(info.get("scan_path") or ""), str(info.get("labels_path") or "")
        if item.get("thumbnail"):
            entry.thumbnailPath = os.path.join(os.path.dirname(os.path.abspath(path)), str(item["thumbnail"]))
        entries.append(entry)
    return sorted(entries, key=lambda e: -e.uncertainty)

def markReviewEntryReviewed(path, entry: ReviewEntry) -> None:
    """Record in the queue file that ``entry`` was reviewed (the file is replaced atomically);
    its "corrected" flag, which says the dataset took a correction, is left as it is."""
    document, raw = readQueueDocument(path)
    for item in raw:
        if (isinstance(item, dict) and str(item.get("scan")) == entry.scan and item.get("side") == entry.side
                and item.get("slice") == entry.slice):
            item["reviewed"] = True
            item["reviewed_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            break
    else:
        raise InputError(f"The review queue {path} no longer holds {entry.scan}, {entry.side} hip, slice "
                         f"{entry.slice}; load the queue again.")
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2, allow_nan=False)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise

def reviewEntryMatchesVolume(entry: ReviewEntry, volumeNode) -> bool:
    """Whether the volume's name is the item's scan name or its scan file's name (no extension)."""
    names = {entry.scan.lower()}
    if entry.scanPath:
        name = os.path.basename(entry.scanPath.rstrip("/\\")).lower()
        for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        names.add(name)
    return volumeNode.GetName().lower() in names

def jumpToReviewEntry(entry: ReviewEntry, volumeNode, segmentationNode=None) -> np.ndarray:
    """Move all slice views to the entry's slice, centred on its hip; select its segment for editing.

    Returns the RAS point (mm, world) the views were centred on.
    """
    center = entry.data.get("position_ras_mm")
    if center is not None:
        try:
            center = np.asarray(center, dtype=float).reshape(3)
        except (TypeError, ValueError):
            raise InputError(f'The review queue item for {entry.scan}, slice {entry.slice}, has a '
                             '"position_ras_mm" that is not three numbers; make the queue again.') from None
    if center is None and segmentationNode is not None:
        row = measurements(segmentationNode).get(entry.side)
        if row is not None and np.isfinite([row["Center R"], row["Center A"], row["Center S"]]).all():
            center = (row["Center R"], row["Center A"], row["Center S"])
    scene = volumeNode.GetScene()
    if center is None:
        redSlice = scene.GetSingletonNode("Red", "vtkMRMLSliceNode")
        center = matrixToArray(redSlice.GetSliceToRAS())[:3, 3] if redSlice is not None else None
    point = sliceCenterRas(volumeNode, entry.slice, center)
    parent = volumeNode.GetParentTransformNode()
    if parent is not None:
        matrix = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(matrix)
        point = (matrixToArray(matrix) @ np.append(point, 1.0))[:3]
    slicer.vtkMRMLSliceNode.JumpAllSlices(scene, *map(float, point), slicer.vtkMRMLSliceNode.CenteredJumpSlice)
    if segmentationNode is not None:
        segmentId = entry.segmentId
        if segmentationNode.GetSegmentation().GetSegment(segmentId) is None:
            raise InputError(f'The segmentation "{segmentationNode.GetName()}" has no segment {segmentId}; '
                             "select the segmentation holding this scan's labels.")
        editorNode = scene.GetSingletonNode("SegmentEditor", "vtkMRMLSegmentEditorNode")
        if editorNode is None:
            editorNode = slicer.vtkMRMLSegmentEditorNode()
            editorNode.SetSingletonTag("SegmentEditor")
            editorNode = scene.AddNode(editorNode)
        editorNode.SetAndObserveSegmentationNode(segmentationNode)
        if hasattr(editorNode, "SetAndObserveSourceVolumeNode"):
            editorNode.SetAndObserveSourceVolumeNode(volumeNode)
        else:  # Slicer before 5.4
            editorNode.SetAndObserveMasterVolumeNode(volumeNode)
        editorNode.SetSelectedSegmentID(segmentId)
    return point
