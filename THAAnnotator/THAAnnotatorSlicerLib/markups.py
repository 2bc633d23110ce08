"""Nodes that belong to a result, referenced from its segmentation node so that a re-run updates
them instead of adding copies, and removed with it; and the measurement markups: per measured hip,
the acetabular opening as a plane and the lateral center-edge angle as an angle, where the library
places them (:mod:`THAAnnotatorLib.measure.landmarks`)."""
from __future__ import annotations

import weakref

import vtk

import slicer
from THAAnnotatorLib.result import SIDES, SideResult
from THAAnnotatorLib.terminology import SEGMENTS

from .mrml import nodeReferenceInScene

ROLE_ATTRIBUTE = "THAAnnotator.Role"
SIDE_ATTRIBUTE = "THAAnnotator.Side"
RESULT_REFERENCE_PREFIX = "THAAnnotator"
"""Every node reference this module keeps on a segmentation starts so (tables, markups, backup)."""
OPENING_PLANE_REFERENCE = "THAAnnotatorOpeningPlane_{side}"
CENTER_EDGE_REFERENCE = "THAAnnotatorCenterEdgeAngle_{side}"


def referencedOrNew(ownerNode, role: str, className: str, name: str, created: list):
    """The node ``ownerNode`` references as ``role``; a new one (appended to ``created``) if none."""
    node = nodeReferenceInScene(ownerNode, role)
    if node is None:
        scene = ownerNode.GetScene()
        node = scene.AddNewNodeByClass(className, scene.GenerateUniqueName(name))
        created.append(node)
        ownerNode.SetNodeReferenceID(role, node.GetID())
    return node


def _removeWithDisplayNodes(node) -> None:
    scene = node.GetScene()
    for index in reversed(range(node.GetNumberOfDisplayNodes()) if node.IsA("vtkMRMLDisplayableNode") else []):
        displayNode = node.GetNthDisplayNode(index)
        if displayNode is not None:
            scene.RemoveNode(displayNode)
    scene.RemoveNode(node)


def removeReferenced(ownerNode, role: str) -> None:
    """Remove the node ``ownerNode`` references as ``role`` (with its display nodes), and the reference."""
    node = nodeReferenceInScene(ownerNode, role)
    ownerNode.RemoveNodeReferenceIDs(role)
    if node is not None:
        _removeWithDisplayNodes(node)


def lockedMarkup(ownerNode, role: str, className: str, name: str, side: str, roleName: str, color,
                 transformId, created: list, showMeasurement: bool = False):
    """The markup ``ownerNode`` references as ``role`` (made if missing), emptied, locked (the
    result's, not the user's to move), in ``transformId``, coloured, its name hidden in the views;
    with ``showMeasurement`` its measured value (an angle) is shown."""
    node = referencedOrNew(ownerNode, role, className, name, created)
    node.SetAttribute(ROLE_ATTRIBUTE, roleName)
    node.SetAttribute(SIDE_ATTRIBUTE, side)
    node.RemoveAllControlPoints()
    node.SetLocked(True)
    node.SetAndObserveTransformNodeID(transformId)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.SetSelectedColor(color)
        display.SetColor(color)
        display.SetPointLabelsVisibility(False)
        display.SetPropertiesLabelVisibility(showMeasurement)
    return node


def segmentColor(side: str, structure: str) -> tuple:
    """The colour of ``side``'s segment ``structure`` ("acetabulum" or "femoral_head")."""
    return next(s.color for s in SEGMENTS if s.side == side and s.segment_id.endswith(structure))


def writeMeasurementMarkups(segmentationNode, sides: dict[str, SideResult], transformId, created: list) -> tuple:
    """Per measured hip of ``sides``, the acetabular opening (a plane markup: the library's point and normal,
    as wide as the acetabular sphere) and the lateral center-edge angle (an angle markup: the
    library's three points, vertex at the head's center); the markups of a hip not measured are
    removed. Coordinates are the volume's RAS (mm), so they go into the volume's transform.
    Returns ({side: plane node}, {side: angle node})."""
    # here, not at the top: the measure package needs SciPy, which Slicer may install only on demand
    from THAAnnotatorLib.measure.landmarks import center_edge_points_ras_mm

    planes, angles = {}, {}
    for side in SIDES:
        result = sides.get(side)
        m = result.measurements if result is not None else None
        planeRole, angleRole = OPENING_PLANE_REFERENCE.format(side=side), CENTER_EDGE_REFERENCE.format(side=side)
        if m is None or m.opening_center_ras_mm is None:
            removeReferenced(segmentationNode, planeRole)
        else:
            plane = lockedMarkup(segmentationNode, planeRole, "vtkMRMLMarkupsPlaneNode",
                                 f"{side.capitalize()} acetabular opening", side, "acetabular opening",
                                 segmentColor(side, "acetabulum"), transformId, created)
            plane.SetPlaneType(plane.PlaneTypePointNormal)
            plane.SetSizeMode(plane.SizeModeAbsolute)
            plane.SetCenter(*m.opening_center_ras_mm)
            plane.SetNormal(*m.opening_normal_ras)
            plane.SetSize(m.acetabular_diameter_mm, m.acetabular_diameter_mm)
            planes[side] = plane
        points = center_edge_points_ras_mm(result) if result is not None else None
        if points is None:
            removeReferenced(segmentationNode, angleRole)
        else:
            angle = lockedMarkup(segmentationNode, angleRole, "vtkMRMLMarkupsAngleNode",
                                 f"{side.capitalize()} center-edge angle", side, "center-edge angle",
                                 segmentColor(side, "femoral_head"), transformId, created, showMeasurement=True)
            slicer.util.updateMarkupsControlPointsFromArray(angle, points)
            angles[side] = angle
    return planes, angles


_observedScenes = weakref.WeakKeyDictionary()


def removeResultNodesWithSegmentation(scene) -> None:
    """From now on, a segmentation removed from ``scene`` takes the nodes this module made for it
    (tables, markups, the backup of replaced segments) along: they describe only that result.
    Once per scene; not while the scene closes (it removes everything anyway)."""
    if scene in _observedScenes:
        return

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeRemoved(caller, event, node=None):
        # no caller or node: the scene is being destroyed (its Python object already gone)
        if caller is None or node is None or caller.IsClosing() or not node.IsA("vtkMRMLSegmentationNode"):
            return
        roles = []
        node.GetNodeReferenceRoles(roles)
        for role in roles:
            if role.startswith(RESULT_REFERENCE_PREFIX):
                for index in range(node.GetNumberOfNodeReferences(role)):
                    referenced = caller.GetNodeByID(node.GetNthNodeReferenceID(role, index) or "")
                    if referenced is not None:
                        _removeWithDisplayNodes(referenced)

    _observedScenes[scene] = scene.AddObserver(scene.NodeRemovedEvent, onNodeRemoved)
