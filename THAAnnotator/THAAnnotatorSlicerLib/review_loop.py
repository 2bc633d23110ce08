"""The AAR loop in the panel: work through a review queue (``tha-annotator review-queue``) slice
by slice, take each correction into the dataset as ``tha-annotator apply-corrections`` does,
then fine-tune the model and rebuild the queue in the background.

:class:`ReviewLoop` holds the queue and the entry being reviewed. :meth:`ReviewLoop.open` loads
the entry's scan and labels (the queue's ``scans`` paths) as a volume and a segmentation, once
per scan, and moves the views to the entry's slice; :meth:`ReviewLoop.saveCorrection` writes the
hip segments as ``<dataset>/corrections/<scan>.seg.nrrd`` and calls the library's
:func:`~THAAnnotatorLib.model.aar.apply_corrections` for that one slice, then marks it reviewed.
Nothing here needs the Slicer application.
"""
from __future__ import annotations

import os
import re

import numpy as np

import slicer
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.result import SIDES
from THAAnnotatorLib.terminology import SEGMENTS

from . import edits, mrml, results, review, runner

CORRECTIONS_FOLDER = "corrections"
"""Where "Save correction and next" writes ``<scan>.seg.nrrd`` (in the dataset's folder: rebuilding
the queue replaces the queue's folder as a whole); ``apply-corrections DATASET DATASET/corrections``
would take them again."""
FINE_TUNE_EPOCHS, FINE_TUNE_LEARNING_RATE = 3, 5e-4
"""``train --init-from`` after corrections: 3 epochs at 5e-4, as docs/datasets.md and the AAR
benchmark (docs/accuracy.md) fine-tune."""
REVIEW_SCAN_ATTRIBUTE = "THAAnnotator.ReviewScan"
"""Set on the volume and segmentation nodes the loop loaded: the scan's name in the queue."""
SHORTCUTS = {"previous": "Ctrl+Shift+Left", "next": "Ctrl+Shift+Right", "save": "Ctrl+Shift+Return"}
"""Keyboard shortcuts of Previous, Next and "Save correction and next"."""
HIP_SEGMENT_IDS = tuple(segment.segment_id for segment in SEGMENTS)


def nextModelFolder(modelPath: str) -> str:
    """Where fine-tuning ``modelPath`` writes: ``<model>-aar1`` beside it, ``-aar2`` for that one's
    successor, and so on (the first such folder that does not exist yet)."""
    modelPath = os.path.normpath(os.path.abspath(modelPath))
    base = re.sub(r"-aar\d+$", "", modelPath)
    match = re.search(r"-aar(\d+)$", modelPath)
    number = int(match.group(1)) + 1 if match else 1
    while os.path.exists(f"{base}-aar{number}"):
        number += 1
    return f"{base}-aar{number}"


def _reviewNodes(scene, scan: str) -> tuple:
    """The volume and segmentation nodes the loop loaded for ``scan`` (None where there is none)."""
    found = {}
    for className in ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode"):
        nodes = scene.GetNodesByClass(className)
        found[className] = next((nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())
                                 if nodes.GetItemAsObject(i).GetAttribute(REVIEW_SCAN_ATTRIBUTE) == scan), None)
    return found["vtkMRMLScalarVolumeNode"], found["vtkMRMLSegmentationNode"]


def _removeNode(node) -> None:
    scene = node.GetScene()
    for index in reversed(range(node.GetNumberOfDisplayNodes())):
        if node.GetNthDisplayNode(index) is not None:
            scene.RemoveNode(node.GetNthDisplayNode(index))
    if node.GetStorageNode() is not None:
        scene.RemoveNode(node.GetStorageNode())
    scene.RemoveNode(node)


def loadScanVolume(scene, path: str, scan: str):
    """The CT ``path`` read into a new scalar volume node named after ``scan``."""
    if not path:
        raise InputError(f'The review queue names no scan file for {scan} (in "scans"): its dataset did not keep '
                         "the scans (phantoms keep them with slice-dataset --keep-scans), so it cannot be reviewed here.")
    if not os.path.isfile(path):
        raise InputError(f'The scan file of {scan} ("{path}") does not exist; the review queue names it in "scans". '
                         "Put the scan back there or make the queue again.")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(path)
    volumeNode = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scan)
    if not storage.ReadData(volumeNode):
        scene.RemoveNode(volumeNode)
        scene.RemoveNode(storage)
        raise InputError(f"The scan file {path} of {scan} could not be read; check that it is a CT image.")
    volumeNode.SetAndObserveStorageNodeID(storage.GetID())
    volumeNode.CreateDefaultDisplayNodes()
    return volumeNode


