"""THA Annotator: a 3D Slicer module that segments the hips of a CT scan.

Bone extraction (BE) and acetabulum / femoral head segmentation (AFS) come from the pure-Python
library ``THAAnnotatorLib`` (method of Zhang et al.); this module moves data between MRML nodes
and that library and shows the results:

- segments "Bone", "Right/Left acetabulum" and "Right/Left femoral head" in a segmentation node,
  with colours and standard (SNOMED CT) terminology;
- per hip, the Hough circle of the slice being viewed (a markups closed curve) and its refined
  boundary points (a markups point list); all circles are kept in a table node, so they follow
  the red slice view and survive saving the scene;
- a measurements table: per hip status, femoral head center (RAS, mm), diameter (mm), initial
  slice and warnings;
- a review queue of uncertain slices (see :data:`REVIEW_QUEUE_FORMAT`).

The Logic (:class:`THAAnnotatorLogic`) needs only MRML, not the Slicer application: it runs in
Slicer and headless on the ``slicer-core`` wheel. It does not import qt or ctk; the Widget imports
them when Slicer builds the panel.
"""
from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field, replace

import numpy as np
import vtk
import vtk.util.numpy_support

import slicer


def _addLibraryToPath() -> None:
    """Make ``THAAnnotatorLib`` importable when the module is loaded from a source checkout.

    A built extension ships the library beside this file. Loaded through "Additional module
    paths" from a checkout, the library is one folder up (``<checkout>/THAAnnotatorLib``).
    """
    if importlib.util.find_spec("THAAnnotatorLib") is not None:
        return
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(checkout, "THAAnnotatorLib", "__init__.py")):
        sys.path.append(checkout)


_addLibraryToPath()

# Only the library's light modules (numpy and the standard library) are imported here; the
# algorithms need scipy, scikit-image and PyMaxflow, which Slicer may have to install first.
from THAAnnotatorLib.errors import Cancelled, InputError  # noqa: E402
from THAAnnotatorLib.params import Params  # noqa: E402
from THAAnnotatorLib.result import SIDES, Annotation  # noqa: E402
from THAAnnotatorLib.terminology import ANATOMIC_CONTEXT, ANATOMICAL_STRUCTURE, SEGMENTS, TERMINOLOGY_CONTEXT, Code  # noqa: E402
from THAAnnotatorLib.volume import Volume, canonicalize  # noqa: E402

try:
    from slicer.ScriptedLoadableModule import (
        ScriptedLoadableModule,
        ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest,
        ScriptedLoadableModuleWidget,
    )

    SLICER_APPLICATION = True
except ImportError:
    # The slicer-core wheel: real MRML without the Slicer application (pytest, batch scripts).
    # These bases carry what the Logic and the self-test use; the panel needs the application.
    import unittest

    SLICER_APPLICATION = False

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent
            self.moduleName = self.__class__.__name__

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            raise RuntimeError("The THA Annotator panel needs the 3D Slicer application; "
                               "use THAAnnotatorLogic for work without a GUI.")

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            self.moduleName = self.__class__.__name__
            if self.moduleName.endswith("Logic"):
                self.moduleName = self.moduleName[:-5]
            self.isSingletonParameterNode = True

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, requestedDelay=None, msec=None):
            logging.info(message)

from slicer.util import VTKObservationMixin  # noqa: E402

MODULE_NAME = "THAAnnotator"

BONE_SEGMENT_ID = "bone"
BONE_SEGMENT_NAME = "Bone"
BONE_COLOR = (0.90, 0.86, 0.74)
BONE_CODE = Code("SCT", "272673000", "Bone")
HIP_SEGMENT_IDS = tuple(segment.segment_id for segment in SEGMENTS)
SEGMENT_IDS = (BONE_SEGMENT_ID,) + HIP_SEGMENT_IDS
"""Every segment ID this module writes; a run replaces exactly these."""

SIDE_CHOICES = ("both", "right", "left")
"""Values of the "Side" parameter, in the order of the panel's side combo box."""

PARAMETER_DEFAULTS = {
    "Side": "both",
    "UseFSG": "true",
    "UseLNMS": "true",
    "UseAHS": "true",
    "UseHalfMaximumEdges": "true",
    "UseSlabHeight": "true",
    "GraphCutLambda": repr(Params.graph_cut_lambda),
    "BlurSigmaMm": repr(Params.blur_sigma_mm),
    "NumberOfRays": str(Params.n_rays),
    "EnhancePercentile": repr(Params.enhance_percentile),
    "ReviewQueuePath": "",
    "ModelPath": "",
    "ShowOverlays": "true",
}
"""Parameter node values (strings) and their defaults. Node references: InputVolume,
OutputSegmentation."""
_BOOL_PARAMETERS = {"UseFSG": "use_fsg", "UseLNMS": "use_lnms", "UseAHS": "use_ahs",
                    "UseHalfMaximumEdges": "use_half_maximum_edges", "UseSlabHeight": "use_slab_height"}
_FLOAT_PARAMETERS = {"GraphCutLambda": "graph_cut_lambda", "BlurSigmaMm": "blur_sigma_mm",
                     "EnhancePercentile": "enhance_percentile"}
_INT_PARAMETERS = {"NumberOfRays": "n_rays"}

REQUIRED_PACKAGES = (("scipy", "scipy"), ("skimage", "scikit-image"), ("maxflow", "PyMaxflow"))
"""(import name, pip requirement) of the packages the algorithms need beyond what Slicer ships."""
SLICER_BUNDLED_PACKAGES = (("SimpleITK", "SimpleITK"),)
"""Packages that come with Slicer; never pip-installed over Slicer's own build."""
MODEL_PACKAGES = (("monai", "monai"), ("safetensors", "safetensors"))
"""Packages model inference needs besides torch (which comes through the PyTorch extension)."""
MODEL_INFERENCE_MODULE = "THAAnnotatorLib.model.inference"
"""The model feature is offered only when this module of the library exists."""
MODEL_DESCRIPTION_FILE = "model.json"
"""A saved model folder holds this file beside its weights (THAAnnotatorLib.model.network.MODEL_FILE)."""

# Node references kept on the segmentation node, so that a second run reuses the same nodes.
MEASUREMENTS_REFERENCE = "THAAnnotatorMeasurements"
CIRCLES_REFERENCE = "THAAnnotatorCircles"
CIRCLE_CURVE_REFERENCE = "THAAnnotatorCircle_{side}"
BOUNDARY_POINTS_REFERENCE = "THAAnnotatorBoundary_{side}"
ROLE_ATTRIBUTE = "THAAnnotator.Role"
SIDE_ATTRIBUTE = "THAAnnotator.Side"
SHOWN_SLICE_ATTRIBUTE = "THAAnnotator.ShownSlice"
PLANE_AXES_ATTRIBUTE = "THAAnnotator.PlaneAxesRAS"
SLICE_SPACING_ATTRIBUTE = "THAAnnotator.SliceSpacingMm"
CIRCLE_POLYGON_POINTS = 72
"""Control points of the closed curve drawn for a Hough circle."""

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
    ("Needs review", "string", "",
     "yes when the sphere failed the surface check unmended or the head is of unusual size; "
     "the warnings say why."),
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

