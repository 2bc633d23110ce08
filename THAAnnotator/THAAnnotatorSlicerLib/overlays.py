"""The Hough circle and boundary points of the slice being viewed, per hip, as locked markups; and
showing or hiding them with the measurement markups (the panel's "Show overlays")."""
from __future__ import annotations

import json

import numpy as np
import vtk

import slicer
from THAAnnotatorLib.result import SIDES

from .markups import CENTER_EDGE_REFERENCE, OPENING_PLANE_REFERENCE
from .mrml import matrixToArray, nodeReferenceInScene
from .results import (BOUNDARY_POINTS_REFERENCE, CIRCLE_COLUMNS, CIRCLE_CURVE_REFERENCE, CIRCLES_REFERENCE,
                      PLANE_AXES_ATTRIBUTE, SHOWN_SLICE_ATTRIBUTE, SLICE_SPACING_ATTRIBUTE, RunOutput, tableColumns)

CIRCLE_POLYGON_POINTS = 72
"""Control points of the closed curve drawn for a Hough circle."""


def circlePolygon(center: np.ndarray, radius: float, axisU: np.ndarray, axisV: np.ndarray) -> np.ndarray:
    angles = np.linspace(0.0, 2.0 * np.pi, CIRCLE_POLYGON_POINTS, endpoint=False)
    return center + radius * (np.cos(angles)[:, None] * axisU + np.sin(angles)[:, None] * axisV)


OVERLAY_REFERENCES = (CIRCLE_CURVE_REFERENCE, BOUNDARY_POINTS_REFERENCE, OPENING_PLANE_REFERENCE, CENTER_EDGE_REFERENCE)
"""The markups "Show overlays" shows or hides, per side: circle, boundary points, acetabular
opening, center-edge angle."""


def setOverlaysVisible(segmentationNode, visible: bool) -> None:
    """Show or hide the overlays of a segmentation: the circle and boundary point markups, and the
    acetabular opening and center-edge angle markups (:data:`OVERLAY_REFERENCES`)."""
    for side in SIDES:
        for role in OVERLAY_REFERENCES:
            node = nodeReferenceInScene(segmentationNode, role.format(side=side))
            if node is not None and node.GetDisplayNode() is not None:
                node.GetDisplayNode().SetVisibility(visible)