def sideCodes(volume, labelsPath: str, scan: str) -> np.ndarray:
    """A labels file (``.seg.nrrd`` or a label image) as side codes 1..4 in ``volume``'s canonical
    layout, read by the library as ``apply-corrections`` and the dataset builders read it."""
    from THAAnnotatorLib.afs.frame import SideFrame
    from THAAnnotatorLib.io import sitk_reference_from_volume
    from THAAnnotatorLib.model.labelfiles import read_label_file

    if not labelsPath:
        raise InputError(f'The review queue names no labels file for {scan} (in "scans"), so its labels cannot be '
                         "opened for correction; review the scans whose labels the dataset kept.")
    if not os.path.isfile(labelsPath):
        raise InputError(f'The labels file of {scan} ("{labelsPath}") does not exist; the review queue names it in '
                         '"scans". Put it back there or make the queue again.')
    labels = read_label_file(labelsPath, sitk_reference_from_volume(volume))
    if labels.sided:
        return labels.values
    codes = np.zeros(labels.values.shape, dtype=np.uint8)
    for side in SIDES:  # classes only: each hip's half of the body, as the dataset builders do
        frame = SideFrame.for_side(volume, side)
        classes = labels.classes_for_side(side, (frame.x_start, frame.x_stop))
        codes[classes > 0] = SIDES.index(side) * 2 + classes[classes > 0]
    return codes


def exportCorrection(segmentationNode, path: str) -> str:
    """Write the segmentation's hip segments (not the bone, which overlaps them) as a
    ``.seg.nrrd`` in one layer, the file ``apply-corrections`` reads; returns ``path``."""
    present = [i for i in HIP_SEGMENT_IDS if segmentationNode.GetSegmentation().GetSegment(i) is not None]
    if not present:
        raise InputError(f'The segmentation "{segmentationNode.GetName()}" has none of the segments '
                         f"{', '.join(HIP_SEGMENT_IDS)}; nothing to save.")
    mrml.ensureSegmentationConverterRules()
    export = slicer.vtkMRMLSegmentationNode()
    export.GetSegmentation().CopyConversionParameters(segmentationNode.GetSegmentation())
    for segmentId in present:
        export.GetSegmentation().CopySegmentFromSegmentation(segmentationNode.GetSegmentation(), segmentId)
    export.GetSegmentation().CollapseBinaryLabelmaps(False)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(path + ".partial.seg.nrrd")
    if not storage.WriteData(export):
        raise RuntimeError(f"Could not write the correction to {path}.")
    os.replace(path + ".partial.seg.nrrd", path)
    return path


