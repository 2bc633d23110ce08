"""Writing a run's result into the scene: segments, the measurements table, the Hough circle
table, the markups that show one slice's circle and the measurement markups (:mod:`.markups`);
and reading the measurements back."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import vtk

import slicer
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.result import SIDES, Annotation
from THAAnnotatorLib.terminology import ANATOMIC_CONTEXT, ANATOMICAL_STRUCTURE, SEGMENTS, TERMINOLOGY_CONTEXT, Code
from THAAnnotatorLib.volume import Volume

from . import edits
from .markups import (ROLE_ATTRIBUTE, lockedMarkup, referencedOrNew, removeReferenced,
                      removeResultNodesWithSegmentation, segmentColor, writeMeasurementMarkups)
from .mrml import (LPS_TO_RAS, cropLabels, ensureSegmentationConverterRules, geometryOnlyVolume, ijkToRasArray,
                   nodeReferenceInScene, orientedImage)

BONE_SEGMENT_ID = "bone"
BONE_SEGMENT_NAME = "Bone"
BONE_COLOR = (0.90, 0.86, 0.74)
BONE_CODE = Code("SCT", "272673000", "Bone")
HIP_SEGMENT_IDS = tuple(segment.segment_id for segment in SEGMENTS)
SEGMENT_IDS = (BONE_SEGMENT_ID,) + HIP_SEGMENT_IDS
"""Every segment ID this module writes; a run replaces exactly these."""

# Node references kept on the segmentation node, so that a second run reuses the same nodes.
MEASUREMENTS_REFERENCE = "THAAnnotatorMeasurements"
CIRCLES_REFERENCE = "THAAnnotatorCircles"
CIRCLE_CURVE_REFERENCE = "THAAnnotatorCircle_{side}"
BOUNDARY_POINTS_REFERENCE = "THAAnnotatorBoundary_{side}"
SHOWN_SLICE_ATTRIBUTE = "THAAnnotator.ShownSlice"
PLANE_AXES_ATTRIBUTE = "THAAnnotator.PlaneAxesRAS"
SLICE_SPACING_ATTRIBUTE = "THAAnnotator.SliceSpacingMm"

PLANNING_COLUMNS = (
    # column, HipMeasurements field (THAAnnotatorLib.measure, docs/measurements.md), unit, description
    ("Acetabular diameter", "acetabular_diameter_mm", "mm", "Sphere fitted to the acetabulum's articular surface."),
    ("Concentricity", "concentricity_mm", "mm", "Femoral head center to the acetabular sphere's center."),
    ("Suggested cup", "suggested_cup_mm", "mm",
     "The acetabular diameter rounded up to the next even mm: a suggestion, not a plan."),
    ("Inclination", "inclination_deg", "deg",
     "Murray's radiographic inclination of the plane fitted to the articular rim, against the scanner's axes."),
    ("Anteversion", "anteversion_deg", "deg",
     "Murray's radiographic anteversion of that plane, against the scanner's axes."),
    ("Center-edge angle", "center_edge_deg", "deg",
     "Wiberg's lateral center-edge angle, coronal plane through the head's center."),
    ("Anterior sector angle", "anterior_sector_deg", "deg",
     "Anda's anterior sector angle, axial plane through the head's center."),
    ("Posterior sector angle", "posterior_sector_deg", "deg",
     "Anda's posterior sector angle, axial plane through the head's center."),
    ("Head coverage", "head_coverage_percent", "%",
     "Share of the head sphere's upper hemisphere the acetabulum covers."),
    ("Head sphericity RMS", "head_sphericity_rms_mm", "mm",
     "RMS departure of the head's upper surface from its sphere."),
    ("Head sphericity max", "head_sphericity_max_mm", "mm",
     "Largest departure of the head's upper surface from its sphere."),
)
"""THA planning measurements in the measurements table: each hip's ``SideResult.measurements``."""
AGREEMENT_KEYS = ("acetabulum", "femoral_head")
"""The classes of ``SideResult.model_agreement``, in the order of their measurement columns."""
MEASUREMENT_COLUMNS = (
    ("Side", "string", "", "Hip: right or left."),
    ("Status", "string", "", "segmented, metal (implant, not segmented) or not_found."),
    ("Center R", "double", "mm", "Femoral head sphere center, patient right (RAS), mm."),
    ("Center A", "double", "mm", "Femoral head sphere center, anterior (RAS), mm."),
    ("Center S", "double", "mm", "Femoral head sphere center, superior (RAS), mm."),
    ("Diameter", "double", "mm", "Femoral head sphere diameter, mm."),
    ("Initial slice", "string", "",
     "Axial slice where the femoral head separates from the greater trochanter; index counted "
     "from the most inferior slice (0), as in annotation.json and the review queue."),
    ("Surface drop", "double", "HU",
     "Surface check: mean HU fall from the head's cortex into the joint space at the fitted "
     "sphere; under 150 HU the hip is flagged (the joint space may not show in this scan)."),
    ("Model agreement acetabulum", "double", "",
     "Predict with model only: Dice (0-1) between the model's acetabulum labels and its labels when its view of "
     "the hip moves 8 mm medially and posteriorly; low values mean the model is guessing."),
    ("Model agreement femoral head", "double", "",
     "Predict with model only: the same Dice for the femoral head."),
    *((name, "double", unit, description) for name, _, unit, description in PLANNING_COLUMNS),
    ("Not measured", "string", "", "Why the planning measurements of a hip were not computed."),
    ("Needs review", "string", "",
     "yes when the sphere failed the surface check unmended or the head is of unusual size, or (model) when a "
     "warning applies, such as a low model agreement; the warnings say why."),
    ("Message", "string", "", "Why a hip was not segmented."),
    ("Warnings", "string", "", "Warnings of the pipeline for this hip."),
)
CIRCLE_COLUMNS = (
    ("Side", "string", "", "Hip: right or left."),
    ("Slice", "int", "", "Axial slice index counted from the most inferior slice (0)."),
    ("Center R", "double", "mm", "Hough circle center, RAS, mm."),
    ("Center A", "double", "mm", "Hough circle center, RAS, mm."),
    ("Center S", "double", "mm", "Hough circle center, RAS, mm."),
    ("Radius", "double", "mm", "Hough circle radius, mm."),
    ("Boundary points", "string", "", "Refined boundary points, JSON list of [R, A, S] in mm."),
)


