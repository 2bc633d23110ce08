"""The AAR loop in the 3D Slicer panel, headless on real MRML nodes (the slicer-core wheel): open a
review queue's entry (its scan and labels), correct a slice, "Save correction and next" (which
must change the dataset exactly as `tha-annotator apply-corrections` does), Previous / Next and
the "N of M reviewed" count, and the background commands "Fine-tune model" and "Rebuild queue".
"""
from __future__ import annotations

import json
import os
import shutil
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

import SimpleITK as sitk  # noqa: E402
import THAAnnotatorScenarios  # noqa: E402
from THAAnnotatorSlicerLib import mrml, review, review_loop, runner  # noqa: E402
from THAAnnotatorLib import cli  # noqa: E402
from THAAnnotatorLib.errors import InputError  # noqa: E402
from THAAnnotatorLib.io import sitk_reference_from_volume  # noqa: E402
from THAAnnotatorLib.labels import truth_side_labels  # noqa: E402
from THAAnnotatorLib.model.aar import apply_corrections, thumbnail_png  # noqa: E402
from THAAnnotatorLib.model.build import make_case  # noqa: E402
from THAAnnotatorLib.model.config import TrainOptions  # noqa: E402
from THAAnnotatorLib.model.dataset import SliceDataset  # noqa: E402
from THAAnnotatorLib.model.labelfiles import LabelMap  # noqa: E402
from THAAnnotatorLib.model.roi import RoiSpec  # noqa: E402
from THAAnnotatorLib.outputs import write_outputs  # noqa: E402
from THAAnnotatorLib.params import Params  # noqa: E402
from THAAnnotatorLib.phantom import generate_phantom, stored_hu  # noqa: E402
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, SIDES, Annotation  # noqa: E402
from THAAnnotatorLib.volume import canonicalize  # noqa: E402

SCANS = ("phantom00001", "phantom00002")


def _writeScan(root: Path, name: str, seed: int) -> tuple:
    """A coarse phantom CT and its truth labels as the pipeline's labels.seg.nrrd; returns the
    canonical volume, its file geometry, the side codes and the head centers (RAS mm)."""
    phantom = generate_phantom(spacing_mm=(3.0, 1.6, 1.6), fov_mm=(100.0, 280.0, 400.0), seed=seed,
                               head_radius_mm=(24.0, 23.0), noise_hu=10.0, spongy=False)
    volume, reference = phantom.volume, sitk_reference_from_volume(phantom.volume)
    image = sitk.GetImageFromArray(volume.to_source_layout(stored_hu(volume.hu)))
    image.CopyInformation(reference)
    (root / "scans").mkdir(exist_ok=True)
    sitk.WriteImage(image, str(root / "scans" / f"{name}.nii.gz"), useCompression=True)
    codes = truth_side_labels(phantom, Params())
    annotation = Annotation(bone=(codes > 0).astype(np.uint8), side_labels=codes, sides={})
    write_outputs(root / "labels" / name, reference, volume, annotation, Params())
    centers = {side: phantom.heads[side].center_ras_mm for side in SIDES}
    return volume, reference, codes, centers


