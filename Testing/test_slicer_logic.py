"""The 3D Slicer module's Logic, headless, against real MRML nodes (the slicer-core wheel).

The scenarios live in THAAnnotator/THAAnnotatorScenarios.py, so the module's self-test inside
Slicer (THAAnnotatorTest.runTest) runs exactly the same checks.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

MODULE_DIR = Path(__file__).resolve().parents[1] / "THAAnnotator"

try:
    import slicer
except ImportError as error:  # pragma: no cover - depends on the environment
    if os.environ.get("THA_REQUIRE_SHARED_DATA"):  # CI must run these tests, never skip them
        raise
    pytest.skip(f"the slicer-core wheel is not installed ({error}); `pip install slicer-core` runs these "
                "MRML tests", allow_module_level=True)

if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

import THAAnnotator  # noqa: E402
import THAAnnotatorScenarios  # noqa: E402
from THAAnnotator import THAAnnotatorLogic  # noqa: E402
from THAAnnotatorSlicerLib import dependencies, model, mrml, parameters, picture, results  # noqa: E402
from THAAnnotatorSlicerLib.resultspanel import ResultsSection  # noqa: E402
from THAAnnotatorLib.errors import InputError  # noqa: E402
from THAAnnotatorLib.params import Params  # noqa: E402


@pytest.mark.parametrize("scenario", THAAnnotatorScenarios.SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_scenario(scenario):
    try:
        figures = scenario(slicer.vtkMRMLScene())
    except THAAnnotatorScenarios.ScenarioSkipped as why:
        pytest.skip(str(why))
    print(scenario.__name__, figures)


def test_self_test_runs_every_scenario_on_a_fresh_scene(monkeypatch):
    calls = []

    def recorder(name):
        def scenario(scene):
            calls.append((name, scene))
            return {}
        scenario.__name__ = name
        return scenario

    def skipped(scene):
        calls.append(("skipped", scene))
        raise THAAnnotatorScenarios.ScenarioSkipped("not here")

    names = [s.__name__ for s in THAAnnotatorScenarios.SCENARIOS]
    monkeypatch.setattr(THAAnnotatorScenarios, "SCENARIOS", tuple(recorder(n) for n in names) + (skipped,))
    THAAnnotator.THAAnnotatorTest().runTest()
    assert [name for name, _ in calls] == names + ["skipped"]
    scenes = [scene for _, scene in calls]
    assert all(scene.IsA("vtkMRMLScene") for scene in scenes) and len({id(s) for s in scenes}) == len(scenes)


def test_missing_packages_are_named_and_leave_the_scene_unchanged(monkeypatch):
    scene = slicer.vtkMRMLScene()
    logic = THAAnnotatorLogic(scene)
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    realFindSpec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in ("maxflow", "skimage") else realFindSpec(name, *args))
    assert dependencies.missingPythonPackages() == ["scikit-image>=0.21", "PyMaxflow>=1.3"]
    before = THAAnnotatorScenarios.sceneSnapshot(scene)
    with pytest.raises(InputError, match="scikit-image>=0.21, PyMaxflow>=1.3"):
        logic.run(volumeNode, None, Params())
    assert THAAnnotatorScenarios.sceneSnapshot(scene) == before


def test_packages_are_installed_with_pip_but_never_simpleitk(monkeypatch):
    installed = []
    monkeypatch.setattr(slicer.util, "pip_install", lambda requirements, **kwargs: installed.append(requirements),
                        raising=False)
    dependencies.installPythonPackages(["scipy>=1.10", "SimpleITK", "PyMaxflow>=1.3"])
    assert installed == ["scipy>=1.10 PyMaxflow>=1.3"]
    realFindSpec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "maxflow" else realFindSpec(name, *args))
    with pytest.raises(RuntimeError, match="could not be installed: PyMaxflow"):
        dependencies.installPythonPackages(["PyMaxflow>=1.3"])


def test_torch_comes_from_the_pytorch_extension_or_a_clear_message(monkeypatch):
    if importlib.util.find_spec("torch") is not None:
        assert dependencies.ensureTorch().__name__ == "torch"
    realFindSpec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "torch" else realFindSpec(name, *args))
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # the PyTorch extension is not installed
    with pytest.raises(InputError, match='install the "PyTorch" extension from the Extensions Manager'):
        dependencies.ensureTorch()

    class FakePyTorchUtils:  # the extension's helper, declining the installation
        class PyTorchUtilsLogic:
            def installTorch(self, askConfirmation=True, torchVersionRequirement=None):
                assert askConfirmation and torchVersionRequirement == ">=2.4"
                return None

    monkeypatch.setitem(sys.modules, "PyTorchUtils", FakePyTorchUtils)
    with pytest.raises(InputError, match="PyTorch was not installed"):
        dependencies.ensureTorch()


def test_sides_and_parameters():
    assert parameters.sidesFromChoice("both") == ("right", "left")
    assert parameters.sidesFromChoice("left") == ("left",)
    assert parameters.sidesFromChoice(["left", "right"]) == ("left", "right")
    for bad in ("up", [], ["right", "middle"]):
        with pytest.raises(InputError):
            parameters.sidesFromChoice(bad)
    scene = slicer.vtkMRMLScene()
    logic = THAAnnotatorLogic(scene)
    node = logic.getParameterNode()
    assert parameters.paramsFromParameterNode(node) == Params()
    ablation = Params(use_fsg=False, use_half_maximum_edges=False, use_slab_height=False,
                      graph_cut_lambda=3.5)
    parameters.setParametersFromParams(node, ablation)
    assert node.GetParameter("UseHalfMaximumEdges") == node.GetParameter("UseSlabHeight") == "false"
    assert parameters.paramsFromParameterNode(node) == ablation
    node.SetParameter("GraphCutLambda", "a lot")
    with pytest.raises(InputError, match="GraphCutLambda"):
        parameters.paramsFromParameterNode(node)


def test_segment_array_round_trips_masks_in_a_permuted_layout():
    """Segments written from a mask come back voxel for voxel, also when they touch the borders."""
    scene = slicer.vtkMRMLScene()
    logic = THAAnnotatorLogic(scene)
    volumeNode = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "tiny")
    slicer.util.updateVolumeFromArray(volumeNode, np.zeros((6, 7, 8), dtype=np.int16))
    volumeNode.SetIJKToRASMatrix(mrml.arrayToMatrix(np.array(
        [[0.0, 0, -1.5, 10], [0, -0.7, 0, -4], [2.0, 0, 0, 30], [0, 0, 0, 1]])))
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    rng = np.random.default_rng(1)
    masks = {"a": rng.random((6, 7, 8)) > 0.5, "b": np.zeros((6, 7, 8), bool), "c": np.ones((6, 7, 8), bool)}
    ijkToRas = mrml.ijkToRasArray(volumeNode)
    results.writeSegments(segmentationNode, [(mrml.orientedImageFromMask(m, ijkToRas), [(key, key, (1.0, 0.0, 0.0), "~", 1)])
                                             for key, m in masks.items()])
    for key, mask in masks.items():
        assert np.array_equal(mrml.segmentArray(segmentationNode, key, volumeNode), mask), key


def test_result_picture_shows_the_patients_right_on_the_left(tmp_path):
    import vtk

    probe = vtk.vtkRenderWindow()
    probe.SetOffScreenRendering(1)
    if not probe.SupportsOpenGL():
        pytest.skip("VTK cannot render off screen here (no EGL or OSMesa OpenGL)")
    probe.Finalize()
    scene = slicer.vtkMRMLScene()
    logic = THAAnnotatorLogic(scene)
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    annotation = THAAnnotatorScenarios.truthAnnotation()
    output = logic.writeResults(volumeNode, None, mrml.volumeFromNode(volumeNode), annotation.bone, annotation)
    path = tmp_path / "result.png"
    picture.renderResultPicture(volumeNode, output.segmentationNode, path, size=(480, 320))
    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = vtk.util.numpy_support.vtk_to_numpy(reader.GetOutput().GetPointData().GetScalars())
    rgb = image.reshape(320, 480, -1)[..., :3].astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    columns = np.arange(480)[None, :].repeat(320, axis=0)
    blue = (b > r + 40) & (b > g + 10)  # right femoral head (0.30, 0.62, 0.90)
    green = (g > r + 40) & (g > b + 20)  # left femoral head (0.35, 0.80, 0.50)
    assert blue.sum() > 200 and green.sum() > 200, (blue.sum(), green.sum())
    assert (columns[blue] < 240).mean() > 0.95 and (columns[green] >= 240).mean() > 0.95


def test_default_model_lookup_and_its_message(monkeypatch, tmp_path):
    """No ModelPath: the module's Resources/model if it holds a model, else the library's bundled
    one (Resources/model at the repository root); neither gives a message naming both."""
    if not model.modelAvailable():
        pytest.skip(f"this THAAnnotatorLib has no {model.MODEL_INFERENCE_MODULE}")
    if importlib.util.find_spec("torch") is not None and importlib.util.find_spec("monai") is not None:
        from THAAnnotatorLib.model.network import BUNDLED_MODEL_DIR, MODEL_FILE

        # the module finds the library's folder without importing torch; it must be the same one
        assert Path(model.libraryModelDirectory()) == BUNDLED_MODEL_DIR
        assert model.MODEL_DESCRIPTION_FILE == MODEL_FILE
    assert model.moduleModelDirectory() == str(MODULE_DIR / "Resources" / "model")

    module, library = tmp_path / "module" / "Resources" / "model", tmp_path / "repo" / "Resources" / "model"
    monkeypatch.setattr(model, "moduleModelDirectory", lambda: str(module))
    monkeypatch.setattr(model, "libraryModelDirectory", lambda: str(library))
    assert model.modelDirectory() == str(library)
    problem = model.modelProblem()
    assert problem.startswith("No trained model is installed") and str(module) in problem and str(library) in problem
    assert "Advanced > Model folder" in problem

    scene = slicer.vtkMRMLScene()
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    before = THAAnnotatorScenarios.sceneSnapshot(scene)
    with pytest.raises(InputError, match="No trained model is installed"):
        THAAnnotatorLogic(scene).predict(volumeNode, None, Params(), device="cpu")
    assert THAAnnotatorScenarios.sceneSnapshot(scene) == before

    for folder in (library, module):  # the module's own copy, when there is one, comes first
        folder.mkdir(parents=True)
        (folder / "model.json").write_text("{}", encoding="utf-8")
        assert model.modelDirectory() == str(folder) and model.modelProblem() is None
    assert model.modelDirectory(tmp_path) == str(tmp_path)  # a chosen folder wins


def test_predict_button_is_disabled_with_the_reason_when_no_model_is_found(monkeypatch, tmp_path):
    """The panel's button logic, with stand-ins for the Qt widgets (no Slicer application here)."""
    from types import SimpleNamespace

    class Button(SimpleNamespace):
        pass

    scene = slicer.vtkMRMLScene()
    logic = THAAnnotatorLogic(scene)
    parameterNode = logic.getParameterNode()
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    parameterNode.SetNodeReferenceID("InputVolume", volumeNode.GetID())
    widget = object.__new__(THAAnnotator.THAAnnotatorWidget)  # skips the Qt set-up
    description = "Bone extraction, then the trained network labels ..."
    widget.logic, widget._parameterNode, widget._busy, widget._predictToolTip = logic, parameterNode, False, description
    widget.reviewQueue = SimpleNamespace(updateButtons=lambda: None)
    widget.resultsSection = object.__new__(ResultsSection)  # skips observing the red slice view
    widget.resultsSection._parameterNode = lambda: parameterNode
    widget.ui = widget.resultsSection.ui = SimpleNamespace(**{name: Button(enabled=None, toolTip="") for name in (
        "extractBoneButton", "segmentHipsButton", "predictButton", "cancelButton", "markReviewedButton",
        "restorePreviousButton", "inputsCollapsibleButton", "advancedCollapsibleButton")})

    empty = tmp_path / "empty"
    empty.mkdir()
    parameterNode.SetParameter("ModelPath", str(empty))
    widget._updateButtonStates()
    assert widget.ui.predictButton.enabled is False and widget.ui.segmentHipsButton.enabled is True
    assert widget.ui.restorePreviousButton.enabled is False  # no output segmentation, so nothing to restore
    assert widget.ui.predictButton.toolTip == f"Not available: {model.modelProblem(str(empty))}"
    if not model.modelAvailable():
        return
    assert str(empty) in widget.ui.predictButton.toolTip and "model.json" in widget.ui.predictButton.toolTip

    (empty / "model.json").write_text("{}", encoding="utf-8")
    widget._updateButtonStates()
    assert widget.ui.predictButton.enabled is True and widget.ui.predictButton.toolTip == description
    widget._busy = True
    widget._updateButtonStates()
    assert widget.ui.predictButton.enabled is False and widget.ui.cancelButton.enabled is True
    assert widget.ui.inputsCollapsibleButton.enabled is False and widget.ui.advancedCollapsibleButton.enabled is False