REVIEW_QUEUE_FORMAT = """\
Review queue file: the review_queue.json that `tha-annotator review-queue` writes (format of
THAAnnotatorLib.model.aar, version 1): a UTF-8 JSON object whose "items" list holds the queued
slices, and whose "scans" object maps each scan name to {"scan_path", "labels_path"}. A bare list
of items is accepted too. Each item has
  "scan"         string  the scan's name (a key of "scans"); the scan itself must be loaded,
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
  "corrected"    boolean; "Mark corrected" sets it and adds "corrected_at" (ISO 8601, UTC).
Items are listed by decreasing uncertainty; keys the module does not know are preserved."""
REVIEW_QUEUE_REQUIRED_KEYS = ("scan", "side", "slice", "uncertainty")

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# numpy index (k, j, i) of arrayFromVolume -> IJK index (i, j, k)
_KJI_TO_IJK = np.array([[0.0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])


def boneTerminologyEntry() -> str:
    """The "Bone" segment's terminology, serialised as Slicer stores it (see terminology.py)."""
    return "~".join([TERMINOLOGY_CONTEXT, ANATOMICAL_STRUCTURE.serialized(), BONE_CODE.serialized(),
                     "^^", ANATOMIC_CONTEXT, "^^", "^^"])


def sidesFromChoice(choice) -> tuple[str, ...]:
    """("right", "left") for "both", else the one side; an iterable of sides is checked and kept."""
    if isinstance(choice, str):
        if choice not in SIDE_CHOICES:
            raise InputError(f'The side must be one of {", ".join(SIDE_CHOICES)}; got "{choice}".')
        return SIDES if choice == "both" else (choice,)
    sides = tuple(choice)
    if not sides or any(side not in SIDES for side in sides):
        raise InputError(f"Sides must be chosen from {', '.join(SIDES)}; got {', '.join(map(str, sides)) or 'none'}.")
    return sides


def ensureSegmentationConverterRules() -> None:
    """Register the binary labelmap <-> closed surface converters if nobody has.

    The Slicer application registers them at start-up; the slicer-core wheel does not.
    """
    if SLICER_APPLICATION:
        return
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    registered = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for ruleClass in ("vtkBinaryLabelmapToClosedSurfaceConversionRule",
                      "vtkClosedSurfaceToBinaryLabelmapConversionRule"):
        if ruleClass not in registered:
            factory.RegisterConverterRule(getattr(slicer, ruleClass)())


def _matrixToArray(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _arrayToMatrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def ijkToRasArray(volumeNode) -> np.ndarray:
    """The volume node's IJK-to-RAS matrix (its own, without parent transforms), 4 x 4."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return _matrixToArray(matrix)


def arrayIndexToLps(volumeNode) -> np.ndarray:
    """4 x 4 matrix from homogeneous ``arrayFromVolume`` indices (k, j, i) to LPS mm."""
    return _LPS_TO_RAS @ ijkToRasArray(volumeNode) @ _KJI_TO_IJK


def _orientedImageFromMask(mask: np.ndarray, ijkToRas: np.ndarray):
    """A vtkOrientedImageData of a (k, j, i) mask cropped to its bounding box; None if empty."""
    present = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if any(p.size == 0 for p in present):
        return None
    (k0, k1), (j0, j1), (i0, i1) = ((int(p[0]), int(p[-1])) for p in present)
    image = slicer.vtkOrientedImageData()
    image.SetExtent(i0, i1, j0, j1, k0, k1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    target = vtk.util.numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    target.reshape(k1 - k0 + 1, j1 - j0 + 1, i1 - i0 + 1)[:] = mask[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1]
    image.SetImageToWorldMatrix(_arrayToMatrix(ijkToRas))
    return image


def moduleModelDirectory() -> str:
    """``Resources/model`` beside this file: where a built extension may ship a trained model."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "Resources", "model")


def libraryModelDirectory() -> str:
    """The library's bundled model folder, ``Resources/model`` beside the ``THAAnnotatorLib`` folder
    (the repository root of a checkout), as ``THAAnnotatorLib.model.network.BUNDLED_MODEL_DIR``
    says, found without importing torch."""
    spec = importlib.util.find_spec("THAAnnotatorLib")
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(spec.origin))), "Resources", "model")


def _nodeReferenceInScene(node, role: str):
    referenced = node.GetNodeReference(role)
    return referenced if referenced is not None and referenced.GetScene() is node.GetScene() else None


def _tableColumns(tableNode, columns) -> dict:
    """name -> vtk array of a table this module wrote; InputError if a column is missing."""
    out = {}
    for name, _, _, _ in columns:
        array = tableNode.GetTable().GetColumnByName(name)
        if array is None:
            raise InputError(f'The table "{tableNode.GetName()}" has no column "{name}"; run the module again.')
        out[name] = array
    return out


def _circlePolygon(center: np.ndarray, radius: float, axisU: np.ndarray, axisV: np.ndarray) -> np.ndarray:
    angles = np.linspace(0.0, 2.0 * np.pi, CIRCLE_POLYGON_POINTS, endpoint=False)
    return center + radius * (np.cos(angles)[:, None] * axisU + np.sin(angles)[:, None] * axisV)


@dataclass
class RunOutput:
    """What :meth:`THAAnnotatorLogic.run` made or updated in the scene, and the library result."""

    segmentationNode: object
    volume: Volume
    bone: np.ndarray
    annotation: Annotation | None
    measurementsTableNode: object = None
    circlesTableNode: object = None
    circleNodes: dict = field(default_factory=dict)
    boundaryPointNodes: dict = field(default_factory=dict)


