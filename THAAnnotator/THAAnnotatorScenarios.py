"""Test scenarios of the THA Annotator module's Logic, in one place for two harnesses.

``Testing/test_slicer_logic.py`` (pytest, headless on the slicer-core wheel) and the module's
self-test ``THAAnnotatorTest.runTest()`` (inside 3D Slicer) both run every function listed in
:data:`SCENARIOS`. Each takes a MRML scene (empty apart from Slicer's singleton nodes), raises
AssertionError when the Logic misbehaves and returns a dict of figures worth reporting.

The CT is the library's synthetic phantom, stored in the volume node in a voxel layout unlike
the library's canonical one: a permuted and flipped array with a non-identity IJK-to-RAS matrix,
so that any mix-up of axes, flips or left and right shows.
"""
from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import dataclass

import numpy as np

import slicer
from THAAnnotator import THAAnnotatorLogic
from THAAnnotatorSlicerLib import edits, model, mrml, parameters, picture, results, review
from THAAnnotatorSlicerLib.overlays import CIRCLE_POLYGON_POINTS
from THAAnnotatorLib.errors import Cancelled, InputError
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.result import FEMORAL_HEAD, SIDES, Annotation, SideResult, segment_code
from THAAnnotatorLib.terminology import SEGMENTS

SPACING_MM = (2.0, 0.8, 0.8)
"""Phantom voxel size (z, y, x), mm: the demo's (0.8 mm in-plane, 2 mm slices). AFS needs this
resolution; at 1 mm in-plane it still falls short of the accuracy bar below."""
FOV_MM = (160.0, 280.0, 400.0)
"""Phantom field of view (z, y, x), mm: the demo's (the library's default), both hips and enough
femur below them for AFS to track the shaft up to the head."""
SEED = 1
"""Phantom random seed (trabecular texture and noise)."""
MIN_DICE = 0.9
"""Each hip segment must overlap the phantom's truth at least this much in the head slices."""
MAX_MARKUP_ERROR_MM = 0.1
"""The measurement markups lie within this of where the library places them (mm)."""
MAX_CENTER_ERROR_MM = 15.0
"""Sanity bound for the head center in the measurements table: it must be the hip of the right
side (the hips lie ~170 mm apart), not a precise accuracy figure."""

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Layout:
    """How a volume node stores the canonical (z, y, x) = (S, P, L) array.

    ``axes[a]`` is the canonical axis stored along numpy axis ``a`` of the node's array (as
    ``arrayFromVolume`` returns it, (k, j, i)); ``flips[a]`` reverses that axis.
    """

    name: str
    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    def toNode(self, canonical: np.ndarray) -> np.ndarray:
        """A canonical-layout array in this layout."""
        out = np.transpose(canonical, self.axes)
        flips = tuple(a for a, f in enumerate(self.flips) if f)
        return np.ascontiguousarray(np.flip(out, flips) if flips else out)

    def nodeIndexToCanonical(self, canonicalShape) -> np.ndarray:
        """4 x 4 matrix from homogeneous node indices (k, j, i) to canonical (z, y, x) indices."""
        matrix = np.zeros((4, 4))
        matrix[3, 3] = 1.0
        for nodeAxis, (canonicalAxis, flip) in enumerate(zip(self.axes, self.flips)):
            if flip:
                matrix[canonicalAxis, nodeAxis] = -1.0
                matrix[canonicalAxis, 3] = canonicalShape[canonicalAxis] - 1
            else:
                matrix[canonicalAxis, nodeAxis] = 1.0
        return matrix

    def ijkToRas(self, canonicalIndexToLps: np.ndarray, canonicalShape) -> np.ndarray:
        """The node's IJK-to-RAS matrix for a canonical volume with this index-to-LPS matrix."""
        kjiToRas = _LPS_TO_RAS @ canonicalIndexToLps @ self.nodeIndexToCanonical(canonicalShape)
        return kjiToRas[:, [2, 1, 0, 3]]


LPS_LAYOUT = Layout("LPS, as DICOM", (0, 1, 2), (False, False, False))
"""IJK directions diag(-1, -1, 1): the canonical array as is (i -> L, j -> P, k -> S)."""
PERMUTED_LAYOUT = Layout("permuted and flipped", (1, 0, 2), (False, True, False))
"""i -> L, j -> I (reversed z), k -> P: directions [[-1,0,0],[0,0,-1],[0,-1,0]] (RAS columns)."""
LAYOUTS = (LPS_LAYOUT, PERMUTED_LAYOUT)


LARGE_FOV_MM = (400.0, 409.6, 409.6)
"""A 512 x 512 x 200 scan at the phantom's voxel size, for timing the panel's responsiveness."""


@functools.lru_cache(maxsize=3)
def phantom(hips: bool = True, fovMm=FOV_MM):
    """The phantom of these scenarios (cached: generation takes a few seconds)."""
    from THAAnnotatorLib.phantom import generate_phantom

    return generate_phantom(spacing_mm=SPACING_MM, fov_mm=fovMm, seed=SEED, hips=hips)


@functools.lru_cache(maxsize=1)
def truthSideLabels() -> np.ndarray:
    from THAAnnotatorLib.labels import truth_side_labels

    return truth_side_labels(phantom(True), Params())


def addPhantomVolume(scene, layout: Layout = PERMUTED_LAYOUT, hips: bool = True, name: str = "phantom CT",
                     fovMm=FOV_MM):
    """A scalar volume node holding the phantom (int16 HU) in ``layout``."""
    ph = phantom(hips, fovMm)
    volume = ph.volume
    hu = np.clip(np.rint(volume.hu), -1024, 3071).astype(np.int16)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, layout.toNode(hu))
    node.SetIJKToRASMatrix(mrml.arrayToMatrix(layout.ijkToRas(volume.index_to_lps, volume.shape)))
    return node


