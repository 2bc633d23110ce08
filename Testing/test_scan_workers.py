"""Hips (and bone extraction's slices) in worker processes (issue 22): the same Annotation, bit for
bit, as in one process; progress, cancel and Ctrl-C still work; the worker count is checked."""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from interrupts import start_in_own_session
from THAAnnotatorLib import pipeline, scan_workers
from THAAnnotatorLib.cli import main
from THAAnnotatorLib.errors import Cancelled, InputError
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk

SMALL = {"spacing_mm": (3.0, 1.5, 1.5), "fov_mm": (120.0, 240.0, 360.0)}
MID = {"spacing_mm": (2.0, 1.0, 1.0), "fov_mm": (120.0, 240.0, 360.0)}  # a hip: seconds


def assert_identical(a, b, where: str = "annotation") -> None:
    """``a`` and ``b`` equal in every field, arrays element for element (same dtype), floats
    bit for bit."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for field in dataclasses.fields(a):
            assert_identical(getattr(a, field.name), getattr(b, field.name),
                             f"{where}.{field.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{index}]")
    else:
        assert type(a) is type(b) and (a == b or (a != a and b != b)), f"{where}: {a!r} != {b!r}"


def children_get_work():
    """A progress callback that holds this process up for 2 s at its first call, so the child
    processes start (a second or two) while bone extraction is under way and take part: a
    small scan's would otherwise be done before they could."""
    calls = []

    def progress(fraction, message):
        if not calls:
            time.sleep(2.0)
        calls.append(message)

    return progress


@pytest.mark.parametrize("phantom, workers", [
    (dict(SMALL, seed=0), 2),
    # an implant (metal, no labels) beside a segmented hip, with more workers than hips
    (dict(MID, seed=2, metal_side="left"), 3),
], ids=["two-hips", "metal-hip-three-workers"])
def test_workers_give_the_same_annotation_bit_for_bit(phantom, workers):
    volume = generate_phantom(**phantom).volume
    alone = pipeline.annotate(volume, Params())
    shared = pipeline.annotate(volume, Params(), workers=workers, progress=children_get_work())
    assert any(r.status == "segmented" for r in alone.sides.values())
    assert_identical(alone, shared)
    assert_identical(alone.labels, shared.labels, "labels")


def test_progress_moves_forward_with_workers():
    volume = generate_phantom(**SMALL, seed=0).volume
    reported = []
    pipeline.annotate(volume, Params(), workers=2,
                      progress=lambda fraction, message: reported.append((fraction, message)))
    fractions = [fraction for fraction, _ in reported]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"bone extraction", "right and left hip", "done"} <= {m for _, m in reported}


def test_a_hip_reports_each_stage_and_each_slice_it_follows():
    """In this process a hip's AFS reports its stages and every slice the circles are followed
    into (seconds of work on a 512 x 512 scan that would otherwise leave the bar still)."""
    volume = generate_phantom(**SMALL, seed=0).volume
    reported = []
    pipeline.annotate(volume, Params(),
                      progress=lambda fraction, message: reported.append((fraction, message)))
    fractions = [fraction for fraction, _ in reported]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    messages = [message for _, message in reported]
    for side in ("right", "left"):
        stages = [m for m in messages if m.startswith(f"{side} hip: ")]
        following = [m for m in stages if "circles, slice" in m]
        assert len(following) >= 5, stages
        assert {f"{side} hip: initial slice", f"{side} hip: femur / pelvis split",
                f"{side} hip: measurements"} <= set(stages)


def test_cancel_during_a_hip_stops_it_at_its_next_stage():
    """A cancel while a hip's sphere is split from the pelvis ends the run there: nothing
    after that stage is reported, and no result comes back."""
    volume = generate_phantom(**SMALL, seed=0).volume
    reported = []
    with pytest.raises(Cancelled):
        pipeline.annotate(volume, Params(), progress=lambda f, message: reported.append(message),
                          cancel=lambda: "left hip: femur / pelvis split" in reported)
    assert reported[-1] == "left hip: femur / pelvis split"


