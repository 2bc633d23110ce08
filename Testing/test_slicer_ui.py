"""Static checks of the 3D Slicer module: its file, its Qt Designer panel, its resources, and the
rule that the library never imports Slicer, Qt or CTK. None of these needs Slicer or Qt."""
from __future__ import annotations

import ast
import json
import struct
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "THAAnnotator"
MODULE_FILE = MODULE_DIR / "THAAnnotator.py"
PACKAGE_DIR = MODULE_DIR / "THAAnnotatorSlicerLib"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "THAAnnotator.ui"
TERMINOLOGY_FILE = MODULE_DIR / "Resources" / "SegmentationCategoryTypeModifier-THAAnnotator.term.json"
ICON_FILE = MODULE_DIR / "Resources" / "Icons" / "THAAnnotator.png"

# Blocks imports of the Slicer application's modules (and, for the library, of slicer itself).
_BLOCKER = textwrap.dedent("""
    import importlib.abc, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def __init__(self, names):
            self.names = names
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names or name in self.names:
                raise ImportError(f"blocked import of {name}")
            return None

    """)


def _module_tree(path: Path = MODULE_FILE) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _ui_widgets() -> dict[str, str]:
    root = ET.parse(UI_FILE).getroot()
    return {w.get("name"): w.get("class") for w in root.iter("widget")}


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_module_file_is_python_with_the_four_classes_slicer_expects():
    tree = _module_tree()
    classes = {node.name: [ast.unparse(base) for base in node.bases]
               for node in tree.body if isinstance(node, ast.ClassDef)}
    expected = {
        "THAAnnotator": "ScriptedLoadableModule",
        "THAAnnotatorWidget": "ScriptedLoadableModuleWidget",
        "THAAnnotatorLogic": "ScriptedLoadableModuleLogic",
        "THAAnnotatorTest": "ScriptedLoadableModuleTest",
    }
    for name, base in expected.items():
        assert name in classes, f"{name} missing"
        assert base in classes[name], (name, classes[name])
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "THAAnnotatorLogic")
    methods = {n.name for n in logic.body if isinstance(n, ast.FunctionDef)}
    assert {"run", "predict", "getParameterNode", "writeResults"} <= methods


def test_module_file_is_short_and_its_parts_live_in_the_package():
    """THAAnnotator.py keeps what Slicer looks for; the rest is in THAAnnotatorSlicerLib, whose
    files never import the module or the scenarios back."""
    lines = len(MODULE_FILE.read_text(encoding="utf-8").splitlines())
    assert lines <= 520, f"THAAnnotator.py has {lines} lines"
    logic = next(n for n in _module_tree().body if isinstance(n, ast.ClassDef) and n.name == "THAAnnotatorLogic")
    assert logic.end_lineno - logic.lineno < 180, "the Logic is not thin"
    for path in PACKAGE_DIR.glob("*.py"):
        imported = {alias.name.split(".")[0] for node in ast.walk(_module_tree(path))
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(_module_tree(path))
                     if isinstance(node, ast.ImportFrom) and node.module}
        # the panel's review queue and results sections are the files with Qt widgets
        forbidden = {"THAAnnotator", "THAAnnotatorScenarios", "ctk"} | (
            {"qt"} if path.name not in ("reviewpanel.py", "resultspanel.py") else set())
        assert not imported & forbidden, (path.name, imported)
    scenarios = _module_tree(MODULE_DIR / "THAAnnotatorScenarios.py")
    private = sorted({f"{node.value.id}.{node.attr}" for node in ast.walk(scenarios) if isinstance(node, ast.Attribute)
                      and isinstance(node.value, ast.Name) and node.attr.startswith("_")
                      and node.value.id in ("THAAnnotator", "mrml", "model", "parameters", "results", "review")})
    assert not private, f"the scenarios use private names: {private}"


