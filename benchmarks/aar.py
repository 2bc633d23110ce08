"""Table 6 of the paper on generated scans: does AAR pick the slices worth re-annotating?

Three networks are trained with the same settings and seed, differing only in their labels:

- baseline: the pipeline's pseudo labels;
- random: the pseudo labels, with K random joint slices (slices showing both classes)
  re-annotated, i.e. replaced by the phantom's truth;
- AAR: the pseudo labels, with the K slices of highest uncertainty U = 1 / (Dice + eps) under
  the baseline network (the review queue) replaced by the truth;
- truth (with --with-truth): the truth everywhere, the upper bound.

Each network then labels the held-out scans (whole-scan prediction, as ``tha-annotator
predict``) and is scored against their truth (as ``tha-annotator evaluate``). K defaults to
3.8 % of the training slices, the paper's share (200 of 5297).

Inputs are datasets made by ``tha-annotator slice-dataset``: a training set of phantoms (truth
kept alongside the pseudo labels) and a held-out set built with ``--keep-scans``. Work is kept
in --out and reused when the script is run again (training resumes from its checkpoint).

Run: .venv/bin/python benchmarks/aar.py --train TRAIN_DS --heldout HELDOUT_DS --out WORK_DIR
     [--epochs 6] [--top-percent 3.8] [--seed 0] [--channels 16 32 64 128 256] [--random-seeds 0]
     [--with-truth]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from THAAnnotatorLib import io, outputs
from THAAnnotatorLib.model.aar import pooled_dice, replace_labels, score_slices, select_top
from THAAnnotatorLib.model.build import SCANS_FOLDER, TRUTH_FOLDER, scan_id_from_path
from THAAnnotatorLib.model.config import TrainOptions
from THAAnnotatorLib.model.dataset import SliceDataset
from THAAnnotatorLib.model.evaluation import evaluate_folders, mean_scores
from THAAnnotatorLib.model.inference import predict_scan
from THAAnnotatorLib.model.network import load_model
from THAAnnotatorLib.model.training import train
from THAAnnotatorLib.params import Params


def copy_dataset(source: Path, target: Path) -> SliceDataset:
    """A copy of a dataset's index and case files (scans are not needed for training)."""
    if not (target / "dataset.json").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source / "cases", target / "cases")
        shutil.copy(source / "dataset.json", target / "dataset.json")
    return SliceDataset.open(target)


def reannotate(dataset: SliceDataset, picks: list[tuple[int, int]]) -> int:
    """Replace the labels of (case, row) picks by the truth; returns how many changed."""
    replacements: dict[int, dict[int, np.ndarray]] = {}
    truths = {}
    for number, row in picks:
        if number not in truths:
            truths[number] = dataset.load_case(number).truth
        replacements.setdefault(number, {})[row] = truths[number][row]
    return replace_labels(dataset, replacements)


def joint_slices(dataset: SliceDataset) -> list[tuple[int, int]]:
    """(case, row) of every slice whose label shows both acetabulum and femoral head."""
    out = []
    for number in range(len(dataset.cases)):
        labels = dataset.load_case(number).label
        out += [(number, row) for row, label in enumerate(labels)
                if (label == 1).any() and (label == 2).any()]
    return out


def truth_agreement(dataset: SliceDataset, picks: list[tuple[int, int]]) -> float:
    """Mean pooled-foreground Dice of the picked slices' labels against their truth, before
    re-annotation: low means the picks were slices the pipeline got wrong."""
    scores = []
    for number, row in picks:
        data = dataset.load_case(number)
        scores.append(pooled_dice(data.label[row], data.truth[row]))
    return float(np.mean(scores))


def label_quality(dataset: SliceDataset) -> float:
    """Mean pooled-foreground Dice of the training labels against the truth, over the slices
    where either shows some foreground."""
    scores = []
    for number in range(len(dataset.cases)):
        data = dataset.load_case(number)
        scores += [pooled_dice(label, truth) for label, truth in zip(data.label, data.truth)
                   if label.any() or truth.any()]
    return float(np.mean(scores))


def train_variant(dataset: SliceDataset, model_dir: Path, options: TrainOptions) -> float:
    """Train (or resume, or reuse) one network; returns its training time in seconds, as the
    model records it per epoch (so a reused network reports the time it took)."""
    resume = (model_dir / "checkpoints" / "last.pt").exists()
    if not resume or len(_history(model_dir)) < options.epochs:
        train(dataset.root, model_dir, options, resume=resume, show_progress=False)
    return sum(epoch["seconds"] for epoch in _history(model_dir))


def _history(model_dir: Path) -> list[dict]:
    return json.loads((model_dir / "model.json").read_text())["training"]["history"]