@dataclass
class RunOutput:
    """What a run made or updated in the scene, and the library result."""

    segmentationNode: object
    volume: Volume
    bone: np.ndarray
    annotation: Annotation | None
    measurementsTableNode: object = None
    circlesTableNode: object = None
    circleNodes: dict = field(default_factory=dict)
    boundaryPointNodes: dict = field(default_factory=dict)
    openingPlaneNodes: dict = field(default_factory=dict)
    centerEdgeAngleNodes: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    """What the user should know about how the run went (e.g. a fallback to the CPU)."""


def boneTerminologyEntry() -> str:
    """The "Bone" segment's terminology, serialised as Slicer stores it (see terminology.py)."""
    return "~".join([TERMINOLOGY_CONTEXT, ANATOMICAL_STRUCTURE.serialized(), BONE_CODE.serialized(),
                     "^^", ANATOMIC_CONTEXT, "^^", "^^"])


def summary(annotation: Annotation | None) -> str:
    """One line per hip for the panel's status: diameter and whether it needs review, or why not."""
    if annotation is None:
        return "Bone extracted."
    lines = []
    for side, result in annotation.sides.items():
        found = (f"femoral head diameter {result.head_diameter_mm:.1f} mm" if result.head_diameter_mm is not None
                 else result.message or result.status)
        if result.model_agreement is not None:
            found += (f", model agreement {result.model_agreement['acetabulum']:.3f} (acetabulum), "
                      f"{result.model_agreement['femoral_head']:.3f} (femoral head)")
        lines.append(f"{side.capitalize()} hip: {found}{'; needs review' if result.needs_review else ''}.")
    return " ".join(lines)


def tableColumns(tableNode, columns) -> dict:
    """name -> vtk array of a table this module wrote; InputError if a column is missing."""
    out = {}
    for name, _, _, _ in columns:
        array = tableNode.GetTable().GetColumnByName(name)
        if array is None:
            raise InputError(f'The table "{tableNode.GetName()}" has no column "{name}"; run the module again.')
        out[name] = array
    return out


