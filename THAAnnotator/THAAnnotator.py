"""THA Annotator: a 3D Slicer module that segments the hips of a CT scan.

Bone extraction (BE) and acetabulum / femoral head segmentation (AFS), or a trained network, come
from the pure-Python library ``THAAnnotatorLib`` (method of Zhang et al.). This file holds what
Slicer looks for: the module, the panel (Widget), a thin Logic that runs the library and writes
its result into the scene, and the self-test. Their parts, one file each, are in the package
``THAAnnotatorSlicerLib`` beside it. The Logic needs only MRML: it runs in Slicer and headless on
the ``slicer-core`` wheel; only the Widget imports qt, when Slicer builds the panel.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

import vtk

import slicer
from slicer.util import VTKObservationMixin

# The package first: it makes THAAnnotatorLib importable from a checkout. Only the library's light
# modules load here; the algorithms need packages Slicer may have to install first.
from THAAnnotatorSlicerLib import dependencies, edits, model, mrml, parameters, results, runner, worker
from THAAnnotatorSlicerLib.application import (SLICER_APPLICATION, ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                               ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from THAAnnotatorSlicerLib.overlays import CircleOverlays
from THAAnnotatorSlicerLib.resultspanel import ResultsSection, askAboutEdits
from THAAnnotatorSlicerLib.reviewpanel import ReviewQueueSection
from THAAnnotatorLib.errors import Cancelled, InputError
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.result import SIDES

RELOADED_PACKAGES = ("THAAnnotatorLib", "THAAnnotatorSlicerLib", "THAAnnotatorScenarios")
"""What "Reload and Test" reloads besides this file (Slicer itself reloads only this file)."""


def forgetModuleCode() -> None:
    """Drop the library, the package and the scenarios from ``sys.modules``, so that reloading
    this file imports their current code instead of the cached one."""
    for name in [name for name in sys.modules if name.split(".")[0] in RELOADED_PACKAGES]:
        del sys.modules[name]


#
# THAAnnotator
#


class THAAnnotator(ScriptedLoadableModule):
    """Module description for Slicer's module list."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "THA Annotator"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["THA Annotator contributors"]
        self.parent.helpText = (
            "Segments the bone, acetabula and femoral heads of a hip CT, shows the femoral head's "
            "Hough circles, boundary points, center and diameter, and helps review uncertain "
            "slices. Method of Zhang et al., <i>A Dataset for Deep Learning-based Bone Structure "
            "Analyses in Total Hip Arthroplasty</i>.")
        self.parent.acknowledgementText = (
            "Bone extraction and acetabulum / femoral head segmentation follow Zhang et al.; "
            "the implementation is the THAAnnotatorLib library shipped with this module.")
        if SLICER_APPLICATION:
            slicer.app.connect("startupCompleted()", self.loadTerminology)

    def loadTerminology(self):
        """Register the segments' terminology context so Slicer's terminology editor knows it."""
        path = os.path.join(os.path.dirname(self.parent.path), "Resources",
                            "SegmentationCategoryTypeModifier-THAAnnotator.term.json")
        try:
            slicer.modules.terminologies.logic().LoadTerminologyFromFile(path)
        except AttributeError:  # Terminologies module not loaded (e.g. a minimal Slicer build)
            logging.warning("THA Annotator: Terminologies module not available; terminology not loaded.")


#
# THAAnnotatorWidget
#


class THAAnnotatorWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: a thin view of the parameter node; all work is done by the Logic."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._updatingGUIFromParameterNode = False
        self._job = None
        self._timer = None
        self._busy = False
        self.resultsSection = None
        self.reviewQueue = None
        self._predictToolTip = ""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/THAAnnotator.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = THAAnnotatorLogic()
        self.reviewQueue = ReviewQueueSection(self.ui, lambda: self._parameterNode, self.parent)
        self.resultsSection = ResultsSection(self.ui, self.logic, lambda: self._parameterNode)
        self.ui.progressBar.setRange(0, 100)
        import qt

        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.connect("timeout()", self._pollJob)

        self._predictToolTip = self.ui.predictButton.toolTip  # the .ui file's description
        self.ui.predictButton.visible = True

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        for selector in (self.ui.inputVolumeSelector, self.ui.outputSegmentationSelector):
            selector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        for comboBox in (self.ui.sideComboBox, self.ui.deviceComboBox):
            comboBox.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        for checkBox in (self.ui.fsgCheckBox, self.ui.lnmsCheckBox, self.ui.ahsCheckBox, self.ui.halfMaximumCheckBox,
                         self.ui.slabHeightCheckBox, self.ui.showOverlaysCheckBox):
            checkBox.connect("toggled(bool)", self.updateParameterNodeFromGUI)
        for spinBox in (self.ui.graphCutLambdaSpinBox, self.ui.blurSigmaSpinBox, self.ui.percentileSpinBox,
                        self.ui.raysSpinBox):
            spinBox.connect("valueChanged(double)" if spinBox is not self.ui.raysSpinBox else "valueChanged(int)",
                            self.updateParameterNodeFromGUI)
        self.ui.queuePathLineEdit.connect("currentPathChanged(QString)", self.updateParameterNodeFromGUI)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.updateParameterNodeFromGUI)
        for button, mode in ((self.ui.extractBoneButton, "bone"), (self.ui.segmentHipsButton, "hips"),
                             (self.ui.predictButton, "model")):
            button.connect("clicked(bool)", lambda checked=False, mode=mode: self._run(mode))
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.initializeParameterNode()

    def cleanup(self):
        if self._job is not None:
            self._job.cancel()
        self.removeObservers()
        self.resultsSection.removeObservers()
        self.reviewQueue.cleanup()

    def onReload(self):
        """"Reload" and "Reload and Test": the library, the package and the scenarios too."""
        forgetModuleCode()
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self):
        self.initializeParameterNode()
        self.resultsSection.observeRedSlice()

    def exit(self):
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    # --- parameter node <-> GUI ---------------------------------------------------------------

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.GetNodeReference("InputVolume"):
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.SetNodeReferenceID("InputVolume", firstVolume.GetID())

    def setParameterNode(self, parameterNode):
        if parameterNode is not None:
            parameters.setDefaultParameters(parameterNode)
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = parameterNode
        if self._parameterNode is not None:
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        self._updatingGUIFromParameterNode = True
        try:
            node = self._parameterNode
            self.ui.inputVolumeSelector.setCurrentNode(node.GetNodeReference("InputVolume"))
            self.ui.outputSegmentationSelector.setCurrentNode(node.GetNodeReference("OutputSegmentation"))
            self.ui.sideComboBox.currentIndex = parameters.SIDE_CHOICES.index(node.GetParameter("Side") or "both")
            self.ui.deviceComboBox.currentIndex = model.DEVICE_CHOICES.index(parameters.deviceFromParameterNode(node))
            params = parameters.paramsFromParameterNode(node)
            self.ui.fsgCheckBox.checked = params.use_fsg
            self.ui.lnmsCheckBox.checked = params.use_lnms
            self.ui.ahsCheckBox.checked = params.use_ahs
            self.ui.halfMaximumCheckBox.checked = params.use_half_maximum_edges
            self.ui.slabHeightCheckBox.checked = params.use_slab_height
            self.ui.graphCutLambdaSpinBox.value = params.graph_cut_lambda
            self.ui.blurSigmaSpinBox.value = params.blur_sigma_mm
            self.ui.raysSpinBox.value = params.n_rays
            self.ui.percentileSpinBox.value = params.enhance_percentile
            self.ui.queuePathLineEdit.currentPath = node.GetParameter("ReviewQueuePath")
            self.ui.modelPathLineEdit.currentPath = node.GetParameter("ModelPath")
            self.ui.showOverlaysCheckBox.checked = parameters.showOverlaysFromParameterNode(node)
            self.resultsSection.updateOverlays()
            self._updateButtonStates()
        finally:
            self._updatingGUIFromParameterNode = False

    def updateParameterNodeFromGUI(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        node = self._parameterNode
        wasModified = node.StartModify()
        node.SetNodeReferenceID("InputVolume", self.ui.inputVolumeSelector.currentNodeID)
        node.SetNodeReferenceID("OutputSegmentation", self.ui.outputSegmentationSelector.currentNodeID)
        node.SetParameter("Side", parameters.SIDE_CHOICES[max(0, self.ui.sideComboBox.currentIndex)])
        node.SetParameter("Device", model.DEVICE_CHOICES[max(0, self.ui.deviceComboBox.currentIndex)])
        parameters.setParametersFromParams(node, replace(
            parameters.paramsFromParameterNode(node),
            use_fsg=bool(self.ui.fsgCheckBox.checked), use_lnms=bool(self.ui.lnmsCheckBox.checked),
            use_ahs=bool(self.ui.ahsCheckBox.checked),
            use_half_maximum_edges=bool(self.ui.halfMaximumCheckBox.checked),
            use_slab_height=bool(self.ui.slabHeightCheckBox.checked),
            graph_cut_lambda=float(self.ui.graphCutLambdaSpinBox.value),
            blur_sigma_mm=float(self.ui.blurSigmaSpinBox.value), n_rays=int(self.ui.raysSpinBox.value),
            enhance_percentile=float(self.ui.percentileSpinBox.value)))
        node.SetParameter("ReviewQueuePath", self.ui.queuePathLineEdit.currentPath)
        node.SetParameter("ModelPath", self.ui.modelPathLineEdit.currentPath)
        node.SetParameter("ShowOverlays", "true" if self.ui.showOverlaysCheckBox.checked else "false")
        node.EndModify(wasModified)

    def _updateButtonStates(self):
        hasInput = self._parameterNode is not None and self._parameterNode.GetNodeReference("InputVolume") is not None
        for button in (self.ui.extractBoneButton, self.ui.segmentHipsButton):
            button.enabled = hasInput and not self._busy
        # "Predict with model" only with a trained model in reach; the tooltip says why not
        modelProblem = model.modelProblem(self._parameterNode.GetParameter("ModelPath") or None
                                          if self._parameterNode is not None else None)
        self.ui.predictButton.enabled = hasInput and not self._busy and modelProblem is None
        self.ui.predictButton.toolTip = (
            f"Not available: {modelProblem}" if modelProblem is not None
            else self._predictToolTip if hasInput else "Select a CT volume first.")
        self.ui.cancelButton.enabled = self._busy
        for section in (self.ui.inputsCollapsibleButton, self.ui.advancedCollapsibleButton):
            section.enabled = not self._busy
        self.resultsSection.updateButtons(self._busy)
        self.reviewQueue.busy = self._busy
        self.reviewQueue.updateButtons()
        self.ui.extractBoneButton.toolTip = (
            'Bone extraction (BE) only: writes the "Bone" segment.' if hasInput else "Select a CT volume first.")

    # --- running ------------------------------------------------------------------------------

    def onCancel(self):
        if self._job is not None:
            self._job.cancel()  # the next poll reports it

    def _run(self, mode: str):
        """Start "bone" (BE), "hips" (BE + AFS) or "model" (BE + network) in the background."""
        if self._busy:
            return
        node = self._parameterNode
        try:
            if mode == "model":  # say a model is missing before offering to install what it would need
                problem = model.modelProblem(node.GetParameter("ModelPath") or None)
                if problem is not None:
                    raise InputError(problem)
            dependencies.ensurePythonPackages(model=mode == "model")
            self._job = self.logic.start(
                mode, node.GetNodeReference("InputVolume"), node.GetNodeReference("OutputSegmentation"),
                parameters.paramsFromParameterNode(node), parameters.sidesFromParameterNode(node),
                modelPath=node.GetParameter("ModelPath") or None, device=parameters.deviceFromParameterNode(node),
                onEdited=askAboutEdits)
        except Exception as error:
            self._showFailure(error)
            return
        self._setBusy(True)
        self._timer.start()

    def _pollJob(self):
        """The QTimer's tick while a run works: its progress, then its result written into the scene."""
        state = self._job.poll()
        self.ui.progressBar.value = int(round(100 * self._job.fraction))
        self.ui.statusLabel.text = self._job.message[:1].upper() + self._job.message[1:] + "..."
        if state == runner.RUNNING:
            return
        self._timer.stop()
        job, self._job = self._job, None
        self._setBusy(False)
        try:
            output = self.logic.finish(job)
        except Exception as error:
            self._showFailure(error)
            return
        self._parameterNode.SetNodeReferenceID("OutputSegmentation", output.segmentationNode.GetID())
        self.resultsSection.showResults(output, job.volumeNode)

    def _showFailure(self, error: Exception):
        if isinstance(error, Cancelled):
            self.ui.statusLabel.text = "Cancelled; the scene was left unchanged."
            return
        if not isinstance(error, InputError):  # an unexpected failure: keep the details in the log
            logging.error("THA Annotator failed: %s", error, exc_info=error)
        message = str(error) if isinstance(error, InputError) else f"THA Annotator failed: {error}"
        self.ui.statusLabel.text = message
        slicer.util.errorDisplay(message, windowTitle="THA Annotator")

    def _setBusy(self, busy: bool):
        self._busy = busy
        if busy:
            self.ui.progressBar.value = 0
        self._updateButtonStates()


#
# THAAnnotatorLogic
#


class THAAnnotatorLogic(ScriptedLoadableModuleLogic):
    """Runs the library on a volume node and writes its result into the scene. Needs no GUI;
    works on any vtkMRMLScene.

    Parameters
    ----------
    scene : the scene for parameter nodes; default ``slicer.mrmlScene`` in the application. The
        processing methods use the scene their nodes are in.
    """

    def __init__(self, scene=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self._scene = scene
        self.overlays = CircleOverlays()
        self.models = model.ModelCache()
        mrml.ensureSegmentationConverterRules()

    def getParameterNode(self, scene=None):
        """The module's singleton parameter node in ``scene`` (default: the Logic's, else Slicer's)."""
        scene = next((s for s in (scene, self._scene, getattr(slicer, "mrmlScene", None)) if s is not None), None)
        if scene is None:
            raise RuntimeError("No MRML scene: pass one to THAAnnotatorLogic(scene=...).")
        return parameters.getParameterNode(scene, self.moduleName)

    def run(self, volumeNode, segmentationNode=None, params: Params | None = None, sides=SIDES,
            progress=None, cancel=None, boneOnly: bool = False, onEdited=None) -> results.RunOutput:
        """Segment the hips of a CT volume node into a segmentation node.

        Parameters
        ----------
        volumeNode : scalar volume node holding the CT in HU, in a MRML scene.
        segmentationNode : where the segments go; None makes a new segmentation node. A run
            replaces this module's segments, circles, points and tables of a previous run,
            unless the annotator edited those segments since: see ``onEdited``.
        params : pipeline parameters (default ``Params()``).
        sides : "both", "right", "left" or an iterable of "right" / "left".
        progress : called as ``progress(fraction, message)`` with fraction in [0, 1].
        cancel : polled during the work; when it returns True, :class:`Cancelled` is raised.
        boneOnly : run bone extraction only and write just the "Bone" segment.
        onEdited : asked before the work where to write when segments of ``segmentationNode``
            were edited since written: ``onEdited(segmentationNode, editedIds)`` answers
            ``edits.REPLACE`` (kept for :meth:`restorePreviousResult`), ``edits.CANCEL`` or
            ``edits.NEW_SEGMENTATION`` (the default, also without ``onEdited``).

        Raises
        ------
        InputError : bad input (no CT, not in HU, no hip found, ...); the scene is unchanged.
        Cancelled : the user cancelled; the scene is unchanged.
        """
        return self._runHere("bone" if boneOnly else "hips", volumeNode, segmentationNode, params, sides,
                             progress, cancel, onEdited)

    def predict(self, volumeNode, segmentationNode=None, params: Params | None = None, sides=SIDES,
                progress=None, cancel=None, modelPath=None, device: str = "auto", onEdited=None) -> results.RunOutput:
        """Segment the hips with the trained network instead of the pipeline (BE + network).

        As :meth:`run`, plus ``modelPath``, a saved model's folder (default: see
        ``model.modelDirectory``; none there is an InputError saying what to do, before any other
        check), and ``device`` ("auto", "cpu" or "cuda"; when the GPU runs out of memory the
        prediction runs again on the CPU, as ``RunOutput.messages`` says). The network stays
        loaded while its files are unchanged. Needs torch, MONAI and safetensors. It fits no
        circles or spheres, so the table has no center or diameter; a hip with warnings needs review.
        """
        return self._runHere("model", volumeNode, segmentationNode, params, sides, progress, cancel, onEdited,
                             modelPath, device)

    def start(self, mode: str, volumeNode, segmentationNode=None, params: Params | None = None, sides=SIDES,
              modelPath=None, device: str = "auto", onEdited=None) -> runner.BackgroundRun:
        """Begin a run of ``mode`` ("bone", "hips" or "model"; arguments as :meth:`run` and
        :meth:`predict`) in a separate process and return at once. Poll it until it is done,
        then :meth:`finish` writes the result into the scene; cancelling it, or closing the
        scene, stops it at once and leaves the scene as it was."""
        params, sides, target, modelPath = self._check(mode, volumeNode, segmentationNode, params, sides, onEdited,
                                                       modelPath)
        request = dict(mode=mode, params=params, sides=sides, modelPath=modelPath, device=device,
                       name=mrml.checkVolumeNode(volumeNode), arrayIndexToLps=mrml.arrayIndexToLps(volumeNode))
        job = runner.BackgroundRun(request, slicer.util.arrayFromVolume(volumeNode), results.withLayers)
        job.volumeNode, job.target = volumeNode, target
        scene = volumeNode.GetScene()
        tag = scene.AddObserver(scene.StartCloseEvent, lambda caller, event: job.cancel())
        job.closeCallbacks.append(lambda: scene.RemoveObserver(tag))
        return job

    def finish(self, job: runner.BackgroundRun) -> results.RunOutput:
        """Write what a finished :meth:`start` computed into the scene (or raise why it failed)."""
        try:
            state = job.poll()
            if state != runner.DONE:
                raise job.error() if state == runner.FAILED else Cancelled(f"The run is {state}; nothing was written.")
            if job.volumeNode.GetScene() is None:
                raise InputError(f'The volume "{job.volumeNode.GetName()}" was removed during the run; nothing was written.')
            result = job.result()
            segmentationNode, backUp = job.target
            messages = list(result["messages"])
            if segmentationNode is not None and (segmentationNode.GetScene() is None or not backUp and edits.editedSegments(
                    segmentationNode, results.SEGMENT_IDS)):  # removed or edited meanwhile: keep it as it is
                segmentationNode = None
                messages.append("The output segmentation changed during the run, so the result went into a new one.")
            output = self.writeResults(job.volumeNode, segmentationNode, mrml.geometryOnlyVolume(*result["geometry"]),
                                       result["bone"], result["annotation"], backUp, result["layers"])
            output.messages.extend(messages)
            return output
        finally:
            job.close()

    def _runHere(self, mode, volumeNode, segmentationNode, params, sides, progress, cancel, onEdited, modelPath=None,
                 device="auto") -> results.RunOutput:
        params, sides, target, modelPath = self._check(mode, volumeNode, segmentationNode, params, sides, onEdited,
                                                       modelPath)

        def report(fraction: float, message: str) -> None:
            if progress is not None:
                progress(min(max(fraction, 0.0), 1.0), message)

        report(0.0, "starting")
        volume = mrml.volumeFromNode(volumeNode)
        bone, annotation, messages = worker.compute(mode, volume, params, sides, lambda f, m: report(0.95 * f, m),
                                                    cancel, modelPath, device, self.models)
        if cancel is not None and cancel():
            raise Cancelled("Cancelled before the results were written.")
        report(0.95, "writing results")
        output = self.writeResults(volumeNode, target[0], volume, bone, annotation, target[1])
        output.messages.extend(messages)
        report(1.0, "done")
        return output

    def _check(self, mode, volumeNode, segmentationNode, params, sides, onEdited, modelPath):
        """The checks before a run (model, inputs, packages; none reads the voxels), then the question
        about edits; returns params, sides, the write target (``edits.chooseTarget``) and the model folder."""
        if mode == "model":
            problem = model.modelProblem(modelPath)
            if problem is not None:
                raise InputError(problem)
            modelPath = model.modelDirectory(modelPath)
        params = params if params is not None else Params()
        sides = parameters.sidesFromChoice(sides)
        mrml.checkVolumeNode(volumeNode)
        scene = volumeNode.GetScene()
        if scene is None:
            raise InputError(f'The volume "{volumeNode.GetName()}" is not in a MRML scene; add it to the scene first.')
        if segmentationNode is not None and segmentationNode.GetScene() is not scene:
            raise InputError(f'The segmentation "{segmentationNode.GetName()}" is not in the scene of the volume; '
                             "choose another output segmentation or create a new one.")
        dependencies.requirePythonPackages(model=mode == "model")
        return params, sides, edits.chooseTarget(segmentationNode, results.SEGMENT_IDS, onEdited), modelPath

    def writeResults(self, volumeNode, segmentationNode, volume, bone, annotation, backUp=False,
                     layers=None) -> results.RunOutput:
        """Write a result into the scene (:func:`THAAnnotatorSlicerLib.results.writeResults`) and show the
        circles of the red view's slice; its overlays are hidden while the parameter node's ShowOverlays is off."""
        output = results.writeResults(volumeNode, segmentationNode, volume, bone, annotation, backUp, layers)
        self.overlays.showAfterRun(output, parameters.showOverlaysInScene(volumeNode.GetScene(), self.moduleName))
        return output

    @staticmethod
    def restorePreviousResult(segmentationNode) -> None:
        """Bring back the segments the last "replace" overwrote; again: the newer ones."""
        edits.restorePreviousResult(segmentationNode, results.SEGMENT_IDS)


#
# THAAnnotatorTest
#


class THAAnnotatorTest(ScriptedLoadableModuleTest):
    """Self-test: the scenarios of THAAnnotatorScenarios (the same ones pytest runs) on a phantom."""

    def setUp(self):
        if SLICER_APPLICATION:
            slicer.mrmlScene.Clear(0)
            self.scene = slicer.mrmlScene
        else:
            self.scene = slicer.vtkMRMLScene()

    def runTest(self):
        import THAAnnotatorScenarios

        # installs what is missing as the panel does, without asking: whoever runs the self-test wants it to run
        why = dependencies.ensurePackagesForSelfTest(testing=not SLICER_APPLICATION or slicer.app.testingEnabled())
        if why:
            self.skipTest(why)
        for scenario in THAAnnotatorScenarios.SCENARIOS:
            self.setUp()
            self.delayDisplay(f"THA Annotator self-test: {scenario.__name__}")
            try:
                figures = scenario(self.scene)
            except THAAnnotatorScenarios.ScenarioSkipped as why:
                self.delayDisplay(f"{scenario.__name__} skipped: {why}")
                continue
            if figures:
                logging.info("%s: %s", scenario.__name__, figures)
        self.delayDisplay("THA Annotator self-test passed")
