"""The ``tha-annotator`` command line: options, input errors, and whole runs end to end."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from interrupts import start_in_own_session
from THAAnnotatorLib import cli, io, outputs, overview
from THAAnnotatorLib.labels import truth_side_labels
from THAAnnotatorLib.metrics import dice
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.result import ACETABULUM, CLASS_NAMES, FEMORAL_HEAD, segment_code

UNIT_WORDS = {"_mm": "mm", "_hu": "HU", "_ml": "millilitre"}


def help_text(monkeypatch, capsys, *argv: str) -> str:
    """Help of a (sub)command with whitespace collapsed (no line wrapping at all)."""
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def write_small_ct(path: Path) -> None:
    """A tiny but valid CT file: air around a block of bone, 1 mm voxels."""
    hu = np.full((12, 12, 12), -1000, np.int16)
    hu[3:9, 3:9, 3:9] = 700
    sitk.WriteImage(sitk.GetImageFromArray(hu), str(path))


def test_every_param_has_a_docstring():
    docs = cli.param_docs()
    for field in dataclasses.fields(Params):
        assert docs.get(field.name), f"Params.{field.name} has no docstring in params.py"


@pytest.mark.parametrize("command", ["annotate", "demo"])
def test_help_lists_every_option_with_its_docstring_and_units(monkeypatch, capsys, command):
    text = help_text(monkeypatch, capsys, command)
    docs = cli.param_docs()
    for field in dataclasses.fields(Params):
        if isinstance(field.default, bool):
            option = "--no-" + field.name.removeprefix("use_").replace("_", "-")
        else:
            option = "--" + field.name.replace("_", "-")
        assert option in text, option
        assert docs[field.name] in text, f"help for {option} lacks the docstring of {field.name}"
        for suffix, unit in UNIT_WORDS.items():
            if field.name.endswith(suffix):
                assert unit in docs[field.name], f"{field.name}'s docstring does not name its unit"
    for option in ("--no-fsg", "--no-lnms", "--no-ahs", "--side", "--quiet", "--out"):
        assert option in text


@pytest.mark.parametrize("command", ["annotate", "demo", "train"])
def test_every_no_switch_says_it_switches_something_off(monkeypatch, capsys, command):
    """``--no-*`` help says what the flag does, not only what the feature is (issue 22)."""
    text = help_text(monkeypatch, capsys, command)
    options = set(re.findall(r"(--no-[a-z-]+) ", text.split("options:", 1)[1]))
    assert options, text
    for option in options:
        assert f"{option} Switch off" in text, option


def test_evaluate_help_describes_both_folders(monkeypatch, capsys):
    text = help_text(monkeypatch, capsys, "evaluate")
    match = re.search(r"positional arguments: PRED_DIR (\S.*) TRUTH_DIR (\S.*) options:", text)
    assert match, text


def test_export_help_names_the_ignore_label(monkeypatch, capsys):
    """The exported label maps hold 3 (ignore) over a hip not annotated: the help's list of
    label values says so, with where the frameworks are told (issue 22, item 1)."""
    text = help_text(monkeypatch, capsys, "export")
    assert re.search(r"0 background, 1 acetabulum, 2 femoral head, 3 ignore", text), text
    assert "dataset.json" in text and "datalist.json" in text


def test_top_level_help_names_both_commands(monkeypatch, capsys):
    text = help_text(monkeypatch, capsys)
    assert "annotate" in text and "demo" in text


def test_no_command_shows_the_commands_not_only_an_error(capsys):
    """``tha-annotator`` alone, as a new user first types it: the help with every command, on
    stderr, exit code 2 (nothing done)."""
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: tha-annotator")
    assert all(command in captured.err for command in ("annotate", "demo", "predict", "build-dataset"))


def test_options_become_params():
    args = cli.build_parser().parse_args([
        "annotate", "scan.nii.gz", "--out", "out", "--no-fsg", "--no-ahs",
        "--blur-sigma-mm", "2.5", "--n-rays", "45", "--propagation-radius-window", "0.7", "1.3"])
    params = cli.params_from_args(args)
    assert params == Params(use_fsg=False, use_ahs=False, blur_sigma_mm=2.5, n_rays=45,
                            propagation_radius_window=(0.7, 1.3))
    assert cli.params_from_args(cli.build_parser().parse_args(
        ["annotate", "scan.nii.gz", "--out", "out"])) == Params()


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "tha-annotator"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "annotate" in done.stdout


def bad_input_cases(tmp: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (scan path, output folder) that the command must refuse."""
    text_file = tmp / "notes.txt"
    text_file.write_text("not a scan\n")
    fake_nifti = tmp / "fake.nii.gz"
    fake_nifti.write_text("not a scan either\n")
    inputs = tmp / "inputs"
    inputs.mkdir()
    scan = inputs / "ct.nii.gz"
    write_small_ct(scan)
    return {
        "missing file": (tmp / "missing.nii.gz", tmp / "out"),
        "text file": (text_file, tmp / "out"),
        "text file named .nii.gz": (fake_nifti, tmp / "out"),
        "output in the input's folder": (scan, inputs),
    }