class CircleOverlays:
    """Shows one slice's circles; keeps the circle table parsed while it is unchanged, since the
    red view calls :meth:`showCirclesAtSlice` on every scroll step."""

    def __init__(self):
        self._cache = {}

    def circlesBySide(self, segmentationNode) -> dict:
        """All Hough circles of the last run: side -> list of dicts (slice, center, radius, points)."""
        table = nodeReferenceInScene(segmentationNode, CIRCLES_REFERENCE)
        if table is None:
            return {}
        key = (table.GetID(), table.GetMTime())
        cached = self._cache.get(table.GetID())
        if cached is not None and cached[0] == key:
            return cached[1]
        circles: dict = {}
        column = tableColumns(table, CIRCLE_COLUMNS)
        for row in range(table.GetNumberOfRows()):
            circles.setdefault(column["Side"].GetValue(row), []).append({
                "slice": int(column["Slice"].GetValue(row)),
                "center": np.array([column[name].GetValue(row) for name in ("Center R", "Center A", "Center S")]),
                "radius": float(column["Radius"].GetValue(row)),
                "points": np.array(json.loads(column["Boundary points"].GetValue(row)), dtype=float).reshape(-1, 3),
            })
        self._cache[table.GetID()] = (key, circles)
        return circles

    def showAfterRun(self, output: RunOutput, shown: bool = True) -> None:
        """After a run: every overlay shown, or hidden, as ``shown`` says (the parameter node's
        ShowOverlays, :func:`.parameters.showOverlaysInScene`), new and updated markups alike; the
        circles of the red view's slice, or without one, of each initial slice."""
        setOverlaysVisible(output.segmentationNode, shown)
        if output.circlesTableNode is None:
            return
        redSlice = output.segmentationNode.GetScene().GetSingletonNode("Red", "vtkMRMLSliceNode")
        if redSlice is not None:
            self.showCirclesAtSlice(output.segmentationNode, sliceNode=redSlice)
        else:
            initial = {side: r.initial_slice for side, r in output.annotation.sides.items() if r.circles}
            self.showCirclesAtSlice(output.segmentationNode, sliceIndex=initial)

    def showCirclesAtSlice(self, segmentationNode, sliceNode=None, sliceIndex=None) -> dict:
        """Show each hip's Hough circle and boundary points of one axial slice.

        Parameters
        ----------
        segmentationNode : a segmentation this module wrote.
        sliceNode : show the circle whose slice lies in this slice view's plane (within half a
            slice spacing); hips with no circle there show nothing.
        sliceIndex : instead of ``sliceNode``: one axial slice index (canonical, inferior = 0) for
            all hips, or a dict side -> index.

        Returns
        -------
        dict side -> slice index shown, or None where nothing is shown.
        """
        circles = self.circlesBySide(segmentationNode)
        table = nodeReferenceInScene(segmentationNode, CIRCLES_REFERENCE)
        shown = {}
        if table is None:
            return shown
        axisU, axisV = (np.array(a) for a in json.loads(table.GetAttribute(PLANE_AXES_ATTRIBUTE)))
        halfSpacing = 0.5 * float(table.GetAttribute(SLICE_SPACING_ATTRIBUTE))
        plane = None
        if sliceNode is not None:
            sliceToWorld = matrixToArray(sliceNode.GetSliceToRAS())
            worldToLocal = np.eye(4)
            parent = segmentationNode.GetParentTransformNode()
            if parent is not None:
                matrix = vtk.vtkMatrix4x4()
                parent.GetMatrixTransformFromWorld(matrix)
                worldToLocal = matrixToArray(matrix)
            sliceToLocal = worldToLocal @ sliceToWorld
            normal = sliceToLocal[:3, 2] / np.linalg.norm(sliceToLocal[:3, 2])
            plane = (sliceToLocal[:3, 3], normal)
        for side in SIDES:
            curve = nodeReferenceInScene(segmentationNode, CIRCLE_CURVE_REFERENCE.format(side=side))
            points = nodeReferenceInScene(segmentationNode, BOUNDARY_POINTS_REFERENCE.format(side=side))
            if curve is None or points is None:
                continue
            chosen = None
            candidates = circles.get(side, [])
            if plane is not None and candidates:
                distances = [abs(float(np.dot(c["center"] - plane[0], plane[1]))) for c in candidates]
                best = int(np.argmin(distances))
                if distances[best] <= halfSpacing + 1e-6:
                    chosen = candidates[best]
            elif sliceIndex is not None:
                wanted = sliceIndex.get(side) if isinstance(sliceIndex, dict) else sliceIndex
                chosen = next((c for c in candidates if c["slice"] == wanted), None)
            shown[side] = None if chosen is None else chosen["slice"]
            state = "" if chosen is None else str(chosen["slice"])
            if curve.GetAttribute(SHOWN_SLICE_ATTRIBUTE) == state and points.GetAttribute(SHOWN_SLICE_ATTRIBUTE) == state:
                continue
            if chosen is None:
                curve.RemoveAllControlPoints()
                points.RemoveAllControlPoints()
            else:
                slicer.util.updateMarkupsControlPointsFromArray(
                    curve, circlePolygon(chosen["center"], chosen["radius"], axisU, axisV))
                if len(chosen["points"]):
                    slicer.util.updateMarkupsControlPointsFromArray(points, chosen["points"])
                else:
                    points.RemoveAllControlPoints()
            curve.SetAttribute(SHOWN_SLICE_ATTRIBUTE, state)
            points.SetAttribute(SHOWN_SLICE_ATTRIBUTE, state)
        return shown