def addSliceViews(scene) -> dict:
    """The Red (axial), Yellow (sagittal) and Green (coronal) slice nodes Slicer's layout has."""
    if scene.GetSingletonNode("Red", "vtkMRMLSliceNode") is None:
        slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene)
    views = {}
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        node = scene.GetSingletonNode(name, "vtkMRMLSliceNode")
        if node is None:
            node = scene.CreateNodeByClass("vtkMRMLSliceNode")  # a copy of the default node, with presets
            node.UnRegister(None)
            node.SetName(name)
            node.SetLayoutName(name)
            node.SetSingletonTag(name)
            node = scene.AddNode(node)
            node.SetOrientation(orientation)
        views[name] = node
    return views


def sceneSnapshot(scene) -> list:
    """Every node's ID, class and name, and each segmentation's segment IDs."""
    snapshot = []
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        segments = ()
        if node.IsA("vtkMRMLSegmentationNode"):
            segmentation = node.GetSegmentation()
            segments = tuple(segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments()))
        snapshot.append((node.GetID(), node.GetClassName(), node.GetName(), segments))
    return snapshot


def segmentsState(segmentationNode, volumeNode) -> list:
    """Every segment in order: ID, name, colour and its voxels in the volume's layout."""
    segmentation = segmentationNode.GetSegmentation()
    return [(segmentId, segmentation.GetSegment(segmentId).GetName(), tuple(segmentation.GetSegment(segmentId).GetColor()),
             mrml.segmentArray(segmentationNode, segmentId, volumeNode)) for segmentId in _segmentIds(segmentationNode)]


def sameSegments(a: list, b: list) -> bool:
    """Whether two :func:`segmentsState` lists are equal, voxel for voxel."""
    return len(a) == len(b) and all(x[:3] == y[:3] and np.array_equal(x[3], y[3]) for x, y in zip(a, b))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def headSlab(side: str, truth: np.ndarray) -> np.ndarray:
    """Canonical-layout mask of the axial slices in which the truth shows ``side``'s femoral head."""
    slices = (truth.reshape(truth.shape[0], -1) == segment_code(side, FEMORAL_HEAD)).any(axis=1)
    return np.broadcast_to(slices[:, None, None], truth.shape)


def truthAnnotation() -> Annotation:
    """The phantom's truth as an Annotation (no circles), for scenarios that need no pipeline run."""
    ph = phantom(True)
    sides = {side: SideResult(side, "segmented", initial_slice=None, circles=[],
                              sphere_center_ras_mm=tuple(ph.heads[side].center_ras_mm),
                              head_diameter_mm=2.0 * ph.heads[side].radius_mm) for side in SIDES}
    return Annotation(bone=(ph.part_map > 0).astype(np.uint8), side_labels=truthSideLabels(), sides=sides)


def _segmentIds(segmentationNode) -> list:
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def _centroidRas(mask: np.ndarray, volumeNode) -> np.ndarray:
    kji = np.argwhere(mask).mean(axis=0)
    return (mrml.ijkToRasArray(volumeNode) @ np.append(kji[::-1], 1.0))[:3]


def _checkSegmentMetadata(segmentationNode) -> None:
    segmentation = segmentationNode.GetSegmentation()
    for info in SEGMENTS:
        segment = segmentation.GetSegment(info.segment_id)
        assert segment is not None, f"segment {info.segment_id} missing"
        assert segment.GetName() == info.name, (segment.GetName(), info.name)
        assert np.allclose(segment.GetColor(), info.color), (segment.GetColor(), info.color)
        value = _tag(segment, segment.GetTerminologyEntryTagName())
        assert value == info.terminology_entry(), (value, info.terminology_entry())
    bone = segmentation.GetSegment(results.BONE_SEGMENT_ID)
    assert bone is not None and bone.GetName() == "Bone"
    assert _tag(bone, bone.GetTerminologyEntryTagName()) == results.boneTerminologyEntry()


def _tag(segment, name: str) -> str:
    import vtk

    value = vtk.reference("")
    assert segment.GetTag(name, value), f"segment {segment.GetName()} has no tag {name}"
    return str(value)


# ------------------------------------------------------------------------------------------------
# scenarios
# ------------------------------------------------------------------------------------------------


def scenarioGeometryRoundTrip(scene) -> dict:
    """Volume node -> canonical volume is exact in both layouts, and segments written back land
    exactly on the right voxels, on the right side, with names, colours and terminology."""
    logic = THAAnnotatorLogic(scene)
    ph = phantom(True)
    truth = truthSideLabels()
    annotation = truthAnnotation()
    figures = {}
    for layout in LAYOUTS:
        volumeNode = addPhantomVolume(scene, layout, name=f"phantom CT, {layout.name}")
        volume = mrml.volumeFromNode(volumeNode)
        expected = np.clip(np.rint(ph.volume.hu), -1024, 3071)
        assert volume.shape == ph.volume.shape, (layout.name, volume.shape)
        assert np.array_equal(volume.hu, expected), f"{layout.name}: canonical voxels differ"
        assert np.allclose(volume.index_to_lps, ph.volume.index_to_lps, atol=1e-9), layout.name

        for sliceIndex in (0, 17, volume.shape[0] - 1):
            point = mrml.sliceCenterRas(volumeNode, sliceIndex, (5.0, -7.0, 0.0))
            inSlice = volume.index_to_ras_mm(np.array([sliceIndex, 3.0, 4.0]))
            normal = volume.index_to_ras_mm(np.array([1.0, 0, 0])) - volume.index_to_ras_mm(np.zeros(3))
            assert abs(np.dot(point - inSlice, normal / np.linalg.norm(normal))) < 1e-6, (layout.name, sliceIndex)

        output = logic.writeResults(volumeNode, None, volume, annotation.bone, annotation)
        segmentationNode = output.segmentationNode
        assert _segmentIds(segmentationNode) == list(results.SEGMENT_IDS), _segmentIds(segmentationNode)
        _checkSegmentMetadata(segmentationNode)
        boneArray = mrml.segmentArray(segmentationNode, results.BONE_SEGMENT_ID, volumeNode)
        assert np.array_equal(boneArray, layout.toNode(annotation.bone)), f"{layout.name}: bone differs"
        for info in SEGMENTS:
            array = mrml.segmentArray(segmentationNode, info.segment_id, volumeNode)
            assert np.array_equal(array, layout.toNode(truth == info.label_value)), f"{layout.name}: {info.name}"
            if info.segment_id.endswith("femoral_head"):
                centroid = _centroidRas(array > 0, volumeNode)
                truthCenter = np.array(ph.heads[info.side].center_ras_mm)
                distance = float(np.linalg.norm(centroid - truthCenter))
                assert distance < 8.0, f"{layout.name}: {info.name} centroid {centroid} is {distance:.1f} mm off"
                figures[f"{layout.name}: {info.name} centroid error (mm)"] = round(distance, 2)
        assert (mrml.ijkToRasArray(volumeNode) == layout.ijkToRas(ph.volume.index_to_lps, ph.volume.shape)).all()
    # right is patient right (+R in RAS) whatever the layout
    assert ph.heads["right"].center_ras_mm[0] > 0 > ph.heads["left"].center_ras_mm[0]
    return figures