@pytest.mark.parametrize("stage, phantom, within_s", [
    # a child still starting up is waited for (a second or two on a busy machine)
    ("bone extraction", MID, 3.0),
    # a hip of this scan takes 3-7 s (1 mm slices); up to its first check, under a second
    ("right and left hip", dict(MID, spacing_mm=(1.0, 1.0, 1.0)), 3.0),
])
def test_cancel_stops_every_worker_promptly(stage, phantom, within_s):
    """Cancelled as a stage begins: the hips' stage hands one hip to a child, which stops at its
    first check instead of finishing it."""
    volume = generate_phantom(**phantom, seed=0).volume
    cancelled_at = []
    held_up = children_get_work()

    def progress(fraction, message):
        held_up(fraction, message)
        if message == stage and not cancelled_at:
            cancelled_at.append(time.monotonic())

    with pytest.raises(Cancelled):
        pipeline.annotate(volume, Params(), progress=progress, cancel=lambda: bool(cancelled_at),
                          workers=2)
    latency_s = time.monotonic() - cancelled_at[0]
    print(f"cancelled at {stage!r} in {latency_s:.2f} s")
    assert latency_s < within_s
    assert multiprocessing.active_children() == []


def test_ctrl_c_stops_the_workers_and_frees_the_shared_memory(monkeypatch):
    """Ctrl-C raises KeyboardInterrupt in the calling process only (workers ignore SIGINT)."""
    volume = generate_phantom(**SMALL, seed=0).volume
    blocks = []
    shared_block = scan_workers._shared_block
    monkeypatch.setattr(scan_workers, "_shared_block",
                        lambda *args: blocks.append(shared_block(*args)) or blocks[-1])

    def progress(fraction, message):
        if fraction > 0.3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.annotate(volume, Params(), progress=progress, workers=2)
    assert multiprocessing.active_children() == []
    assert len(blocks) == 2  # the HU and the bone mask
    for block in blocks:  # unlinked: no process can map it any more
        with pytest.raises(FileNotFoundError):
            scan_workers.shared_memory.SharedMemory(name=block.memory.name)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_in_a_terminal_while_workers_start_exits_130_with_one_line(tmp_path):
    """A terminal's Ctrl-C sends SIGINT to every process of the command, the workers too, even
    while they are still starting up: the command says "cancelled" once, with no worker's
    traceback, and leaves nothing behind."""
    scan = tmp_path / "ct.nii.gz"
    sitk.WriteImage(phantom_to_sitk(generate_phantom(**MID, seed=0)), str(scan))
    out = tmp_path / "out"
    command = start_in_own_session(
        [sys.executable, "-m", "THAAnnotatorLib.cli", "annotate", str(scan), "--out", str(out),
         "--hip-workers", "2"])
    deadline = time.monotonic() + 60
    while not child_pids(command.pid) and command.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child_pids(command.pid), "no worker process started"
    time.sleep(0.2)  # the worker is importing the library
    os.killpg(command.pid, signal.SIGINT)
    _, stderr = command.communicate(timeout=60)
    assert (command.returncode, stderr) == (130, "cancelled, nothing written\n")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["ct.nii.gz"]


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_the_library_refuses_a_bad_worker_count_before_any_work(workers):
    volume = generate_phantom(**SMALL, seed=0).volume
    stages = []
    with pytest.raises(InputError, match="workers must be an integer of at least 1"):
        pipeline.annotate(volume, Params(), workers=workers,
                          progress=lambda fraction, message: stages.append(message))
    assert stages == []


@pytest.mark.parametrize("value", ["0", "two", "1.5"])
def test_the_command_line_refuses_a_bad_worker_count(small_ct, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["annotate", str(small_ct), "--out", str(tmp_path / "out"), "--hip-workers", value])
    error = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(error) == 1
    assert error[0] == (f"error: argument --hip-workers: must be auto or an integer of at least "
                        f"1, got {value!r}")
    assert not (tmp_path / "out").exists()


def test_automatic_workers_share_only_big_scans_and_only_on_two_cores(monkeypatch):
    monkeypatch.setattr(scan_workers.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert scan_workers.automatic_workers(512 * 512 * 200) == 2
    assert scan_workers.automatic_workers(scan_workers.AUTOMATIC_MIN_VOXELS - 1) == 1
    monkeypatch.setattr(scan_workers.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert scan_workers.automatic_workers(512 * 512 * 200) == 1
