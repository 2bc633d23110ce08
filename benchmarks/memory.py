"""Peak memory of the command line on a generated 512 x 512 x 200 hip CT (0.8 mm in-plane, 2 mm
slices, stored as 16-bit NIfTI like a clinical scan).

Each command runs in a fresh process; its peak resident memory (the kernel's high-water mark,
`ru_maxrss` from `wait4`) is printed, beside that of a process that only imports the library, and
the wall time. What is measured is what a user's machine must hold: the interpreter, the
libraries, the scan (as float32 HU: 200 MiB for this one) and everything the run allocates.
This script itself imports nothing but the standard library (the scan is written by a child
too): the kernel counts a child's memory from before it starts the command, which is a copy of
its parent's.

`annotate` runs twice, with `--hip-workers 1` and `--hip-workers 2`. With two workers there are
two processes (and the shared memory blocks they both map), and `ru_maxrss` is the peak of the
largest one alone, not of both together; so the whole process tree is also sampled every 20 ms
(Linux `/proc`), and the peak of the sum of its processes' proportional set sizes (PSS: a shared
page counted once in all) is printed as "all processes". Sampling can miss a peak shorter than
20 ms, so that figure is a lower bound.

Run: .venv/bin/python benchmarks/memory.py [--slices 200] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CLI = [sys.executable, "-m", "THAAnnotatorLib.cli"]
_WRITE_SCAN = """
import sys
import SimpleITK as sitk
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk
phantom = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), fov_mm=(2.0 * int(sys.argv[1]), 409.6, 409.6),
                           seed=1)
sitk.WriteImage(phantom_to_sitk(phantom), sys.argv[2], useCompression=True)
print(*reversed(phantom.volume.shape), phantom.volume.hu.nbytes)
"""


_SAMPLE_S = 0.02


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants that are alive now (Linux /proc)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
        except OSError:  # ended meanwhile
            continue
    return found


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:  # ended meanwhile
        pass
    return 0


def _peak_mib(command: list[str]) -> tuple[float, float, float]:
    """Peak resident memory (MiB) of the largest process of ``command`` (run in its own
    process), the peak of all its processes' PSS together (MiB, sampled; 0 where /proc cannot
    tell) and the wall time (s)."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a full pipe would block
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        peak_sum = 0
        while True:
            ended, status, usage = os.wait4(process.pid, os.WNOHANG)
            if ended:
                break
            peak_sum = max(peak_sum, sum(_pss_kib(pid) for pid in _tree(process.pid)))
            time.sleep(_SAMPLE_S)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed: {errors.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024.0, peak_sum / 1024.0, seconds  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200, help="axial slices (2 mm apart)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="device for `predict` (default: cpu)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tha-memory-") as folder:
        folder = Path(folder)
        scan = folder / "scan.nii.gz"
        written = subprocess.run([sys.executable, "-c", _WRITE_SCAN, str(args.slices), str(scan)],
                                 check=True, capture_output=True, text=True).stdout.split()
        nx, ny, nz, hu_bytes = (int(v) for v in written)
        print(f"scan {nx} x {ny} x {nz} voxels, float32 HU {hu_bytes / 2**20:.0f} MiB in memory")
        runs = [
            ("import the library only", [sys.executable, "-c", "import THAAnnotatorLib.pipeline"]),
            *((f"annotate --hip-workers {workers} (BE + AFS, both hips, all outputs)",
               _CLI + ["annotate", str(scan), "--out", str(folder / f"annotated-{workers}"),
                       "--quiet", "--hip-workers", str(workers)]) for workers in (1, 2)),
            (f"predict (bundled model, {args.device})",
             _CLI + ["predict", str(scan), "--out", str(folder / "predicted"), "--device",
                     args.device]),
        ]
        for name, command in runs:
            peak, peak_all, seconds = _peak_mib(command)
            print(f"{name}: peak resident memory {peak:.0f} MiB (largest process), "
                  f"all processes {peak_all:.0f} MiB (sampled PSS), {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