def scenarioSegmentHips(scene) -> dict:
    """Extract bone, then segment hips twice, on the phantom in a permuted, flipped layout."""
    logic = THAAnnotatorLogic(scene)
    layout = PERMUTED_LAYOUT
    volumeNode = addPhantomVolume(scene, layout)
    ph = phantom(True)

    # "Extract bone": only the Bone segment, no hip nodes
    boneOutput = logic.run(volumeNode, None, Params(), boneOnly=True)
    segmentationNode = boneOutput.segmentationNode
    assert _segmentIds(segmentationNode) == [results.BONE_SEGMENT_ID]
    assert boneOutput.measurementsTableNode is None and not boneOutput.circleNodes
    afterBone = sceneSnapshot(scene)

    # "Segment hips" into the same segmentation
    reports = []
    output = logic.run(volumeNode, segmentationNode, Params(), sides="both",
                       progress=lambda fraction, message: reports.append((fraction, message)))
    assert output.segmentationNode is segmentationNode
    fractions = [fraction for fraction, _ in reports]
    assert fractions and fractions[-1] == 1.0 and all(b >= a for a, b in zip(fractions, fractions[1:])), fractions
    _checkProgressInsideTheWork([message for _, message in reports], "circles, slice")
    annotation = output.annotation
    statuses = {side: result.status for side, result in annotation.sides.items()}
    assert statuses == {"right": "segmented", "left": "segmented"}, statuses
    assert _segmentIds(segmentationNode) == list(results.SEGMENT_IDS)
    _checkSegmentMetadata(segmentationNode)

    # segments hold exactly the library's result, mapped to the node's voxel layout
    arrays = {info.segment_id: mrml.segmentArray(segmentationNode, info.segment_id, volumeNode) for info in SEGMENTS}
    for info in SEGMENTS:
        assert np.array_equal(arrays[info.segment_id], layout.toNode(annotation.side_labels == info.label_value)), info.name
    assert np.array_equal(mrml.segmentArray(segmentationNode, results.BONE_SEGMENT_ID, volumeNode),
                          layout.toNode(annotation.bone > 0))

    # measurements table: one row per hip, the library's values; centers on the right side
    table = output.measurementsTableNode
    assert table.GetNumberOfRows() == 2 and table.GetNumberOfColumns() == len(results.MEASUREMENT_COLUMNS)
    rows = results.measurements(segmentationNode)
    figures, short = {}, []
    for side, result in annotation.sides.items():
        row = rows[side]
        center = np.array([row["Center R"], row["Center A"], row["Center S"]])
        assert np.allclose(center, result.sphere_center_ras_mm, atol=1e-6), (side, center)
        assert abs(row["Diameter"] - result.head_diameter_mm) < 1e-6
        assert row["Status"] == "segmented" and row["Initial slice"] == str(result.initial_slice)
        assert abs(row["Surface drop"] - result.surface_drop_hu) < 1e-6 and row["Surface drop"] > 150
        assert row["Needs review"] == "no" and np.isnan(row["Model agreement femoral head"])  # no model ran
        error = float(np.linalg.norm(center - np.array(ph.heads[side].center_ras_mm)))
        if error >= MAX_CENTER_ERROR_MM:
            short.append(f"{side} head center {error:.1f} mm from the truth")
        figures[f"{side} head center error (mm)"] = round(error, 2)
        figures[f"{side} head diameter (mm), truth {2 * ph.heads[side].radius_mm:g}"] = result.head_diameter_mm
        _checkMeasurementMarkups(output, result, row)
        figures[f"{side} center-edge angle (deg)"] = result.measurements.center_edge_deg

    # circles: all kept in the circles table; the markups show one slice's circle and points
    circlesTable = output.circlesTableNode
    nCircles = sum(len(r.circles) for r in annotation.sides.values())
    assert circlesTable.GetNumberOfRows() == nCircles > 0
    initial = {side: result.initial_slice for side, result in annotation.sides.items()}
    assert logic.overlays.showCirclesAtSlice(segmentationNode, sliceIndex=initial) == initial
    for side, result in annotation.sides.items():
        curve, points = output.circleNodes[side], output.boundaryPointNodes[side]
        assert curve.IsA("vtkMRMLMarkupsClosedCurveNode") and points.IsA("vtkMRMLMarkupsFiducialNode")
        assert curve.GetLocked() and curve.GetDisplayNode() is not None
        shown = next(c for c in result.circles if c.slice_index == result.initial_slice)
        _checkShownCircle(curve, points, shown)
        figures[f"{side} circles"] = len(result.circles)

    # the overlays follow the Red slice view
    views = addSliceViews(scene)
    red = views["Red"]
    for side in SIDES:
        for circle in annotation.sides[side].circles[:: max(1, len(annotation.sides[side].circles) // 3)]:
            red.JumpSliceByOffsetting(*circle.center_ras_mm)
            shown = logic.overlays.showCirclesAtSlice(segmentationNode, sliceNode=red)
            assert shown[side] == circle.slice_index, (side, shown, circle.slice_index)
            _checkShownCircle(output.circleNodes[side], output.boundaryPointNodes[side], circle)
    red.JumpSliceByOffsetting(0.0, 0.0, float(np.max([c.center_ras_mm[2] for r in annotation.sides.values()
                                                      for c in r.circles])) + 40.0)
    assert logic.overlays.showCirclesAtSlice(segmentationNode, sliceNode=red) == {"right": None, "left": None}
    assert all(n.GetNumberOfControlPoints() == 0 for n in (*output.circleNodes.values(), *output.boundaryPointNodes.values()))

    # running again replaces, never duplicates
    before = sceneSnapshot(scene)
    again = logic.run(volumeNode, segmentationNode, Params())
    assert sceneSnapshot(scene) == before, "a second run added or removed nodes or segments"
    assert again.measurementsTableNode is table and again.circlesTableNode is circlesTable
    assert again.circleNodes == output.circleNodes and again.boundaryPointNodes == output.boundaryPointNodes
    assert again.openingPlaneNodes == output.openingPlaneNodes and len(output.openingPlaneNodes) == 2
    assert again.centerEdgeAngleNodes == output.centerEdgeAngleNodes and len(output.centerEdgeAngleNodes) == 2
    assert table.GetNumberOfRows() == 2 and circlesTable.GetNumberOfRows() == nCircles
    for side, result in again.annotation.sides.items():
        _checkMeasurementMarkups(again, result, results.measurements(segmentationNode)[side])

    # a result's tables and markups go with its segmentation: the same result written into a new
    # segmentation, which is then removed
    copy = logic.writeResults(volumeNode, None, again.volume, again.bone, again.annotation)
    assert copy.segmentationNode is not segmentationNode and len(copy.openingPlaneNodes) == 2
    own = {copy.segmentationNode.GetNthDisplayNodeID(i) for i in range(copy.segmentationNode.GetNumberOfDisplayNodes())}
    scene.RemoveNode(copy.segmentationNode)  # its own display node stays, as MRML leaves it
    assert [n for n in sceneSnapshot(scene) if n[0] not in own] == before, "nodes of a removed result are left"

    # "Extract bone" again: the hip results no longer apply and go, leaving no orphan nodes
    logic.run(volumeNode, segmentationNode, Params(), boneOnly=True)
    assert not [n for n in sceneSnapshot(scene) if n[1] in ("vtkMRMLMarkupsPlaneNode", "vtkMRMLMarkupsAngleNode")]
    added = {view.GetID() for view in views.values()} | own
    assert [n for n in sceneSnapshot(scene) if n[0] not in added] == [n for n in afterBone if n[0] not in added]

    # accuracy against the phantom's truth, in the node's layout, in the head slices; asserted
    # last (with the head centers), so every other check has run when the method falls short
    truth = truthSideLabels()
    for info in SEGMENTS:
        slab = layout.toNode(headSlab(info.side, truth))
        value = dice(arrays[info.segment_id][slab], layout.toNode(truth == info.label_value)[slab])
        figures[f"Dice {info.name}"] = round(value, 3)
        if value < MIN_DICE:
            short.append(f"{info.name} Dice {value:.3f} < {MIN_DICE}")
    assert not short, f"accuracy on the phantom: {'; '.join(short)} (all figures: {figures})"
    return figures


def _checkProgressInsideTheWork(messages: list, hipStep: str) -> None:
    """The progress bar moves within the long steps, not only between them: bone extraction
    reports slice by slice, and each hip reports ``hipStep`` at least once (AFS: each slice its
    circles follow; the model: its shifted view)."""
    bone = [m for m in messages if m == "bone extraction"]
    assert len(bone) >= 10, f"bone extraction reported {len(bone)} times: {sorted(set(messages))}"
    for side in SIDES:
        steps = [m for m in messages if m.startswith(f"{side} hip") and hipStep in m]
        assert steps, f"no {hipStep!r} report for the {side} hip: {sorted(set(messages))}"


def _checkMeasurementMarkups(output, result: SideResult, row: dict) -> None:
    """A measured hip's planning values in the measurements table are the library's, and its
    opening plane and center-edge angle markups lie where the library places them (world RAS)."""
    from THAAnnotatorLib.measure import landmarks  # needs SciPy, which the self-test may install first

    m = result.measurements
    assert m is not None and not m.not_computed and row["Not measured"] == "", (result.side, m)
    for column, field, _, _ in results.PLANNING_COLUMNS:
        assert row[column] == getattr(m, field), (result.side, column, row[column], getattr(m, field))
    plane, angle = output.openingPlaneNodes[result.side], output.centerEdgeAngleNodes[result.side]
    assert plane.IsA("vtkMRMLMarkupsPlaneNode") and angle.IsA("vtkMRMLMarkupsAngleNode")
    assert plane.GetLocked() and angle.GetLocked() and plane.GetDisplayNode() is not None
    center, normal = [0.0] * 3, [0.0] * 3
    plane.GetCenterWorld(center)
    plane.GetNormalWorld(normal)
    assert np.linalg.norm(np.subtract(center, m.opening_center_ras_mm)) < MAX_MARKUP_ERROR_MM, (center, m)
    expected = np.asarray(m.opening_normal_ras) / np.linalg.norm(m.opening_normal_ras)
    assert np.degrees(np.arccos(np.clip(np.dot(normal, expected), -1.0, 1.0))) < 0.1, (normal, expected)
    points = slicer.util.arrayFromMarkupsControlPoints(angle, world=True)
    distances = np.linalg.norm(points - landmarks.center_edge_points_ras_mm(result), axis=1)
    assert distances.max() < MAX_MARKUP_ERROR_MM, distances
    assert abs(angle.GetAngleDegrees() - abs(m.center_edge_deg)) < 0.1, (angle.GetAngleDegrees(), m.center_edge_deg)


def _checkShownCircle(curve, points, circle) -> None:
    control = slicer.util.arrayFromMarkupsControlPoints(curve)
    assert control.shape == (CIRCLE_POLYGON_POINTS, 3), control.shape
    center = np.array(circle.center_ras_mm)
    radii = np.linalg.norm(control - center, axis=1)
    assert np.allclose(radii, circle.radius_mm, atol=1e-3), (radii.min(), radii.max(), circle.radius_mm)
    assert np.ptp(control[:, 2]) < 1e-6  # an axial circle: constant S (the phantom is not tilted)
    boundary = slicer.util.arrayFromMarkupsControlPoints(points) if points.GetNumberOfControlPoints() else np.zeros((0, 3))
    assert np.allclose(boundary, np.array(circle.boundary_points_ras_mm).reshape(-1, 3), atol=1e-6)


def scenarioNoHipLeavesSceneUnchanged(scene) -> dict:
    """A scan without hips: a clear error and an untouched scene; bone extraction alone works."""
    logic = THAAnnotatorLogic(scene)
    volumeNode = addPhantomVolume(scene, PERMUTED_LAYOUT, hips=False, name="lumbar spine CT")
    userSegmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my segmentation")
    userSegmentation.GetSegmentation().AddEmptySegment("mine", "My segment", [1.0, 0.0, 0.0])
    logic.getParameterNode()
    before = sceneSnapshot(scene)
    messages = []
    for target in (None, userSegmentation):
        try:
            logic.run(volumeNode, target, Params())
        except InputError as error:
            messages.append(str(error))
        else:
            raise AssertionError("a scan without hips was segmented")
        assert sceneSnapshot(scene) == before, "the failed run changed the scene"
    assert all("No hip could be segmented" in m and "femoral head not found" in m for m in messages), messages

    output = logic.run(volumeNode, userSegmentation, Params(), boneOnly=True)
    assert output.segmentationNode is userSegmentation
    assert _segmentIds(userSegmentation) == ["mine", results.BONE_SEGMENT_ID]
    bone = mrml.segmentArray(userSegmentation, results.BONE_SEGMENT_ID, volumeNode)
    truthBone = PERMUTED_LAYOUT.toNode(phantom(False).part_map > 0)
    spineDice = dice(bone, truthBone)
    assert spineDice > 0.5, spineDice
    return {"error message": messages[0], "spine bone Dice (BE only)": round(spineDice, 3)}


def scenarioBadInputLeavesSceneUnchanged(scene) -> dict:
    """Cancelling, a non-CT volume and an empty volume node: clear errors, untouched scene."""
    logic = THAAnnotatorLogic(scene)
    volumeNode = addPhantomVolume(scene)
    before = sceneSnapshot(scene)
    calls = []
    try:
        logic.run(volumeNode, None, Params(), progress=lambda f, m: calls.append(f), cancel=lambda: len(calls) >= 3)
    except Cancelled:
        pass
    else:
        raise AssertionError("the run was not cancelled")
    assert sceneSnapshot(scene) == before, "the cancelled run changed the scene"

    flat = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not a CT")
    slicer.util.updateVolumeFromArray(flat, np.full((8, 9, 10), 100, dtype=np.int16))
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    before = sceneSnapshot(scene)
    messages = {}
    for node in (flat, empty, None):
        try:
            logic.run(node, None, Params())
        except InputError as error:
            messages[node.GetName() if node else "none"] = str(error)
        else:
            raise AssertionError(f"{node.GetName() if node else 'no volume'} was accepted")
    try:
        logic.run(volumeNode, None, Params(), sides="middle")
    except InputError as error:
        messages["side"] = str(error)
    else:
        raise AssertionError("an unknown side was accepted")
    assert sceneSnapshot(scene) == before, "a rejected input changed the scene"
    assert '"not a CT"' in messages["not a CT"] and "same value" in messages["not a CT"], messages
    assert "no image data" in messages["empty"] and "No CT volume is selected" in messages["none"], messages
    return messages


def scenarioParameterNodeSurvivesSavedScene(scene) -> dict:
    """Inputs and settings stored in the parameter node come back when a saved scene is reopened."""
    # a private scene, so that saving does not touch the scene the self-test runs in
    private = slicer.vtkMRMLScene()
    logic = THAAnnotatorLogic(private)
    volumeNode = addPhantomVolume(private, LPS_LAYOUT)
    segmentationNode = private.AddNewNodeByClass("vtkMRMLSegmentationNode", "output")
    node = logic.getParameterNode()
    assert parameters.paramsFromParameterNode(node) == Params()
    assert parameters.sidesFromParameterNode(node) == SIDES
    params = Params(use_fsg=False, use_lnms=True, use_ahs=False, graph_cut_lambda=3.5, blur_sigma_mm=0.9,
                    n_rays=120, enhance_percentile=88.5)
    parameters.setParametersFromParams(node, params)
    node.SetParameter("Side", "left")
    node.SetParameter("ReviewQueuePath", "/data/queue.json")
    node.SetNodeReferenceID("InputVolume", volumeNode.GetID())
    node.SetNodeReferenceID("OutputSegmentation", segmentationNode.GetID())
    assert logic.getParameterNode() is node, "the parameter node is not a singleton"

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "scene.mrml")
        private.SetURL(path)
        assert private.Commit(), "saving the scene failed"
        reopened = slicer.vtkMRMLScene()
        reopened.SetURL(path)
        assert reopened.Import(), "reading the saved scene failed"
    logic2 = THAAnnotatorLogic(reopened)
    restored = logic2.getParameterNode()
    assert parameters.paramsFromParameterNode(restored) == params
    assert parameters.sidesFromParameterNode(restored) == ("left",)
    assert restored.GetParameter("ReviewQueuePath") == "/data/queue.json"
    assert restored.GetNodeReference("InputVolume").GetName() == volumeNode.GetName()
    assert restored.GetNodeReference("OutputSegmentation").GetName() == "output"
    assert reopened.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode") == 1
    return {}


def scenarioReviewQueue(scene) -> dict:
    """Load a queue, jump to an entry (views, hip, Segment Editor selection), mark it reviewed
    (its "corrected" flag, which says the dataset took a correction, stays as it was)."""
    logic = THAAnnotatorLogic(scene)
    layout = PERMUTED_LAYOUT
    volumeNode = addPhantomVolume(scene, layout, name="case007")
    volume = mrml.volumeFromNode(volumeNode)
    annotation = truthAnnotation()
    segmentationNode = logic.writeResults(volumeNode, None, volume, annotation.bone, annotation).segmentationNode
    views = addSliceViews(scene)
    ph = phantom(True)
    headSlice = int(round(volume.ras_mm_to_index(np.array(ph.heads["left"].center_ras_mm))[0]))

    # the format THAAnnotatorLib.model.aar writes (review_queue.json), items unsorted here
    queue = {"version": 1, "dataset": "/data/dataset", "model": {"path": "/data/model", "sha256": "0" * 64},
             "scans": {"case003": {"scan_path": "/data/case003.nii.gz", "labels_path": None},
                       "ct007": {"scan_path": "/data/case007.nii.gz", "labels_path": None}},
             "items": [
                 {"scan": "case003", "side": "right", "slice": 20, "uncertainty": 1.2,
                  "dice": {"acetabulum": 0.9, "femoral_head": 0.8}, "corrected": False},
                 {"scan": "ct007", "side": "left", "slice": headSlice, "uncertainty": 6.1,
                  "dice": {"acetabulum": 0.7, "femoral_head": 0.1}, "thumbnail": "thumbnails/ct007_left.png",
                  "corrected": False},
                 {"scan": "ct007", "side": "right", "slice": headSlice + 2, "uncertainty": 3.5,
                  "dice": {"acetabulum": 0.2, "femoral_head": 0.6}, "corrected": False,
                  "position_ras_mm": [60.0, 30.0, 0.0], "source_slice": {"axis": "j", "index": 3}},
             ]}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "review_queue.json")
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(queue, stream)
        entries = review.readReviewQueue(path)
        assert [e.uncertainty for e in entries] == [6.1, 3.5, 1.2]
        first = entries[0]
        # the volume is named after the scan file (case007), not the scan's queue name (ct007)
        assert review.reviewEntryMatchesVolume(first, volumeNode) and not review.reviewEntryMatchesVolume(entries[2], volumeNode)

        point = review.jumpToReviewEntry(first, volumeNode, segmentationNode)
        # no position given: centred on the left head center (measurements), moved into the slice
        headCenter = np.array(ph.heads["left"].center_ras_mm)
        sliceNormal = volume.index_to_ras_mm(np.array([1.0, 0, 0])) - volume.index_to_ras_mm(np.zeros(3))
        sliceNormal /= np.linalg.norm(sliceNormal)
        inSlice = volume.index_to_ras_mm(np.array([float(headSlice), 0.0, 0.0]))
        assert abs(np.dot(point - inSlice, sliceNormal)) < 1e-6
        offPlane = point - headCenter
        assert np.linalg.norm(offPlane - np.dot(offPlane, sliceNormal) * sliceNormal) < 1e-6
        for name, view in views.items():
            origin = mrml.matrixToArray(view.GetSliceToRAS())[:3, 3]
            assert np.allclose(origin, point, atol=1e-6), (name, origin, point)
        editor = scene.GetSingletonNode("SegmentEditor", "vtkMRMLSegmentEditorNode")
        # the femoral head has the lower Dice: it is the segment selected for editing
        assert editor.GetSegmentationNode() is segmentationNode and editor.GetSelectedSegmentID() == "left_femoral_head"

        second = entries[1]
        point = review.jumpToReviewEntry(second, volumeNode, segmentationNode)
        assert np.allclose(point[:2], [60.0, 30.0]) and editor.GetSelectedSegmentID() == "right_acetabulum"

        review.markReviewEntryReviewed(path, first)
        assert sorted(os.listdir(folder)) == ["review_queue.json"], os.listdir(folder)
        with open(path, encoding="utf-8") as stream:
            written = json.load(stream)
        assert {k: v for k, v in written.items() if k != "items"} == {k: v for k, v in queue.items() if k != "items"}
        marked = written["items"][1]
        assert marked["reviewed"] is True and marked["reviewed_at"].endswith("+00:00") and marked["corrected"] is False
        assert marked["thumbnail"] == "thumbnails/ct007_left.png" and marked["dice"]["femoral_head"] == 0.1
        assert written["items"][0] == queue["items"][0] and written["items"][2] == queue["items"][2]
        reread = review.readReviewQueue(path)
        assert [e.reviewed for e in reread] == [True, False, False] and not any(e.corrected for e in reread)
        assert reread[0].thumbnailPath == os.path.join(folder, "thumbnails", "ct007_left.png")

        # a bare list of items is accepted too; a broken file gives a clear message
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(queue["items"], stream)
        assert len(review.readReviewQueue(path)) == 3
        messages = []
        for content in ("{not json", json.dumps([{"scan": "a", "side": "left"}]), json.dumps({"entries": []}),
                        json.dumps({"version": 2, "items": []})):
            with open(path, "w", encoding="utf-8") as stream:
                stream.write(content)
            try:
                review.readReviewQueue(path)
            except InputError as error:
                messages.append(str(error))
            else:
                raise AssertionError(f"a broken queue was accepted: {content}")
        assert "not readable JSON" in messages[0] and "lacks one of the keys" in messages[1], messages
        assert all('version 1 queue with an "items" list' in m for m in messages[2:]), messages
    return {}