def segmentLayers(volume: Volume, bone: np.ndarray, annotation: Annotation | None) -> list:
    """The segments a result writes, as labelmap layers in the volume node's voxel layout: a list
    of (:func:`mrml.cropLabels` of a label map, [(ID, name, colour, terminology, label value)]):
    the bone in one, the hip segments (which never overlap) in another. Pure numpy, so a
    background run prepares them off the main thread."""
    layers = [(cropLabels(volume.to_source_layout(bone.astype(np.uint8, copy=False)) > 0),
               [(BONE_SEGMENT_ID, BONE_SEGMENT_NAME, BONE_COLOR, boneTerminologyEntry(), 1)])]
    if annotation is not None:
        layers.append(hipLayer(volume, annotation.side_labels, [
            s for s in SEGMENTS if annotation.sides.get(s.side) is not None
            and annotation.sides[s.side].status == "segmented"]))
    return layers


def hipLayer(volume: Volume, sideLabels: np.ndarray, hips) -> tuple:
    """The labelmap layer (as :func:`segmentLayers`) of the hip segments ``hips`` (of
    ``THAAnnotatorLib.terminology.SEGMENTS``) of canonical side codes 1..4; other codes are left out."""
    labels = volume.to_source_layout(sideLabels)  # may be a view of sideLabels
    labels = np.where(np.isin(labels, [s.label_value for s in hips]), labels, 0)
    return cropLabels(labels), [(s.segment_id, s.name, s.color, s.terminology_entry(), s.label_value) for s in hips]


def withLayers(result: dict) -> dict:
    """A background run's result (see :mod:`.worker`) with its :func:`segmentLayers`, made in the
    run's thread so that only the MRML part of writing is left to the main thread."""
    volume = geometryOnlyVolume(*result["geometry"])
    return dict(result, layers=segmentLayers(volume, result["bone"], result["annotation"]))


def writeResults(volumeNode, segmentationNode, volume: Volume, bone: np.ndarray,
                 annotation: Annotation | None, backUp: bool = False, layers: list | None = None) -> RunOutput:
    """Write bone and (if given) hip results of ``volume`` (read from ``volumeNode``) into the scene.

    ``bone`` and ``annotation`` are in the canonical layout of ``volume``; ``layers`` are their
    :func:`segmentLayers` if already made. With ``backUp``, the module's segments the write
    replaces are kept in the segmentation's hidden backup (:func:`edits.restorePreviousResult`).
    If writing fails part-way, the nodes made here are removed and an existing segmentation's
    segments and transform are put back exactly.
    """
    scene = volumeNode.GetScene()
    removeResultNodesWithSegmentation(scene)
    ensureSegmentationConverterRules()
    ijkToRas = ijkToRasArray(volumeNode)
    layers = layers if layers is not None else segmentLayers(volume, bone, annotation)
    images = [(orientedImage(cropped, ijkToRas), segments) for cropped, segments in layers]

    created = []
    snapshot = None if segmentationNode is None else edits.SegmentationSnapshot(segmentationNode)
    try:
        if segmentationNode is None:
            segmentationNode = scene.AddNewNodeByClass(
                "vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{volumeNode.GetName()} THA annotation"))
            created.append(segmentationNode)
        if segmentationNode.GetDisplayNode() is None:
            segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        writeSegments(segmentationNode, images)
        output = RunOutput(segmentationNode, volume, bone, annotation)
        _writeHipNodes(output, volumeNode, created)
        if backUp and snapshot is not None:
            edits.backUpSegments(segmentationNode, snapshot.segmentation, SEGMENT_IDS, created)
    except BaseException:
        if snapshot is not None:
            snapshot.restore()
        for node in reversed(created):
            if node.GetScene() is scene:
                scene.RemoveNode(node)
        raise
    return output