@pytest.mark.parametrize("case", ["missing file", "text file", "text file named .nii.gz",
                                  "output in the input's folder"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, case):
    scan, out = bad_input_cases(tmp_path)[case]
    before = files_under(tmp_path)
    assert cli.main(["annotate", str(scan), "--out", str(out), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert files_under(tmp_path) == before


def test_annotate_nifti_with_nan_voxels_exits_2_naming_them_and_writes_nothing(tmp_path, capsys):
    hu = np.full((12, 12, 12), -1000, np.float32)
    hu[3:9, 3:9, 3:9] = 700
    hu[5, 5, 4:6] = np.nan  # SimpleITK's NIfTI reader would return these as 0 HU
    scan = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(hu), str(scan))
    before = files_under(tmp_path)
    assert cli.main(["annotate", str(scan), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "ct.nii.gz contains 2 NaN and 0 infinite voxel(s)" in lines[0]
    assert files_under(tmp_path) == before


def test_demo_writes_every_output_and_scores_both_hips(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out

    expected = {*outputs.STANDARD_FILES, cli.OVERVIEW_NAME, cli.DEMO_SCAN_NAME}
    assert {path.name for path in out.iterdir()} == expected
    picture = cv2.imdecode(np.frombuffer((out / cli.OVERVIEW_NAME).read_bytes(), np.uint8),
                           cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape[1] > 2 * overview.PANEL_PX
    sample = io.read_scan(out / cli.DEMO_SCAN_NAME)
    assert sample.volume.spacing_mm == pytest.approx((2.0, 0.8, 0.8))
    # the report names the scan the demo left beside it, not the temporary file it annotated
    report = json.loads((out / outputs.REPORT_FILE).read_text())
    assert report["input_path"] == str((out / cli.DEMO_SCAN_NAME).resolve())

    # the figures the README's accuracy table gives for the demo phantom (acetabulum Dice 0.96,
    # head 0.99, diameters 48.0 and 46.0 mm): printed, and the Dice of the labels written
    phantom = generate_phantom(spacing_mm=cli.DEMO_SPACING_MM, seed=0)
    truth = sample.volume.to_source_layout(truth_side_labels(phantom))
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(out / outputs.SEGMENTATION_FILE)))
    for side in ("right", "left"):
        assert f"{side} hip: femoral head diameter" in stdout
        scores = re.search(rf"{side} hip: acetabulum Dice ([\d.]+), femoral head Dice ([\d.]+)",
                           stdout)
        assert scores, stdout
        acetabulum, head = float(scores.group(1)), float(scores.group(2))
        assert acetabulum >= 0.95, f"{side} acetabulum Dice {acetabulum}"
        assert head >= 0.98, f"{side} femoral head Dice {head}"
        for printed, cls in ((acetabulum, ACETABULUM), (head, FEMORAL_HEAD)):
            code = segment_code(side, cls)
            assert printed == pytest.approx(dice(written == code, truth == code), abs=0.0005), \
                f"{side} {CLASS_NAMES[cls]}: printed Dice {printed} is not the written labels'"
        diameter = re.search(rf"{side} hip: head diameter ([\d.]+) mm \(true ([\d.]+) mm\)",
                             stdout)
        assert diameter, stdout
        true_mm = 2 * phantom.heads[side].radius_mm
        assert float(diameter.group(2)) == pytest.approx(true_mm, abs=0.05)
        assert abs(float(diameter.group(1)) - true_mm) <= 0.5, diameter.group(0)


def test_annotate_shared_ct_reports_left_implant(shared_ct_path, tmp_path, capsys):
    out = tmp_path / "out"
    original = shared_ct_path.read_bytes()
    assert cli.main(["annotate", str(shared_ct_path), "--out", str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "left hip: metal implant, not segmented" in stdout
    assert "right hip: femoral head diameter" in stdout
    assert {*outputs.STANDARD_FILES, cli.OVERVIEW_NAME} <= {path.name for path in out.iterdir()}
    assert shared_ct_path.read_bytes() == original


def test_ctrl_c_while_the_command_loads_its_libraries_is_one_line_too(small_ct, tmp_path):
    """A Ctrl-C 0.3 s after ``tha-annotator`` starts lands while it imports numpy, SciPy and
    the rest (about a second): the same one line and exit code as during the work, no
    traceback, nothing written."""
    script = Path(sys.executable).parent / "tha-annotator"
    out = tmp_path / "out"
    command = start_in_own_session([str(script), "annotate", str(small_ct), "--out", str(out)])
    time.sleep(0.3)
    os.killpg(command.pid, signal.SIGINT)
    _, stderr = command.communicate(timeout=60)
    assert (command.returncode, stderr) == (130, "cancelled, nothing written\n")
    assert not out.exists()


def test_ctrl_c_exits_130_and_writes_nothing(tmp_path, capsys, monkeypatch):
    scan = tmp_path / "ct.nii.gz"
    write_small_ct(scan)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.pipeline, "annotate", interrupted)
    out = tmp_path / "out"
    assert cli.main(["annotate", str(scan), "--out", str(out), "--quiet"]) == 130
    assert capsys.readouterr().err == "cancelled, nothing written\n"
    assert not out.exists()