@pytest.fixture(scope="module")
def aarSource(tmp_path_factory):
    """Two scans, a slice dataset of their four hips (labels from the labels files) and a review
    queue of five joint slices with thumbnails, in the format `review-queue` writes."""
    root = tmp_path_factory.mktemp("aar-loop")
    dataset = SliceDataset.create(root / "dataset", RoiSpec(size_mm=160.0, pixels=64, half_height_mm=40.0))
    items, scans = [], {}
    for seed, name in enumerate(SCANS, start=1):
        volume, reference, codes, centers = _writeScan(root, name, seed)
        labelsPath = root / "labels" / name / "labels.seg.nrrd"
        scans[name] = {"scan_path": str(root / "scans" / f"{name}.nii.gz"), "labels_path": str(labelsPath)}
        for side in SIDES:
            meta, data = make_case(volume, reference, name, side, centers[side],
                                   LabelMap(codes, sided=True).classes_for_side(side, (0, 0)), dataset.roi,
                                   scan_path=scans[name]["scan_path"], labels_path=str(labelsPath))
            dataset.write_case(meta, data)
            joint = [row for row, label in enumerate(data.label)
                     if (label == ACETABULUM).any() and (label == FEMORAL_HEAD).any()]
            for row in (joint[len(joint) // 2], joint[len(joint) // 2 + 1])[: 1 if name == SCANS[1] else 2]:
                thumbnail = f"thumbnails/{name}_{side}_{meta['slices'][row]:03d}.png"
                (root / "dataset" / "review" / "thumbnails").mkdir(parents=True, exist_ok=True)
                (root / "dataset" / "review" / thumbnail).write_bytes(
                    thumbnail_png(data.image[row], data.label[row], data.label[row]))
                items.append({"scan": name, "side": side, "slice": meta["slices"][row],
                              "uncertainty": float(10 - len(items)), "dice": {"acetabulum": 0.5, "femoral_head": 0.4},
                              "thumbnail": thumbnail, "corrected": False,
                              "position_ras_mm": [float(c) for c in centers[side]]})
    dataset.save_index()
    queue = {"version": 1, "dataset": str(root / "dataset"), "model": {"path": str(root / "model"), "sha256": None},
             "uncertainty": "1 / (Dice(prediction, label) + 1e-06)", "slices_scored": len(items),
             "scans": scans, "items": items[:5]}
    (root / "dataset" / "review" / "review_queue.json").write_text(json.dumps(queue), encoding="utf-8")
    (root / "dataset" / "review" / "review_queue.csv").write_text("rank\n", encoding="utf-8")
    return root


@pytest.fixture()
def aar(aarSource, tmp_path):
    """A private copy of the dataset and queue (the queue's dataset path pointing to it)."""
    shutil.copytree(aarSource / "dataset", tmp_path / "dataset")
    path = tmp_path / "dataset" / "review" / "review_queue.json"
    queue = json.loads(path.read_text(encoding="utf-8"))
    queue["dataset"], queue["model"]["path"] = str(tmp_path / "dataset"), str(tmp_path / "model")
    path.write_text(json.dumps(queue), encoding="utf-8")
    return path


def _caseFiles(dataset: Path) -> dict:
    return {path.name: path.read_bytes() for path in sorted((dataset / "cases").iterdir())}


def _queueItems(path: Path) -> list:
    return json.loads(path.read_text(encoding="utf-8"))["items"]


def _eraseOnSlice(volumeNode, segmentationNode, segmentId: str, canonicalSlice: int) -> None:
    """The annotator's correction, as the Segment Editor's eraser would make it: the segment
    erased on one axial slice (canonical index, as the queue counts them)."""
    indexToLps = mrml.arrayIndexToLps(volumeNode)
    mask = canonicalize(mrml.segmentArray(segmentationNode, segmentId, volumeNode), indexToLps)
    edited = mask.hu > 0.5
    assert edited[canonicalSlice].any(), "nothing to erase on that slice"
    edited[canonicalSlice] = False
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        mrml.orientedImageFromMask(mask.to_source_layout(edited.astype(np.uint8)), mrml.ijkToRasArray(volumeNode)),
        segmentationNode, segmentId, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)


def test_save_correction_changes_the_dataset_as_apply_corrections_does(aar, tmp_path):
    scene = slicer.vtkMRMLScene()
    loop = review_loop.ReviewLoop(str(aar))
    entry = loop.entry
    assert (entry.scan, loop.index, loop.progress()) == (SCANS[0], 0, "0 of 5 reviewed")
    volumeNode, segmentationNode = loop.open(scene)
    # the queue's scan and labels, loaded: the labels file's segments with the module's IDs
    assert volumeNode.GetName() == entry.scan and volumeNode.GetStorageNode().GetFileName() == entry.scanPath
    segmentIds = [segmentationNode.GetSegmentation().GetNthSegmentID(i)
                  for i in range(segmentationNode.GetSegmentation().GetNumberOfSegments())]
    assert sorted(segmentIds) == sorted(review_loop.HIP_SEGMENT_IDS)
    editor = scene.GetSingletonNode("SegmentEditor", "vtkMRMLSegmentEditorNode")
    assert editor.GetSegmentationNode() is segmentationNode and editor.GetSelectedSegmentID() == entry.segmentId

    dataset = Path(loop.datasetPath)
    before = SliceDataset.open(dataset)
    number = before.case_number(entry.scan, entry.side)
    row = before.cases[number]["slices"].index(entry.slice)
    firsts = [before.load_case(n) for n in range(len(before.cases))]
    assert (firsts[number].label[row] == FEMORAL_HEAD).any()
    shutil.copytree(dataset, tmp_path / "reference")  # the same dataset and queue for the command line
    _eraseOnSlice(volumeNode, segmentationNode, entry.segmentId, entry.slice)

    assert loop.saveCorrection(segmentationNode) == {entry.scan: 1}
    corrections = dataset / review_loop.CORRECTIONS_FOLDER / f"{entry.scan}.seg.nrrd"
    assert cli.main(["apply-corrections", str(tmp_path / "reference"), str(corrections), "--scan", entry.scan,
                     "--queue", str(tmp_path / "reference" / "review" / "review_queue.json")]) == 0

    panel, command = SliceDataset.open(dataset), SliceDataset.open(tmp_path / "reference")
    queuedRows = {}  # what the command line took: every queued slice of the scan
    for item in _queueItems(aar):
        if item["scan"] == entry.scan:
            n = before.case_number(item["scan"], item["side"])
            queuedRows.setdefault(n, []).append(before.cases[n]["slices"].index(item["slice"]))
    for n in range(len(before.cases)):
        ours, theirs, first = panel.load_case(n), command.load_case(n), firsts[n]
        # the labels are those the command line writes (the queue's other slices were not edited)
        np.testing.assert_array_equal(ours.label, theirs.label)
        changed = [row] if n == number else []
        assert sorted(np.flatnonzero(ours.corrected)) == changed, n  # only the reviewed slice is taken
        assert sorted(np.flatnonzero(theirs.corrected)) == sorted(queuedRows.get(n, []))
        if n == number:
            np.testing.assert_array_equal(ours.label_original, first.label)
            np.testing.assert_array_equal(ours.label_original, theirs.label_original)
        else:
            assert ours.label_original is None
        keep = [r for r in range(len(first.label)) if r not in changed]
        np.testing.assert_array_equal(ours.label[keep], first.label[keep])
    assert not (panel.load_case(number).label[row] == FEMORAL_HEAD).any(), "the erased head is still in the dataset"
    assert (panel.load_case(number).label[row] == ACETABULUM).any()

    items = _queueItems(aar)
    assert [(i.get("reviewed", False), i["corrected"]) for i in items] == [(True, True)] + [(False, False)] * 4
    assert loop.index == 0 and loop.progress() == "1 of 5 reviewed"
    assert loop.move(1) and loop.entry.slice == items[1]["slice"]


def test_mark_reviewed_sets_reviewed_not_corrected_and_leaves_the_dataset(aar):
    loop = review_loop.ReviewLoop(str(aar))
    dataset = Path(loop.datasetPath)
    cases = _caseFiles(dataset)
    loop.move(2)
    loop.markReviewed()
    items = _queueItems(aar)
    assert [i.get("reviewed", False) for i in items] == [False, False, True, False, False]
    assert not any(i["corrected"] for i in items) and items[2]["reviewed_at"].endswith("+00:00")
    assert _caseFiles(dataset) == cases
    assert loop.progress() == "1 of 5 reviewed" and loop.index == 2


def test_previous_next_go_through_the_queue_most_uncertain_first_and_opening_resumes(aar):
    loop = review_loop.ReviewLoop(str(aar))
    items = _queueItems(aar)
    order = [(i["scan"], i["side"], i["slice"]) for i in sorted(items, key=lambda i: -i["uncertainty"])]
    seen = [(loop.entry.scan, loop.entry.side, loop.entry.slice)]
    while loop.move(1):
        seen.append((loop.entry.scan, loop.entry.side, loop.entry.slice))
    assert seen == order and loop.index == 4
    assert not loop.move(1) and loop.index == 4  # Next on the last entry stays there
    assert loop.move(-1) and loop.index == 3
    assert not loop.move(-4) and loop.index == 3
    assert loop.position() == f"Slice 4 of 5: {order[3][0]}, {order[3][1]} hip, slice {order[3][2]}."
    for index in (0, 1, 3):
        loop.index = index
        loop.markReviewed()
    assert loop.progress() == "3 of 5 reviewed"
    assert review_loop.ReviewLoop(str(aar)).index == 2  # a reopened queue starts at the first slice not reviewed
    assert all(os.path.isfile(e.thumbnailPath) for e in loop.entries)


def test_the_scans_nodes_are_reused_and_dropped_for_the_next_scan_unless_edited(aar):
    scene = slicer.vtkMRMLScene()
    loop = review_loop.ReviewLoop(str(aar))
    first = loop.open(scene)
    loop.move(1)
    assert loop.open(scene) == first  # the same scan: the same nodes, with the annotator's edits
    loop.move(3)
    second = loop.open(scene)
    assert second[0].GetName() == SCANS[1] and all(node.GetScene() is None for node in first)
    loop.move(-4)
    first = loop.open(scene)
    _eraseOnSlice(*first, loop.entry.segmentId, loop.entry.slice)  # an edit not saved yet
    loop.move(4)
    loop.open(scene)
    assert all(node.GetScene() is scene for node in first), "unsaved edits were dropped"


def test_a_missing_scan_file_is_named(aar):
    queue = json.loads(aar.read_text(encoding="utf-8"))
    queue["scans"][SCANS[0]]["scan_path"] = "/nowhere/ct.nii.gz"
    aar.write_text(json.dumps(queue), encoding="utf-8")
    scene = slicer.vtkMRMLScene()
    with pytest.raises(InputError, match=r'The scan file of phantom00001 \("/nowhere/ct.nii.gz"\) does not exist'):
        review_loop.ReviewLoop(str(aar)).open(scene)
    assert scene.GetNumberOfNodes() == 0
    queue["scans"][SCANS[0]] = {"scan_path": str(aar.parents[2] / "nowhere.nii.gz"), "labels_path": "/nowhere/l.nii.gz"}
    shutil.copy(Path(json.loads(aar.read_text(encoding="utf-8"))["scans"][SCANS[1]]["scan_path"]),
                aar.parents[2] / "nowhere.nii.gz")
    aar.write_text(json.dumps(queue), encoding="utf-8")
    with pytest.raises(InputError, match=r'The labels file of phantom00001 \("/nowhere/l.nii.gz"\) does not exist'):
        review_loop.ReviewLoop(str(aar)).open(scene)
    assert scene.GetNumberOfNodes() == 0, "the scan loaded before the labels failed is still in the scene"
    queue["scans"][SCANS[0]]["scan_path"] = None  # a dataset that did not keep its scans
    aar.write_text(json.dumps(queue), encoding="utf-8")
    with pytest.raises(InputError, match="names no scan file for phantom00001"):
        review_loop.ReviewLoop(str(aar)).open(scene)


def test_fine_tune_and_rebuild_run_the_librarys_commands(aar):
    loop = review_loop.ReviewLoop(str(aar))
    dataset, model = loop.datasetPath, loop.modelPath
    run = loop.fineTune("cpu")
    try:
        assert run.command()[1:3] == ["-m", "THAAnnotatorLib.cli"]
        assert run.arguments == ["train", dataset, "--out", f"{model}-aar1", "--init-from", model, "--epochs", "3",
                                 "--lr", "0.0005", "--device", "cpu"]
        assert run.modelPath == f"{model}-aar1"
        args = cli.build_parser().parse_args(run.arguments)
        assert (args.init_from, args.out, args.epochs, args.lr) == (Path(model), Path(f"{model}-aar1"), 3, 5e-4)
        while run._process is None:  # Cancel while the command runs: its process is killed at once
            time.sleep(0.01)
        assert run.poll() == runner.RUNNING and run._process.poll() is None
        began = time.monotonic()
        run.cancel()
        assert run.poll() == runner.CANCELLED and run._process.poll() is not None
        assert time.monotonic() - began < 0.5 and not os.path.exists(run.folder)
    finally:
        run.cancel()
    os.makedirs(f"{model}-aar1")
    assert review_loop.nextModelFolder(model) == f"{model}-aar2"
    assert review_loop.nextModelFolder(f"{model}-aar1") == f"{model}-aar2"

    rebuild = loop.rebuildQueue(None, "cpu")
    assert rebuild.arguments == ["review-queue", dataset, "--model", model, "--top-k", "5",
                                 "--out", str(aar.parent), "--device", "cpu"]
    cli.build_parser().parse_args(rebuild.arguments)
    assert loop.rebuildQueue(f"{model}-aar1").arguments[3] == f"{model}-aar1"
    end = time.monotonic() + 300
    while rebuild.poll() == runner.RUNNING and time.monotonic() < end:
        time.sleep(0.1)
    # the model folder holds no model: the command's own message comes back, the queue is left
    assert rebuild.poll() == runner.FAILED
    error = rebuild.error()
    rebuild.close()
    assert isinstance(error, InputError) and str(error).startswith("Rebuilding the review queue refused:"), error
    assert len(_queueItems(aar)) == 5


def test_a_commands_lines_reach_the_runner_as_it_prints_them(monkeypatch):
    """A command's output is read line by line and unbuffered (the runner's environment): a line
    printed without flushing comes back while the command still runs, not when it ends."""
    code = "import time; print('first line'); time.sleep(3); print('second line')"
    monkeypatch.setattr(runner, "libraryCommand", lambda *arguments: [sys.executable, "-c", code])
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # the runner's own setting, not this shell's
    run = runner.CommandRun([], "Printing")
    try:
        end = time.monotonic() + 60
        while not run.lines and time.monotonic() < end:
            assert run.poll() == runner.RUNNING
            time.sleep(0.02)
        assert run.lines == ["first line"] and run._process.poll() is None, "the line came with the command's end"
        while run.poll() == runner.RUNNING and time.monotonic() < end:
            time.sleep(0.02)
        assert run.poll() == runner.DONE and run.lines == ["first line", "second line"]
    finally:
        run.close()


class _Stand:
    """Stands in for a Qt widget, class or value: attributes are kept, any other is a callable
    stand-in; signals connected with ``connect`` are kept to be fired by the test."""

    def __init__(self, *args, **kwargs):
        self.slots = {}

    def connect(self, signal, slot):
        self.slots[signal] = slot

    def __call__(self, *args, **kwargs):
        return _Stand()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        stand = _Stand()
        setattr(self, name, stand)
        return stand


class _Table(_Stand):
    """The queue table: keeps the items the panel puts in its cells."""

    def __init__(self):
        super().__init__()
        self.cells = {}

    def setRowCount(self, count):
        self.cells = {key: item for key, item in self.cells.items() if key[0] < count}

    def setItem(self, row, column, item):
        self.cells[row, column] = item


class _Item:
    """A QTableWidgetItem: its text, icon and tooltip."""

    def __init__(self, text):
        self.text, self.icon = text, None

    def setIcon(self, icon):
        self.icon = icon

    def setToolTip(self, text):
        pass


class _Pixmap:
    """A QPixmap of a picture file: null where the file is not a PNG."""

    def __init__(self, path):
        self.path = path

    def isNull(self):
        return not (os.path.isfile(self.path) and Path(self.path).read_bytes().startswith(b"\x89PNG"))


class _Shortcut(_Stand):
    """A QShortcut: its key sequence and the widget it belongs to."""

    def __init__(self, key, parent):
        super().__init__()
        self.key, self.parent = key, parent


@pytest.fixture()
def panel(aar, monkeypatch):
    """The Qt side (reviewpanel.py) with stand-ins for its widgets, on real MRML; ``errors`` holds
    the messages it showed."""
    from types import SimpleNamespace

    from THAAnnotatorSlicerLib import reviewpanel

    scene = slicer.vtkMRMLScene()
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setitem(sys.modules, "qt", SimpleNamespace(
        QShortcut=_Shortcut, QKeySequence=lambda key: key, QTimer=_Stand, QSize=_Stand, QPixmap=_Pixmap,
        QIcon=lambda pixmap: SimpleNamespace(pixmap=pixmap), QTableWidgetItem=_Item, QTextCursor=_Stand()))
    monkeypatch.setattr(slicer, "qMRMLSegmentEditorWidget", _Stand, raising=False)
    shown, errors = [], []
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda background: shown.append(background), raising=False)
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda message, **kwargs: errors.append(message), raising=False)
    parameterNode = THAAnnotatorScenarios.THAAnnotatorLogic(scene).getParameterNode()
    ui = _Stand()
    ui.queueTableWidget = _Table()
    ui.queuePathLineEdit.currentPath = str(aar)
    section = reviewpanel.ReviewQueueSection(ui, lambda: parameterNode, None)
    return SimpleNamespace(section=section, ui=ui, parameterNode=parameterNode, shown=shown, errors=errors)


