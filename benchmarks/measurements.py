"""THA planning measurements (THAAnnotatorLib.measure) against the sweep's truth.

Each sweep scan is annotated as `tha-annotator annotate` does; each native hip's measurements
are compared with the same definitions applied to its drawn shapes
(THAAnnotatorLib.sweep.measure_truth). Printed per quantity: the hips measured, the values
withheld (no value, counted as not within target), the median, 95th percentile and largest
error, and the share within the issue's target (acetabular diameter 1.5 mm; inclination,
anteversion, center-edge and sector angles 3 deg; coverage 5 points; sphericity RMS 0.5 mm),
over all hips, over those not marked for review, and per class.
Hips the pipeline did not segment or measure are counted apart, with their reasons; implanted
hips have no truth and are left out.
Run: .venv/bin/python benchmarks/measurements.py [--seeds N] [--first-seed S]
     [--classes ...] [--workers W] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.pipeline import annotate
from THAAnnotatorLib.sweep import CLASSES, generate_sweep_case
from THAAnnotatorLib.sweep.measure_truth import sweep_truth_measurements

TARGETS = {"acetabular_diameter_mm": 1.5, "inclination_deg": 3.0, "anteversion_deg": 3.0,
           "center_edge_deg": 3.0, "anterior_sector_deg": 3.0, "posterior_sector_deg": 3.0,
           "head_coverage_percent": 5.0, "head_sphericity_rms_mm": 0.5}
NATIVE_CLASSES = tuple(c for c in CLASSES if c != "metal")


def score_scan(job: tuple[str, int]) -> list[dict]:
    """One record per native hip of sweep scan (class, seed)."""
    hip_class, seed = job
    case = generate_sweep_case(hip_class, seed)
    truth = sweep_truth_measurements(case)
    try:
        sides = annotate(case.volume).sides
    except InputError as error:
        sides, refused = None, str(error)
    records = []
    for side, true in truth.items():
        record = {"class": hip_class, "seed": seed, "side": side,
                  "spacing_mm": [round(s, 2) for s in case.volume.spacing_mm.tolist()],
                  "truth": vars(true)}
        if sides is None:
            record["not_measured"] = f"scan refused: {refused}"
        elif sides[side].measurements.not_computed or true.not_computed:
            record["not_measured"] = (sides[side].measurements.not_computed
                                      or f"no truth: {true.not_computed}")
        else:
            record.update(measured=vars(sides[side].measurements),
                          needs_review=sides[side].needs_review)
            record["errors"] = {name: _error(record["measured"][name], record["truth"][name])
                                for name in TARGETS}
            # a value the pipeline withheld (measured None) where the truth has one
            record["no_value"] = [name for name in TARGETS if record["measured"][name] is None
                                  and record["truth"][name] is not None]
        records.append(record)
    return records


def _error(measured: float | None, true: float | None) -> float | None:
    return None if measured is None or true is None else round(measured - true, 2)


def summary(records: list[dict]) -> list[str]:
    lines = ["| quantity | target | hips | no value | median error | 95th pct | largest | "
             "within target |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, target in TARGETS.items():
        errors = np.abs([r["errors"][name] for r in records
                         if "errors" in r and r["errors"][name] is not None])
        # a withheld value counts as a hip not within target
        missing = sum(name in r.get("no_value", ()) for r in records)
        hips = len(errors) + missing
        if not len(errors):
            lines.append(f"| {name} | {target:g} | {hips} | {missing} | - | - | - | - |")
            continue
        within = int(np.sum(errors <= target))
        lines.append(f"| {name} | {target:g} | {hips} | {missing} | {np.median(errors):.2f} | "
                     f"{np.percentile(errors, 95):.2f} | {errors.max():.2f} | "
                     f"{within}/{hips} ({100 * within / hips:.0f} %) |")
    return lines


def describe(record: dict) -> str:
    where = f"{record['class']:16s} seed {record['seed']:2d} {record['side']:5s}"
    if "errors" not in record:
        return f"{where}: not measured ({record['not_measured']})"
    misses = [f"{name} {error:+.1f}" for name, error in record["errors"].items()
              if error is not None and abs(error) > TARGETS[name]]
    misses += [f"{name} no value" for name in record["no_value"]]
    flag = ", marked for review" if record["needs_review"] else ""
    return f"{where}: {'all within targets' if not misses else 'off: ' + ', '.join(misses)}{flag}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="scans per class (two hips each)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--classes", nargs="+", default=list(NATIVE_CLASSES),
                        choices=NATIVE_CLASSES)
    parser.add_argument("--workers", type=int, default=2, help="scans scored in parallel")
    parser.add_argument("--json", help="also write every hip's record to this file")
    args = parser.parse_args()
    jobs = [(c, s) for c in args.classes
            for s in range(args.first_seed, args.first_seed + args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        records = [r for scan in pool.map(score_scan, jobs) for r in scan]
    for record in records:
        print(describe(record))
    measured = [r for r in records if "errors" in r]
    print(f"\n{len(records)} native hips, {len(measured)} measured\n")
    print("\n".join(summary(records)))
    # the values a user gets without a warning to check the hip
    unmarked = [r for r in measured if not r["needs_review"]]
    print(f"\nthe {len(unmarked)} hips not marked for review:")
    print("\n".join(summary(unmarked)))
    for hip_class in args.classes:
        print(f"\n{hip_class}:")
        print("\n".join(summary([r for r in records if r["class"] == hip_class])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