def scenarioEditedSegmentsSurviveARerun(scene) -> dict:
    """A segment edited since the run that wrote it is never overwritten unasked: a re-run writes
    into a new segmentation by default, or cancels; "replace" keeps the replaced segments, and
    "Restore previous result" brings them back voxel for voxel (and again, the newer result)."""
    logic = THAAnnotatorLogic(scene)
    volumeNode = addPhantomVolume(scene, PERMUTED_LAYOUT)
    annotation = truthAnnotation()
    segmentationNode = logic.writeResults(volumeNode, None, mrml.volumeFromNode(volumeNode), annotation.bone,
                                          annotation).segmentationNode
    assert edits.editedSegments(segmentationNode, results.SEGMENT_IDS) == [], "an unedited segment counts as edited"

    # the annotator erases the lower half of the right femoral head, as the Segment Editor would
    head = mrml.segmentArray(segmentationNode, "right_femoral_head", volumeNode)
    edited = head.copy()
    edited[: int(np.median(np.nonzero(head)[0]))] = 0
    assert 0 < edited.sum() < head.sum()
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        mrml.orientedImageFromMask(edited, mrml.ijkToRasArray(volumeNode)), segmentationNode, "right_femoral_head",
        slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    assert edits.editedSegments(segmentationNode, results.SEGMENT_IDS) == ["right_femoral_head"]
    before = segmentsState(segmentationNode, volumeNode)

    # asked before any work; cancelling leaves the scene as it was
    asked, nodes = [], sceneSnapshot(scene)
    try:
        logic.run(volumeNode, segmentationNode, Params(), boneOnly=True,
                  onEdited=lambda node, segmentIds: asked.append((node, segmentIds)) or edits.CANCEL)
    except Cancelled:
        pass
    else:
        raise AssertionError("the run was not cancelled")
    assert asked == [(segmentationNode, ["right_femoral_head"])], asked
    assert sceneSnapshot(scene) == nodes and sameSegments(segmentsState(segmentationNode, volumeNode), before)

    # by default (and unasked, as here) the new result goes into a new segmentation
    output = logic.run(volumeNode, segmentationNode, Params(), boneOnly=True)
    assert output.segmentationNode is not segmentationNode
    assert sameSegments(segmentsState(segmentationNode, volumeNode), before), "the edited segmentation changed"

    # "replace": the new result replaces the module's segments, which the hidden backup keeps
    output = logic.run(volumeNode, segmentationNode, Params(), boneOnly=True, onEdited=lambda *args: edits.REPLACE)
    assert output.segmentationNode is segmentationNode and _segmentIds(segmentationNode) == [results.BONE_SEGMENT_ID]
    newer = segmentsState(segmentationNode, volumeNode)
    backup = segmentationNode.GetNodeReference(edits.BACKUP_REFERENCE)
    assert backup.GetHideFromEditors() and backup.GetDisplayNode() is None
    logic.restorePreviousResult(segmentationNode)
    assert sameSegments(segmentsState(segmentationNode, volumeNode), before), "the restored segments differ"
    # the restored head is still an edit: the next run asks again
    assert edits.editedSegments(segmentationNode, results.SEGMENT_IDS) == ["right_femoral_head"]
    logic.restorePreviousResult(segmentationNode)
    assert sameSegments(segmentsState(segmentationNode, volumeNode), newer)
    return {"right femoral head voxels, written and edited": (int(head.sum()), int(edited.sum()))}