@dataclass
class ReviewEntry:
    """One slice of a review queue (see :data:`REVIEW_QUEUE_FORMAT`)."""

    scan: str
    side: str
    slice: int
    uncertainty: float
    corrected: bool
    data: dict
    scanPath: str = ""

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
        self._cancelRequested = False
        self._busy = False
        self._observedSliceNode = None
        self._reviewEntries = []
        self._predictToolTip = ""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/THAAnnotator.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = THAAnnotatorLogic()

        self.ui.queueTableWidget.setColumnCount(5)
        self.ui.queueTableWidget.setHorizontalHeaderLabels(["Uncertainty", "Side", "Slice", "Corrected", "Scan"])
        self.ui.queueTableWidget.horizontalHeader().setStretchLastSection(True)
        self.ui.progressBar.setRange(0, 100)

        self._predictToolTip = self.ui.predictButton.toolTip  # the .ui file's description
        self.ui.predictButton.visible = True

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        for selector in (self.ui.inputVolumeSelector, self.ui.outputSegmentationSelector):
            selector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onOutputSegmentationChanged)
        self.ui.sideComboBox.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        for checkBox in (self.ui.fsgCheckBox, self.ui.lnmsCheckBox, self.ui.ahsCheckBox, self.ui.halfMaximumCheckBox,
                         self.ui.slabHeightCheckBox, self.ui.showOverlaysCheckBox):
            checkBox.connect("toggled(bool)", self.updateParameterNodeFromGUI)
        for spinBox in (self.ui.graphCutLambdaSpinBox, self.ui.blurSigmaSpinBox, self.ui.percentileSpinBox,
                        self.ui.raysSpinBox):
            spinBox.connect("valueChanged(double)" if spinBox is not self.ui.raysSpinBox else "valueChanged(int)",
                            self.updateParameterNodeFromGUI)
        self.ui.queuePathLineEdit.connect("currentPathChanged(QString)", self.updateParameterNodeFromGUI)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.updateParameterNodeFromGUI)
        self.ui.predictButton.connect("clicked(bool)", self.onPredict)

        self.ui.extractBoneButton.connect("clicked(bool)", self.onExtractBone)
        self.ui.segmentHipsButton.connect("clicked(bool)", self.onSegmentHips)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.showOverlaysCheckBox.connect("toggled(bool)", self.onShowOverlaysToggled)
        self.ui.loadQueueButton.connect("clicked(bool)", self.onLoadQueue)
        self.ui.queueTableWidget.connect("itemSelectionChanged()", self.onQueueSelectionChanged)
        self.ui.markCorrectedButton.connect("clicked(bool)", self.onMarkCorrected)

        self._observeRedSlice()
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()
        self._observeRedSlice()

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
            self.logic.setDefaultParameters(parameterNode)
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
            self.ui.sideComboBox.currentIndex = SIDE_CHOICES.index(node.GetParameter("Side") or "both")
            params = self.logic.paramsFromParameterNode(node)
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
            self.ui.showOverlaysCheckBox.checked = node.GetParameter("ShowOverlays") == "true"
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
        node.SetParameter("Side", SIDE_CHOICES[max(0, self.ui.sideComboBox.currentIndex)])
        self.logic.setParametersFromParams(node, replace(
            self.logic.paramsFromParameterNode(node),
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
        modelProblem = self.logic.modelProblem(self._parameterNode.GetParameter("ModelPath") or None
                                               if self._parameterNode is not None else None)
        self.ui.predictButton.enabled = hasInput and not self._busy and modelProblem is None
        self.ui.predictButton.toolTip = (
            f"Not available: {modelProblem}" if modelProblem is not None
            else self._predictToolTip if hasInput else "Select a CT volume first.")
        self.ui.cancelButton.enabled = self._busy
        self.ui.markCorrectedButton.enabled = not self._busy and self._selectedReviewEntry() is not None
        self.ui.extractBoneButton.toolTip = (
            'Bone extraction (BE) only: writes the "Bone" segment.' if hasInput else "Select a CT volume first.")

    # --- running ------------------------------------------------------------------------------

    def onExtractBone(self):
        self._run("bone")

    def onSegmentHips(self):
        self._run("hips")

    def onPredict(self):
        self._run("model")

    def onCancel(self):
        self._cancelRequested = True
        self.ui.statusLabel.text = "Cancelling..."

    def ensurePythonPackages(self, model: bool = False) -> bool:
        """Install missing Python packages after asking the user; True when all are present.

        With ``model``, also the packages of model inference, and torch through the PyTorch
        extension (which asks the user itself).
        """
        missing = self.logic.missingPythonPackages(model=model)
        if model:
            try:
                self.logic.ensureTorch(askConfirmation=True)
            except InputError as error:
                slicer.util.errorDisplay(str(error), windowTitle="THA Annotator")
                return False
        if not missing:
            return True
        bundled = [name for _, name in SLICER_BUNDLED_PACKAGES if name in missing]
        if bundled:
            slicer.util.errorDisplay(
                f"THA Annotator needs {', '.join(bundled)}, which normally comes with 3D Slicer but is "
                "missing here; reinstall 3D Slicer.")
            return False
        if not slicer.util.confirmOkCancelDisplay(
                "THA Annotator needs Python packages that are not installed in 3D Slicer yet: "
                f"{', '.join(missing)}.\n\nInstall them now? They are downloaded from the Python "
                "Package Index (pypi.org); this takes about a minute.",
                windowTitle="THA Annotator: install Python packages"):
            self.ui.statusLabel.text = "Not run: the required Python packages are not installed."
            return False
        try:
            with slicer.util.tryWithErrorDisplay("Installing the Python packages failed.", waitCursor=True):
                self.logic.installPythonPackages(missing)
        except Exception:
            self.ui.statusLabel.text = "Installing the Python packages failed; see the Python console."
            return False
        return True

    def _run(self, mode: str):
        """Run "bone" (BE), "hips" (BE + AFS) or "model" (BE + network) with progress and Cancel."""
        if self._busy:
            return
        if mode == "model":  # say a model is missing before offering to install what it would need
            problem = self.logic.modelProblem(self._parameterNode.GetParameter("ModelPath") or None)
            if problem is not None:
                self.ui.statusLabel.text = problem
                slicer.util.errorDisplay(problem, windowTitle="THA Annotator")
                return
        if not self.ensurePythonPackages(model=mode == "model"):
            return
        node = self._parameterNode
        volumeNode = node.GetNodeReference("InputVolume")
        segmentationNode = node.GetNodeReference("OutputSegmentation")
        self._cancelRequested = False
        self._setBusy(True)
        try:
            common = dict(params=self.logic.paramsFromParameterNode(node),
                          sides=self.logic.sidesFromParameterNode(node), progress=self._onProgress,
                          cancel=lambda: self._cancelRequested)
            if mode == "model":  # the folder is looked up as THAAnnotatorLogic.modelDirectory says
                output = self.logic.predict(volumeNode, segmentationNode,
                                            modelPath=node.GetParameter("ModelPath") or None, **common)
            else:
                output = self.logic.run(volumeNode, segmentationNode, boneOnly=mode == "bone", **common)
        except Cancelled:
            self.ui.statusLabel.text = "Cancelled; the scene was left unchanged."
            return
        except InputError as error:
            self.ui.statusLabel.text = str(error)
            slicer.util.errorDisplay(str(error), windowTitle="THA Annotator")
            return
        except Exception as error:  # an unexpected failure: show it, keep the details in the log
            logging.exception("THA Annotator failed")
            self.ui.statusLabel.text = f"Failed: {error}"
            slicer.util.errorDisplay(f"THA Annotator failed: {error}", windowTitle="THA Annotator")
            return
        finally:
            self._setBusy(False)
        node.SetNodeReferenceID("OutputSegmentation", output.segmentationNode.GetID())
        self._showResults(output, volumeNode)

    def _onProgress(self, fraction: float, message: str):
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message[:1].upper() + message[1:] + "..."
        slicer.app.processEvents()

    def _setBusy(self, busy: bool):
        self._busy = busy
        if busy:
            self.ui.progressBar.value = 0
        self._updateButtonStates()
        slicer.app.processEvents()

    def _showResults(self, output: RunOutput, volumeNode):
        slicer.util.setSliceViewerLayers(background=volumeNode)
        self.ui.segmentationShow3DButton.setSegmentationNode(output.segmentationNode)
        self.ui.measurementsTableView.setMRMLTableNode(output.measurementsTableNode)
        if output.annotation is None:
            self.ui.statusLabel.text = "Bone extracted."
            return
        lines = []
        for side, result in output.annotation.sides.items():
            if result.head_diameter_mm is not None:
                lines.append(f"{side.capitalize()} hip: femoral head diameter {result.head_diameter_mm:.1f} mm.")
            else:
                lines.append(f"{side.capitalize()} hip: {result.message}.")
        self.ui.statusLabel.text = " ".join(lines)
        first = next((r for r in output.annotation.sides.values() if r.initial_slice is not None
                      and r.sphere_center_ras_mm is not None), None)
        if first is not None:
            center = self.logic.sliceCenterRas(volumeNode, first.initial_slice, first.sphere_center_ras_mm)
            slicer.vtkMRMLSliceNode.JumpAllSlices(slicer.mrmlScene, *center, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
        self.onRedSliceModified()

    # --- circles and boundary points of the red slice -------------------------------------------

    def _redSliceNode(self):
        layoutManager = slicer.app.layoutManager()
        sliceWidget = layoutManager.sliceWidget("Red") if layoutManager else None
        return sliceWidget.mrmlSliceNode() if sliceWidget else None

    def _observeRedSlice(self):
        sliceNode = self._redSliceNode()
        if sliceNode is self._observedSliceNode:
            return
        if self._observedSliceNode is not None:
            self.removeObserver(self._observedSliceNode, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified)
        self._observedSliceNode = sliceNode
        if sliceNode is not None:
            self.addObserver(sliceNode, vtk.vtkCommand.ModifiedEvent, self.onRedSliceModified)

    def onRedSliceModified(self, caller=None, event=None):
        segmentationNode = self._parameterNode.GetNodeReference("OutputSegmentation") if self._parameterNode else None
        if segmentationNode is None or self._observedSliceNode is None:
            return
        if not self.ui.showOverlaysCheckBox.checked:
            return
        self.logic.showCirclesAtSlice(segmentationNode, sliceNode=self._observedSliceNode)

    def onShowOverlaysToggled(self, shown):
        segmentationNode = self._parameterNode.GetNodeReference("OutputSegmentation") if self._parameterNode else None
        if segmentationNode is None:
            return
        self.logic.setOverlaysVisible(segmentationNode, shown)
        if shown:
            self.onRedSliceModified()

    def onOutputSegmentationChanged(self, node):
        if node is None:
            self.ui.measurementsTableView.setMRMLTableNode(None)
            return
        self.ui.segmentationShow3DButton.setSegmentationNode(node)
        self.ui.measurementsTableView.setMRMLTableNode(_nodeReferenceInScene(node, MEASUREMENTS_REFERENCE))
        self.onRedSliceModified()

    # --- review queue -------------------------------------------------------------------------

    def onLoadQueue(self):
        path = self.ui.queuePathLineEdit.currentPath
        try:
            self._reviewEntries = self.logic.readReviewQueue(path)
        except InputError as error:
            self._reviewEntries = []
            self.ui.queueStatusLabel.text = str(error)
            slicer.util.errorDisplay(str(error), windowTitle="THA Annotator review queue")
        else:
            self.ui.queuePathLineEdit.addCurrentPathToHistory()
            open_ = sum(not e.corrected for e in self._reviewEntries)
            self.ui.queueStatusLabel.text = f"{len(self._reviewEntries)} slices, {open_} to review."
        self._fillQueueTable()

    def _fillQueueTable(self):
        import qt

        table = self.ui.queueTableWidget
        table.setRowCount(len(self._reviewEntries))
        for row, entry in enumerate(self._reviewEntries):
            values = (f"{entry.uncertainty:.4g}", entry.side, str(entry.slice), "yes" if entry.corrected else "",
                      entry.scan)
            for column, value in enumerate(values):
                table.setItem(row, column, qt.QTableWidgetItem(value))
        self._updateButtonStates()

    def _selectedReviewEntry(self):
        rows = {index.row() for index in self.ui.queueTableWidget.selectionModel().selectedRows()}
        return self._reviewEntries[rows.pop()] if len(rows) == 1 and self._reviewEntries else None

    def onQueueSelectionChanged(self):
        self._updateButtonStates()
        entry = self._selectedReviewEntry()
        if entry is None:
            return
        volumeNode = self._parameterNode.GetNodeReference("InputVolume")
        segmentationNode = self._parameterNode.GetNodeReference("OutputSegmentation")
        if volumeNode is None:
            self.ui.queueStatusLabel.text = "Select the CT volume of this scan first."
            return
        try:
            self.logic.jumpToReviewEntry(entry, volumeNode, segmentationNode)
        except InputError as error:
            self.ui.queueStatusLabel.text = str(error)
            return
        note = "" if self.logic.reviewEntryMatchesVolume(entry, volumeNode) else (
            f' Note: the entry is for "{entry.scan}", but the selected volume is "{volumeNode.GetName()}".')
        self.ui.queueStatusLabel.text = f"{entry.side.capitalize()} hip, slice {entry.slice}.{note}"

    def onMarkCorrected(self):
        entry = self._selectedReviewEntry()
        if entry is None:
            return
        path = self.ui.queuePathLineEdit.currentPath
        try:
            self.logic.markReviewEntryCorrected(path, entry)
            self._reviewEntries = self.logic.readReviewQueue(path)
        except InputError as error:
            self.ui.queueStatusLabel.text = str(error)
            slicer.util.errorDisplay(str(error), windowTitle="THA Annotator review queue")
            return
        self._fillQueueTable()
        self.ui.queueStatusLabel.text = f"Marked {entry.side} hip, slice {entry.slice} as corrected."


#
# THAAnnotatorLogic
#


class THAAnnotatorLogic(ScriptedLoadableModuleLogic):
    """MRML <-> THAAnnotatorLib. Needs no GUI; works on any vtkMRMLScene.

    Parameters
    ----------
    scene : the scene for parameter nodes; default ``slicer.mrmlScene`` in the application. The
        processing methods use the scene their nodes are in.
    """

    def __init__(self, scene=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self._scene = scene
        self._circleCache = {}
        ensureSegmentationConverterRules()

    @property
    def scene(self):
        scene = self._scene if self._scene is not None else getattr(slicer, "mrmlScene", None)
        if scene is None:
            raise RuntimeError("No MRML scene: pass one to THAAnnotatorLogic(scene=...).")
        return scene

    # --- parameter node -----------------------------------------------------------------------

    def getParameterNode(self, scene=None):
        """The module's singleton parameter node in ``scene`` (created with defaults if missing)."""
        scene = scene if scene is not None else self.scene
        node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node.SetName(scene.GenerateUniqueName(self.moduleName))
            self.setDefaultParameters(node)
            node = scene.AddNode(node)
        elif node.GetAttribute("ModuleName") != self.moduleName:
            node.SetAttribute("ModuleName", self.moduleName)
        return node

    def setDefaultParameters(self, parameterNode) -> None:
        """Fill in every parameter that has no value yet."""
        for name, value in PARAMETER_DEFAULTS.items():
            if not parameterNode.GetParameter(name):
                parameterNode.SetParameter(name, value)

    def paramsFromParameterNode(self, parameterNode) -> Params:
        """Pipeline parameters stored in the node (defaults for the ones not stored)."""
        values = {}
        for name, fieldName in _BOOL_PARAMETERS.items():
            text = parameterNode.GetParameter(name)
            if text:
                values[fieldName] = text == "true"
        for table, convert in ((_FLOAT_PARAMETERS, float), (_INT_PARAMETERS, int)):
            for name, fieldName in table.items():
                text = parameterNode.GetParameter(name)
                if text:
                    try:
                        values[fieldName] = convert(text)
                    except ValueError:
                        raise InputError(f'The parameter {name} is "{text}", not a number; reset it in '
                                         "the Advanced section.") from None
        return replace(Params(), **values)

    def setParametersFromParams(self, parameterNode, params: Params) -> None:
        """Store the panel's pipeline parameters of ``params`` in the node."""
        wasModified = parameterNode.StartModify()
        for name, fieldName in _BOOL_PARAMETERS.items():
            parameterNode.SetParameter(name, "true" if getattr(params, fieldName) else "false")
        for table in (_FLOAT_PARAMETERS, _INT_PARAMETERS):
            for name, fieldName in table.items():
                parameterNode.SetParameter(name, repr(getattr(params, fieldName)))
        parameterNode.EndModify(wasModified)

    def sidesFromParameterNode(self, parameterNode) -> tuple[str, ...]:
        return sidesFromChoice(parameterNode.GetParameter("Side") or "both")

    # --- dependencies -------------------------------------------------------------------------

    @staticmethod
    def missingPythonPackages(model: bool = False) -> list[str]:
        """pip names of the packages the algorithms (and, with ``model``, inference) need that
        cannot be imported. torch is not listed: see :meth:`ensureTorch`."""
        packages = REQUIRED_PACKAGES + SLICER_BUNDLED_PACKAGES + (MODEL_PACKAGES if model else ())
        return [requirement for module, requirement in packages if importlib.util.find_spec(module) is None]

    @staticmethod
    def modelAvailable() -> bool:
        """Whether this version of the library has model inference."""
        try:
            return importlib.util.find_spec(MODEL_INFERENCE_MODULE) is not None
        except ModuleNotFoundError:  # no THAAnnotatorLib.model package at all
            return False

    @staticmethod
    def modelDirectory(modelPath=None) -> str:
        """The model folder "Predict with model" uses.

        ``modelPath`` if given; else the module's ``Resources/model`` if it holds a model (a built
        extension may ship one there); else the library's bundled model, ``Resources/model`` at
        the repository root (:func:`libraryModelDirectory`).
        """
        if modelPath:
            return os.fspath(modelPath)
        shipped = moduleModelDirectory()
        if os.path.isfile(os.path.join(shipped, MODEL_DESCRIPTION_FILE)):
            return shipped
        return libraryModelDirectory()

    @classmethod
    def modelProblem(cls, modelPath=None) -> str | None:
        """Why "Predict with model" cannot run with ``modelPath`` (see :meth:`modelDirectory`): one
        sentence saying what is wrong and what to do; None when a saved model is in reach.

        Only checks that the folder holds a model description; the weights and their SHA-256
        are checked when the model is loaded.
        """
        if not cls.modelAvailable():
            return ("This version of THA Annotator has no model inference "
                    f"({MODEL_INFERENCE_MODULE}); update the extension.")
        folder = cls.modelDirectory(modelPath)
        if os.path.isfile(os.path.join(folder, MODEL_DESCRIPTION_FILE)):
            return None
        if modelPath:
            return (f"The model folder {folder} holds no trained model (no {MODEL_DESCRIPTION_FILE}); choose "
                    'the folder that "tha-annotator train" wrote in Advanced > Model folder.')
        places = list(dict.fromkeys(os.path.normpath(p) for p in (moduleModelDirectory(), folder)))
        return (f"No trained model is installed (no {MODEL_DESCRIPTION_FILE} in {' or '.join(places)}); "
                'choose the folder that "tha-annotator train" wrote in Advanced > Model folder, or put '
                f"the trained model in {places[-1]}.")

    @staticmethod
    def installPythonPackages(requirements: list[str]) -> None:
        """Install pip requirements into Slicer's Python (call after asking the user)."""
        bundled = {name for _, name in SLICER_BUNDLED_PACKAGES}
        toInstall = [r for r in requirements if r not in bundled]
        if toInstall:
            slicer.util.pip_install(" ".join(toInstall))
        importlib.invalidate_caches()
        still = [r for r in THAAnnotatorLogic.missingPythonPackages(model=True) if r in toInstall]
        if still:
            raise RuntimeError(f"These Python packages could not be installed: {', '.join(still)}; "
                               "see the Python console for pip's messages.")

    @staticmethod
    def ensureTorch(askConfirmation: bool = True):
        """Import torch, installing it through the PyTorch extension's helper if needed."""
        if importlib.util.find_spec("torch") is not None:
            return importlib.import_module("torch")
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            raise InputError('Model inference needs PyTorch: install the "PyTorch" extension from the '
                             "Extensions Manager, restart 3D Slicer, and try again.") from None
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=askConfirmation)
        if torch is None:
            raise InputError("PyTorch was not installed; model inference needs it. Install it with the "
                             '"PyTorch Utils" module and try again.')
        return torch

    # --- volume node -> canonical volume ------------------------------------------------------

    def volumeFromNode(self, volumeNode) -> Volume:
        """The CT of a scalar volume node as a canonical, validated :class:`Volume`.

        Raises InputError if the node is missing, empty, not a scalar volume or not a CT in HU.
        """
        if volumeNode is None:
            raise InputError("No CT volume is selected; select the hip CT as the input volume.")
        name = f'The volume "{volumeNode.GetName()}"'
        if not volumeNode.IsA("vtkMRMLScalarVolumeNode") or volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
            raise InputError(f"{name} is not a scalar CT volume (it is a {volumeNode.GetClassName()}); "
                             "select the CT scan instead.")
        imageData = volumeNode.GetImageData()
        if imageData is None or imageData.GetPointData().GetScalars() is None:
            raise InputError(f"{name} holds no image data; load the CT scan again.")
        if imageData.GetNumberOfScalarComponents() != 1:
            raise InputError(f"{name} has {imageData.GetNumberOfScalarComponents()} values per voxel "
                             "(a colour or vector image); select a grey-scale CT volume.")
        array = slicer.util.arrayFromVolume(volumeNode)  # (k, j, i), a view of the node's voxels
        volume = canonicalize(array, arrayIndexToLps(volumeNode))
        from THAAnnotatorLib.io import validate_ct

        validate_ct(volume, name=name)
        return volume

    # --- running ------------------------------------------------------------------------------

    def run(self, volumeNode, segmentationNode=None, params: Params | None = None, sides=SIDES,
            progress=None, cancel=None, boneOnly: bool = False) -> RunOutput:
        """Segment the hips of a CT volume node into a segmentation node.

        Parameters
        ----------
        volumeNode : scalar volume node holding the CT in HU, in a MRML scene.
        segmentationNode : where the segments go; None makes a new segmentation node. A run
            replaces this module's segments, circles, points and tables of a previous run.
        params : pipeline parameters (default ``Params()``).
        sides : "both", "right", "left" or an iterable of "right" / "left".
        progress : called as ``progress(fraction, message)`` with fraction in [0, 1].
        cancel : polled during the work; when it returns True, :class:`Cancelled` is raised.
        boneOnly : run bone extraction only and write just the "Bone" segment.

        Raises
        ------
        InputError : bad input (no CT, not in HU, no hip found, ...); the scene is unchanged.
        Cancelled : the user cancelled; the scene is unchanged.
        """
        params, sides, volume, report = self._prepare(volumeNode, segmentationNode, params, sides, progress)
        missing = self.missingPythonPackages()
        if missing:
            raise InputError(f"THA Annotator needs the Python packages {', '.join(missing)}; install them "
                             "(the module panel offers to) and try again.")

        def libraryProgress(fraction: float, message: str) -> None:
            report(0.95 * fraction, message)

        if boneOnly:
            from THAAnnotatorLib.bone import extract_bone

            bone, annotation = extract_bone(volume, params, libraryProgress, cancel), None
        else:
            from THAAnnotatorLib.pipeline import annotate

            annotation = annotate(volume, params, sides, libraryProgress, cancel)
            bone = annotation.bone
        return self._finish(volumeNode, segmentationNode, volume, bone, annotation, report, cancel)

    def predict(self, volumeNode, segmentationNode=None, params: Params | None = None, sides=SIDES,
                progress=None, cancel=None, modelPath=None, device: str = "auto") -> RunOutput:
        """Segment the hips with the trained network instead of the pipeline (BE + network).

        Same arguments, results and errors as :meth:`run`, plus ``modelPath``, the folder of a
        saved model (default: the bundled model, see :meth:`modelDirectory`; none there is an
        InputError saying what to do, raised before anything else is checked), and ``device`` ("auto",
        "cpu" or "cuda"). Needs torch (see :meth:`ensureTorch`), monai and safetensors. The
        network fits no circles or spheres, so the measurements table has no center or diameter.
        """
        problem = self.modelProblem(modelPath)
        if problem is not None:
            raise InputError(problem)
        modelPath = self.modelDirectory(modelPath)
        params, sides, volume, report = self._prepare(volumeNode, segmentationNode, params, sides, progress)
        missing = self.missingPythonPackages(model=True) + (
            ["torch"] if importlib.util.find_spec("torch") is None else [])
        if missing:
            raise InputError(f"Model inference needs the Python packages {', '.join(missing)}; install them "
                             "(the module panel offers to; torch comes with the PyTorch extension) and try again.")
        from THAAnnotatorLib.model.inference import predict_scan
        from THAAnnotatorLib.model.network import load_model

        report(0.0, "loading the model")
        model = load_model(modelPath, device)

        def libraryProgress(fraction: float, message: str) -> None:
            report(0.05 + 0.9 * fraction, message)

        annotation = predict_scan(volume, model, params, sides, progress=libraryProgress, cancel=cancel)
        return self._finish(volumeNode, segmentationNode, volume, annotation.bone, annotation, report, cancel)

    def _prepare(self, volumeNode, segmentationNode, params, sides, progress):
        """Check the inputs of a run; returns params, sides, the canonical volume and a reporter."""
        params = params if params is not None else Params()
        sides = sidesFromChoice(sides)
        volume = self.volumeFromNode(volumeNode)
        scene = volumeNode.GetScene()
        if scene is None:
            raise InputError(f'The volume "{volumeNode.GetName()}" is not in a MRML scene; add it to the scene first.')
        if segmentationNode is not None and segmentationNode.GetScene() is not scene:
            raise InputError(f'The segmentation "{segmentationNode.GetName()}" is not in the scene of the volume; '
                             "choose another output segmentation or create a new one.")

        def report(fraction: float, message: str) -> None:
            if progress is not None:
                progress(min(max(fraction, 0.0), 1.0), message)

        report(0.0, "starting")
        return params, sides, volume, report

    def _finish(self, volumeNode, segmentationNode, volume, bone, annotation, report, cancel) -> RunOutput:
        if cancel is not None and cancel():
            raise Cancelled("Cancelled before the results were written.")
        report(0.95, "writing results")
        output = self.writeResults(volumeNode, segmentationNode, volume, bone, annotation)
        report(1.0, "done")
        return output

    # --- writing results ----------------------------------------------------------------------

    def writeResults(self, volumeNode, segmentationNode, volume: Volume, bone: np.ndarray,
                     annotation: Annotation | None) -> RunOutput:
        """Write bone and (if given) hip results of ``volume`` (read from ``volumeNode``) into the scene.

        ``bone`` and ``annotation`` are in the canonical layout of ``volume``. Nodes made here are
        removed again if writing fails part-way.
        """
        scene = volumeNode.GetScene()
        ensureSegmentationConverterRules()
        ijkToRas = ijkToRasArray(volumeNode)
        segments = [(BONE_SEGMENT_ID, BONE_SEGMENT_NAME, BONE_COLOR, boneTerminologyEntry(),
                     volume.to_source_layout(bone.astype(np.uint8, copy=False)) > 0)]
        if annotation is not None:
            sourceLabels = volume.to_source_layout(annotation.side_labels)
            for segment in SEGMENTS:
                if annotation.sides.get(segment.side) is not None and annotation.sides[segment.side].status == "segmented":
                    segments.append((segment.segment_id, segment.name, segment.color,
                                     segment.terminology_entry(), sourceLabels == segment.label_value))
        images = [(segmentId, name, color, terminology, _orientedImageFromMask(mask, ijkToRas))
                  for segmentId, name, color, terminology, mask in segments]

        created = []
        try:
            if segmentationNode is None:
                segmentationNode = scene.AddNewNodeByClass(
                    "vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{volumeNode.GetName()} THA annotation"))
                created.append(segmentationNode)
            if segmentationNode.GetDisplayNode() is None:
                segmentationNode.CreateDefaultDisplayNodes()
            segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
            segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
            self._writeSegments(segmentationNode, images)
            output = RunOutput(segmentationNode, volume, bone, annotation)
            self._writeHipNodes(output, volumeNode, created)
        except BaseException:
            for node in reversed(created):
                if node.GetScene() is scene:
                    scene.RemoveNode(node)
            raise
        if output.circlesTableNode is not None:
            redSlice = scene.GetSingletonNode("Red", "vtkMRMLSliceNode")
            if redSlice is not None:
                self.showCirclesAtSlice(segmentationNode, sliceNode=redSlice)
            else:
                initial = {side: r.initial_slice for side, r in annotation.sides.items() if r.circles}
                self.showCirclesAtSlice(segmentationNode, sliceIndex=initial)
        return output

    def _writeSegments(self, segmentationNode, images) -> None:
        segmentation = segmentationNode.GetSegmentation()
        wasModified = segmentationNode.StartModify()
        try:
            for segmentId in SEGMENT_IDS:
                if segmentation.GetSegment(segmentId) is not None:
                    segmentation.RemoveSegment(segmentId)
            for segmentId, name, color, terminology, image in images:
                segmentation.AddEmptySegment(segmentId, name, color)
                segment = segmentation.GetSegment(segmentId)
                segment.SetNameAutoGenerated(False)
                segment.SetColorAutoGenerated(False)
                segment.SetTag(segment.GetTerminologyEntryTagName(), terminology)
                if image is not None and not slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
                        image, segmentationNode, segmentId, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE):
                    raise RuntimeError(f"Could not write the segment {name} into {segmentationNode.GetName()}.")
        finally:
            segmentationNode.EndModify(wasModified)
        displayNode = segmentationNode.GetDisplayNode()
        if displayNode is not None and segmentation.GetSegment(BONE_SEGMENT_ID) is not None:
            displayNode.SetSegmentOpacity3D(BONE_SEGMENT_ID, 0.25)
            displayNode.SetSegmentOpacity2DFill(BONE_SEGMENT_ID, 0.3)

    def _referencedOrNew(self, ownerNode, role: str, className: str, name: str, created: list):
        node = _nodeReferenceInScene(ownerNode, role)
        if node is None:
            scene = ownerNode.GetScene()
            node = scene.AddNewNodeByClass(className, scene.GenerateUniqueName(name))
            created.append(node)
            ownerNode.SetNodeReferenceID(role, node.GetID())
        return node

    def _removeReferenced(self, ownerNode, role: str) -> None:
        node = _nodeReferenceInScene(ownerNode, role)
        ownerNode.RemoveNodeReferenceIDs(role)
        if node is not None:
            for index in reversed(range(node.GetNumberOfDisplayNodes()) if node.IsA("vtkMRMLDisplayableNode") else []):
                displayNode = node.GetNthDisplayNode(index)
                if displayNode is not None:
                    node.GetScene().RemoveNode(displayNode)
            node.GetScene().RemoveNode(node)

    def _writeHipNodes(self, output: RunOutput, volumeNode, created: list) -> None:
        segmentationNode = output.segmentationNode
        annotation = output.annotation
        name = segmentationNode.GetName()
        if annotation is None:  # bone only: hip results of an earlier run no longer apply
            for role in (MEASUREMENTS_REFERENCE, CIRCLES_REFERENCE):
                self._removeReferenced(segmentationNode, role)
            for side in SIDES:
                self._removeReferenced(segmentationNode, CIRCLE_CURVE_REFERENCE.format(side=side))
                self._removeReferenced(segmentationNode, BOUNDARY_POINTS_REFERENCE.format(side=side))
            return

        measurements = self._referencedOrNew(segmentationNode, MEASUREMENTS_REFERENCE, "vtkMRMLTableNode",
                                             f"{name} measurements", created)
        measurements.SetAttribute(ROLE_ATTRIBUTE, "measurements")
        rows = []
        for side, result in annotation.sides.items():
            center = result.sphere_center_ras_mm or (np.nan, np.nan, np.nan)
            rows.append([side, result.status, *center,
                         result.head_diameter_mm if result.head_diameter_mm is not None else np.nan,
                         "" if result.initial_slice is None else str(result.initial_slice),
                         np.nan if result.surface_drop_hu is None else result.surface_drop_hu,
                         "yes" if result.needs_review else "no",
                         result.message, "; ".join(result.warnings)])
        self._fillTable(measurements, MEASUREMENT_COLUMNS, rows)
        output.measurementsTableNode = measurements

        circles = self._referencedOrNew(segmentationNode, CIRCLES_REFERENCE, "vtkMRMLTableNode",
                                        f"{name} Hough circles", created)
        circles.SetAttribute(ROLE_ATTRIBUTE, "circles")
        volume = output.volume
        indexToRas = _LPS_TO_RAS @ volume.index_to_lps
        axisU = indexToRas[:3, 1] / np.linalg.norm(indexToRas[:3, 1])
        axisV = indexToRas[:3, 2] / np.linalg.norm(indexToRas[:3, 2])
        circles.SetAttribute(PLANE_AXES_ATTRIBUTE, json.dumps([axisU.tolist(), axisV.tolist()]))
        circles.SetAttribute(SLICE_SPACING_ATTRIBUTE, repr(float(volume.spacing_mm[0])))
        rows = []
        for side, result in annotation.sides.items():
            for circle in result.circles:
                rows.append([side, circle.slice_index, *circle.center_ras_mm, circle.radius_mm,
                             json.dumps([list(p) for p in circle.boundary_points_ras_mm])])
        self._fillTable(circles, CIRCLE_COLUMNS, rows)
        output.circlesTableNode = circles

        transformId = volumeNode.GetTransformNodeID()
        for side in SIDES:
            curveRole = CIRCLE_CURVE_REFERENCE.format(side=side)
            pointsRole = BOUNDARY_POINTS_REFERENCE.format(side=side)
            result = annotation.sides.get(side)
            if result is None or result.status != "segmented" or not result.circles:
                self._removeReferenced(segmentationNode, curveRole)
                self._removeReferenced(segmentationNode, pointsRole)
                continue
            color = next(s.color for s in SEGMENTS if s.side == side and s.segment_id.endswith("femoral_head"))
            curve = self._referencedOrNew(segmentationNode, curveRole, "vtkMRMLMarkupsClosedCurveNode",
                                          f"{side.capitalize()} femoral head circle", created)
            points = self._referencedOrNew(segmentationNode, pointsRole, "vtkMRMLMarkupsFiducialNode",
                                           f"{side.capitalize()} femoral head boundary points", created)
            for node, role in ((curve, "circle"), (points, "boundary points")):
                node.SetAttribute(ROLE_ATTRIBUTE, role)
                node.SetAttribute(SIDE_ATTRIBUTE, side)
                node.RemoveAttribute(SHOWN_SLICE_ATTRIBUTE)
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
                    display.SetPropertiesLabelVisibility(False)
            curve.SetCurveTypeToLinear()
            output.circleNodes[side] = curve
            output.boundaryPointNodes[side] = points

    @staticmethod
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

    # --- reading results back -----------------------------------------------------------------

    def segmentArray(self, segmentationNode, segmentId: str, volumeNode) -> np.ndarray:
        """A segment as a uint8 0/1 array in the layout of ``arrayFromVolume(volumeNode)``."""
        segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
        if segment is None:
            raise KeyError(f"No segment {segmentId} in {segmentationNode.GetName()}.")
        dims = volumeNode.GetImageData().GetDimensions()
        out = np.zeros(dims[::-1], dtype=np.uint8)
        # the segment's layer, which it may share with other segments (told apart by label value)
        image = slicer.vtkOrientedImageData()
        slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(segmentationNode, segmentId, image)
        extent = image.GetExtent()
        if image.GetPointData().GetScalars() is None or extent[1] < extent[0]:
            return out
        reference = slicer.vtkOrientedImageData()
        reference.SetExtent(0, dims[0] - 1, 0, dims[1] - 1, 0, dims[2] - 1)
        reference.SetImageToWorldMatrix(_arrayToMatrix(ijkToRasArray(volumeNode)))
        resampled = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(image, reference, resampled)
        e = resampled.GetExtent()
        if e[1] < e[0]:
            return out
        values = vtk.util.numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars())
        values = values.reshape(e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
        # clip the resampled extent to the volume
        lo = [max(e[2 * a], 0) for a in range(3)]
        hi = [min(e[2 * a + 1], dims[a] - 1) for a in range(3)]
        if any(h < l for l, h in zip(lo, hi)):
            return out
        out[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = values[
            lo[2] - e[4]:hi[2] - e[4] + 1, lo[1] - e[2]:hi[1] - e[2] + 1, lo[0] - e[0]:hi[0] - e[0] + 1] \
            == segment.GetLabelValue()
        return out

    def circlesBySide(self, segmentationNode) -> dict:
        """All Hough circles of the last run: side -> list of dicts (slice, center, radius, points)."""
        table = _nodeReferenceInScene(segmentationNode, CIRCLES_REFERENCE)
        if table is None:
            return {}
        key = (table.GetID(), table.GetMTime())
        cached = self._circleCache.get(table.GetID())
        if cached is not None and cached[0] == key:
            return cached[1]
        circles: dict = {}
        column = _tableColumns(table, CIRCLE_COLUMNS)
        for row in range(table.GetNumberOfRows()):
            circles.setdefault(column["Side"].GetValue(row), []).append({
                "slice": int(column["Slice"].GetValue(row)),
                "center": np.array([column[name].GetValue(row) for name in ("Center R", "Center A", "Center S")]),
                "radius": float(column["Radius"].GetValue(row)),
                "points": np.array(json.loads(column["Boundary points"].GetValue(row)), dtype=float).reshape(-1, 3),
            })
        self._circleCache[table.GetID()] = (key, circles)
        return circles

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
        table = _nodeReferenceInScene(segmentationNode, CIRCLES_REFERENCE)
        shown = {}
        if table is None:
            return shown
        axisU, axisV = (np.array(a) for a in json.loads(table.GetAttribute(PLANE_AXES_ATTRIBUTE)))
        halfSpacing = 0.5 * float(table.GetAttribute(SLICE_SPACING_ATTRIBUTE))
        plane = None
        if sliceNode is not None:
            sliceToWorld = _matrixToArray(sliceNode.GetSliceToRAS())
            worldToLocal = np.eye(4)
            parent = segmentationNode.GetParentTransformNode()
            if parent is not None:
                matrix = vtk.vtkMatrix4x4()
                parent.GetMatrixTransformFromWorld(matrix)
                worldToLocal = _matrixToArray(matrix)
            sliceToLocal = worldToLocal @ sliceToWorld
            normal = sliceToLocal[:3, 2] / np.linalg.norm(sliceToLocal[:3, 2])
            plane = (sliceToLocal[:3, 3], normal)
        for side in SIDES:
            curve = _nodeReferenceInScene(segmentationNode, CIRCLE_CURVE_REFERENCE.format(side=side))
            points = _nodeReferenceInScene(segmentationNode, BOUNDARY_POINTS_REFERENCE.format(side=side))
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
                    curve, _circlePolygon(chosen["center"], chosen["radius"], axisU, axisV))
                if len(chosen["points"]):
                    slicer.util.updateMarkupsControlPointsFromArray(points, chosen["points"])
                else:
                    points.RemoveAllControlPoints()
            curve.SetAttribute(SHOWN_SLICE_ATTRIBUTE, state)
            points.SetAttribute(SHOWN_SLICE_ATTRIBUTE, state)
        return shown

    def setOverlaysVisible(self, segmentationNode, visible: bool) -> None:
        """Show or hide the circle and boundary point markups of a segmentation."""
        for side in SIDES:
            for role in (CIRCLE_CURVE_REFERENCE, BOUNDARY_POINTS_REFERENCE):
                node = _nodeReferenceInScene(segmentationNode, role.format(side=side))
                if node is not None and node.GetDisplayNode() is not None:
                    node.GetDisplayNode().SetVisibility(visible)

    def measurements(self, segmentationNode) -> dict:
        """The measurements table as side -> {column name: value} (numbers as float)."""
        table = _nodeReferenceInScene(segmentationNode, MEASUREMENTS_REFERENCE)
        if table is None:
            return {}
        column = _tableColumns(table, MEASUREMENT_COLUMNS)
        out = {}
        for row in range(table.GetNumberOfRows()):
            values = {name: column[name].GetValue(row) for name, _, _, _ in MEASUREMENT_COLUMNS}
            out[values["Side"]] = values
        return out

    # --- picture of a result -----------------------------------------------------------------

    def renderResultPicture(self, volumeNode, segmentationNode, path, size=(1200, 800), title: str = "") -> None:
        """Write a PNG of a result, rendered off screen with VTK (no Slicer views needed).

        The segments as surfaces (bone faint) over a coronal CT slice behind the hips and an axial
        slice below them, the shown Hough circles and boundary points, and the measurements; seen
        from the front, so the patient's right is on the picture's left.
        """
        ensureSegmentationConverterRules()
        segmentationNode.CreateClosedSurfaceRepresentation()
        ijkToRas = ijkToRasArray(volumeNode)
        rows = self.measurements(segmentationNode)
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
            actor.SetUserMatrix(_arrayToMatrix(ijkToRas))
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
            curve = _nodeReferenceInScene(segmentationNode, CIRCLE_CURVE_REFERENCE.format(side=side))
            points = _nodeReferenceInScene(segmentationNode, BOUNDARY_POINTS_REFERENCE.format(side=side))
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
                self._addActor(renderer, tube, (1.0, 1.0, 1.0))
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
                self._addActor(renderer, glyphs, (1.0, 0.85, 0.1))

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

    @staticmethod
    def _addActor(renderer, source, color) -> None:
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(source.GetOutputPort())
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*color)
        renderer.AddActor(actor)

    # --- slice geometry -----------------------------------------------------------------------

    @staticmethod
    def sliceCenterRas(volumeNode, sliceIndex: int, inPlaneRas=None) -> np.ndarray:
        """RAS point (mm, the volume's own coordinates) on axial slice ``sliceIndex``.

        ``sliceIndex`` counts the volume's axial slices from the most inferior one (0), as the
        library's canonical z index does, whatever the volume's voxel layout. The point is
        ``inPlaneRas`` moved along the slice normal into the slice, or the slice's center.
        """
        dims = volumeNode.GetImageData().GetDimensions()
        shape = dims[::-1]
        toLps = arrayIndexToLps(volumeNode)
        cosines = toLps[:3, :3] / np.linalg.norm(toLps[:3, :3], axis=0)
        axis = int(np.argmax(np.abs(cosines[2])))  # the array axis closest to patient S (as canonicalize)
        sliceIndex = int(sliceIndex)
        if not 0 <= sliceIndex < shape[axis]:
            raise InputError(f"Slice {sliceIndex} is outside the volume \"{volumeNode.GetName()}\", which has "
                             f"{shape[axis]} axial slices; check that the right scan is selected.")
        index = shape[axis] - 1 - sliceIndex if cosines[2, axis] < 0 else sliceIndex
        kji = (np.array(shape, dtype=float) - 1) / 2
        kji[axis] = index
        toRas = _LPS_TO_RAS @ toLps
        planePoint = (toRas @ np.append(kji, 1.0))[:3]
        if inPlaneRas is None:
            return planePoint
        normal = toRas[:3, axis] / np.linalg.norm(toRas[:3, axis])
        inPlaneRas = np.asarray(inPlaneRas, dtype=float)
        return inPlaneRas + normal * float(np.dot(planePoint - inPlaneRas, normal))

    # --- review queue -------------------------------------------------------------------------

    @staticmethod
    def _readQueueDocument(path):
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

    def readReviewQueue(self, path) -> list[ReviewEntry]:
        """The items of a review queue file (:data:`REVIEW_QUEUE_FORMAT`), most uncertain first."""
        document, raw = self._readQueueDocument(path)
        scans = document.get("scans", {}) if isinstance(document, dict) else {}
        entries = []
        for number, item in enumerate(raw, start=1):
            if not isinstance(item, dict) or any(key not in item for key in REVIEW_QUEUE_REQUIRED_KEYS):
                raise InputError(f"Item {number} of the review queue {path} lacks one of the keys "
                                 f"{', '.join(REVIEW_QUEUE_REQUIRED_KEYS)}; make the queue again with "
                                 "tha-annotator review-queue.")
            try:
                entry = ReviewEntry(str(item["scan"]), str(item["side"]), int(item["slice"]),
                                    float(item["uncertainty"]), bool(item.get("corrected", False)), item)
            except (TypeError, ValueError):
                raise InputError(f'Item {number} of the review queue {path} has a "slice" or "uncertainty" '
                                 "that is not a number; make the queue again with tha-annotator review-queue.") from None
            if entry.side not in SIDES or isinstance(item["slice"], bool) or item["slice"] != entry.slice:
                raise InputError(f'Item {number} of the review queue {path} needs "side" right or left and an '
                                 'integer "slice"; make the queue again with tha-annotator review-queue.')
            info = scans.get(entry.scan) if isinstance(scans, dict) else None
            if isinstance(info, dict) and info.get("scan_path"):
                entry.scanPath = str(info["scan_path"])
            entries.append(entry)
        return sorted(entries, key=lambda e: -e.uncertainty)

    def markReviewEntryCorrected(self, path, entry: ReviewEntry) -> None:
        """Record in the queue file that ``entry`` was corrected (the file is replaced atomically)."""
        document, raw = self._readQueueDocument(path)
        for item in raw:
            if (isinstance(item, dict) and str(item.get("scan")) == entry.scan and item.get("side") == entry.side
                    and item.get("slice") == entry.slice):
                item["corrected"] = True
                item["corrected_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
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

    @staticmethod
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

    def jumpToReviewEntry(self, entry: ReviewEntry, volumeNode, segmentationNode=None) -> np.ndarray:
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
            row = self.measurements(segmentationNode).get(entry.side)
            if row is not None and np.isfinite([row["Center R"], row["Center A"], row["Center S"]]).all():
                center = (row["Center R"], row["Center A"], row["Center S"])
        scene = volumeNode.GetScene()
        if center is None:
            redSlice = scene.GetSingletonNode("Red", "vtkMRMLSliceNode")
            center = _matrixToArray(redSlice.GetSliceToRAS())[:3, 3] if redSlice is not None else None
        point = self.sliceCenterRas(volumeNode, entry.slice, center)
        parent = volumeNode.GetParentTransformNode()
        if parent is not None:
            matrix = vtk.vtkMatrix4x4()
            parent.GetMatrixTransformToWorld(matrix)
            point = (_matrixToArray(matrix) @ np.append(point, 1.0))[:3]
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

        missing = THAAnnotatorLogic.missingPythonPackages()
        self.assertEqual(missing, [], "Install the Python packages first (press Segment hips once to be asked): "
                         + ", ".join(missing))
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
