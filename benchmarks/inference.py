"""Speed of the bundled model on a generated two-hip CT (512 x 512 slices of 0.8 mm, 2 mm apart;
200 slices by default).

Prints the network's throughput in ROI slices per second (256 x 256, in the device's default
batches unless ``--batch-size``) and the wall time of a whole-scan prediction (bone extraction,
head localisation, both hips' ROIs through the network and the shifted second view, labels back
onto the scan's voxels), best of three runs after a warm-up, with the stages of that run and the
process's CPU time beside it. The load average is printed too: on a shared machine the wall
times are only worth as much as the CPUs left free. ``--profile`` adds the functions that took
longest in one more run (cProfile, which slows that run down).

Run: .venv/bin/python benchmarks/inference.py [--model DIR] [--device auto|cpu|cuda]
     [--fov-z-mm 400] [--threads N] [--batch-size N] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

import numpy as np
import torch

from THAAnnotatorLib.model.config import inference_batch_size
from THAAnnotatorLib.model.inference import predict_probabilities, predict_scan
from THAAnnotatorLib.model.network import load_model
from THAAnnotatorLib.phantom import generate_phantom

SLICES = 64
"""ROI slices pushed through the network for the throughput figure."""
TARGET_S = 4.0
"""Whole-scan time aimed for on the project's 2-core CPU (issue 19), seconds."""


def _best_of(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def _timed_prediction(volume, model, batch_size) -> tuple[float, float, list[tuple[str, float]]]:
    """Wall seconds, CPU seconds of this process and [(stage, seconds it took)] of one run."""
    marks: list[tuple[str, float]] = []
    start, cpu = time.perf_counter(), time.process_time()
    predict_scan(volume, model, batch_size=batch_size,
                 progress=lambda _, message: marks.append((message, time.perf_counter())))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    stages = [(message, round(after - before, 2))
              for (message, before), (_, after) in zip(marks, marks[1:])]
    return wall, cpu, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder (default: the bundled one).")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--fov-z-mm", type=float, default=400.0,
                        help="Scan length along S-I, mm (default: 400, 200 slices, both hips).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="ROI slices per forward pass (default: the device's).")
    parser.add_argument("--profile", action="store_true", help="Also profile one run (cProfile).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.model, args.device)
    size = model.config.roi.pixels
    batch = args.batch_size or inference_batch_size(model.device.type)
    print(f"device {model.device}, torch threads {torch.get_num_threads()}, "
          f"network {model.info['architecture']['channels']}, ROI {size} x {size}, batch {batch}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    images = np.random.default_rng(0).random((SLICES, size, size), dtype=np.float32)
    predict_probabilities(model, images[:batch], batch)  # warm-up
    seconds = _best_of(3, lambda: predict_probabilities(model, images, batch))
    print(f"network: {SLICES / seconds:.1f} ROI slices/s ({seconds:.2f} s for {SLICES})")

    phantom = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), fov_mm=(args.fov_z_mm, 409.6, 409.6), seed=1)
    volume = phantom.volume
    print(f"scan {volume.shape} (z, y, x), spacing {np.round(volume.spacing_mm, 2)} mm")
    annotation = predict_scan(volume, model, batch_size=batch)  # warm-up
    wall, cpu, stages = min((_timed_prediction(volume, model, batch) for _ in range(3)),
                            key=lambda run: run[0])
    statuses = ", ".join(f"{s} {r.status}" for s, r in annotation.sides.items())
    print(f"whole-scan prediction: {wall:.2f} s, best of 3 ({statuses}; target < {TARGET_S:g} s); "
          f"that run: {', '.join(f'{stage} {s:.2f} s' for stage, s in stages)}; "
          f"CPU time {cpu:.2f} s; load average now {os.getloadavg()[0]:.1f}")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(predict_scan, volume, model, batch_size=batch)
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