def scenarioBackgroundRun(scene) -> dict:
    """A run in a separate process writes what a run in this process writes; bad input found
    there is reported as such; closing the scene cancels a run and leaves nothing behind."""
    import time

    from THAAnnotatorSlicerLib import runner

    def waitFor(job):
        end = time.monotonic() + 300
        while (state := job.poll()) == runner.RUNNING and time.monotonic() < end:
            time.sleep(0.05)
        return state

    logic = THAAnnotatorLogic(scene)
    volumeNode = addPhantomVolume(scene)
    job = logic.start("bone", volumeNode)
    state = waitFor(job)
    assert state == runner.DONE and job.fraction == 1.0, job.error() if state == runner.FAILED else state
    output = logic.finish(job)
    assert not os.path.exists(job.folder)
    here = logic.run(volumeNode, None, Params(), boneOnly=True)
    assert np.array_equal(mrml.segmentArray(output.segmentationNode, results.BONE_SEGMENT_ID, volumeNode),
                          mrml.segmentArray(here.segmentationNode, results.BONE_SEGMENT_ID, volumeNode))

    flat = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not a CT")
    slicer.util.updateVolumeFromArray(flat, np.full((8, 9, 10), 100, dtype=np.int16))
    before = sceneSnapshot(scene)
    job = logic.start("hips", flat)
    assert waitFor(job) == runner.FAILED
    try:
        logic.finish(job)
    except InputError as error:
        message = str(error)
    else:
        raise AssertionError("bad input was written")
    assert '"not a CT"' in message and "same value" in message and sceneSnapshot(scene) == before, message

    job = logic.start("hips", volumeNode)
    scene.Clear(0)
    assert job.poll() == runner.CANCELLED and not os.path.exists(job.folder)
    return {"bad input": message}