def writeSegments(segmentationNode, layers) -> None:
    """Replace this module's segments by those of ``layers``: (oriented image of label values, or
    None where all its segments are empty; [(ID, name, colour, terminology, label value)]). The
    segments of a layer share its image, as Slicer's shared labelmaps do, so nothing is merged or
    copied (much faster on a large scan than setting each segment's mask)."""
    segmentation = segmentationNode.GetSegmentation()
    labelmap = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    written = []
    wasModified = segmentationNode.StartModify()
    try:
        for segmentId in SEGMENT_IDS:
            if segmentation.GetSegment(segmentId) is not None:
                segmentation.RemoveSegment(segmentId)
        for image, segments in layers:
            for segmentId, name, color, terminology, labelValue in segments:
                segment = slicer.vtkSegment()
                segment.SetName(name)
                segment.SetColor(color)
                segment.SetNameAutoGenerated(False)
                segment.SetColorAutoGenerated(False)
                segment.SetTag(segment.GetTerminologyEntryTagName(), terminology)
                if image is not None:
                    segment.SetLabelValue(labelValue)
                    segment.AddRepresentation(labelmap, image)
                if not segmentation.AddSegment(segment, segmentId):
                    raise RuntimeError(f"Could not write the segment {name} into {segmentationNode.GetName()}.")
                written.append(segmentId)
        edits.stampFingerprints(segmentationNode, written)
    finally:
        segmentationNode.EndModify(wasModified)
    displayNode = segmentationNode.GetDisplayNode()
    if displayNode is not None and segmentation.GetSegment(BONE_SEGMENT_ID) is not None:
        displayNode.SetSegmentOpacity3D(BONE_SEGMENT_ID, 0.25)
        displayNode.SetSegmentOpacity2DFill(BONE_SEGMENT_ID, 0.3)


def _writeHipNodes(output: RunOutput, volumeNode, created: list) -> None:
    segmentationNode = output.segmentationNode
    annotation = output.annotation
    name = segmentationNode.GetName()
    if annotation is None:  # bone only: hip results of an earlier run no longer apply
        for role in (MEASUREMENTS_REFERENCE, CIRCLES_REFERENCE):
            removeReferenced(segmentationNode, role)
        for side in SIDES:
            removeReferenced(segmentationNode, CIRCLE_CURVE_REFERENCE.format(side=side))
            removeReferenced(segmentationNode, BOUNDARY_POINTS_REFERENCE.format(side=side))
        writeMeasurementMarkups(segmentationNode, {}, None, created)
        return

    measurements = referencedOrNew(segmentationNode, MEASUREMENTS_REFERENCE, "vtkMRMLTableNode",
                                    f"{name} measurements", created)
    measurements.SetAttribute(ROLE_ATTRIBUTE, "measurements")
    rows = []
    for side, result in annotation.sides.items():
        center = result.sphere_center_ras_mm or (np.nan, np.nan, np.nan)
        rows.append([side, result.status, *center,
                     result.head_diameter_mm if result.head_diameter_mm is not None else np.nan,
                     "" if result.initial_slice is None else str(result.initial_slice),
                     np.nan if result.surface_drop_hu is None else result.surface_drop_hu,
                     *(np.nan if result.model_agreement is None else result.model_agreement[key]
                       for key in AGREEMENT_KEYS),
                     *_planningValues(result.measurements),
                     _notMeasured(result),
                     "yes" if result.needs_review else "no",
                     result.message, "; ".join(result.warnings)])
    _fillTable(measurements, MEASUREMENT_COLUMNS, rows)
    output.measurementsTableNode = measurements

    circles = referencedOrNew(segmentationNode, CIRCLES_REFERENCE, "vtkMRMLTableNode",
                               f"{name} Hough circles", created)
    circles.SetAttribute(ROLE_ATTRIBUTE, "circles")
    volume = output.volume
    indexToRas = LPS_TO_RAS @ volume.index_to_lps
    axisU = indexToRas[:3, 1] / np.linalg.norm(indexToRas[:3, 1])
    axisV = indexToRas[:3, 2] / np.linalg.norm(indexToRas[:3, 2])
    circles.SetAttribute(PLANE_AXES_ATTRIBUTE, json.dumps([axisU.tolist(), axisV.tolist()]))
    circles.SetAttribute(SLICE_SPACING_ATTRIBUTE, repr(float(volume.spacing_mm[0])))
    rows = []
    for side, result in annotation.sides.items():
        for circle in result.circles:
            rows.append([side, circle.slice_index, *circle.center_ras_mm, circle.radius_mm,
                         json.dumps([list(p) for p in circle.boundary_points_ras_mm])])
    _fillTable(circles, CIRCLE_COLUMNS, rows)
    output.circlesTableNode = circles

    transformId = volumeNode.GetTransformNodeID()
    for side in SIDES:
        curveRole = CIRCLE_CURVE_REFERENCE.format(side=side)
        pointsRole = BOUNDARY_POINTS_REFERENCE.format(side=side)
        result = annotation.sides.get(side)
        if result is None or result.status != "segmented" or not result.circles:
            removeReferenced(segmentationNode, curveRole)
            removeReferenced(segmentationNode, pointsRole)
            continue
        color = segmentColor(side, "femoral_head")
        curve = lockedMarkup(segmentationNode, curveRole, "vtkMRMLMarkupsClosedCurveNode",
                             f"{side.capitalize()} femoral head circle", side, "circle", color, transformId, created)
        points = lockedMarkup(segmentationNode, pointsRole, "vtkMRMLMarkupsFiducialNode",
                              f"{side.capitalize()} femoral head boundary points", side, "boundary points", color,
                              transformId, created)
        for node in (curve, points):
            node.RemoveAttribute(SHOWN_SLICE_ATTRIBUTE)
        curve.SetCurveTypeToLinear()
        output.circleNodes[side] = curve
        output.boundaryPointNodes[side] = points
    output.openingPlaneNodes, output.centerEdgeAngleNodes = writeMeasurementMarkups(
        segmentationNode, annotation.sides, transformId, created)