class ReviewLoop:
    """A review queue being worked through; ``index`` is the entry under review.

    Opening starts at the first entry not yet reviewed. Previous / Next go through the entries
    in the queue's order (most uncertain first).
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.document, _ = review.readQueueDocument(self.path)
        self.entries = review.readReviewQueue(self.path)
        if not self.entries:
            raise InputError(f"The review queue {path} holds no slices; make it again with tha-annotator review-queue.")
        self.index = next((i for i, e in enumerate(self.entries) if not e.reviewed), 0)

    @property
    def entry(self) -> review.ReviewEntry:
        return self.entries[self.index]

    @property
    def datasetPath(self) -> str:
        dataset = self.document.get("dataset") if isinstance(self.document, dict) else None
        if not dataset or not os.path.isfile(os.path.join(dataset, "dataset.json")):
            raise InputError(f'The review queue {self.path} names no slice dataset that exists ("dataset": '
                             f"{dataset!r}); make the queue again with tha-annotator review-queue.")
        return dataset

    @property
    def modelPath(self) -> str:
        """The model that made the queue (its "model" path)."""
        model = self.document.get("model") if isinstance(self.document, dict) else None
        path = model.get("path") if isinstance(model, dict) else None
        if not path:
            raise InputError(f'The review queue {self.path} does not say which model made it ("model": '
                             '{"path": ...}); make the queue again with tha-annotator review-queue.')
        return path

    def progress(self) -> str:
        """"12 of 200 reviewed"."""
        return f"{sum(e.reviewed for e in self.entries)} of {len(self.entries)} reviewed"

    def position(self) -> str:
        entry = self.entry
        return (f"Slice {self.index + 1} of {len(self.entries)}: {entry.scan}, {entry.side} hip, slice {entry.slice}"
                f"{' (reviewed)' if entry.reviewed else ''}{', in the dataset' if entry.corrected else ''}.")

    def move(self, step: int) -> bool:
        """Go ``step`` entries on (negative: back); False, staying put, past either end."""
        if not 0 <= self.index + step < len(self.entries):
            return False
        self.index += step
        return True

    def reload(self) -> None:
        """Read the queue file again, staying on the same entry."""
        key = (self.entry.scan, self.entry.side, self.entry.slice)
        self.document, _ = review.readQueueDocument(self.path)
        self.entries = review.readReviewQueue(self.path)
        self.index = next((i for i, e in enumerate(self.entries) if (e.scan, e.side, e.slice) == key), 0)

    def open(self, scene) -> tuple:
        """Load the entry's scan and labels (once per scan; the nodes of another scan are removed
        unless their segments hold edits not saved yet), move the views to the entry's slice and
        select its segment in the Segment Editor. Returns (volume node, segmentation node)."""
        entry = self.entry
        volumeNode, segmentationNode = _reviewNodes(scene, entry.scan)
        if volumeNode is None or segmentationNode is None:
            for node in (volumeNode, segmentationNode):
                if node is not None:
                    _removeNode(node)
            self._closeOtherScans(scene, entry.scan)
            mrml.ensureSegmentationConverterRules()
            volumeNode = loadScanVolume(scene, entry.scanPath, entry.scan)
            try:
                volume = mrml.volumeFromNode(volumeNode)
                codes = sideCodes(volume, entry.labelsPath, entry.scan)
                segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{entry.scan} labels")
                segmentationNode.CreateDefaultDisplayNodes()
                segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
                cropped, segments = results.hipLayer(volume, codes, SEGMENTS)
                results.writeSegments(segmentationNode, [(mrml.orientedImage(cropped, mrml.ijkToRasArray(volumeNode)),
                                                          segments)])
            except BaseException:
                _removeNode(volumeNode)
                if segmentationNode is not None:
                    _removeNode(segmentationNode)
                raise
            for node in (volumeNode, segmentationNode):
                node.SetAttribute(REVIEW_SCAN_ATTRIBUTE, entry.scan)
        review.jumpToReviewEntry(entry, volumeNode, segmentationNode)
        return volumeNode, segmentationNode

    @staticmethod
    def _closeOtherScans(scene, keep: str) -> None:
        segmentations = scene.GetNodesByClass("vtkMRMLSegmentationNode")
        for index in range(segmentations.GetNumberOfItems()):
            node = segmentations.GetItemAsObject(index)
            scan = node.GetAttribute(REVIEW_SCAN_ATTRIBUTE)
            if scan is None or scan == keep or edits.editedSegments(node, HIP_SEGMENT_IDS):
                continue
            for reviewNode in _reviewNodes(scene, scan):
                if reviewNode is not None:
                    _removeNode(reviewNode)

    def correctionPath(self, scan: str) -> str:
        return os.path.join(self.datasetPath, CORRECTIONS_FOLDER, f"{scan}.seg.nrrd")

    def saveCorrection(self, segmentationNode) -> dict:
        """Take the entry's slice from ``segmentationNode`` into the dataset, as ``tha-annotator
        apply-corrections DATASET <scan>.seg.nrrd --scan SCAN --queue QUEUE`` does for the queue's
        slices of a scan (here only this one), and mark the entry reviewed. Returns what
        ``apply_corrections`` returned."""
        from THAAnnotatorLib.model.aar import apply_corrections

        entry = self.entry
        if segmentationNode is None or segmentationNode.GetAttribute(REVIEW_SCAN_ATTRIBUTE) != entry.scan:
            raise InputError(f"The segmentation to save is not the one opened for {entry.scan}; open the entry again.")
        path = exportCorrection(segmentationNode, self.correctionPath(entry.scan))
        applied = apply_corrections(self.datasetPath, path, scan=entry.scan, queue_path=self.path,
                                    only={(entry.scan, entry.side, entry.slice)})
        review.markReviewEntryReviewed(self.path, entry)
        edits.stampFingerprints(segmentationNode, [i for i in HIP_SEGMENT_IDS
                                                   if segmentationNode.GetSegmentation().GetSegment(i) is not None])
        self.reload()
        return applied

    def markReviewed(self) -> None:
        """The entry needs no correction: mark it reviewed (the dataset is left as it is)."""
        review.markReviewEntryReviewed(self.path, self.entry)
        self.reload()

    def fineTune(self, device: str = "auto") -> runner.CommandRun:
        """Start ``tha-annotator train DATASET --out <model>-aarN --init-from <queue's model>`` with
        :data:`FINE_TUNE_EPOCHS` and :data:`FINE_TUNE_LEARNING_RATE`; ``run.modelPath`` is where
        the new model goes."""
        out = nextModelFolder(self.modelPath)
        run = runner.CommandRun(["train", self.datasetPath, "--out", out, "--init-from", self.modelPath,
                                 "--epochs", str(FINE_TUNE_EPOCHS), "--lr", repr(FINE_TUNE_LEARNING_RATE),
                                 "--device", device], "Fine-tuning the model")
        run.modelPath = out
        return run

    def rebuildQueue(self, modelPath: str | None = None, device: str = "auto") -> runner.CommandRun:
        """Start ``tha-annotator review-queue DATASET --model MODEL --top-k <as many slices as now>
        --out <this queue's folder>`` (default model: the one that made this queue)."""
        return runner.CommandRun(["review-queue", self.datasetPath, "--model", modelPath or self.modelPath,
                                  "--top-k", str(len(self.entries)), "--out", os.path.dirname(self.path),
                                  "--device", device], "Rebuilding the review queue")
