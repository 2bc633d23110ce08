"""A model's labels on sweep hips, per class, beside another model's: to judge a retrain.

Each model (``--model DIR``, repeatable; the bundled one when none is given) runs
``predict_scan`` on the same sweep scans (``--classes``, seeds ``--first-seed`` ..
``--first-seed + --seeds - 1``), scored against the sweep's truth as ``benchmarks/model_flag.py``
scores them. Printed per class and model: native hips, hips meeting the targets (acetabulum
Dice >= 0.88, femoral head >= 0.92), and mean Dice per class over all native hips, a hip the
model did not segment (not found, refused) counting 0: a model that finds fewer hips is not
rewarded for it. Choose seeds and classes the models were not trained on (the randomized
training data, ``tha-annotator synth-dataset``, holds out whole classes and draws seeds from
100 on) and say which.

Run: .venv/bin/python benchmarks/model_sweep.py --model A --model B --classes narrow_joint
     --seeds 4 --first-seed 8 [--threads 1] [--json FILE]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from model_flag import score_scan  # benchmarks/model_flag.py: the same scoring

from THAAnnotatorLib.model.network import load_model
from THAAnnotatorLib.sweep import CLASSES


def summary_row(name: str, records: list[dict]) -> str:
    native = [r for r in records if not r["implant"]]
    if not native:
        return f"| {name} | 0 | - | - | - |"
    good = sum(r["good"] for r in native)
    acetabulum = np.mean([r.get("acetabulum_dice", 0.0) for r in native])
    head = np.mean([r.get("head_dice", 0.0) for r in native])
    return f"| {name} | {len(native)} | {good} | {acetabulum:.3f} | {head:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[],
                        help="model folder (repeatable; default: the bundled model)")
    parser.add_argument("--classes", nargs="+", default=list(CLASSES), choices=CLASSES)
    parser.add_argument("--seeds", type=int, default=4, help="scans per class (two hips each)")
    parser.add_argument("--first-seed", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--json", help="also write every hip's record to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    records = {}
    for model_dir in args.model or [None]:
        name = model_dir or "bundled"
        model = load_model(model_dir, device="cpu")
        records[name] = [r for c in args.classes for s in seeds for r in score_scan(model, c, s)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    print(f"sweep seeds {seeds.start}-{seeds.stop - 1}; a hip not segmented counts Dice 0\n")
    print("| class, model | native hips | meet targets | mean Dice acetabulum | mean Dice head |")
    print("| --- | --- | --- | --- | --- |")
    for hip_class in [*args.classes, "all"]:
        for name, model_records in records.items():
            chosen = [r for r in model_records if hip_class in ("all", r["class"])]
            print(summary_row(f"{hip_class}, {name}", chosen))


if __name__ == "__main__":
    main()