def test_a_failed_write_leaves_an_existing_segmentation_exactly_as_it_was(monkeypatch):
    """A write that fails after the segments were replaced (here: writing the tables) puts the
    segmentation back: the user's segment, the previous result, their order, names and voxels."""
    scene = slicer.vtkMRMLScene()
    logic = THAAnnotatorLogic(scene)
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    volume = mrml.volumeFromNode(volumeNode)
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my segmentation")
    mine = np.zeros(slicer.util.arrayFromVolume(volumeNode).shape, dtype=bool)
    mine[10:20, 30:60, 40:90] = True
    segmentationNode.GetSegmentation().AddEmptySegment("mine", "My segment", [1.0, 0.0, 0.0])
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        mrml.orientedImageFromMask(mine, mrml.ijkToRasArray(volumeNode)), segmentationNode, "mine",
        slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    annotation = THAAnnotatorScenarios.truthAnnotation()
    logic.writeResults(volumeNode, segmentationNode, volume, annotation.bone, annotation)
    before = THAAnnotatorScenarios.segmentsState(segmentationNode, volumeNode)
    nodes = THAAnnotatorScenarios.sceneSnapshot(scene)

    def failing(*args):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(results, "_writeHipNodes", failing)
    with pytest.raises(RuntimeError, match="injected failure"):  # a bone-only result, all hip segments replaced
        logic.writeResults(volumeNode, segmentationNode, volume, np.zeros_like(annotation.bone), None)
    assert THAAnnotatorScenarios.sameSegments(THAAnnotatorScenarios.segmentsState(segmentationNode, volumeNode), before)
    assert THAAnnotatorScenarios.sceneSnapshot(scene) == nodes