class ScenarioSkipped(Exception):
    """A scenario cannot run in this environment; the message says why."""


def saveFemoralHeadModel(folder) -> None:
    """Save a tiny network that answers "femoral head" everywhere (needs torch and MONAI)."""
    import torch
    from THAAnnotatorLib.model.config import ModelConfig
    from THAAnnotatorLib.model.network import build_network, save_model
    from THAAnnotatorLib.model.roi import RoiSpec

    config = ModelConfig(channels=(4, 8), strides=(2,), num_res_units=0, roi=RoiSpec(pixels=64))
    network = build_network(config)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()
        last = [m for m in network.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
        last.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))  # background, acetabulum, femoral head
    save_model(folder, network, config)


def scenarioPredictWithModel(scene) -> dict:
    """"Predict with model" writes the network's labels like the pipeline's, without circles.

    The network is the bundled one (a network that answers "femoral head" everywhere is now
    refused, rightly: its labels are not a femoral head in its socket), on a phantom like those
    it was trained on; the test checks the wiring (model loading, ROI placement, segments,
    table), not the model's accuracy.
    """
    import importlib.util

    missing = [name for name in ("torch", "monai", "safetensors") if importlib.util.find_spec(name) is None]
    if not model.modelAvailable():
        raise ScenarioSkipped(f"this THAAnnotatorLib has no {model.MODEL_INFERENCE_MODULE}")
    if missing:
        raise ScenarioSkipped(f"model inference needs {', '.join(missing)}, not installed here")
    from THAAnnotatorLib.model.inference import MODEL_MESSAGE
    from THAAnnotatorLib.model.network import BUNDLED_MODEL_DIR

    logic = THAAnnotatorLogic(scene)
    layout = PERMUTED_LAYOUT
    volumeNode = addPhantomVolume(scene, layout)
    reports = []
    output = logic.predict(volumeNode, None, Params(), sides="both", modelPath=str(BUNDLED_MODEL_DIR),
                           device="cpu", progress=lambda fraction, message: reports.append((fraction, message)))
    _checkProgressInsideTheWork([message for _, message in reports], "shifted")
    annotation = output.annotation
    assert {s: r.status for s, r in annotation.sides.items()} == {"right": "segmented", "left": "segmented"}
    segmentationNode = output.segmentationNode
    assert _segmentIds(segmentationNode) == list(results.SEGMENT_IDS)
    figures = {}
    for info in SEGMENTS:
        array = mrml.segmentArray(segmentationNode, info.segment_id, volumeNode)
        assert np.array_equal(array, layout.toNode(annotation.side_labels == info.label_value)), info.name
        figures[f"{info.name} voxels"] = int(array.sum())
    assert figures["Right femoral head voxels"] > 0 and figures["Left femoral head voxels"] > 0
    rows = results.measurements(segmentationNode)
    for side in SIDES:
        assert rows[side]["Status"] == "segmented" and rows[side]["Message"] == MODEL_MESSAGE, rows[side]
        assert rows[side]["Needs review"] == "no", rows[side]  # no warning at the phantom's voxel size
        assert np.isnan(rows[side]["Diameter"]) and np.isnan(rows[side]["Center R"])
        assert np.isnan(rows[side]["Center-edge angle"]) and "without the femoral head's sphere" in rows[side]["Not measured"]
        # the model's own doubt: Dice between its labels and those of a shifted view, per class
        agreement = annotation.sides[side].model_agreement
        assert (rows[side]["Model agreement acetabulum"], rows[side]["Model agreement femoral head"]) == (
            agreement["acetabulum"], agreement["femoral_head"]), (rows[side], agreement)
        assert f"model agreement {agreement['acetabulum']:.3f} (acetabulum)" in results.summary(annotation)
    assert output.circlesTableNode.GetNumberOfRows() == 0 and not output.circleNodes
    return figures


