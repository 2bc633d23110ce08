"""Output folders (issue 22, items 4 and 6): every command that writes checks, before any work,
that its output can be written (one ``error: cannot write to OUT: ...`` line naming the folder as
given, exit code 1); ``annotate`` and ``predict`` refuse a folder that already holds files unless
``--overwrite`` is given, which replaces an earlier result whole and only once the new one is
complete; ``demo`` replaces its own earlier folder, so ``make demo`` can be run again.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from THAAnnotatorLib import cli, io, outputs, pipeline
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.params import Params

RESULT_FILES = {*outputs.STANDARD_FILES, cli.OVERVIEW_NAME}
DEMO_FILES = RESULT_FILES | {cli.DEMO_SCAN_NAME}
BLOCKED = "blocker.txt/out"  # under a regular file: cannot be created, whoever runs the tests


def run_cli(argv: list[str]) -> int:
    """The exit code of ``tha-annotator argv``: the main program's, or argparse's exit."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exit_info:
        return exit_info.code


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> content)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def hidden_leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def earlier_result(small_ct, tmp_path_factory) -> Path:
    """A folder `annotate` wrote (both hips), plus a stale prediction.json from another run."""
    out = tmp_path_factory.mktemp("earlier") / "result"
    assert cli.main(["annotate", str(small_ct), "--out", str(out), "--quiet"]) == 0
    (out / "prediction.json").write_text('{"stale": true}\n')
    return out


@pytest.fixture()
def reused(earlier_result, tmp_path) -> Path:
    """A copy of the earlier result to write into, alone in its folder."""
    folder = tmp_path / "reused"
    folder.mkdir()
    return Path(shutil.copytree(earlier_result, folder / "out"))


# ------------------------------------------------------------------ item 4: unwritable output
WRITING_COMMANDS = {
    # name: command line with {out} the output that cannot be written; its inputs do not exist,
    # so only a command that checks its output first names the output in its error
    "annotate": "annotate {tmp}/ct.nii.gz --out {out}",
    "demo": "demo --out {out}",
    "predict": "predict {tmp}/ct.nii.gz --out {out}",
    "build-dataset": "build-dataset {tmp}/scans {out}",
    "export": "export {tmp}/build --format monai {out}",
    "slice-dataset": "slice-dataset {out} --phantoms 1",
    "train": "train {tmp}/dataset --out {out}",
    "review-queue": "review-queue {tmp}/dataset --model {tmp}/model --out {out}",
    "apply-corrections": "apply-corrections {out} {tmp}/corrections.nii.gz",
    "evaluate": "evaluate {tmp}/predictions {tmp}/references --json {out}/scores.json",
}


@pytest.mark.parametrize("command", WRITING_COMMANDS)
def test_an_output_that_cannot_be_written_is_refused_first_naming_it(tmp_path, capsys, command):
    (tmp_path / "blocker.txt").write_text("a file where a folder would have to be\n")
    out = tmp_path / BLOCKED
    argv = WRITING_COMMANDS[command].format(tmp=tmp_path, out=out).split()
    target = argv[argv.index("--json") + 1] if "--json" in argv else str(out)
    before = snapshot(tmp_path)
    assert run_cli(argv + (["--quiet"] if command in ("annotate", "demo") else [])) == 1
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert line.startswith(f"error: cannot write to {target}: "), line
    assert "blocker.txt is a file" in line and ".partial" not in line
    assert captured.out == ""
    assert snapshot(tmp_path) == before and hidden_leftovers(tmp_path) == []