def test_package_versions_are_those_pyproject_asks_for():
    import tomllib

    project = tomllib.loads((MODULE_DIR.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {requirement.partition(">=")[0]: requirement for requirement in
              project["dependencies"] + project["optional-dependencies"]["model"]}
    pinned = [r for _, r in dependencies.REQUIRED_PACKAGES + dependencies.MODEL_PACKAGES] + [dependencies.TORCH_REQUIREMENT]
    assert pinned == [wanted[r.partition(">=")[0]] for r in pinned]


def test_old_packages_count_as_missing_and_torch_is_version_checked(monkeypatch):
    realVersion = importlib.metadata.version
    old = {"scikit-image": "0.19.3", "torch": "2.1.0+cu118"}
    monkeypatch.setattr(importlib.metadata, "version", lambda name: old.get(name) or realVersion(name))
    assert dependencies.missingPythonPackages() == ["scikit-image>=0.21"]
    if importlib.util.find_spec("torch") is not None:
        with pytest.raises(InputError, match=r"PyTorch 2\.4 or newer, but PyTorch 2\.1\.0\+cu118 is installed"):
            dependencies.ensureTorch()


def _withoutMaxflow(monkeypatch) -> set:
    """PyMaxflow looks uninstalled while the returned set holds "maxflow"."""
    realFindSpec = importlib.util.find_spec
    absent = {"maxflow"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in absent else realFindSpec(name, *args))
    return absent


def _fakePipEnsure(monkeypatch, absent: set, installs: bool = True) -> list:
    """Slicer 5.11's slicer.pydeps.pip_ensure, recording its calls (and installing, or not)."""
    from types import SimpleNamespace

    calls = []

    def pipEnsure(requirements, prompt_install=True, requester=None, skip_in_testing=True, **kwargs):
        calls.append(([str(r) for r in requirements], prompt_install, requester, skip_in_testing))
        if installs:
            absent.clear()

    monkeypatch.setitem(sys.modules, "slicer.pydeps", SimpleNamespace(pip_ensure=pipEnsure))
    return calls


def test_slicers_pip_ensure_installs_where_slicer_has_it(monkeypatch):
    """Slicer 5.11+ has slicer.pydeps.pip_ensure (it asks and installs with progress): the panel
    uses it with the pinned requirements, and what is still missing afterwards is named."""
    absent = _withoutMaxflow(monkeypatch)
    calls = _fakePipEnsure(monkeypatch, absent)
    dependencies.ensurePythonPackages()
    assert calls == [(["PyMaxflow>=1.3"], True, "THA Annotator", False)]
    absent.add("maxflow")
    calls = _fakePipEnsure(monkeypatch, absent, installs=False)  # the user declined
    with pytest.raises(InputError, match="PyMaxflow>=1.3 are not installed"):
        dependencies.ensurePythonPackages()


def test_the_self_test_installs_missing_packages_as_the_panel_does(monkeypatch):
    absent = _withoutMaxflow(monkeypatch)
    absent.add("monai")  # the model's packages too, where torch is installed
    calls = _fakePipEnsure(monkeypatch, absent)
    monkeypatch.setattr(dependencies, "packageIndexReachable", lambda timeout=5.0: True)
    ran = []
    monkeypatch.setattr(THAAnnotatorScenarios, "SCENARIOS", (lambda scene: ran.append(scene) or {},))
    THAAnnotator.THAAnnotatorTest().runTest()
    # the panel's path (pip_ensure, the pinned requirements), without the question; then the scenarios
    wanted = ["PyMaxflow>=1.3"] + (["monai>=1.5"] if importlib.util.find_spec("torch") is not None else [])
    assert calls == [(wanted, False, "THA Annotator", False)] and len(ran) == 1


def test_the_self_test_is_skipped_with_the_reason_only_without_network(monkeypatch):
    import unittest

    absent = _withoutMaxflow(monkeypatch)
    calls = _fakePipEnsure(monkeypatch, absent)
    monkeypatch.setattr(dependencies, "packageIndexReachable", lambda timeout=5.0: False)
    monkeypatch.setattr(THAAnnotatorScenarios, "SCENARIOS", ())
    with pytest.raises(unittest.SkipTest, match=r"PyMaxflow>=1\.3 are not installed and the package index \(pypi\.org\)"):
        THAAnnotator.THAAnnotatorTest().runTest()
    assert calls == []
    absent.clear()  # nothing missing: no network needed, nothing skipped
    THAAnnotator.THAAnnotatorTest().runTest()


def test_the_package_index_probe_answers_false_where_it_cannot_connect(monkeypatch):
    monkeypatch.setattr(dependencies, "PACKAGE_INDEX", ("127.0.0.1", 9))  # the discard port: closed here
    assert dependencies.packageIndexReachable(timeout=1.0) is False


def test_model_agreement_is_shown_per_hip_in_the_measurements_and_the_summary():
    from THAAnnotatorLib.result import SideResult

    scene = slicer.vtkMRMLScene()
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    annotation = THAAnnotatorScenarios.truthAnnotation()
    annotation.sides["right"] = SideResult("right", "segmented", model_agreement={"acetabulum": 0.912,
                                                                                   "femoral_head": 0.981})
    annotation.sides["left"] = SideResult("left", "segmented")
    output = THAAnnotatorLogic(scene).writeResults(volumeNode, None, mrml.volumeFromNode(volumeNode),
                                                   annotation.bone, annotation)
    rows = results.measurements(output.segmentationNode)
    assert (rows["right"]["Model agreement acetabulum"], rows["right"]["Model agreement femoral head"]) == (0.912,
                                                                                                          0.981)
    assert np.isnan(rows["left"]["Model agreement acetabulum"]) and np.isnan(rows["left"]["Model agreement femoral head"])
    assert "model agreement 0.912 (acetabulum), 0.981 (femoral head)" in results.summary(annotation)


def test_measurement_markups_follow_the_volumes_transform_and_a_hip_not_measured_has_none():
    """The markups' coordinates are the volume's RAS: under a transform they move with it. A hip
    measured on one run and not on the next loses its markups; the table says why."""
    from THAAnnotatorLib.measure import HipMeasurements
    from THAAnnotatorLib.measure.landmarks import center_edge_points_ras_mm

    scene = slicer.vtkMRMLScene()
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    toWorld = np.array([[0.0, -1.0, 0.0, 10.0], [1.0, 0.0, 0.0, -5.0], [0.0, 0.0, 1.0, 30.0], [0.0, 0.0, 0.0, 1.0]])
    transform.SetMatrixTransformToParent(mrml.arrayToMatrix(toWorld))
    volumeNode.SetAndObserveTransformNodeID(transform.GetID())
    annotation = THAAnnotatorScenarios.truthAnnotation()
    for side, result in annotation.sides.items():
        center = np.asarray(result.sphere_center_ras_mm)
        lateral = 1.0 if side == "right" else -1.0
        result.measurements = HipMeasurements(
            acetabular_diameter_mm=52.0, opening_center_ras_mm=tuple(center + [lateral * 12.0, 6.0, -10.0]),
            opening_normal_ras=(lateral * 0.64, 0.2, -0.74), center_edge_deg=-5.0 if side == "right" else 33.0)
    logic = THAAnnotatorLogic(scene)
    volume = mrml.volumeFromNode(volumeNode)
    output = logic.writeResults(volumeNode, None, volume, annotation.bone, annotation)
    for side, result in annotation.sides.items():
        plane, angle = output.openingPlaneNodes[side], output.centerEdgeAngleNodes[side]
        assert plane.GetTransformNodeID() == angle.GetTransformNodeID() == transform.GetID()
        center = [0.0] * 3
        plane.GetCenterWorld(center)
        expected = toWorld @ np.append(result.measurements.opening_center_ras_mm, 1.0)
        assert np.linalg.norm(np.subtract(center, expected[:3])) < 0.1, (side, center, expected)
        points = slicer.util.arrayFromMarkupsControlPoints(angle, world=True)
        library = (toWorld @ np.column_stack([center_edge_points_ras_mm(result), np.ones(3)]).T).T[:, :3]
        assert np.abs(points - library).max() < 0.1, (side, points, library)
        assert abs(angle.GetAngleDegrees() - abs(result.measurements.center_edge_deg)) < 0.1  # -5: medial edge

    annotation.sides["left"].measurements = HipMeasurements(not_computed="the scan's field of view cuts the acetabulum")
    again = logic.writeResults(volumeNode, output.segmentationNode, volume, annotation.bone, annotation)
    assert list(again.openingPlaneNodes) == list(again.centerEdgeAngleNodes) == ["right"]
    assert output.openingPlaneNodes["left"].GetScene() is None and output.centerEdgeAngleNodes["left"].GetScene() is None
    row = results.measurements(again.segmentationNode)["left"]
    assert row["Not measured"] == "the scan's field of view cuts the acetabulum" and np.isnan(row["Center-edge angle"])


def _measuredAnnotation(measured=("right", "left")):
    """The phantom's truth with a Hough circle per hip and THA planning measurements for the hips
    ``measured`` (the others: not computed), so that every overlay and measurement markup is written."""
    from THAAnnotatorLib.measure import HipMeasurements
    from THAAnnotatorLib.result import SliceCircle

    annotation = THAAnnotatorScenarios.truthAnnotation()
    for side, result in annotation.sides.items():
        center = np.asarray(result.sphere_center_ras_mm)
        lateral = 1.0 if side == "right" else -1.0
        result.initial_slice = 20
        result.circles = [SliceCircle(20, tuple(center), 0.5 * result.head_diameter_mm,
                                      [tuple(center + [0.5 * result.head_diameter_mm, 0.0, 0.0])])]
        result.measurements = HipMeasurements(
            acetabular_diameter_mm=52.0, opening_center_ras_mm=tuple(center + [lateral * 12.0, 6.0, -10.0]),
            opening_normal_ras=(lateral * 0.64, 0.2, -0.74), center_edge_deg=33.0) if side in measured else (
            HipMeasurements(not_computed="the scan's field of view cuts the acetabulum"))
    return annotation


def _overlayVisibility(output) -> dict:
    """(kind, side) -> whether the markup's display node is visible, for every overlay of a run."""
    kinds = {"circle": output.circleNodes, "boundary points": output.boundaryPointNodes,
             "opening plane": output.openingPlaneNodes, "center-edge angle": output.centerEdgeAngleNodes}
    return {(kind, side): bool(node.GetDisplayNode().GetVisibility())
            for kind, nodes in kinds.items() for side, node in nodes.items()}


def test_a_run_while_show_overlays_is_off_writes_every_overlay_and_measurement_markup_hidden():
    """The parameter node's ShowOverlays decides: a run into a new segmentation, and a re-run that
    updates the markups of one hip and adds those of a hip measured for the first time, write
    them all hidden while it is "false"; shown again once it is "true" and the run repeated."""
    scene = slicer.vtkMRMLScene()
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    volume = mrml.volumeFromNode(volumeNode)
    logic = THAAnnotatorLogic(scene)
    logic.getParameterNode().SetParameter("ShowOverlays", "false")
    annotation = _measuredAnnotation(measured=("right",))
    first = logic.writeResults(volumeNode, None, volume, annotation.bone, annotation)
    assert set(_overlayVisibility(first)) == {("circle", "right"), ("circle", "left"), ("boundary points", "right"),
                                              ("boundary points", "left"), ("opening plane", "right"),
                                              ("center-edge angle", "right")}
    assert not any(_overlayVisibility(first).values()), _overlayVisibility(first)

    annotation = _measuredAnnotation()  # the left hip measured now: its markups are new
    again = logic.writeResults(volumeNode, first.segmentationNode, volume, annotation.bone, annotation)
    assert again.openingPlaneNodes["right"] is first.openingPlaneNodes["right"] and len(again.openingPlaneNodes) == 2
    assert len(_overlayVisibility(again)) == 8 and not any(_overlayVisibility(again).values()), _overlayVisibility(again)

    logic.getParameterNode().SetParameter("ShowOverlays", "true")
    shown = logic.writeResults(volumeNode, first.segmentationNode, volume, annotation.bone, annotation)
    assert len(_overlayVisibility(shown)) == 8 and all(_overlayVisibility(shown).values()), _overlayVisibility(shown)


class _QtStandIn:
    """A Qt widget's stand-in: any property may be set; a selector keeps its current node's ID; setting
    ``checked`` to a new value calls the slots connected to "toggled(bool)", in order, as Qt does."""

    def __init__(self):
        self.__dict__.update(enabled=None, toolTip="", text="", value=0, currentIndex=0, currentPath="",
                             currentNodeID=None, _checked=False, _slots={})

    @property
    def checked(self):
        return self._checked

    @checked.setter
    def checked(self, value):
        changed, self._checked = bool(value) != self._checked, bool(value)
        for slot in self._slots.get("toggled(bool)", []) if changed else []:
            slot(self._checked)

    def connect(self, signal, slot):
        self._slots.setdefault(signal, []).append(slot)

    def setCurrentNode(self, node):
        self.currentNodeID = node.GetID() if node is not None else None


class _QtStandIns:
    def __getattr__(self, name):  # a widget the panel uses: made on first use
        widget = _QtStandIn()
        setattr(self, name, widget)
        return widget


def test_the_show_overlays_check_box_hides_and_shows_the_measurement_markups_and_a_rerun_keeps_them_hidden(
        monkeypatch):
    """The panel's "Show overlays" check box, wired as setup() wires it (the results section first,
    then the parameter node), with stand-ins for the Qt widgets: unchecked, the Hough circles, the
    boundary points, the acetabular opening planes and the center-edge angles are hidden and the
    parameter node says so; a re-run meanwhile writes its new and updated markups hidden; checked
    again, all are shown."""
    from types import SimpleNamespace

    from slicer.util import VTKObservationMixin

    scene = slicer.vtkMRMLScene()
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    volume = mrml.volumeFromNode(volumeNode)
    logic = THAAnnotatorLogic(scene)
    widget = object.__new__(THAAnnotator.THAAnnotatorWidget)  # skips the Qt set-up
    VTKObservationMixin.__init__(widget)
    widget.logic, widget._parameterNode, widget._updatingGUIFromParameterNode = logic, None, False
    widget._busy, widget._job, widget._predictToolTip = False, None, ""
    widget.ui = ui = _QtStandIns()
    widget.reviewQueue = SimpleNamespace(updateButtons=lambda: None, busy=False)
    monkeypatch.setattr(ResultsSection, "observeRedSlice", lambda self: None)  # no slice views here
    widget.resultsSection = ResultsSection(ui, logic, lambda: widget._parameterNode)
    ui.showOverlaysCheckBox.connect("toggled(bool)", widget.updateParameterNodeFromGUI)
    widget.setParameterNode(logic.getParameterNode())
    parameterNode = widget._parameterNode
    assert ui.showOverlaysCheckBox.checked and parameterNode.GetParameter("ShowOverlays") == "true"

    annotation = _measuredAnnotation(measured=("right",))
    output = logic.writeResults(volumeNode, None, volume, annotation.bone, annotation)
    parameterNode.SetNodeReferenceID("OutputSegmentation", output.segmentationNode.GetID())  # as _pollJob does
    assert len(_overlayVisibility(output)) == 6 and all(_overlayVisibility(output).values())

    ui.showOverlaysCheckBox.checked = False  # the user unchecks it
    assert parameterNode.GetParameter("ShowOverlays") == "false"
    assert not any(_overlayVisibility(output).values()), _overlayVisibility(output)

    annotation = _measuredAnnotation()  # "Segment hips" again: the left hip is measured now
    again = logic.writeResults(volumeNode, output.segmentationNode, volume, annotation.bone, annotation)
    parameterNode.SetNodeReferenceID("OutputSegmentation", again.segmentationNode.GetID())
    assert not ui.showOverlaysCheckBox.checked and parameterNode.GetParameter("ShowOverlays") == "false"
    assert len(_overlayVisibility(again)) == 8 and not any(_overlayVisibility(again).values()), _overlayVisibility(again)

    ui.showOverlaysCheckBox.checked = True
    assert parameterNode.GetParameter("ShowOverlays") == "true"
    assert all(_overlayVisibility(again).values()), _overlayVisibility(again)
    again.openingPlaneNodes["left"].GetDisplayNode().SetVisibility(False)  # hidden by hand: other settings keep it so
    ui.fsgCheckBox.checked = False
    widget.updateParameterNodeFromGUI()
    assert parameterNode.GetParameter("UseFSG") == "false" and parameterNode.GetParameter("ShowOverlays") == "true"
    assert [key for key, visible in _overlayVisibility(again).items() if not visible] == [("opening plane", "left")]

    parameterNode.SetParameter("ShowOverlays", "false")  # a script, or a scene saved so: the check box follows
    assert not ui.showOverlaysCheckBox.checked and not any(_overlayVisibility(again).values()), _overlayVisibility(again)
    widget.removeObservers()


def test_device_parameter():
    node = THAAnnotatorLogic(slicer.vtkMRMLScene()).getParameterNode()
    assert parameters.deviceFromParameterNode(node) == "auto"
    node.SetParameter("Device", "cuda")
    assert parameters.deviceFromParameterNode(node) == "cuda"
    node.SetParameter("Device", "tpu")
    with pytest.raises(InputError, match="Device"):
        parameters.deviceFromParameterNode(node)


def _needModel():
    if not model.modelAvailable() or any(importlib.util.find_spec(n) is None for n in ("torch", "monai", "safetensors")):
        pytest.skip("model inference needs torch, MONAI and safetensors")


def test_the_loaded_model_is_kept_while_its_files_are_unchanged(tmp_path):
    _needModel()
    THAAnnotatorScenarios.saveFemoralHeadModel(tmp_path)
    cache = model.ModelCache()
    first = cache.load(str(tmp_path), "cpu")
    assert cache.load(str(tmp_path), "cpu") is first
    description = tmp_path / "model.json"
    stat = description.stat()
    os.utime(description, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a retrained model
    second = cache.load(str(tmp_path), "cpu")
    assert second is not first and cache.load(str(tmp_path), "cpu") is second


def test_a_gpu_out_of_memory_runs_the_model_again_on_the_cpu(monkeypatch):
    _needModel()
    import torch
    from types import SimpleNamespace

    from THAAnnotatorLib.model import inference, network

    realLoad, realPredict = network.load_model, inference.predict_scan
    devices = []

    def load(folder, device="auto"):
        devices.append(device)
        return SimpleNamespace(device=torch.device("cuda")) if device == "cuda" else realLoad(folder, device)

    def predict(volume, loaded, *args, **kwargs):
        if loaded.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return realPredict(volume, loaded, *args, **kwargs)

    monkeypatch.setattr(network, "load_model", load)
    monkeypatch.setattr(inference, "predict_scan", predict)
    scene = slicer.vtkMRMLScene()
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    # the bundled model: the model predict_scan is given must find a hip (a network answering
    # "femoral head" everywhere is refused as no hip)
    output = THAAnnotatorLogic(scene).predict(volumeNode, None, Params(),
                                              modelPath=str(network.BUNDLED_MODEL_DIR), device="cuda")
    assert devices == ["cuda", "cpu"]
    assert output.messages == ["The GPU ran out of memory, so the model ran on the CPU."]
    assert {r.status for r in output.annotation.sides.values()} == {"segmented"}


def test_model_results_on_the_real_ct_carry_the_librarys_warnings_and_needs_review(shared_ct_path):
    """The real CT has 3 mm voxels, for which the library warns (and the pipeline flags its right
    hip); the model's right hip must not pass for checked either (it said "needs review: no")."""
    _needModel()
    scene = slicer.vtkMRMLScene()
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(shared_ct_path))
    volumeNode = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "pelvis")
    assert storage.ReadData(volumeNode)
    output = THAAnnotatorLogic(scene).predict(volumeNode, None, Params(), device="cpu")
    right = results.measurements(output.segmentationNode)["right"]
    assert right["Status"] == "segmented" and right["Needs review"] == "yes", right
    from THAAnnotatorLib.pipeline import resolution_warnings

    expected = resolution_warnings(mrml.volumeFromNode(volumeNode).spacing_mm)
    assert expected and all(warning in right["Warnings"] for warning in expected), right["Warnings"]


def test_a_background_run_on_a_512_by_512_by_200_scan_is_cancelled_within_half_a_second():
    """Cancel kills the worker whatever the library is doing; nothing reaches the scene."""
    from THAAnnotatorSlicerLib import runner

    scene = slicer.vtkMRMLScene()
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene, fovMm=THAAnnotatorScenarios.LARGE_FOV_MM)
    assert slicer.util.arrayFromVolume(volumeNode).size == 512 * 512 * 200
    logic = THAAnnotatorLogic(scene)
    before = THAAnnotatorScenarios.sceneSnapshot(scene)
    job = logic.start("hips", volumeNode)
    end = time.monotonic() + 120
    while job.poll() == runner.RUNNING and job.fraction == 0.0 and time.monotonic() < end:
        time.sleep(0.05)  # until the worker is inside the library
    time.sleep(1.0)
    assert job.poll() == runner.RUNNING, job.message
    began = time.monotonic()
    job.cancel()
    assert job.poll() == runner.CANCELLED
    latency = time.monotonic() - began
    assert latency < 0.5 and job._process.poll() is not None and not os.path.exists(job.folder), latency
    assert THAAnnotatorScenarios.sceneSnapshot(scene) == before
    print(f"cancelled during {job.message!r} in {latency * 1000:.0f} ms")


