"""The panel's "Results" section: segments in 3D, the measurements table, the red slice's
Hough circle and boundary points, "Show overlays" (those and the measurement markups), "Restore
previous result", and the question before a run replaces edited segments. Made by the Widget;
like :mod:`.reviewpanel`, it needs the Slicer application (Qt is imported only when used)."""
from __future__ import annotations

import weakref

import vtk

import slicer
from slicer.util import VTKObservationMixin
from THAAnnotatorLib.errors import InputError

from . import edits, mrml, parameters, results
from .overlays import setOverlaysVisible


class ResultsSection(VTKObservationMixin):
    """``ui`` holds the panel's widgets, ``logic`` is the module's Logic and ``parameterNode()``
    returns its parameter node."""

    def __init__(self, ui, logic, parameterNode):
        VTKObservationMixin.__init__(self)
        self.ui = ui
        self.logic = logic
        self._parameterNode = parameterNode
        self._observedSliceNode = None
        self._overlaysState = (None, None)  # (weak reference to the segmentation, shown) last applied
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onOutputSegmentationChanged)
        self.ui.restorePreviousButton.connect("clicked(bool)", self.onRestorePrevious)
        self.observeRedSlice()

    def _segmentationNode(self):
        parameterNode = self._parameterNode()
        return parameterNode.GetNodeReference("OutputSegmentation") if parameterNode is not None else None

    def updateButtons(self, busy: bool):
        self.ui.restorePreviousButton.enabled = not busy and edits.hasPreviousResult(self._segmentationNode())

    def showResults(self, output: results.RunOutput, volumeNode):
        """After a run: the CT in the views, the segments, the table, a summary; the views at the
        first hip's initial slice."""
        slicer.util.setSliceViewerLayers(background=volumeNode)
        self.ui.segmentationShow3DButton.setSegmentationNode(output.segmentationNode)
        self.ui.measurementsTableView.setMRMLTableNode(output.measurementsTableNode)
        self.ui.statusLabel.text = " ".join([results.summary(output.annotation), *output.messages])
        if output.annotation is None:
            return
        first = next((r for r in output.annotation.sides.values() if r.initial_slice is not None
                      and r.sphere_center_ras_mm is not None), None)
        if first is not None:
            center = mrml.sliceCenterRas(volumeNode, first.initial_slice, first.sphere_center_ras_mm)
            slicer.vtkMRMLSliceNode.JumpAllSlices(slicer.mrmlScene, *center, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
        self.onRedSliceModified()

    def onRestorePrevious(self):
        try:
            self.logic.restorePreviousResult(self._segmentationNode())
        except InputError as error:
            self.ui.statusLabel.text = str(error)
            return
        self.ui.statusLabel.text = ("Previous result restored (the measurements and circles are still those of "
                                    'the last run); "Restore previous result" again brings back the newer one.')

    def observeRedSlice(self):
        """Follow the red slice view (its node changes with the layout)."""
        layoutManager = slicer.app.layoutManager()
        sliceWidget = layoutManager.sliceWidget("Red") if layoutManager else None
        sliceNode = sliceWidget.mrmlSliceNode() if sliceWidget else None
        if sliceNode is self._observedSliceNode:
            return
        if self._observedSliceNode is not None:
            self.removeObserver(self._observedSliceNode, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified)
        self._observedSliceNode = sliceNode
        if sliceNode is not None:
            self.addObserver(sliceNode, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified)

    def onRedSliceModified(self, caller=None, event=None):
        segmentationNode = self._segmentationNode()
        if segmentationNode is None or self._observedSliceNode is None or not self._overlaysShown():
            return
        self.logic.overlays.showCirclesAtSlice(segmentationNode, sliceNode=self._observedSliceNode)

    def _overlaysShown(self) -> bool:
        return parameters.showOverlaysFromParameterNode(self._parameterNode())

    def updateOverlays(self):
        """Show or hide the output segmentation's overlays (circle, boundary points, acetabular
        opening and center-edge angle markups) as the parameter node's ShowOverlays says, which the
        "Show overlays" check box sets; the Widget calls it whenever the parameter node changes. Only
        a change of that value or of the output segmentation acts, so that a markup hidden by hand
        stays hidden while other settings change; a run applies it itself (``showAfterRun``)."""
        segmentationNode, shown = self._segmentationNode(), self._overlaysShown()
        lastNode, lastShown = self._overlaysState
        if segmentationNode is None or (lastNode is not None and lastNode() is segmentationNode and lastShown == shown):
            return
        self._overlaysState = (weakref.ref(segmentationNode), shown)
        setOverlaysVisible(segmentationNode, shown)
        if shown:
            self.onRedSliceModified()

    def onOutputSegmentationChanged(self, node):
        if node is None:
            self.ui.measurementsTableView.setMRMLTableNode(None)
            return
        self.ui.segmentationShow3DButton.setSegmentationNode(node)
        self.ui.measurementsTableView.setMRMLTableNode(mrml.nodeReferenceInScene(node, results.MEASUREMENTS_REFERENCE))
        self.onRedSliceModified()


def askAboutEdits(segmentationNode, segmentIds) -> str:
    """The Logic's question before a run overwrites edited segments (its ``onEdited``), as a dialog."""
    import qt

    names = ", ".join(segmentationNode.GetSegmentation().GetSegment(i).GetName() for i in segmentIds)
    box = qt.QMessageBox(qt.QMessageBox.Question, "THA Annotator: edited segments",
                         f'{names} in "{segmentationNode.GetName()}" changed since THA Annotator wrote them. '
                         "Write the new result into a new segmentation, or replace the segments (they are "
                         'kept: "Restore previous result" brings them back)?')
    newButton = box.addButton("New segmentation", qt.QMessageBox.AcceptRole)
    replaceButton = box.addButton("Replace", qt.QMessageBox.DestructiveRole)
    box.addButton(qt.QMessageBox.Cancel)
    box.setDefaultButton(newButton)
    box.exec_()
    return {newButton: edits.NEW_SEGMENTATION, replaceButton: edits.REPLACE}.get(box.clickedButton(), edits.CANCEL)
