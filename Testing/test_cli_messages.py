"""What the command line prints and records (issue 22, item 7): no progress-bar frames in a log,
no GDCM warnings for a folder that holds no DICOM series, the scan's absolute path in
``annotation.json``, and a ``build-dataset --help`` that says what the command does.
"""
from __future__ import annotations

import json

import pytest

from THAAnnotatorLib import cli, outputs
from THAAnnotatorLib.batch.groups import dicom_patient_id


def test_annotate_draws_no_progress_frames_into_a_log(small_ct, tmp_path, capsys):
    """Without --quiet, but stderr is not a terminal (as when redirected to a log file): the
    bar's carriage-return frames would fill the log, so none is drawn."""
    assert cli.main(["annotate", str(small_ct), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert captured.err == "", repr(captured.err[:300])
    assert "right hip: femoral head diameter" in captured.out


def test_a_folder_without_dicom_files_is_one_error_line_and_no_gdcm_warning(tmp_path, capfd):
    """ITK's GDCM prints its own warning straight onto the process's stderr (file descriptor
    2) for a folder with no DICOM series; only the program's one error line may show."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a DICOM file\n")
    assert cli.main(["annotate", str(folder), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no DICOM series" in lines[0], err
    assert dicom_patient_id(folder) is None  # a build's patient grouping looks there too
    assert capfd.readouterr().err == ""


def test_annotation_json_records_the_scan_as_an_absolute_path(small_ct, tmp_path, monkeypatch):
    """A scan given relative to the working folder is recorded absolute, so the report still
    names it when read from elsewhere."""
    monkeypatch.chdir(small_ct.parent)
    out = tmp_path / "out"
    assert cli.main(["annotate", small_ct.name, "--out", str(out), "--quiet",
                     "--side", "right"]) == 0
    report = json.loads((out / outputs.REPORT_FILE).read_text(encoding="utf-8"))
    assert report["input_path"] == str(small_ct.resolve())


def test_build_dataset_help_promises_what_it_does(monkeypatch, capsys):
    """Its --quiet help promises no per-hip summary (a build prints none) and its exit codes
    include 130, what a Ctrl-C gives (test_batch checks that)."""
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit):
        cli.main(["build-dataset", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    quiet = text.split("--quiet ", 1)[1].split(" --", 1)[0]
    assert "No progress bar" in quiet and "per-hip" not in quiet, quiet
    assert "130 when cancelled with Ctrl-C" in text