def _headlessWidget(scene):
    """The panel with stand-ins for its Qt widgets and timer (no Slicer application here)."""
    from types import SimpleNamespace

    logic = THAAnnotatorLogic(scene)
    widget = object.__new__(THAAnnotator.THAAnnotatorWidget)  # skips the Qt set-up
    widget.logic, widget._parameterNode, widget._busy, widget._job = logic, logic.getParameterNode(), False, None
    shown = []
    widget._predictToolTip, widget.reviewQueue = "", SimpleNamespace(updateButtons=lambda: None)
    widget.resultsSection = SimpleNamespace(updateButtons=lambda busy: None,
                                            showResults=lambda output, volumeNode: shown.append(output))
    widget.ui = SimpleNamespace(**{name: SimpleNamespace(enabled=None, toolTip="", value=0, text="") for name in (
        "extractBoneButton", "segmentHipsButton", "predictButton", "cancelButton", "markReviewedButton",
        "restorePreviousButton", "inputsCollapsibleButton", "advancedCollapsibleButton", "progressBar", "statusLabel")})
    widget._timer = SimpleNamespace(active=False)
    widget._timer.start = lambda: setattr(widget._timer, "active", True)
    widget._timer.stop = lambda: setattr(widget._timer, "active", False)
    return widget, shown


