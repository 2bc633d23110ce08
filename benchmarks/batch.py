"""Batch build throughput: scans per minute with 1 and with 2 Dask workers on the same scans.

Generates SCANS phantoms (0.8 mm in-plane, 2 mm slices, like `make demo`), then builds them
twice into fresh folders, once per worker count. Times are wall clock from the call to the
finished manifest and report, local cluster start-up included, as a user waits for them.
Run: .venv/bin/python benchmarks/batch.py [--scans 8]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from THAAnnotatorLib.batch.build import build_dataset
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=8, help="Number of phantoms (default 8).")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="Worker counts to compare (default: 1 2).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scans = Path(tmp) / "scans"
        scans.mkdir()
        for seed in range(args.scans):
            image = phantom_to_sitk(generate_phantom(spacing_mm=(2.0, 0.8, 0.8), seed=seed))
            sitk.WriteImage(image, str(scans / f"ct{seed:03d}.nii.gz"), useCompression=True)
        print(f"{args.scans} scans of {image.GetSize()} voxels (x, y, z), 0.8 x 0.8 x 2 mm")
        rates = {}
        for workers in args.workers:
            start = time.perf_counter()
            summary = build_dataset(scans, Path(tmp) / f"out{workers}", workers=workers)
            seconds = time.perf_counter() - start
            per_case = sum(r["run_time_s"] for r in summary.records) / len(summary.records)
            rates[workers] = 60.0 * args.scans / seconds
            print(f"{workers} worker(s): {seconds:.1f} s, {rates[workers]:.1f} scans/min "
                  f"({summary.count('done')} done, {summary.count('failed')} failed; "
                  f"{per_case:.1f} s per scan on a worker)")
        base = args.workers[0]
        for workers in args.workers[1:]:
            print(f"speed-up {workers} vs {base} worker(s): {rates[workers] / rates[base]:.2f}x")


if __name__ == "__main__":
    main()
