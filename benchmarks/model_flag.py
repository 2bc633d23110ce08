"""How well the model's review flag finds its failures, on held-out hips.

``predict_scan`` with the bundled model on sweep scans (THAAnnotatorLib.sweep, every class)
and on phantoms of the generator the model was trained on (class "phantom": PhantomRecipe.draw
of seeds 1000 + seed, none of them trained on; the model fails nearly every sweep hip, so
without these there would be no good hip to count false alarms on), two hips each, scored
against the truth as ``benchmarks/sweep.py`` scores the pipeline, without the diameter (the
model fits no sphere): a native hip is good when it is segmented with acetabulum Dice >= 0.88
and femoral head Dice >= 0.92. A hip is flagged when it is not segmented (not found, the scan
refused, or metal) or marked needs_review: a warning about the scan (coarser than the method
was made for, metal elsewhere) or its agreement under a shifted view
(THAAnnotatorLib.model.uncertainty) below the threshold of either class.

The thresholds are chosen on seeds 0-3 (the pair maximizing recall minus the false-alarm
rate, the lowest of equals) and reported on seeds 4-7, which played no part in choosing them
(held out). Printed per class and overall, for the held-out seeds: native hips, good hips,
recall (failing hips flagged), false alarms (good hips flagged), mean Dice of the segmented
native hips against the truth, the same recall and false alarms without the agreement (what
the scan's warnings and the presence decision flag alone), and implants reported as metal.

Run: .venv/bin/python benchmarks/model_flag.py [--classes ...] [--json FILE]
     [--from-json FILE ...] [--threads 1]
(about 20 min for all classes on one CPU thread)
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from sweep import TARGET_ACETABULUM, TARGET_HEAD, share  # benchmarks/sweep.py: the same targets

from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.labels import truth_side_labels
from THAAnnotatorLib.metrics import segment_dice
from THAAnnotatorLib.model.build import PHANTOM_FOV_MM, PhantomRecipe
from THAAnnotatorLib.model.inference import predict_scan
from THAAnnotatorLib.model.network import load_model
from THAAnnotatorLib.model.uncertainty import MIN_AGREEMENT_DICE, doubt_warnings
from THAAnnotatorLib.phantom import generate_phantom
from THAAnnotatorLib.result import ACETABULUM, FEMORAL_HEAD, SIDES
from THAAnnotatorLib.sweep import CLASSES, generate_sweep_case
from THAAnnotatorLib.sweep.truth import sweep_truth_labels
from THAAnnotatorLib.volume import Volume

PHANTOM_CLASS = "phantom"
"""Not a sweep class: phantoms of the generator the model was trained on (PhantomRecipe.draw),
where it mostly meets the targets, so that false alarms can be measured at all."""
PHANTOM_FIRST_SEED = 1000
"""Phantom seeds are 1000 + the seed (training used 0-23; the model card's held-out set 1000-1005)."""
CHOICE_SEEDS = range(0, 4)
"""Seeds the thresholds are chosen on."""
HELD_OUT_SEEDS = range(4, 8)
"""Seeds the flag is reported on."""


def held_out_case(hip_class: str, seed: int) -> tuple[Volume, np.ndarray, dict[str, bool]]:
    """The scan, its truth segment codes and which hips hold an implant: a sweep scan, or for
    :data:`PHANTOM_CLASS` the training generator's phantom of seed
    :data:`PHANTOM_FIRST_SEED` + ``seed``."""
    if hip_class == PHANTOM_CLASS:
        recipe = PhantomRecipe.draw(PHANTOM_FIRST_SEED + seed)
        phantom = generate_phantom(spacing_mm=recipe.spacing_mm, fov_mm=PHANTOM_FOV_MM,
                                   seed=recipe.seed, head_radius_mm=recipe.head_radius_mm,
                                   spongy=recipe.spongy, noise_hu=recipe.noise_hu,
                                   joint_gap_mm=recipe.joint_gap_mm)
        return phantom.volume, truth_side_labels(phantom), {side: False for side in SIDES}
    case = generate_sweep_case(hip_class, seed)
    return (case.volume, sweep_truth_labels(case),
            {side: case.draw.hips[side].implant for side in SIDES})


def score_scan(model, hip_class: str, seed: int) -> list[dict]:
    """One record per hip of scan (class, seed) (:func:`held_out_case`)."""
    return score_case(model, hip_class, seed, *held_out_case(hip_class, seed))


def score_case(model, hip_class: str, seed: int, volume: Volume, truth: np.ndarray,
               implants: dict[str, bool]) -> list[dict]:
    """One record per hip of a scan with its truth segment codes and which hips hold an
    implant: status, warnings, agreement, and Dice per class where segmented."""
    try:
        annotation, refused = predict_scan(volume, model), None
    except InputError as error:
        annotation, refused = None, str(error)
    records = []
    for side in SIDES:
        implant = implants[side]
        record = {"class": hip_class, "seed": seed, "side": side, "implant": implant}
        if annotation is None:
            record.update(status="refused", message=refused, flagged_anyway=True,
                          good=implant and f"{side} hip: metal implant" in refused)
            records.append(record)
            continue
        result = annotation.sides[side]
        record.update(status=result.status, message=result.message, warnings=result.warnings)
        if result.status != "segmented":
            record.update(good=implant and result.status == "metal", flagged_anyway=True)
        else:
            agreement = result.model_agreement
            doubts = doubt_warnings(agreement)
            acetabulum = segment_dice(annotation.side_labels, truth, side, ACETABULUM)
            head = segment_dice(annotation.side_labels, truth, side, FEMORAL_HEAD)
            record.update(agreement=agreement,
                          flagged_anyway=any(w not in doubts for w in result.warnings),
                          acetabulum_dice=round(acetabulum, 3), head_dice=round(head, 3),
                          good=bool(not implant and acetabulum >= TARGET_ACETABULUM
                                    and head >= TARGET_HEAD))
        records.append(record)
    return records


def flagged(record: dict, thresholds: dict[str, float] | None) -> bool:
    """Whether the hip is flagged with these agreement thresholds per class (None: without the
    agreement)."""
    if record["flagged_anyway"]:
        return True
    return thresholds is not None and any(record["agreement"][key] < low
                                          for key, low in thresholds.items())


def rates(records: list[dict], thresholds: dict[str, float] | None) -> tuple[int, int, int, int]:
    """(failing hips flagged, failing hips, good hips flagged, good hips), native hips only (an
    implant reported as metal is right, not an alarm)."""
    native = [r for r in records if not r["implant"]]
    bad = [r for r in native if not r["good"]]
    good = [r for r in native if r["good"]]
    return (sum(flagged(r, thresholds) for r in bad), len(bad),
            sum(flagged(r, thresholds) for r in good), len(good))


def choose_thresholds(records: list[dict]) -> dict[str, float]:
    """The agreement thresholds (acetabulum, femoral head; 0.80-1.00 in steps of 0.005) with
    the largest recall minus false-alarm rate on ``records`` (the lowest of equals)."""
    grid = np.round(np.arange(0.80, 1.0001, 0.005), 3)
    best, best_score = {}, -np.inf
    for acetabulum in grid:
        for head in grid:
            thresholds = {"acetabulum": float(acetabulum), "femoral_head": float(head)}
            caught, bad, alarms, good = rates(records, thresholds)
            score = caught / max(bad, 1) - alarms / max(good, 1)
            if score > best_score + 1e-9:
                best, best_score = thresholds, score
    return best


def summary_row(name: str, records: list[dict], thresholds: dict[str, float]) -> str:
    caught, bad, alarms, good = rates(records, thresholds)
    caught_alone, _, alarms_alone, _ = rates(records, None)
    segmented = [r for r in records if "head_dice" in r]
    implants = [r for r in records if r["implant"]]
    dice = (f"{np.mean([r['acetabulum_dice'] for r in segmented]):.3f} / "
            f"{np.mean([r['head_dice'] for r in segmented]):.3f}" if segmented else "-")
    return (f"| {name} | {bad + good} | {share(good, bad + good)} | {share(caught, bad)} | "
            f"{share(alarms, good)} | {dice} | {share(caught_alone, bad)} | "
            f"{share(alarms_alone, good)} | "
            f"{share(sum(r['good'] for r in implants), len(implants))} |")


def describe(record: dict) -> str:
    where = f"{record['class']:16s} seed {record['seed']} {record['side']:5s}"
    verdict = "ok" if record["good"] else "MISS"
    if "head_dice" in record:
        a = record["agreement"]
        return (f"{where}: acetabulum {record['acetabulum_dice']:.3f}, head {record['head_dice']:.3f}; "
                f"agreement {a['acetabulum']:.3f} / {a['femoral_head']:.3f}"
                f"{', flagged anyway' if record['flagged_anyway'] else ''} [{verdict}]")
    return f"{where}: {record['status']}: {record['message']} [{verdict}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", nargs="+", default=[PHANTOM_CLASS, *CLASSES],
                        choices=[PHANTOM_CLASS, *CLASSES])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--json", help="also write every hip's record to this file")
    parser.add_argument("--from-json", nargs="+", default=[],
                        help="score the records of earlier --json runs instead")
    args = parser.parse_args()
    if args.from_json:
        records = []
        for path in args.from_json:
            with open(path) as f:
                records += [r for r in json.load(f) if r["class"] in args.classes]
    else:
        torch.set_num_threads(args.threads)
        model = load_model(device="cpu")
        records = [r for c in args.classes for s in [*CHOICE_SEEDS, *HELD_OUT_SEEDS]
                   for r in score_scan(model, c, s)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    for record in records:
        print(describe(record))
    choice = [r for r in records if r["seed"] in CHOICE_SEEDS]
    chosen = choose_thresholds(choice)
    caught, bad, alarms, good = rates(choice, chosen)
    print(f"\nthresholds chosen on seeds {CHOICE_SEEDS.start}-{CHOICE_SEEDS.stop - 1}: {chosen} "
          f"(there: recall {caught}/{bad}, false alarms {alarms}/{good}); the library's "
          f"MIN_AGREEMENT_DICE: {MIN_AGREEMENT_DICE}. The table uses the library's, on held-out "
          f"seeds {HELD_OUT_SEEDS.start}-{HELD_OUT_SEEDS.stop - 1}\n")
    print("| class | native hips | good | recall: failing hips flagged | false alarms: good "
          "hips flagged | mean Dice acetabulum / head | recall without agreement | false alarms "
          "without agreement | implants reported as metal |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    held_out = [r for r in records if r["seed"] in HELD_OUT_SEEDS]
    for hip_class in args.classes:
        print(summary_row(hip_class, [r for r in held_out if r["class"] == hip_class],
                          MIN_AGREEMENT_DICE))
    print(summary_row("all", held_out, MIN_AGREEMENT_DICE))


if __name__ == "__main__":
    main()