def test_the_panel_polls_a_background_run_and_writes_its_result():
    scene = slicer.vtkMRMLScene()
    widget, shown = _headlessWidget(scene)
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    widget._parameterNode.SetNodeReferenceID("InputVolume", volumeNode.GetID())
    widget._run("bone")
    assert widget._timer.active and widget._busy and widget.ui.cancelButton.enabled
    assert widget.ui.inputsCollapsibleButton.enabled is False and widget.ui.segmentHipsButton.enabled is False
    progress = []
    while widget._timer.active:  # the QTimer's ticks
        time.sleep(0.1)
        widget._pollJob()
        progress.append(widget.ui.progressBar.value)
    assert progress[-1] == 100 and progress == sorted(progress) and not widget._busy
    (output,) = shown
    assert widget._parameterNode.GetNodeReference("OutputSegmentation") is output.segmentationNode
    assert output.segmentationNode.GetSegmentation().GetSegment(results.BONE_SEGMENT_ID) is not None

    before = THAAnnotatorScenarios.sceneSnapshot(scene)  # Cancel: the next tick reports it, nothing is written
    widget._run("hips")
    widget.onCancel()
    widget._pollJob()
    assert not widget._timer.active and widget.ui.statusLabel.text == "Cancelled; the scene was left unchanged."
    assert THAAnnotatorScenarios.sceneSnapshot(scene) == before and len(shown) == 1


