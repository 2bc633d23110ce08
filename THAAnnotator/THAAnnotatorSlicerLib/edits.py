"""Keeping the annotator's edits: fingerprints of written segments, the question before a run
overwrites edited ones, a backup of what a run replaced, and undoing a write that failed.

Each segment a run writes carries the fingerprint of its mask as a segment tag. A segment whose
mask no longer matches its fingerprint (or that has none) was edited since (by the Segment
Editor, or by a version of the module that wrote no fingerprints).
"""
from __future__ import annotations

import hashlib

import numpy as np
import vtk
import vtk.util.numpy_support

import slicer
from THAAnnotatorLib.errors import Cancelled, InputError

from .mrml import matrixToArray, nodeReferenceInScene

FINGERPRINT_TAG = "THAAnnotator.MaskFingerprint"
BACKUP_REFERENCE = "THAAnnotatorBackup"
"""Node reference from a segmentation to the hidden segmentation holding what a run replaced."""

REPLACE = "replace"
NEW_SEGMENTATION = "new"
CANCEL = "cancel"
EDIT_CHOICES = (NEW_SEGMENTATION, REPLACE, CANCEL)
"""Answers to "segments were edited since the last run": the first is the default."""


def maskFingerprint(segmentationNode, segmentId: str) -> str:
    """SHA-256 of a segment's voxels (cropped to where they are set) and their geometry; the same
    whatever layer or extent the segment's labelmap has."""
    image = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(segmentationNode, segmentId, image)
    extent = image.GetExtent()
    digest = hashlib.sha256()
    if image.GetPointData().GetScalars() is not None and extent[1] >= extent[0]:
        label = segmentationNode.GetSegmentation().GetSegment(segmentId).GetLabelValue()
        values = vtk.util.numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
        mask = values.reshape(extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1) == label
        present = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        if all(p.size for p in present):
            lo = np.array([p[0] for p in present])
            hi = np.array([p[-1] for p in present])
            matrix = vtk.vtkMatrix4x4()
            image.GetImageToWorldMatrix(matrix)
            digest.update((lo + np.array(extent[4::-2])).astype(np.int64).tobytes())  # absolute (k, j, i)
            digest.update(np.round(matrixToArray(matrix), 6).tobytes())
            digest.update(np.packbits(mask[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]).tobytes())
    return digest.hexdigest()


def _tag(segment, name: str) -> str | None:
    value = vtk.reference("")
    return str(value) if segment.GetTag(name, value) else None


def stampFingerprints(segmentationNode, segmentIds) -> None:
    """Record the current mask of each segment as the one this module wrote."""
    segmentation = segmentationNode.GetSegmentation()
    for segmentId in segmentIds:
        segmentation.GetSegment(segmentId).SetTag(FINGERPRINT_TAG, maskFingerprint(segmentationNode, segmentId))


def editedSegments(segmentationNode, segmentIds) -> list[str]:
    """Those of ``segmentIds`` present in the segmentation whose mask differs from the one written."""
    if segmentationNode is None:
        return []
    segmentation = segmentationNode.GetSegmentation()
    return [segmentId for segmentId in segmentIds if segmentation.GetSegment(segmentId) is not None
            and _tag(segmentation.GetSegment(segmentId), FINGERPRINT_TAG) != maskFingerprint(segmentationNode, segmentId)]


def chooseTarget(segmentationNode, segmentIds, onEdited) -> tuple:
    """Where a run writes: (the segmentation, or None for a new one; whether to back up what it
    replaces). Where ``segmentIds`` were edited, ``onEdited(segmentationNode, editedIds)`` chooses
    (without it: a new segmentation); CANCEL raises Cancelled."""
    edited = editedSegments(segmentationNode, segmentIds)
    if not edited:
        return segmentationNode, False
    choice = onEdited(segmentationNode, edited) if onEdited is not None else NEW_SEGMENTATION
    if choice not in EDIT_CHOICES:
        raise ValueError(f"onEdited answered {choice!r}, not one of {', '.join(EDIT_CHOICES)}.")
    if choice == CANCEL:
        raise Cancelled("Cancelled; the edited segments were left as they are.")
    return (segmentationNode, True) if choice == REPLACE else (None, False)


class SegmentationSnapshot:
    """A deep copy of a segmentation node's segments and transform, put back by :meth:`restore`
    (a write that failed part-way leaves the segmentation exactly as it was)."""

    def __init__(self, segmentationNode):
        self.node = segmentationNode
        self.segmentation = slicer.vtkSegmentation()
        self.segmentation.DeepCopy(segmentationNode.GetSegmentation())
        self.transformId = segmentationNode.GetTransformNodeID()

    def restore(self) -> None:
        wasModified = self.node.StartModify()
        self.node.GetSegmentation().DeepCopy(self.segmentation)
        self.node.SetAndObserveTransformNodeID(self.transformId)
        self.node.EndModify(wasModified)


def _copySegments(source, target, segmentIds) -> None:
    for segmentId in segmentIds:
        if not target.CopySegmentFromSegmentation(source, segmentId):
            raise RuntimeError(f"Could not copy the segment {segmentId}.")


def _presentIds(segmentation, segmentIds) -> list[str]:
    return [segmentId for segmentId in segmentIds if segmentation.GetSegment(segmentId) is not None]


def backUpSegments(segmentationNode, source, segmentIds, created: list) -> None:
    """Keep the ``segmentIds`` of ``source`` (a vtkSegmentation: the segmentation before a run
    replaced them) in the segmentation's hidden backup, for "Restore previous result". The
    backup is made if missing (and appended to ``created``), else emptied first."""
    backup = nodeReferenceInScene(segmentationNode, BACKUP_REFERENCE)
    if backup is None:
        scene = segmentationNode.GetScene()
        backup = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                         scene.GenerateUniqueName(f"{segmentationNode.GetName()} previous result"))
        created.append(backup)
        backup.SetHideFromEditors(True)  # no display node: never shown, not offered in node selectors
        segmentationNode.SetNodeReferenceID(BACKUP_REFERENCE, backup.GetID())
    backup.GetSegmentation().RemoveAllSegments()
    _copySegments(source, backup.GetSegmentation(), _presentIds(source, segmentIds))


def hasPreviousResult(segmentationNode) -> bool:
    return segmentationNode is not None and nodeReferenceInScene(segmentationNode, BACKUP_REFERENCE) is not None


def restorePreviousResult(segmentationNode, segmentIds) -> None:
    """Swap the module's segments (``segmentIds``) with those the backup kept: the replaced ones
    come back voxel for voxel, and restoring again brings back the newer result."""
    backup = nodeReferenceInScene(segmentationNode, BACKUP_REFERENCE)
    if backup is None:
        raise InputError(f'The segmentation "{segmentationNode.GetName()}" has no previous result to restore.')
    snapshot = SegmentationSnapshot(segmentationNode)
    segmentation = segmentationNode.GetSegmentation()
    wasModified = segmentationNode.StartModify()
    try:
        for segmentId in _presentIds(segmentation, segmentIds):
            segmentation.RemoveSegment(segmentId)
        _copySegments(backup.GetSegmentation(), segmentation, _presentIds(backup.GetSegmentation(), segmentIds))
        backup.GetSegmentation().RemoveAllSegments()
        _copySegments(snapshot.segmentation, backup.GetSegmentation(), _presentIds(snapshot.segmentation, segmentIds))
    except BaseException:
        snapshot.restore()
        raise
    finally:
        segmentationNode.EndModify(wasModified)