def evaluate_variant(model_dir: Path, heldout: Path, out: Path, device: str) -> dict:
    """Predict every held-out scan and score it against its truth."""
    model = load_model(model_dir, device)
    for scan_path in sorted((heldout / SCANS_FOLDER).glob("*.nii.gz")):
        target = out / scan_id_from_path(scan_path)
        if (target / outputs.LABELS_FILE).exists():
            continue
        scan = io.read_scan(scan_path)
        annotation = predict_scan(scan.volume, model)
        outputs.write_outputs(target, scan.reference, scan.volume, annotation, Params(),
                              input_path=scan_path)
    scores = evaluate_folders(out, heldout / TRUTH_FOLDER)
    return {"per_scan": [{"scan": s.scan, "dice": s.dice, "hd95_mm": s.hd95_mm} for s in scores],
            "mean": mean_scores(scores)}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="Training dataset (with truth).")
    parser.add_argument("--heldout", type=Path, required=True,
                        help="Held-out dataset built with --keep-scans.")
    parser.add_argument("--out", type=Path, required=True, help="Work folder.")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0, help="Training seed (same for all).")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--top-percent", type=float, default=3.8)
    parser.add_argument("--random-seeds", type=int, nargs="+", default=[0],
                        help="One random re-annotation run per seed.")
    parser.add_argument("--with-truth", action="store_true",
                        help="Also train on the truth everywhere (the upper bound).")
    parser.add_argument("--baseline-model", type=Path, default=None,
                        help="A model already trained on --train's pseudo labels: the baseline "
                             "(not trained again); fine-tuning mode only.")
    parser.add_argument("--finetune-epochs", type=int, default=0,
                        help="Fine-tuning mode: each variant starts from the baseline and trains "
                             "this many epochs at --lr, once per --seeds entry (the random picks "
                             "drawn with that seed); a variant fine-tuned on the unchanged pseudo "
                             "labels is the control.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="Fine-tuning mode: training seeds (paired across variants).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    source = SliceDataset.open(args.train)
    if not all(case.get("has_truth") for case in source.cases):
        raise SystemExit(f"{args.train} lacks truth labels; build it from phantoms.")
    if args.finetune_epochs > 0:
        finetune_experiment(args, source)
    else:
        scratch_experiment(args, source)


def queue_and_random_picks(dataset: SliceDataset, model_dir: Path, k: int, draws: list[int],
                           device: str) -> dict[str, list[tuple[int, int]]]:
    """The AAR picks (top K of the review queue under ``model_dir``) and one random draw of K
    joint slices per seed in ``draws``, as {variant: [(case, row)]}."""
    model = load_model(model_dir, device)
    queue = select_top(score_slices(dataset, model), top_k=k)
    variants = {"aar": [(item["case"], item["row"]) for item in queue]}
    pool = joint_slices(dataset)
    for seed in draws:
        rng = np.random.default_rng(seed)
        variants[f"random{seed}"] = [pool[i] for i in rng.choice(len(pool), k, replace=False)]
    return variants


def reannotated_copy(args: argparse.Namespace, name: str, picks: list[tuple[int, int]]) -> SliceDataset:
    """The training set with ``picks`` re-annotated (made once, reused when run again)."""
    dataset = copy_dataset(args.train, args.out / "data" / name)
    if not (dataset.root / ".reannotated").exists():
        reannotate(dataset, picks)
        (dataset.root / ".reannotated").touch()
    return dataset


def scratch_options(args: argparse.Namespace) -> TrainOptions:
    """Settings of a network trained from random weights (--epochs, --channels, --seed ...)."""
    return TrainOptions(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                        seed=args.seed, device=args.device, channels=tuple(args.channels),
                        strides=(2,) * (len(args.channels) - 1))


def scratch_experiment(args: argparse.Namespace, source: SliceDataset) -> None:
    """Every variant trained from random weights with the same seed."""
    options = scratch_options(args)
    total = len(source.samples)
    k = int(np.ceil(total * args.top_percent / 100.0))
    report = {"training_slices": total, "k": k, "options": options.to_dict(), "variants": {}}

    baseline = copy_dataset(args.train, args.out / "data" / "baseline")
    seconds = train_variant(baseline, args.out / "models" / "baseline", options)
    report["variants"]["baseline"] = {"train_seconds": round(seconds),
                                      "training_label_dice_vs_truth": round(label_quality(baseline), 4)}
    variants = queue_and_random_picks(baseline, args.out / "models" / "baseline", k,
                                      args.random_seeds, args.device)
    for name, picks in variants.items():
        # scored on the untouched pseudo labels: a reused copy is already re-annotated
        agreement = truth_agreement(baseline, picks)
        dataset = reannotated_copy(args, name, picks)
        seconds = train_variant(dataset, args.out / "models" / name, options)
        report["variants"][name] = {"train_seconds": round(seconds),
                                    "picked_label_dice_vs_truth": round(agreement, 4),
                                    "training_label_dice_vs_truth": round(label_quality(dataset), 4)}
    if args.with_truth:
        seconds = train_variant(baseline, args.out / "models" / "truth",
                                dataclasses.replace(options, labels="truth"))
        report["variants"]["truth"] = {"train_seconds": round(seconds)}

    for name in report["variants"]:
        result = evaluate_variant(args.out / "models" / name, args.heldout,
                                  args.out / "predictions" / name, args.device)
        report["variants"][name].update(result)

    (args.out / "aar_results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"training slices {total}, K = {k} ({args.top_percent:g} %)")
    print("| labels | picked slices' label Dice vs truth (before) | training label Dice vs truth | "
          "acetabulum Dice | femoral head Dice | mean Dice | mean HD95 (mm) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, values in report["variants"].items():
        picked = values.get("picked_label_dice_vs_truth", "-")
        quality = values.get("training_label_dice_vs_truth", "1.0")
        print(f"| {name} | {picked} | {quality} | {score_cells(values['mean'])} |")


def score_cells(mean: dict) -> str:
    """Acetabulum, femoral head and mean Dice and mean HD95 as table cells."""
    hd = mean["mean"]["hd95_mm"]
    return (f"{mean['acetabulum']['dice']:.4f} | {mean['femoral head']['dice']:.4f} | "
            f"{mean['mean']['dice']:.4f} | {'n/a' if hd is None else f'{hd:.2f}'}")


def finetune_experiment(args: argparse.Namespace, source: SliceDataset) -> None:
    """Every variant fine-tuned from one baseline network, paired by training seed.

    Starting all variants from the same weights, with the same sample order and augmentation
    per seed, leaves the labels as the only difference within a seed; the control (unchanged
    pseudo labels, same fine-tuning) separates the effect of the corrections from that of the
    extra epochs.
    """
    total = len(source.samples)
    k = int(np.ceil(total * args.top_percent / 100.0))
    baseline = copy_dataset(args.train, args.out / "data" / "baseline")
    baseline_model = args.baseline_model or args.out / "models" / "baseline"
    if args.baseline_model is None:
        train_variant(baseline, baseline_model, scratch_options(args))
    architecture = load_model(baseline_model, "cpu").config
    picks = queue_and_random_picks(baseline, baseline_model, k, args.seeds, args.device)
    report = {"training_slices": total, "k": k, "baseline_model": str(baseline_model),
              "baseline": evaluate_variant(baseline_model, args.heldout,
                                           args.out / "predictions" / "baseline", args.device),
              "picks": {}, "runs": {}}
    for name, chosen in picks.items():
        report["picks"][name] = {"picked_label_dice_vs_truth": round(truth_agreement(baseline, chosen), 4),
                                 "training_label_dice_vs_truth": None}
    for seed in args.seeds:
        options = TrainOptions(epochs=args.finetune_epochs, batch_size=args.batch_size,
                               learning_rate=args.lr, seed=seed, device=args.device,
                               channels=architecture.channels, strides=architecture.strides,
                               num_res_units=architecture.num_res_units,
                               init_from=str(baseline_model))
        for variant, key in (("pseudo", None), ("aar", "aar"), ("random", f"random{seed}")):
            dataset = baseline if key is None else reannotated_copy(args, key, picks[key])
            if key is not None and report["picks"][key]["training_label_dice_vs_truth"] is None:
                report["picks"][key]["training_label_dice_vs_truth"] = round(label_quality(dataset), 4)
            run = f"{variant}-s{seed}"
            seconds = train_variant(dataset, args.out / "models" / run, options)
            report["runs"][run] = {"train_seconds": round(seconds), **evaluate_variant(
                args.out / "models" / run, args.heldout, args.out / "predictions" / run, args.device)}
            (args.out / "aar_results.json").write_text(json.dumps(report, indent=2) + "\n")

    print(f"training slices {total}, K = {k} ({args.top_percent:g} %); baseline "
          f"{score_cells(report['baseline']['mean'])}")
    for name, values in report["picks"].items():
        print(f"{name}: picked slices' label Dice vs truth {values['picked_label_dice_vs_truth']}, "
              f"training labels after re-annotation {values['training_label_dice_vs_truth']}")
    print("| run | acetabulum Dice | femoral head Dice | mean Dice | mean HD95 (mm) |")
    print("| --- | --- | --- | --- | --- |")
    for run, values in report["runs"].items():
        print(f"| {run} | {score_cells(values['mean'])} |")
    mean_dice = {run: values["mean"]["mean"]["dice"] for run, values in report["runs"].items()}
    for first, second in (("aar", "random"), ("aar", "pseudo"), ("random", "pseudo")):
        differences = [mean_dice[f"{first}-s{s}"] - mean_dice[f"{second}-s{s}"] for s in args.seeds]
        spread = np.std(differences, ddof=1) if len(differences) > 1 else float("nan")
        print(f"{first} - {second}, mean Dice per seed: "
              f"{' '.join(f'{d:+.4f}' for d in differences)}; mean {np.mean(differences):+.4f} "
              f"(sd {spread:.4f}, n = {len(differences)})")


if __name__ == "__main__":
    main()
