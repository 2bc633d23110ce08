"""``tha-annotator predict`` behaves like ``annotate`` (issue 22): the same overview picture, each
segment's volume and HU in ``annotation.json``, a progress bar on a terminal (none with
``--quiet`` or in a log), and Ctrl-C exits 130 leaving nothing half-written.
"""
from __future__ import annotations

import contextlib
import io as text_io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_statistics import assert_statistics_match, expected_statistics
from THAAnnotatorLib import cli, outputs, overview
from THAAnnotatorLib.model import inference
from THAAnnotatorLib.result import SIDES

CANCELLED = "cancelled, nothing written\n"


class Terminal(text_io.StringIO):
    """A stand-in for stderr on a terminal."""

    def isatty(self) -> bool:
        return True


def predict(scan: Path, out: Path, *options: str, stderr=None) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``predict`` (stderr a plain, non-terminal stream unless
    one is given)."""
    stdout, stderr = text_io.StringIO(), stderr if stderr is not None else text_io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["predict", str(scan), "--out", str(out), "--device", "cpu", *options])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def predicted(small_ct, tmp_path_factory) -> tuple[Path, int, str, str]:
    """One plain ``predict`` run, its stderr not a terminal (as in a log): the output folder,
    exit code, stdout and stderr."""
    out = tmp_path_factory.mktemp("predicted") / "out"
    return (out, *predict(small_ct, out))


def test_predict_writes_the_overview_picture_as_annotate_does(predicted):
    out, code, stdout, _ = predicted
    assert code == 0, stdout
    assert {p.name for p in out.iterdir()} == {*outputs.STANDARD_FILES, overview.OVERVIEW_FILE,
                                               "prediction.json"}
    picture = cv2.imdecode(np.frombuffer((out / overview.OVERVIEW_FILE).read_bytes(), np.uint8),
                           cv2.IMREAD_COLOR)
    assert picture is not None
    # one axial panel per hip, each drawing its labels' contours (green acetabulum, red head)
    assert picture.shape[1] >= 2 * overview.PANEL_PX
    for side, half in zip(SIDES, (picture[:, :overview.PANEL_PX], picture[:, -overview.PANEL_PX:])):
        for class_label, colour in overview.CLASS_COLOURS.items():
            drawn = np.all(half == colour, axis=-1).sum()
            assert drawn > 50, f"{side} hip: no contour of class {class_label} in the picture"


def test_predict_writes_each_segments_volume_and_hu(predicted, small_ct):
    out, code, _, _ = predicted
    report = json.loads((out / outputs.REPORT_FILE).read_text(encoding="utf-8"))
    expected = expected_statistics(out / outputs.SEGMENTATION_FILE, small_ct)
    for side in SIDES:
        assert report["sides"][side]["status"] == "segmented"
        assert_statistics_match(report["sides"][side]["statistics"], expected[side])


def test_predict_draws_no_progress_frames_into_a_log(predicted):
    _, code, _, stderr = predicted
    assert code == 0 and stderr == "", repr(stderr[:300])  # no "\r" frames, no bar at all


def test_predict_shows_a_progress_bar_on_a_terminal(small_ct, tmp_path):
    terminal = Terminal()
    code, _, stderr = predict(small_ct, tmp_path / "out", "--side", "right", stderr=terminal)
    assert code == 0, stderr
    assert "\r" in stderr and "100%" in stderr, repr(stderr[-300:])


def test_predict_ctrl_c_once_its_files_are_written_exits_0_saying_they_are_complete(
        small_ct, tmp_path, monkeypatch):
    """Ctrl-C while the per-hip lines are printed: the files are all in place, so not the
    "cancelled, nothing written" of an interrupted run, and exit code 0."""
    real_print = print

    def print_interrupted(*args, file=None, **kwargs):
        if file is None:  # a result line on stdout
            raise KeyboardInterrupt
        real_print(*args, file=file, **kwargs)

    monkeypatch.setattr("builtins.print", print_interrupted)
    out = tmp_path / "out"
    code, stdout, stderr = predict(small_ct, out, "--quiet", "--side", "right")
    monkeypatch.undo()
    assert (code, stdout) == (0, "")
    assert stderr == f"interrupted after the results were written: {out} is complete\n"
    assert {p.name for p in out.iterdir()} == {*outputs.STANDARD_FILES, overview.OVERVIEW_FILE,
                                               "prediction.json"}


def test_predict_ctrl_c_while_predicting_exits_130_and_writes_nothing(small_ct, tmp_path,
                                                                      monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "predict_scan", interrupted)
    out = tmp_path / "out"
    code, stdout, stderr = predict(small_ct, out, "--quiet")
    assert (code, stdout, stderr) == (130, "", CANCELLED)
    assert list(tmp_path.iterdir()) == []


def test_predict_quiet_ctrl_c_while_writing_exits_130_and_leaves_no_partial_folder(
        small_ct, tmp_path, monkeypatch):
    """Ctrl-C once the outputs are being staged (the bone and label maps written, then the
    segmentation), on a terminal with --quiet: no bar, exit 130, no staging folder left."""
    real_write = outputs._write_segmentation
    staged = []

    def interrupted(path, *args, **kwargs):
        real_write(path, *args, **kwargs)
        staged.extend(p.name for p in path.parent.iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "_write_segmentation", interrupted)
    code, stdout, stderr = predict(small_ct, tmp_path / "out", "--quiet", "--side", "left",
                                   stderr=Terminal())
    assert (code, stdout, stderr) == (130, "", CANCELLED)
    assert outputs.SEGMENTATION_FILE in staged  # interrupted mid-way through staging
    assert list(tmp_path.iterdir()) == []
