"""Rebuild docs/batch_report.png: a small batch build and its report page in headless Chromium.

Scans: five phantoms like `make demo`'s (0.8 mm in-plane, 2 mm slices), one with a metal implant
in the left hip, one without hips and one corrupt file. Needs Debian's chromium
(`apt-get install chromium`). Run: .venv/bin/python docs/make_report_screenshot.py
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import SimpleITK as sitk

from THAAnnotatorLib.batch.build import build_dataset
from THAAnnotatorLib.batch.report import REPORT_FILE
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk

SCREENSHOT = Path(__file__).resolve().parent / "batch_report.png"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def write_scans(folder: Path) -> None:
    def save(name: str, **phantom_args) -> None:
        phantom = generate_phantom(spacing_mm=(2.0, 0.8, 0.8), **phantom_args)
        sitk.WriteImage(phantom_to_sitk(phantom), str(folder / name), useCompression=True)

    for seed in range(5):
        save(f"patient_{seed + 1:03d}.nii.gz", seed=seed)
    save("patient_006_left_implant.nii.gz", seed=5, metal_side="left")
    save("lumbar_spine_only.nrrd", seed=6, hips=False)
    (folder / "transfer_broken.nii.gz").write_bytes(b"\x1f\x8b truncated during copy")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scans, out = Path(tmp) / "scans", Path(tmp) / "build"
        scans.mkdir()
        write_scans(scans)
        build_dataset(scans, out, workers=2)
        subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/chromium",
                        "--window-size=1280,1400", f"--screenshot={SCREENSHOT}",
                        (out / REPORT_FILE).as_uri()], check=True, capture_output=True)
    print(f"wrote {SCREENSHOT}")


if __name__ == "__main__":
    main()