def _tableRows(ui) -> list:
    """The queue table's rows as (uncertainty as shown, side, slice) and each row's thumbnail icon."""
    cells = ui.queueTableWidget.cells
    rows = sorted({row for row, _ in cells})
    return [((cells[r, 1].text, cells[r, 2].text, int(cells[r, 3].text)), cells[r, 0].icon) for r in rows]


def test_the_panels_review_section_works_through_the_queue(panel, aar):
    """Open, Save correction and next, Previous, Mark reviewed, Fine-tune (cancelled)."""
    ui, section, parameterNode, errors = panel.ui, panel.section, panel.parameterNode, panel.errors
    ui.loadQueueButton.slots["clicked(bool)"]()
    assert not errors and ui.reviewProgressLabel.text == "0 of 5 reviewed"
    volumeNode = parameterNode.GetNodeReference("InputVolume")
    segmentationNode = parameterNode.GetNodeReference("OutputSegmentation")
    assert volumeNode.GetName() == SCANS[0] and panel.shown == [volumeNode] and segmentationNode is not None
    assert ui.previousEntryButton.enabled is False and ui.nextEntryButton.enabled is True
    # each row shows its slice's thumbnail (label | prediction) as an icon
    rows = _tableRows(ui)
    assert [key for key, _ in rows] == [(f"{e.uncertainty:.4g}", e.side, e.slice) for e in section.loop.entries]
    for (key, icon), entry in zip(rows, section.loop.entries):
        assert icon is not None and icon.pixmap.path == entry.thumbnailPath and not icon.pixmap.isNull(), key

    entry = section.loop.entry
    _eraseOnSlice(volumeNode, segmentationNode, entry.segmentId, entry.slice)
    ui.saveCorrectionButton.slots["clicked(bool)"]()
    assert not errors and section.loop.index == 1 and ui.reviewProgressLabel.text == "1 of 5 reviewed"
    assert ui.queueStatusLabel.text.startswith(f"Saved {entry.scan}, {entry.side} hip, slice {entry.slice}")
    assert _queueItems(aar)[0]["corrected"] is True
    ui.previousEntryButton.slots["clicked(bool)"]()
    assert section.loop.index == 0
    ui.markReviewedButton.slots["clicked(bool)"]()
    assert section.loop.index == 1 and [i.get("reviewed", False) for i in _queueItems(aar)][:2] == [True, False]

    ui.fineTuneButton.slots["clicked(bool)"]()
    task = section.task
    assert task.arguments[:2] == ["train", section.loop.datasetPath] and ui.taskCancelButton.enabled is True
    ui.taskCancelButton.slots["clicked(bool)"]()
    section._timer.slots["timeout()"]()
    assert section.task is None and ui.queueStatusLabel.text == "Fine-tuning the model was cancelled."
    assert ui.fineTuneButton.enabled is True


