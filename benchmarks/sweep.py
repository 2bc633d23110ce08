"""The pipeline on the sweep (THAAnnotatorLib.sweep), per class and overall.

Each scan holds two hips. A native hip meets the targets when it is segmented with acetabulum
Dice >= 0.88, femoral head Dice >= 0.92 and a diameter within 1.5 mm of its equivalent sphere's;
an implanted hip meets them when it is reported as metal. A hip is flagged when it is marked
needs_review or not segmented (metal, not found, or the scan refused): the user is told.
Printed per class and overall: hips meeting the targets, hips flagged, flag recall on the
failing hips, false alarms on the good native hips (an implant reported as metal is a right
answer, not a request for review: it is in neither flag column), and the diameter error (segmented
native hips). The JSON records also hold what the review flag could use: the surface check's
edge, the planning measurements (concentricity, acetabular diameter, ...) and each hip's
warnings.
``--joint-space-mm`` sets every hip's joint space (0: closed, bone on bone, as in end-stage
osteoarthritis), the rest of each scan as its class draws it.
Run: .venv/bin/python benchmarks/sweep.py [--seeds N] [--first-seed S] [--classes ...]
     [--joint-space-mm MM] [--workers W] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.metrics import segment_dice
from THAAnnotatorLib.pipeline import annotate
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, SIDES
from THAAnnotatorLib.sweep import CLASSES, draw_scan, render_scan
from THAAnnotatorLib.sweep.truth import sweep_truth_labels

TARGET_ACETABULUM, TARGET_HEAD, TARGET_DIAMETER_MM = 0.88, 0.92, 1.5


def score_scan(job: tuple[str, int, float | None]) -> list[dict]:
    """One record per hip of sweep scan (class, seed, joint space in mm or None as drawn)."""
    hip_class, seed, joint_space_mm = job
    scan = draw_scan(hip_class, seed)
    if joint_space_mm is not None:
        scan = scan.with_hips(joint_space_mm=joint_space_mm)
    return score_case(render_scan(scan), hip_class, seed)


def score_case(case, name: str, seed: int) -> list[dict]:
    """One record per hip of a rendered sweep case, filed under ``name`` and ``seed``."""
    try:
        annotation = annotate(case.volume)
    except InputError as error:
        annotation, refused = None, str(error)
    truth = sweep_truth_labels(case)
    records = []
    for side in SIDES:
        implant = case.draw.hips[side].implant
        record = {"class": name, "seed": seed, "side": side, "implant": implant,
                  "spacing_mm": [round(s, 2) for s in case.volume.spacing_mm.tolist()]}
        if annotation is None:  # the scan refused as a whole, each hip's reason in the message
            record.update(status="refused", message=refused, flagged=True,
                          good=implant and f"{side} hip: metal implant" in refused)
            records.append(record)
            continue
        result = annotation.sides[side]
        record.update(status=result.status, message=result.message, warnings=result.warnings)
        if implant:
            record.update(good=result.status == "metal",
                          flagged=result.status != "segmented" or result.needs_review)
        elif result.status != "segmented":
            record.update(good=False, flagged=True)
        else:
            acetabulum = segment_dice(annotation.side_labels, truth, side, ACETABULUM)
            head = segment_dice(annotation.side_labels, truth, side, FEMORAL_HEAD)
            error = result.head_diameter_mm - 2 * case.hips[side].radius_mm
            measurements = result.measurements
            record.update(head_diameter_mm=result.head_diameter_mm,
                          surface_drop_hu=result.surface_drop_hu,
                          surface_edge_offset_mm=result.surface_edge_offset_mm,
                          measurements={k: v for k, v in vars(measurements).items()
                                        if isinstance(v, (int, float)) or k == "not_computed"})
            record.update(acetabulum_dice=round(acetabulum, 3), head_dice=round(head, 3),
                          diameter_error_mm=round(error, 2), flagged=bool(result.needs_review),
                          good=bool(acetabulum >= TARGET_ACETABULUM and head >= TARGET_HEAD
                                    and abs(error) <= TARGET_DIAMETER_MM))
        records.append(record)
    return records


def share(count: int, total: int) -> str:
    """``count`` of ``total`` as "n/N (p %)", or "-" for none."""
    return f"{count}/{total} ({100.0 * count / total:.0f} %)" if total else "-"


def summary_row(name: str, records: list[dict]) -> str:
    good = [r for r in records if r["good"]]
    bad = [r for r in records if not r["good"]]
    flagged = [r for r in records if r["flagged"]]
    good_native = [r for r in good if not r["implant"]]
    errors = np.abs([r["diameter_error_mm"] for r in records if "diameter_error_mm" in r])
    spread = (f"{np.median(errors):.1f} / {np.percentile(errors, 90):.1f} / {errors.max():.1f}"
              if len(errors) else "-")
    return (f"| {name} | {len(records)} | {share(len(good), len(records))} | "
            f"{share(len(flagged), len(records))} | "
            f"{share(sum(r['flagged'] for r in bad), len(bad))} | "
            f"{share(sum(r['flagged'] for r in good_native), len(good_native))} | {spread} |")


def describe(record: dict) -> str:
    where = f"{record['class']:16s} seed {record['seed']:2d} {record['side']:5s}"
    verdict = ("ok" if record["good"] else "MISS") + (", flagged" if record["flagged"] else "")
    if "acetabulum_dice" in record:
        return (f"{where}: acetabulum {record['acetabulum_dice']:.3f}, head "
                f"{record['head_dice']:.3f}, diameter {record['diameter_error_mm']:+.1f} mm "
                f"[{verdict}]")
    return f"{where}: {record['status']}{' (implant)' if record['implant'] else ''}: " \
           f"{record['message']} [{verdict}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="scans per class (two hips each)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--classes", nargs="+", default=list(CLASSES), choices=CLASSES)
    parser.add_argument("--joint-space-mm", type=float,
                        help="every hip's joint space (mm; default: as each class draws it)")
    parser.add_argument("--workers", type=int, default=2, help="scans scored in parallel")
    parser.add_argument("--json", help="also write every hip's record to this file")
    args = parser.parse_args()
    jobs = [(c, s, args.joint_space_mm) for c in args.classes
            for s in range(args.first_seed, args.first_seed + args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        records = [r for scan in pool.map(score_scan, jobs) for r in scan]
    for record in records:
        print(describe(record))
    report(records, args.classes, "class", args.json)


def report(records: list[dict], names: list[str], heading: str, json_path: str | None) -> None:
    """The summary table, a row per name in ``names`` (the records' "class") and one for all,
    under a first column headed ``heading``; and every record to ``json_path`` if given."""
    print()
    print(f"| {heading} | hips | meet all targets | flagged | failing hips flagged | good native "
          "hips flagged | diameter error, mm: median / 90th pct / max |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        print(summary_row(name, [r for r in records if r["class"] == name]))
    print(summary_row("all", records))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
