"""Speed of the bundled model on a generated two-hip CT (512 x 512 slices of 0.8 mm, 2 mm apart).

Prints the network's throughput in ROI slices per second (256 x 256, batches of 16) and the
wall time of a whole-scan prediction (bone extraction, head localisation, both hips' ROIs
through the network, labels back onto the scan's voxels), best of three runs after a warm-up.

Run: .venv/bin/python benchmarks/inference.py [--model DIR] [--device auto|cpu|cuda]
     [--fov-z-mm 160] [--threads N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from THAAnnotatorLib.bone import extract_bone
from THAAnnotatorLib.model.inference import predict_probabilities, predict_scan
from THAAnnotatorLib.model.network import load_model
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom

SLICES = 64
"""ROI slices pushed through the network for the throughput figure."""


def _best_of(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder (default: the bundled one).")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--fov-z-mm", type=float, default=160.0,
                        help="Scan length along S-I, mm (default: 160, both hips).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.model, args.device)
    size = model.config.roi.pixels
    print(f"device {model.device}, torch threads {torch.get_num_threads()}, "
          f"network {model.info['architecture']['channels']}, ROI {size} x {size}")

    images = np.random.default_rng(0).random((SLICES, size, size), dtype=np.float32)
    predict_probabilities(model, images[:16])  # warm-up
    seconds = _best_of(3, lambda: predict_probabilities(model, images, batch_size=16))
    print(f"network: {SLICES / seconds:.1f} ROI slices/s ({seconds:.2f} s for {SLICES})")

    phantom = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), fov_mm=(args.fov_z_mm, 409.6, 409.6), seed=1)
    volume = phantom.volume
    print(f"scan {volume.shape} (z, y, x), spacing {np.round(volume.spacing_mm, 2)} mm")
    be = _best_of(1, lambda: extract_bone(volume, Params()))
    print(f"  of which bone extraction: {be:.2f} s")
    predict_scan(volume, model)  # warm-up
    whole = _best_of(3, lambda: predict_scan(volume, model))
    annotation = predict_scan(volume, model)
    statuses = ", ".join(f"{s} {r.status}" for s, r in annotation.sides.items())
    print(f"whole-scan prediction: {whole:.2f} s ({statuses}; target < 5 s)")


if __name__ == "__main__":
    main()
