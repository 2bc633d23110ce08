"""How responsive the Slicer panel stays during Segment hips and Predict with model on a
512 x 512 x 200 scan (the phantom at 0.8 mm in-plane, 2 mm slices), headless on slicer-core.

The panel starts a run in a separate process (``THAAnnotatorLogic.start``), polls it every
0.1 s from a QTimer and writes the result into the scene at the end (``finish``). This script
does the same without Qt and prints, per run, how long the main thread is busy at the start, at
the longest poll and at the final write, and how long Cancel takes to stop the run (from the
call to the run reporting itself cancelled, the worker killed and its files removed), cancelled
at several moments.

Run: .venv/bin/python benchmarks/slicer_responsiveness.py [--cancel-after 1 4 8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "THAAnnotator"))

import slicer  # noqa: E402
import THAAnnotatorScenarios  # noqa: E402
from THAAnnotator import THAAnnotatorLogic  # noqa: E402
from THAAnnotatorSlicerLib import runner  # noqa: E402

POLL_S = 0.1
"""The panel's QTimer interval."""


def timed(work):
    began = time.perf_counter()
    value = work()
    return value, time.perf_counter() - began


def full_run(logic, volumeNode, mode: str) -> dict:
    job, start_s = timed(lambda: logic.start(mode, volumeNode, None, device="cpu"))
    longest_poll_s, began = 0.0, time.perf_counter()
    while True:
        time.sleep(POLL_S)
        state, poll_s = timed(job.poll)
        longest_poll_s = max(longest_poll_s, poll_s)
        if state != runner.RUNNING:
            break
    run_s = time.perf_counter() - began
    output, finish_s = timed(lambda: logic.finish(job))
    volumeNode.GetScene().RemoveNode(output.segmentationNode)
    return {"start": start_s, "longest poll": longest_poll_s, "finish (write into MRML)": finish_s, "run": run_s}


def cancel_latency(logic, volumeNode, mode: str, after_s: float) -> tuple[float, str]:
    job = logic.start(mode, volumeNode, None, device="cpu")
    while job.poll() == runner.RUNNING and job.fraction == 0.0:
        time.sleep(0.02)  # until the worker is inside the library
    time.sleep(after_s)
    assert job.poll() == runner.RUNNING, f"{mode} finished within {after_s} s; cancel earlier"
    _, latency_s = timed(lambda: (job.cancel(), job.poll()))
    return latency_s, job.message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cancel-after", type=float, nargs="+", default=[1.0, 3.0, 5.0],
                        help="Seconds after the worker's first progress report at which to cancel.")
    args = parser.parse_args()
    scene = slicer.vtkMRMLScene()
    logic = THAAnnotatorLogic(scene)
    volumeNode = THAAnnotatorScenarios.addPhantomVolume(scene, THAAnnotatorScenarios.LPS_LAYOUT,
                                                        fovMm=THAAnnotatorScenarios.LARGE_FOV_MM)
    print(f"scan: {slicer.util.arrayFromVolume(volumeNode).shape[::-1]} voxels (i, j, k)")
    for mode, label in (("hips", "Segment hips"), ("model", "Predict with model (CPU)")):
        figures = full_run(logic, volumeNode, mode)
        print(f"{label}: run {figures.pop('run'):.1f} s; main thread busy: "
              + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in figures.items()))
        latencies = [cancel_latency(logic, volumeNode, mode, after) for after in args.cancel_after]
        print(f"  Cancel: median {statistics.median(s for s, _ in latencies) * 1000:.0f} ms, "
              f"longest {max(s for s, _ in latencies) * 1000:.0f} ms (during "
              + ", ".join(f"{message!r}" for _, message in latencies) + ")")


if __name__ == "__main__":
    main()