def scenarioPredictWithoutModel(scene) -> dict:
    """"Predict with model" with no trained model in the chosen folder: one sentence saying what to
    do (the same the panel shows on the disabled button), raised before any package is needed,
    and an untouched scene."""
    if not model.modelAvailable():
        raise ScenarioSkipped(f"this THAAnnotatorLib has no {model.MODEL_INFERENCE_MODULE}")
    logic = THAAnnotatorLogic(scene)
    volumeNode = addPhantomVolume(scene)
    before = sceneSnapshot(scene)
    with tempfile.TemporaryDirectory() as folder:
        problem = model.modelProblem(folder)
        assert problem is not None and folder in problem, problem
        assert "no model.json" in problem and '"tha-annotator train"' in problem, problem
        try:
            logic.predict(volumeNode, None, Params(), modelPath=folder, device="cpu")
        except InputError as error:
            message = str(error)
        else:
            raise AssertionError("a prediction ran without a model")
    assert message == problem, (message, problem)
    assert sceneSnapshot(scene) == before, "the refused prediction changed the scene"
    return {"message": message}


SCENARIOS = (
    scenarioGeometryRoundTrip,
    scenarioParameterNodeSurvivesSavedScene,
    scenarioBadInputLeavesSceneUnchanged,
    scenarioNoHipLeavesSceneUnchanged,
    scenarioReviewQueue,
    scenarioEditedSegmentsSurviveARerun,
    scenarioBackgroundRun,
    scenarioPredictWithoutModel,
    scenarioPredictWithModel,
    scenarioSegmentHips,
)
"""Every scenario, cheapest first; both harnesses run all of them."""


def writeResultPicture(path, layout: Layout = PERMUTED_LAYOUT) -> dict:
    """Segment the scenarios' phantom (the demo's geometry) with the Logic and render the result to
    ``path`` (PNG) with VTK, off screen; returns per side (status, diameter mm, true diameter mm).

    The picture of docs/slicer.md: ``python THAAnnotator/THAAnnotatorScenarios.py docs/slicer_result.png``.
    """
    ph = phantom(True)
    scene = slicer.vtkMRMLScene()
    logic = THAAnnotatorLogic(scene)
    node = addPhantomVolume(scene, layout, name="synthetic hip CT")
    output = logic.run(node, None, Params())
    picture.renderResultPicture(node, output.segmentationNode, path,
                              title="THA Annotator (Slicer module Logic, headless MRML): synthetic hip CT")
    return {side: (r.status, r.head_diameter_mm, 2 * ph.heads[side].radius_mm) for side, r in output.annotation.sides.items()}


if __name__ == "__main__":
    import sys

    print(writeResultPicture(sys.argv[1] if len(sys.argv) > 1 else "slicer_result.png"))