def test_every_widget_the_panel_uses_is_in_the_ui_file():
    used = {node.attr for path in (MODULE_FILE, PACKAGE_DIR / "reviewpanel.py", PACKAGE_DIR / "resultspanel.py")
            for node in ast.walk(_module_tree(path))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    widgets = _ui_widgets()
    assert used, "the Widget uses no self.ui.<name>; the check would be empty"
    missing = sorted(used - set(widgets))
    assert not missing, f"the Widget uses widgets the .ui file lacks: {missing}"
    for name in ("inputVolumeSelector", "outputSegmentationSelector", "sideComboBox", "fsgCheckBox", "lnmsCheckBox",
                 "ahsCheckBox", "graphCutLambdaSpinBox", "blurSigmaSpinBox", "raysSpinBox", "percentileSpinBox",
                 "extractBoneButton", "segmentHipsButton", "predictButton", "progressBar", "cancelButton",
                 "queueTableWidget", "markReviewedButton", "saveCorrectionButton", "previousEntryButton",
                 "nextEntryButton", "reviewProgressLabel", "thumbnailLabel", "segmentEditorFrame", "fineTuneButton",
                 "rebuildQueueButton", "taskCancelButton", "taskLogTextEdit"):
        assert name in used, f"{name} is in the issue's panel but the Widget never uses it"


def test_ui_file_is_a_designer_form_slicer_can_load():
    root = ET.parse(UI_FILE).getroot()
    assert root.tag == "ui" and root.get("version") == "4.0"
    top = root.find("widget")
    assert (top.get("class"), top.get("name")) == ("qMRMLWidget", "THAAnnotator")
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    for name, cls in _ui_widgets().items():
        assert cls.startswith("Q") or cls in declared, f"{name}: custom widget class {cls} is not declared"
    # node selectors and MRML views get the scene from the top-level widget
    receivers = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    mrml = {name for name, cls in _ui_widgets().items() if cls.startswith("qMRML") and name != "THAAnnotator"}
    assert mrml <= receivers, sorted(mrml - receivers)
    # the side combo box lists SIDE_CHOICES in order
    choices = next(ast.literal_eval(n.value) for n in _module_tree(PACKAGE_DIR / "parameters.py").body
                   if isinstance(n, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "SIDE_CHOICES" for t in n.targets))
    combo = next(w for w in root.iter("widget") if w.get("name") == "sideComboBox")
    items = [item.findtext("property/string") for item in combo.findall("item")]
    assert [text.split()[0].lower() for text in items] == list(choices), items
    advanced = next(w for w in root.iter("widget") if w.get("name") == "advancedCollapsibleButton")
    inside = {w.get("name") for w in advanced.iter("widget")}
    assert {"fsgCheckBox", "lnmsCheckBox", "ahsCheckBox", "halfMaximumCheckBox", "slabHeightCheckBox",
            "graphCutLambdaSpinBox",
            "blurSigmaSpinBox", "raysSpinBox", "percentileSpinBox"} <= inside


def test_library_never_imports_slicer_qt_or_ctk():
    code = _BLOCKER + textwrap.dedent("""
        blocked = {"slicer", "qt", "ctk", "vtkmodules", "vtk", "PythonQt"}
        sys.meta_path.insert(0, Blocker(blocked))
        import importlib, pkgutil
        import THAAnnotatorLib
        names = [m.name for m in pkgutil.walk_packages(THAAnnotatorLib.__path__, "THAAnnotatorLib.")]
        for name in names:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
        assert not leaked, leaked
        print(len(names), "modules")
        """)
    result = _run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[0]) >= 10


def test_module_imports_without_the_slicer_application_qt_or_ctk():
    pytest.importorskip("slicer", reason="the slicer-core wheel is needed to import the module headless")
    code = _BLOCKER + textwrap.dedent(f"""
        sys.meta_path.insert(0, Blocker({{"qt", "ctk", "slicer.ScriptedLoadableModule", "PythonQt"}}))
        sys.path.insert(0, {str(MODULE_DIR)!r})
        import THAAnnotator
        assert THAAnnotator.SLICER_APPLICATION is False
        logic = THAAnnotator.THAAnnotatorLogic(__import__("slicer").vtkMRMLScene())
        assert logic.getParameterNode().GetParameter("Side") == "both"
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("qt", "ctk"))
        assert not leaked, leaked
        # the algorithms (and what Slicer may have to install first) load only when used
        heavy = sorted(m for m in ("maxflow", "skimage", "THAAnnotatorLib.pipeline", "THAAnnotatorLib.bone", "torch")
                       if m in sys.modules)
        assert not heavy, heavy
        try:
            THAAnnotator.THAAnnotatorWidget()
        except RuntimeError as error:
            assert "needs the 3D Slicer application" in str(error)
        else:
            raise AssertionError("the panel was built without Slicer")
        """)
    result = _run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]


def test_terminology_file_matches_the_library():
    from THAAnnotatorLib.terminology import ANATOMICAL_STRUCTURE, SEGMENTS, STRUCTURE_CODES, TERMINOLOGY_CONTEXT

    document = json.loads(TERMINOLOGY_FILE.read_text(encoding="utf-8"))
    assert document["SegmentationCategoryTypeContextName"] == TERMINOLOGY_CONTEXT
    (category,) = document["SegmentationCodes"]["Category"]
    assert (category["CodingSchemeDesignator"], category["CodeValue"]) == (ANATOMICAL_STRUCTURE.scheme,
                                                                           ANATOMICAL_STRUCTURE.value)
    types = {t["CodeValue"]: t for t in category["Type"]}
    assert types["272673000"]["CodeMeaning"] == "Bone"
    for segment in SEGMENTS:
        structure = types[STRUCTURE_CODES[segment.class_label].value]
        modifier = next(m for m in structure["Modifier"] if m["CodeMeaning"].lower() == segment.side)
        assert modifier["3dSlicerLabel"] == segment.name
        assert modifier["recommendedDisplayRGBValue"] == [round(255 * c) for c in segment.color]
    # the module's Bone terminology string names the same code
    bone = next(n for n in _module_tree(PACKAGE_DIR / "results.py").body if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "BONE_CODE" for t in n.targets))
    assert "272673000" in ast.unparse(bone)


