"""Pipeline speed on a generated 512 x 512 x 200 hip CT (0.8 mm in-plane, 2 mm slices).

Prints BE slices per second, AFS seconds per side and the whole scan's wall time with one and
with two worker processes (``annotate(workers=...)``, the command line's ``--hip-workers``), and
checks that both give the same result.
Run: .venv/bin/python benchmarks/pipeline.py
"""
from __future__ import annotations

import os
import time

import numpy as np

from THAAnnotatorLib.afs.frame import SideFrame
from THAAnnotatorLib.afs.side import segment_side
from THAAnnotatorLib.bone import extract_bone
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.pipeline import annotate


def main() -> None:
    params = Params()
    phantom = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), fov_mm=(400.0, 409.6, 409.6), seed=1)
    volume = phantom.volume
    print(f"volume {volume.shape} (z, y, x), spacing {np.round(volume.spacing_mm, 2)} mm")

    start = time.perf_counter()
    bone = extract_bone(volume, params)
    be_s = time.perf_counter() - start
    print(f"BE: {volume.shape[0] / be_s:.1f} slices/s ({be_s:.2f} s for {volume.shape[0]} slices)")

    for side in ("right", "left"):
        frame = SideFrame.for_side(volume, side)
        start = time.perf_counter()
        fit = segment_side(frame.view(volume.hu), frame.view(bone), volume.spacing_mm, params)
        print(f"AFS {side}: {time.perf_counter() - start:.2f} s "
              f"({len(fit.fits)} slices, head diameter {2 * fit.sphere.radius_mm:.1f} mm)")

    seconds, annotations = {}, {}
    for workers in (1, 2):
        start = time.perf_counter()
        annotations[workers] = annotate(volume, params, workers=workers)
        seconds[workers] = time.perf_counter() - start
        print(f"whole scan (BE + AFS, both hips), {workers} worker(s): {seconds[workers]:.2f} s")
    same = all(np.array_equal(getattr(annotations[1], name), getattr(annotations[2], name))
               for name in ("bone", "side_labels"))
    print(f"two workers: {seconds[1] / seconds[2]:.2f} x as fast as one, on {os.cpu_count()} "
          f"cores; the same labels and bone mask: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