def test_the_question_about_edited_segments_defaults_to_a_new_segmentation(monkeypatch):
    """The panel's dialog before a run overwrites edited segments: it names them, "New
    segmentation" is its default button, and each button (or closing it) gives the Logic its answer."""
    from types import SimpleNamespace

    from THAAnnotatorSlicerLib import edits
    from THAAnnotatorSlicerLib.resultspanel import askAboutEdits

    boxes = []

    class MessageBox:
        Question, AcceptRole, DestructiveRole, Cancel = "question", "accept", "destructive", "cancel"
        press = None  # the text of the button the user presses; None: the dialog is closed

        def __init__(self, icon, title, text):
            self.text, self.buttons, self.default = text, [], None
            boxes.append(self)

        def addButton(self, label, role=None):
            button = type("Button", (), {"label": label, "role": role})()  # hashable, as Qt's buttons are
            self.buttons.append(button)
            return button

        def setDefaultButton(self, button):
            self.default = button

        def exec_(self):
            return 0

        def clickedButton(self):
            return next((b for b in self.buttons if b.label == MessageBox.press), None)

    monkeypatch.setitem(sys.modules, "qt", SimpleNamespace(QMessageBox=MessageBox))
    mrml.ensureSegmentationConverterRules()
    scene = slicer.vtkMRMLScene()
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my segmentation")
    segmentationNode.GetSegmentation().AddEmptySegment("right_femoral_head", "Right femoral head")
    answers = {}
    for press in ("New segmentation", "Replace", MessageBox.Cancel, None):
        MessageBox.press = press
        answers[press] = askAboutEdits(segmentationNode, ["right_femoral_head"])
    assert answers == {"New segmentation": edits.NEW_SEGMENTATION, "Replace": edits.REPLACE,
                       MessageBox.Cancel: edits.CANCEL, None: edits.CANCEL}
    assert all(box.default is not None and box.default.label == "New segmentation" for box in boxes)
    assert 'Right femoral head in "my segmentation"' in boxes[0].text


def test_closing_the_scene_during_a_panel_run_cancels_it_and_frees_the_panel():
    """File > Close Scene while Segment hips works: the run stops at once, the next tick of the
    panel's timer reports it cancelled and enables the panel again, and nothing is written."""
    from THAAnnotatorSlicerLib import runner

    scene = slicer.vtkMRMLScene()
    widget, shown = _headlessWidget(scene)
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene)
    widget._parameterNode.SetNodeReferenceID("InputVolume", volumeNode.GetID())
    widget._run("hips")
    job = widget._job
    assert widget._busy and widget._timer.active and widget.ui.cancelButton.enabled
    scene.Clear(0)
    widget._parameterNode = None  # what the panel's StartCloseEvent observer does (onSceneStartClose)
    assert job.poll() == runner.CANCELLED and (job._process is None or job._process.poll() is not None)
    assert not os.path.exists(job.folder), "the worker's files outlived the scene"
    widget._pollJob()
    assert not widget._timer.active and not widget._busy and widget._job is None
    assert widget.ui.statusLabel.text == "Cancelled; the scene was left unchanged."
    assert widget.ui.cancelButton.enabled is False and widget.ui.inputsCollapsibleButton.enabled is True
    assert not shown and scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