@pytest.fixture()
def read_only_folder(tmp_path) -> Path:
    """A folder nobody running the tests can write into: a read-only tmpfs mount for root (who
    ignores permission bits), else a folder without write permission; skipped where neither
    holds."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs",
                                  str(folder)], capture_output=True).returncode == 0
    else:
        folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK) and not mounted:
            pytest.skip("no read-only folder can be made here (root without mount)")
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        folder.chmod(0o755)


def test_a_read_only_output_folder_is_named_as_given_before_the_work(small_ct, read_only_folder,
                                                                      capsys):
    out = read_only_folder / "results"
    assert cli.main(["annotate", str(small_ct), "--out", str(out), "--quiet"]) == 1
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert line.startswith(f"error: cannot write to {out}: "), line
    assert "Read-only file system" in line or "Permission denied" in line, line
    assert ".partial" not in line
    assert captured.out == ""  # no hip summary: the pipeline never ran
    assert list(read_only_folder.iterdir()) == []


# -------------------------------------------------------- item 6: reusing an output folder
def test_annotate_refuses_a_folder_holding_files_and_leaves_it_as_it_was(small_ct, reused, capsys):
    before = snapshot(reused)
    assert cli.main(["annotate", str(small_ct), "--out", str(reused), "--quiet"]) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert str(reused) in line and "already holds 6 file(s)" in line and "--overwrite" in line
    assert captured.out == ""
    assert snapshot(reused) == before


def test_overwrite_replaces_an_earlier_result_whole(small_ct, reused, capsys):
    (reused / "notes.txt").write_text("kept by nobody\n")
    assert cli.main(["annotate", str(small_ct), "--out", str(reused), "--quiet",
                     "--overwrite", "--side", "right"]) == 0
    assert {p.name for p in reused.iterdir()} == RESULT_FILES  # no stale prediction.json
    report = json.loads((reused / outputs.REPORT_FILE).read_text())
    assert list(report["sides"]) == ["right"]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(reused / outputs.LABELS_FILE)))
    scan = sitk.GetArrayFromImage(sitk.ReadImage(str(small_ct)))
    assert labels.shape == scan.shape and set(np.unique(labels)) == {0, 1, 2}
    assert hidden_leftovers(reused.parent) == []
    assert "wrote 5 files" in capsys.readouterr().out


def test_overwrite_keeps_the_earlier_result_when_writing_the_new_one_fails(
        small_ct, reused, capsys, monkeypatch):
    before = snapshot(reused)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "_write_segmentation", disk_full)
    assert cli.main(["annotate", str(small_ct), "--out", str(reused), "--quiet",
                     "--overwrite"]) == 1
    assert "No space left on device" in one_error_line(capsys.readouterr().err)
    assert snapshot(reused) == before
    assert hidden_leftovers(reused.parent) == []


@pytest.mark.parametrize("folder", ["new", "empty", "earlier-result"])
def test_ctrl_c_while_writing_exits_130_and_leaves_no_partial_folder(
        small_ct, reused, folder, capsys, monkeypatch):
    """Ctrl-C once the outputs are being staged (a file already written, the next one
    interrupted): exit code 130, the staging (.partial) folder removed, the output folder as it
    was (absent, empty, or the earlier result)."""
    out = {"new": reused.parent / "new", "empty": reused.parent / "empty",
           "earlier-result": reused}[folder]
    if folder == "empty":
        out.mkdir()
    before = snapshot(out) if out.exists() else None
    real_write = outputs._write_segmentation
    staged = []

    def interrupted(path, *args, **kwargs):
        real_write(path, *args, **kwargs)  # the file lands in the staging folder, then Ctrl-C
        staged.extend(p.name for p in path.parent.iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "_write_segmentation", interrupted)
    argv = ["annotate", str(small_ct), "--out", str(out), "--quiet"]
    assert cli.main(argv + (["--overwrite"] if folder == "earlier-result" else [])) == 130
    assert capsys.readouterr().err == "cancelled, nothing written\n"
    assert outputs.SEGMENTATION_FILE in staged  # the interruption came mid-way through staging
    leftovers = [str(p.relative_to(reused.parent)) for p in reused.parent.rglob("*partial*")]
    assert leftovers == [], leftovers
    assert hidden_leftovers(reused.parent) == []
    if before is None:
        assert not out.exists()
    else:
        assert snapshot(out) == before and hidden_leftovers(out) == []


def test_ctrl_c_while_the_results_are_moved_into_place_is_held_off(small_ct, tmp_path, capsys,
                                                                    monkeypatch):
    """A SIGINT arriving while the staged folder is renamed into place neither leaves half a
    result nor reports a complete one as cancelled: the run ends as done (issue 22, item 7)."""
    real_replace = outputs.replace_folder

    def interrupted(*args, **kwargs):
        real_replace(*args, **kwargs)  # the result is in place; now Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(outputs, "replace_folder", interrupted)
    out = tmp_path / "out"
    assert cli.main(["annotate", str(small_ct), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and f"wrote 5 files to {out}" in captured.out
    assert {p.name for p in out.iterdir()} == RESULT_FILES and hidden_leftovers(tmp_path) == []


def test_ctrl_c_while_the_summary_is_printed_exits_0_saying_the_results_are_complete(
        small_ct, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_print_summary", interrupted)
    out = tmp_path / "out"
    assert cli.main(["annotate", str(small_ct), "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().err == (f"interrupted after the results were written: {out} is "
                                       "complete\n")
    assert {p.name for p in out.iterdir()} == RESULT_FILES


def test_overwrite_refuses_a_folder_that_is_not_an_earlier_result(small_ct, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("\\documentclass{article}\n")
    assert cli.main(["annotate", str(small_ct), "--out", str(mine), "--quiet",
                     "--overwrite"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(mine) in line and "no annotation.json" in line
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_an_empty_existing_folder_is_written_into(small_ct, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert cli.main(["annotate", str(small_ct), "--out", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == RESULT_FILES


def test_demo_replaces_its_own_earlier_folder_whole(small_ct, reused, capsys):
    shutil.copyfile(small_ct, reused / cli.DEMO_SCAN_NAME)  # now it holds an earlier demo
    assert cli.main(["demo", "--out", str(reused), "--quiet"]) == 0
    assert {p.name for p in reused.iterdir()} == DEMO_FILES  # no stale prediction.json
    sample = io.read_scan(reused / cli.DEMO_SCAN_NAME)
    assert sample.volume.spacing_mm == pytest.approx(cli.DEMO_SPACING_MM)
    assert "against the phantom's ground truth" in capsys.readouterr().out


def test_demo_refuses_another_folder_holding_files_before_making_the_phantom(reused, capsys):
    before = snapshot(reused)
    assert cli.main(["demo", "--out", str(reused), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "--overwrite" in one_error_line(captured.err) and captured.out == ""
    assert snapshot(reused) == before


def test_predict_refuses_a_folder_holding_files_unless_overwrite(small_ct, reused, capsys):
    argv = ["predict", str(small_ct), "--out", str(reused), "--device", "cpu"]
    assert cli.main(argv) == 2
    assert "--overwrite" in one_error_line(capsys.readouterr().err)
    assert cli.main(argv + ["--overwrite"]) == 0
    # the earlier folder is replaced whole: its stale prediction.json is the new one
    assert {p.name for p in reused.iterdir()} == RESULT_FILES | {"prediction.json"}
    assert "stale" not in json.loads((reused / "prediction.json").read_text())
    assert "model" in json.loads((reused / "prediction.json").read_text())


def test_write_outputs_refuses_a_folder_holding_files_unless_overwrite(small_ct, tmp_path):
    scan = io.read_scan(small_ct)
    annotation = pipeline.annotate(scan.volume, Params(), sides=("right",))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old\n")
    with pytest.raises(InputError, match="already holds 1 file"):
        outputs.write_outputs(out, scan.reference, scan.volume, annotation, Params())
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    (out / outputs.REPORT_FILE).write_text("{}\n")  # now it is an earlier result
    written = outputs.write_outputs(out, scan.reference, scan.volume, annotation, Params(),
                                    overwrite=True)
    assert {p.name for p in out.iterdir()} == set(written) == set(outputs.STANDARD_FILES)


@pytest.mark.parametrize("failure", ["image writer", "os"])
def test_a_disk_that_fills_while_writing_is_one_error_line_naming_the_output_folder(
        small_ct, tmp_path, capsys, monkeypatch, failure):
    """Disk full part-way through writing (SimpleITK reports it as a RuntimeError, Python's
    own writes as OSError): exit code 1, one `error: cannot write to OUT` line naming the file,
    not the hidden staging folder, and nothing left behind. It was a traceback from SimpleITK,
    or `[Errno 28] ...` with the staging folder's name (issue 22, item 4)."""
    real_write = sitk.WriteImage

    def disk_full(image, path, *args, **kwargs):
        if str(path).endswith(outputs.SEGMENTATION_FILE):
            if failure == "os":
                raise OSError(28, "No space left on device", str(path))
            raise RuntimeError(f"ITK ERROR: NrrdImageIO: Write: Error writing {path}")
        return real_write(image, path, *args, **kwargs)

    monkeypatch.setattr(outputs.sitk, "WriteImage", disk_full)
    out = tmp_path / "out"
    assert run_cli(["annotate", small_ct, "--out", out, "--quiet"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write to {out}: ") and "partial" not in line, line
    assert outputs.SEGMENTATION_FILE in line, line
    assert list(tmp_path.iterdir()) == []