def test_icon_is_a_128_pixel_png():
    data = ICON_FILE.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (128, 128)


def test_module_finds_the_library_one_folder_up_as_additional_module_paths_load_it(tmp_path):
    """Loaded from a checkout (no pip install of the library), the module imports ../THAAnnotatorLib."""
    pytest.importorskip("slicer", reason="the slicer-core wheel is needed to import the module headless")
    code = textwrap.dedent(f"""
        import sys
        # forget any installed copy of the library (an editable install's finder or a path entry)
        sys.meta_path = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
        sys.path_hooks = [h for h in sys.path_hooks if "editable" not in getattr(h, "__module__", "")]
        sys.path_importer_cache.clear()
        sys.path = [p for p in sys.path if p not in ("", {str(REPO)!r})]
        import importlib.util
        assert importlib.util.find_spec("THAAnnotatorLib") is None, "the library is still importable"
        sys.path.insert(0, {str(MODULE_DIR)!r})  # what Slicer does for a module path
        import THAAnnotator, THAAnnotatorLib
        assert THAAnnotatorLib.__file__.startswith({str(REPO / "THAAnnotatorLib")!r}), THAAnnotatorLib.__file__
        """)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_cmake_ships_every_file_of_the_module():
    """Each Python file and resource of THAAnnotator/ is listed in its CMakeLists.txt, so a built
    extension has what the module (and its self-test) loads; and nothing listed is missing."""
    import re

    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    name = re.search(r"set\(MODULE_NAME\s+(\S+)\)", text).group(1)
    listed = set()
    for variable in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
        body = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
        listed |= {entry.replace("${MODULE_NAME}", name) for entry in body.split()}
    present = {path.relative_to(MODULE_DIR).as_posix() for path in MODULE_DIR.rglob("*")
               if path.is_file() and "__pycache__" not in path.parts and path.name != "CMakeLists.txt"
               and path.parts[len(MODULE_DIR.parts):][:2] != ("Resources", "model")}
    assert listed == present, {"not listed": sorted(present - listed), "missing": sorted(listed - present)}


def test_cmake_ships_the_library_and_the_bundled_model():
    import re

    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"file\(GLOB_RECURSE THA_ANNOTATOR_LIB_SCRIPTS.*?\$\{THA_ANNOTATOR_LIB_DIR\}/\*\.py", text, re.S)
    assert "set(THA_ANNOTATOR_LIB_DIR ${CMAKE_CURRENT_SOURCE_DIR}/../THAAnnotatorLib)" in text
    listed = set(re.search(r"set\(THA_ANNOTATOR_MODEL_FILES\s+(.*?)\)", text).group(1).split())
    present = {path.name for path in (REPO / "Resources" / "model").iterdir() if path.is_file()}
    assert listed == present, {"not listed": sorted(present - listed), "missing": sorted(listed - present)}


def test_the_extension_depends_on_the_pytorch_extension():
    """"Predict with model" needs torch, which comes with Slicer's PyTorch extension: the extension
    declares it, so the Extensions Manager installs it with this one, and the module asks that
    extension's helper for torch."""
    import re

    declared = re.search(r'set\(EXTENSION_DEPENDS\s+"([^"]*)"\)', (REPO / "CMakeLists.txt").read_text(encoding="utf-8"))
    assert declared is not None and declared.group(1).split() == ["PyTorch"], declared
    dependencies = (PACKAGE_DIR / "dependencies.py").read_text(encoding="utf-8")
    assert "import PyTorchUtils" in dependencies and "torchVersionRequirement" in dependencies


def test_reload_imports_the_current_package_library_and_scenarios():
    """Slicer's "Reload" re-executes THAAnnotator.py only; the widget first drops the package, the
    library and the scenarios, so that the reloaded module (and the self-test) use their new code."""
    pytest.importorskip("slicer", reason="the slicer-core wheel is needed to import the module headless")
    code = textwrap.dedent(f"""
        import importlib, sys
        sys.path.insert(0, {str(MODULE_DIR)!r})
        import THAAnnotator, THAAnnotatorScenarios
        names = ("THAAnnotatorLib.errors", "THAAnnotatorSlicerLib.results", "THAAnnotatorScenarios")
        old = {{name: sys.modules[name] for name in names}}
        reloaded = []
        def slicerReload(widget):  # what ScriptedLoadableModuleWidget.onReload does: reload this file
            reloaded.append([name for name in names if name in sys.modules])
            importlib.reload(THAAnnotator)
        THAAnnotator.ScriptedLoadableModuleWidget.onReload = slicerReload
        THAAnnotator.THAAnnotatorWidget.onReload(object.__new__(THAAnnotator.THAAnnotatorWidget))
        assert reloaded == [[]], reloaded
        import THAAnnotatorScenarios
        for name in names:
            assert sys.modules[name] is not old[name], name
        assert THAAnnotatorScenarios.THAAnnotatorLogic is THAAnnotator.THAAnnotatorLogic
        assert THAAnnotator.InputError is sys.modules["THAAnnotatorLib.errors"].InputError
        """)
    result = _run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