def test_the_keyboard_shortcuts_move_through_the_queue_and_save(panel, aar):
    """Ctrl+Shift+Right / Left: Next / Previous; Ctrl+Shift+Return: Save correction and next."""
    ui, section = panel.ui, panel.section
    keys = {shortcut.key: shortcut for shortcut in section._shortcuts}
    assert sorted(keys) == sorted(["Ctrl+Shift+Left", "Ctrl+Shift+Right", "Ctrl+Shift+Return"])
    assert all(shortcut.parent is None for shortcut in keys.values())  # the panel's widget (None here)
    ui.loadQueueButton.slots["clicked(bool)"]()
    assert section.loop.index == 0
    keys["Ctrl+Shift+Right"].slots["activated()"]()
    assert section.loop.index == 1 and _queueItems(aar)[1].get("reviewed", False) is False
    keys["Ctrl+Shift+Left"].slots["activated()"]()
    assert section.loop.index == 0
    entry = section.loop.entry
    volumeNode = panel.parameterNode.GetNodeReference("InputVolume")
    segmentationNode = panel.parameterNode.GetNodeReference("OutputSegmentation")
    _eraseOnSlice(volumeNode, segmentationNode, entry.segmentId, entry.slice)
    keys["Ctrl+Shift+Return"].slots["activated()"]()
    assert not panel.errors and section.loop.index == 1
    first = _queueItems(aar)[0]
    assert first["corrected"] is True and first["reviewed"] is True