def _notMeasured(result) -> str:
    """Why a hip has no planning measurements ("" where it has them)."""
    if result.measurements is not None:
        return result.measurements.not_computed
    if result.status == "segmented":  # Predict with model
        return "the model's labels come without the femoral head's sphere to measure from"
    return f"not segmented ({result.message or result.status})"


def _planningValues(measurements) -> list:
    """The :data:`PLANNING_COLUMNS` values of a hip's measurements (NaN where not computed)."""
    values = [None if measurements is None else getattr(measurements, field) for _, field, _, _ in PLANNING_COLUMNS]
    return [np.nan if value is None else float(value) for value in values]


def _fillTable(tableNode, columns, rows) -> None:
    wasModified = tableNode.StartModify()
    tableNode.RemoveAllColumns()
    arrays = {"string": vtk.vtkStringArray, "double": vtk.vtkDoubleArray, "int": vtk.vtkIntArray}
    for index, (name, kind, unit, description) in enumerate(columns):
        array = arrays[kind]()
        array.SetName(name)
        array.SetNumberOfValues(len(rows))
        for row, values in enumerate(rows):
            value = values[index]
            array.SetValue(row, value if kind != "string" else str(value))
        tableNode.AddColumn(array)
        if unit:
            tableNode.SetColumnUnitLabel(name, unit)
        tableNode.SetColumnDescription(name, description)
        if hasattr(tableNode, "SetColumnTitle"):  # newer Slicer versions show titles
            tableNode.SetColumnTitle(name, f"{name} ({unit})" if unit else name)
    if hasattr(tableNode, "SetUseColumnTitleAsColumnHeader"):
        tableNode.SetUseColumnTitleAsColumnHeader(True)
    else:
        tableNode.SetUseColumnNameAsColumnHeader(True)
    tableNode.EndModify(wasModified)


def measurements(segmentationNode) -> dict:
    """The measurements table as side -> {column name: value} (numbers as float)."""
    table = nodeReferenceInScene(segmentationNode, MEASUREMENTS_REFERENCE)
    if table is None:
        return {}
    column = tableColumns(table, MEASUREMENT_COLUMNS)
    out = {}
    for row in range(table.GetNumberOfRows()):
        values = {name: column[name].GetValue(row) for name, _, _, _ in MEASUREMENT_COLUMNS}
        out[values["Side"]] = values
    return out
