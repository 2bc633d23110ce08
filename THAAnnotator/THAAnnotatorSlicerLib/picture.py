"""An off-screen VTK picture of a result (the picture of docs/slicer.md); needs no Slicer views."""
from __future__ import annotations

import numpy as np
import vtk

import slicer
from THAAnnotatorLib.result import SIDES

from .mrml import arrayToMatrix, ensureSegmentationConverterRules, ijkToRasArray, nodeReferenceInScene
from .results import BONE_SEGMENT_ID, BOUNDARY_POINTS_REFERENCE, CIRCLE_CURVE_REFERENCE, measurements


def renderResultPicture(volumeNode, segmentationNode, path, size=(1200, 800), title: str = "") -> None:
    """Write a PNG of a result, rendered off screen with VTK (no Slicer views needed).

    The segments as surfaces (bone faint) over a coronal CT slice behind the hips and an axial
    slice below them, the shown Hough circles and boundary points, and the measurements; seen
    from the front, so the patient's right is on the picture's left.
    """
    ensureSegmentationConverterRules()
    segmentationNode.CreateClosedSurfaceRepresentation()
    ijkToRas = ijkToRasArray(volumeNode)
    rows = measurements(segmentationNode)
    centers = [np.array([r["Center R"], r["Center A"], r["Center S"]]) for r in rows.values()
               if np.isfinite(r["Center R"])]
    dims = np.array(volumeNode.GetImageData().GetDimensions())
    volumeCenter = (ijkToRas @ np.append((dims - 1) / 2.0, 1.0))[:3]
    focus = np.mean(centers, axis=0) if centers else volumeCenter

    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.08, 0.09, 0.11)
    image = vtk.vtkImageData()
    image.ShallowCopy(volumeNode.GetImageData())
    lut = vtk.vtkLookupTable()
    lut.SetTableRange(-450.0, 1350.0)  # bone window
    lut.SetSaturationRange(0.0, 0.0)
    lut.SetHueRange(0.0, 0.0)
    lut.SetValueRange(0.0, 1.0)
    lut.Build()
    colours = vtk.vtkImageMapToColors()
    colours.SetInputData(image)
    colours.SetLookupTable(lut)
    colours.Update()
    rasToIjk = np.linalg.inv(ijkToRas)
    for worldAxis, offsetMm in ((1, -30.0), (2, -62.0)):  # coronal behind the heads, axial below
        axis = int(np.argmax(np.abs(ijkToRas[worldAxis, :3])))
        point = focus.copy()
        point[worldAxis] += offsetMm
        index = int(np.clip(round((rasToIjk @ np.append(point, 1.0))[axis]), 0, dims[axis] - 1))
        extent = [0, dims[0] - 1, 0, dims[1] - 1, 0, dims[2] - 1]
        extent[2 * axis] = extent[2 * axis + 1] = index
        actor = vtk.vtkImageActor()
        actor.GetMapper().SetInputConnection(colours.GetOutputPort())
        actor.SetDisplayExtent(*extent)
        actor.SetUserMatrix(arrayToMatrix(ijkToRas))
        renderer.AddActor(actor)

    segmentation = segmentationNode.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segmentId = segmentation.GetNthSegmentID(index)
        surface = vtk.vtkPolyData()
        segmentationNode.GetClosedSurfaceRepresentation(segmentId, surface)
        if surface.GetNumberOfPoints() == 0:
            continue
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(surface)
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(segmentation.GetNthSegment(index).GetColor())
        # the heads opaque, seen through the acetabula that wrap them, the bone faint
        actor.GetProperty().SetOpacity(0.18 if segmentId == BONE_SEGMENT_ID else
                                       0.95 if segmentId.endswith("femoral_head") else 0.5)
        renderer.AddActor(actor)

    for side in SIDES:
        curve = nodeReferenceInScene(segmentationNode, CIRCLE_CURVE_REFERENCE.format(side=side))
        points = nodeReferenceInScene(segmentationNode, BOUNDARY_POINTS_REFERENCE.format(side=side))
        if curve is not None and curve.GetNumberOfControlPoints() > 2:
            polygon = slicer.util.arrayFromMarkupsControlPoints(curve)
            line = vtk.vtkPolyData()
            linePoints = vtk.vtkPoints()
            for p in np.vstack([polygon, polygon[:1]]):
                linePoints.InsertNextPoint(*p)
            polyLine = vtk.vtkPolyLine()
            polyLine.GetPointIds().SetNumberOfIds(len(polygon) + 1)
            for i in range(len(polygon) + 1):
                polyLine.GetPointIds().SetId(i, i)
            cells = vtk.vtkCellArray()
            cells.InsertNextCell(polyLine)
            line.SetPoints(linePoints)
            line.SetLines(cells)
            tube = vtk.vtkTubeFilter()
            tube.SetInputData(line)
            tube.SetRadius(0.7)
            tube.SetNumberOfSides(12)
            _addActor(renderer, tube, (1.0, 1.0, 1.0))
        if points is not None and points.GetNumberOfControlPoints() > 0:
            cloud = vtk.vtkPolyData()
            cloudPoints = vtk.vtkPoints()
            for p in slicer.util.arrayFromMarkupsControlPoints(points):
                cloudPoints.InsertNextPoint(*p)
            cloud.SetPoints(cloudPoints)
            sphere = vtk.vtkSphereSource()
            sphere.SetRadius(1.1)
            glyphs = vtk.vtkGlyph3D()
            glyphs.SetInputData(cloud)
            glyphs.SetSourceConnection(sphere.GetOutputPort())
            _addActor(renderer, glyphs, (1.0, 0.85, 0.1))

    lines = [title] if title else []
    for side, row in rows.items():
        if np.isfinite(row["Diameter"]):
            lines.append(f"{side.capitalize()} femoral head: diameter {row['Diameter']:.1f} mm, center RAS "
                         f"({row['Center R']:.1f}, {row['Center A']:.1f}, {row['Center S']:.1f}) mm")
        else:
            lines.append(f"{side.capitalize()} hip: {row['Status']} {row['Message']}".rstrip())
    text = vtk.vtkTextActor()
    text.SetInput("\n".join(lines))
    text.GetTextProperty().SetFontSize(max(12, size[1] // 45))
    text.GetTextProperty().SetColor(0.95, 0.95, 0.95)
    text.SetDisplayPosition(12, 10)
    renderer.AddViewProp(text)
    for label, x in (("R", 0.02), ("L", 0.96)):  # seen from the front: patient right on the left
        marker = vtk.vtkTextActor()
        marker.SetInput(label)
        marker.GetTextProperty().SetFontSize(max(14, size[1] // 30))
        marker.GetTextProperty().SetBold(True)
        marker.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        marker.GetPositionCoordinate().SetValue(x, 0.5)
        renderer.AddViewProp(marker)

    camera = renderer.GetActiveCamera()
    camera.SetFocalPoint(*focus)
    camera.SetPosition(*(focus + np.array([0.0, 600.0, 110.0])))
    camera.SetViewUp(0.0, 0.0, 1.0)
    renderer.ResetCamera()
    camera.Zoom(2.1)
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    window.AddRenderer(renderer)
    window.Render()
    grabber = vtk.vtkWindowToImageFilter()
    grabber.SetInput(window)
    grabber.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(grabber.GetOutputPort())
    writer.Write()
    window.Finalize()


def _addActor(renderer, source, color) -> None:
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputConnection(source.GetOutputPort())
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*color)
    renderer.AddActor(actor)