TINY_TRAINING = TrainOptions(epochs=1, batch_size=16, learning_rate=5e-3, seed=0, device="cpu", augment=False,
                             channels=(4, 8), strides=(2,), num_res_units=0)
"""A network of two levels, one epoch on the queue's dataset: trained in about a second."""


@pytest.fixture(scope="module")
def tinyModel(aarSource):
    """A model trained for real on the queue's dataset (CPU), as the model that made the queue."""
    from THAAnnotatorLib.model.training import train

    train(aarSource / "dataset", aarSource / "tiny-model", TINY_TRAINING, show_progress=False)
    return aarSource / "tiny-model"


def _pollUntilIdle(section, seconds: float = 300.0) -> list:
    """Fire the panel's timer until its task ends; returns the log shown after each poll."""
    seen, end = [], time.monotonic() + seconds
    while section.task is not None and time.monotonic() < end:
        section._timer.slots["timeout()"]()
        seen.append(section.ui.taskLogTextEdit.text)
        time.sleep(0.05)
    assert section.task is None, "the task did not end"
    return seen


def test_fine_tune_and_rebuild_run_to_the_end_and_the_panel_shows_the_new_queue(panel, aar, tinyModel, monkeypatch):
    """Fine-tune model (train --init-from) shows each epoch in the log while it trains; Rebuild queue
    (review-queue with the fine-tuned model) replaces the queue, which the table then shows."""
    ui, section, parameterNode, errors = panel.ui, panel.section, panel.parameterNode, panel.errors
    shutil.copytree(tinyModel, aar.parents[2] / "model")
    ui.taskLogTextEdit.setPlainText = lambda text: setattr(ui.taskLogTextEdit, "text", text)
    parameterNode.SetParameter("Device", "cpu")
    ui.loadQueueButton.slots["clicked(bool)"]()
    model = section.loop.modelPath
    before = _queueItems(aar)

    monkeypatch.setattr(review_loop, "FINE_TUNE_EPOCHS", 5)  # time between the first and the last epoch
    ui.fineTuneButton.slots["clicked(bool)"]()
    assert section.task.arguments[-2:] == ["--device", "cpu"]
    seen = _pollUntilIdle(section)
    assert not errors, errors
    log = seen[-1].splitlines()
    epochs = [line for line in log if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == [f"epoch {n}" for n in range(1, 6)]
    assert log[-1] == f"model written to {model}-aar1"
    # each epoch's line reached the log as the epoch ended, not all at the end
    assert any("epoch 1:" in text and "epoch 5:" not in text for text in seen), "the epochs came all at once"
    assert parameterNode.GetParameter("ModelPath") == f"{model}-aar1"
    assert json.loads((Path(f"{model}-aar1") / "model.json").read_text())["training"]["initial_weights_sha256"]

    ui.rebuildQueueButton.slots["clicked(bool)"]()
    assert section.task.arguments[3] == f"{model}-aar1"
    _pollUntilIdle(section)
    assert not errors, errors
    after = json.loads(aar.read_text(encoding="utf-8"))
    assert after["model"]["path"] == f"{model}-aar1" and len(after["items"]) == len(before)
    assert ui.queueStatusLabel.text.startswith("The queue was rebuilt.")
    # the table shows the rebuilt queue, its own thumbnails, and the first slice is open
    rows = _tableRows(ui)
    assert [key for key, _ in rows] == [(f"{i['uncertainty']:.4g}", i["side"], i["slice"])
                                        for i in sorted(after["items"], key=lambda i: -i["uncertainty"])]
    for (key, icon), item in zip(rows, sorted(after["items"], key=lambda i: -i["uncertainty"])):
        assert icon.pixmap.path == str(aar.parent / item["thumbnail"]) and not icon.pixmap.isNull(), key
    assert ui.reviewProgressLabel.text == f"0 of {len(before)} reviewed" and section.loop.index == 0
