"""Command line of the learned model: ``slice-dataset``, ``train``, ``predict``, ``review-queue``,
``apply-corrections`` and ``evaluate``.

:func:`add_model_commands` registers them on the ``tha-annotator`` parser. Numeric options are
checked against their ranges as the command line is read (:mod:`.cli_types`), and each handler
checks its output folder (:func:`~THAAnnotatorLib.outputs.check_writable`) before any work. Each
handler returns an exit code and raises :class:`~THAAnnotatorLib.errors.InputError` for bad input,
which the main program turns into one ``error:`` line and exit code 2 (an unwritable output:
exit code 1). torch and MONAI are imported only when one of these commands runs, so the pipeline
commands start fast and work without them.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from . import dicom_seg
from .cli_progress import finish_after_writing, progress_shown, stage_progress_bar
from .cli_types import (non_negative_float, non_negative_int, number, positive_float,
                        positive_int, seed)
from .errors import InputError
from .limits import Range
from .model.config import CPU_BATCH_SIZE, GPU_BATCH_SIZE
from .sweep.draw import CLASSES


def add_roi_arguments(parser: argparse.ArgumentParser) -> None:
    """The ROI options of a slice dataset (``--roi-size-mm``, ``--roi-pixels``,
    ``--roi-half-height-mm``), defaults from :class:`~.model.roi.RoiSpec`; read back with
    :func:`roi_from_arguments`."""
    from .model.roi import RoiSpec

    defaults = RoiSpec()
    parser.add_argument("--roi-size-mm", type=positive_float, default=defaults.size_mm,
                        metavar="MM", help="Side of the square ROI, mm, above 0 "
                                           f"(default: {defaults.size_mm:g}).")
    parser.add_argument("--roi-pixels", type=number(Range(low=16, integer=True)),
                        default=defaults.pixels, metavar="N",
                        help=f"ROI pixels per side, at least 16 (default: {defaults.pixels}).")
    parser.add_argument("--roi-half-height-mm", type=positive_float,
                        default=defaults.half_height_mm, metavar="MM",
                        help="Slices within this distance (mm, above 0) of the head center along "
                             f"S-I (default: {defaults.half_height_mm:g}).")


def roi_from_arguments(args: argparse.Namespace):
    """The :class:`~.model.roi.RoiSpec` of :func:`add_roi_arguments`' options."""
    from .model.roi import RoiSpec

    return RoiSpec(args.roi_size_mm, args.roi_pixels, args.roi_half_height_mm)


def add_model_commands(commands: argparse._SubParsersAction) -> None:
    """Add the model commands to the ``tha-annotator`` sub-command parsers ``commands``."""
    _add_slice_dataset(commands)
    _add_train(commands)
    _add_predict(commands)
    _add_review_queue(commands)
    _add_apply_corrections(commands)
    _add_evaluate(commands)


def _device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="Where the network runs: auto = the GPU when there is one (default).")
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                        help=f"ROI slices per forward pass, at least 1 (default: {CPU_BATCH_SIZE} on "
                             f"the CPU, where larger batches are slower, {GPU_BATCH_SIZE} on a GPU).")


# ------------------------------------------------------------------------------- slice-dataset
def _add_slice_dataset(commands) -> None:
    parser = commands.add_parser(
        "slice-dataset", help="Build (or add to) a slice dataset for training.",
        description="Cut each hip's ROI out of annotated scans (256 x 256 per axial slice around "
                    "the femoral head center, HU clipped to [-125, 275] and scaled to [0, 1], "
                    "labels hole-filled) and store it as a slice dataset: one .npz per scan and "
                    "hip plus dataset.json. Sources: scans with their `annotate` output folders "
                    "(--scan/--annotation pairs), the done cases of `build-dataset` output folders "
                    "(--build), and/or generated phantoms (--phantoms) labelled by the pipeline, "
                    "with the phantom's truth kept alongside.")
    parser.add_argument("dataset", type=Path,
                        help="Dataset folder: a dataset to add to, or a new or empty folder.")
    parser.add_argument("--scan", type=Path, action="append", default=[], metavar="SCAN",
                        help="A CT scan; pair each with an --annotation folder, in order.")
    parser.add_argument("--annotation", type=Path, action="append", default=[], metavar="DIR",
                        help="The `tha-annotator annotate` output folder of the matching --scan.")
    parser.add_argument("--build", type=Path, action="append", default=[], metavar="OUT_DIR",
                        help="The output folder of `tha-annotator build-dataset`; every case whose "
                             "status is \"done\" in its manifest.json is added, with its scan "
                             "(the manifest's source path) and its annotation folder "
                             "OUT_DIR/cases/<case>/, under the case's name. May be given several "
                             "times.")
    parser.add_argument("--phantoms", type=non_negative_int, default=0, metavar="N",
                        help="Add N generated phantoms (seeds --seed .. --seed+N-1).")
    parser.add_argument("--seed", type=seed, default=0,
                        help="First phantom seed, 0 to 4294967295 (default: 0).")
    parser.add_argument("--include-flagged", action="store_true",
                        help="Also add hips of --scan/--build sources that the pipeline marked "
                             "for review (left out by default: their sphere failed the surface "
                             "check or is of unusual size, so their labels are doubtful).")
    parser.add_argument("--keep-scans", action="store_true",
                        help="Also keep each phantom's CT (scans/), truth label map (truth/) and "
                             "pipeline outputs (pipeline/) in the dataset folder.")
    parser.add_argument("--coarse-copies", type=number(Range(low=1, unit="mm")), nargs="+",
                        default=[], metavar="MM",
                        help="With --phantoms: also add, per size, a coarse copy of each phantom "
                             "(scan <name>_<MM>mm): its CT averaged over MM-mm cubic voxels, like a "
                             "scan with thick slices and large pixels, with the labels the "
                             "pipeline made on the fine scan carried over (and the truth). Teaches "
                             "the network coarse scans, where the pipeline itself is unreliable. "
                             "At least 1 mm, e.g. 3.")
    add_roi_arguments(parser)
    parser.set_defaults(run=_run_slice_dataset)


def _run_slice_dataset(args: argparse.Namespace) -> int:
    from .outputs import check_writable

    if len(args.scan) != len(args.annotation):
        raise InputError(f"Got {len(args.scan)} --scan and {len(args.annotation)} --annotation "
                         "options; give one annotation folder per scan.")
    if not args.scan and not args.build and args.phantoms <= 0:
        raise InputError("Nothing to add: give --scan/--annotation pairs, --build OUT_DIR or "
                         "--phantoms N.")
    if args.coarse_copies and args.phantoms <= 0:
        raise InputError("--coarse-copies makes copies of generated phantoms: give --phantoms N.")
    check_writable(args.dataset)
    with undone_on_failure(args.dataset):  # (no hip added, say)
        _fill_slice_dataset(args)
    return 0


@contextmanager
def undone_on_failure(folder: Path) -> Iterator[None]:
    """On an exception (Ctrl-C included), a dataset folder that was new is removed again and one
    that was empty is emptied again, so the same command can be run again; a dataset that was
    there is left to its atomic writes."""
    new = not folder.exists()
    empty = folder.is_dir() and not any(folder.iterdir())
    try:
        yield
    except BaseException:
        if new or empty:
            shutil.rmtree(folder, ignore_errors=True)
        if empty:
            folder.mkdir(exist_ok=True)
        raise


def _fill_slice_dataset(args: argparse.Namespace) -> None:
    """Add the sources of ``slice-dataset`` and save the index; InputError when no hip was added
    (nothing is saved then)."""
    from .model.build import (PhantomRecipe, add_annotated_scan, add_phantom_scans,
                              annotated_cases_of_build, check_scan_names, scan_id_from_path)
    from .model.dataset import SliceDataset

    hips, flagged_hips, other_hips, skipped = 0, 0, 0, 0
    built = [case for out_dir in args.build for case in annotated_cases_of_build(out_dir)]
    roi = roi_from_arguments(args)
    dataset = SliceDataset.create(args.dataset, roi)
    pairs = [(scan, annotation, None) for scan, annotation in zip(args.scan, args.annotation)]
    pairs += [(scan, annotation, annotation.name) for scan, annotation in built]
    check_scan_names(dataset, [(scan, name or scan_id_from_path(scan)) for scan, _, name in pairs])
    for scan, annotation, name in pairs:
        sides, flagged = add_annotated_scan(dataset, scan, annotation, scan=name,
                                            include_flagged=args.include_flagged)
        line = f"{name or scan.name}: {', '.join(sides) or 'no'} hip(s) added"
        if flagged:
            line += (f"; {', '.join(flagged)} left out, marked for review "
                     "(--include-flagged adds it)")
        print(line)
        hips += len(sides)
        flagged_hips += len(flagged)
        other_hips += 2 - len(sides) - len(flagged)
    if args.phantoms > 0:
        with tqdm(total=args.phantoms, desc="phantoms", file=sys.stderr, leave=False,
                  disable=not progress_shown()) as bar:
            def progress(message: str) -> None:
                bar.update(1)
                tqdm.write(message, file=sys.stdout)

            recipes = [PhantomRecipe.draw(s) for s in range(args.seed, args.seed + args.phantoms)]
            names = add_phantom_scans(dataset, recipes, keep_scans=args.keep_scans,
                                      coarse_voxels_mm=tuple(args.coarse_copies), progress=progress)
        hips += len(names)
        skipped = args.phantoms - len(names)
    if hips == 0:
        reasons = []
        if flagged_hips:
            reasons.append(f"{flagged_hips} hip(s) marked for review were left out "
                           "(--include-flagged adds them)")
        if other_hips:
            reasons.append(f"{other_hips} hip(s) were not segmented by the pipeline")
        if skipped:
            reasons.append(f"{skipped} phantom(s) gave no usable hip")
        raise InputError(f"No hip was added to the dataset {args.dataset}: "
                         f"{'; '.join(reasons) or 'the sources hold none'}.")
    dataset.save_index()
    slices = sum(len(c["slices"]) for c in dataset.cases)
    print(f"dataset {args.dataset}: {len(dataset.cases)} hips, {slices} slices")


# ----------------------------------------------------------------------------------------- train
def _add_train(commands) -> None:
    from .model.config import TrainOptions

    defaults = TrainOptions()
    parser = commands.add_parser(
        "train", help="Train the segmentation network on a slice dataset.",
        description="Train a 2-D U-Net (MONAI) with Dice + cross-entropy loss on a slice dataset. "
                    "After every epoch a checkpoint and the current model (model.json + "
                    "model.safetensors, SHA-256 recorded) are written to --out; --resume "
                    "continues an interrupted run; --init-from fine-tunes an existing model.")
    parser.add_argument("dataset", type=Path, help="Slice dataset folder (slice-dataset).")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL_DIR",
                        help="Model folder to write: new or empty (with --resume, the run's own).")
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                        help=f"Passes over the data, at least 1 (default: {defaults.epochs}).")
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                        metavar="N",
                        help=f"Slices per step, at least 1 (default: {defaults.batch_size}).")
    parser.add_argument("--lr", type=positive_float, default=defaults.learning_rate,
                        help="Initial learning rate of Adam, above 0 "
                             f"(default: {defaults.learning_rate:g}).")
    parser.add_argument("--seed", type=seed, default=defaults.seed,
                        help=f"Random seed, 0 to 4294967295 (default: {defaults.seed}).")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=defaults.device,
                        help="auto = the GPU when there is one (default).")
    parser.add_argument("--labels", choices=("label", "truth"), default=defaults.labels,
                        help="Learn the dataset's labels (default) or its truth (experiments).")
    parser.add_argument("--channels", type=positive_int, nargs="+", default=None,
                        metavar="C", help="U-Net channels per level (default: "
                                          f"{' '.join(map(str, defaults.channels))}, or those of "
                                          "--init-from).")
    parser.add_argument("--strides", type=positive_int, nargs="+", default=None,
                        metavar="S", help="Down-sampling between levels (default: "
                                          f"{' '.join(map(str, defaults.strides))}, or those of "
                                          "--init-from).")
    parser.add_argument("--res-units", type=non_negative_int, default=None, metavar="N",
                        help=f"Residual units per block (default: {defaults.num_res_units}, or "
                             "that of --init-from).")
    parser.add_argument("--init-from", type=Path, default=None, metavar="MODEL_DIR",
                        help="Start from this model's weights instead of random ones (fine-tuning, "
                             "e.g. after apply-corrections: a few epochs at a lower --lr take "
                             "minutes where training anew takes the full run). Its architecture "
                             "and ROI are kept; the dataset must have been built with that ROI.")
    parser.add_argument("--max-shift-mm", type=non_negative_float, default=defaults.max_shift_mm,
                        metavar="MM", help="Largest random ROI shift, at least 0 "
                                           f"(default: {defaults.max_shift_mm:g}).")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="Switch off data augmentation while training (on by default).")
    parser.add_argument("--hold-out", nargs="+", choices=CLASSES, default=[], metavar="CLASS",
                        help="Leave out the cases of these sweep classes (a synth-dataset "
                             "records each case's class), to test on them later.")
    parser.add_argument("--resume", action="store_true",
                        help="Continue the run whose checkpoint is in --out.")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for torch (default: torch's choice, one per core); use "
                             "fewer when other work shares the machine.")
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")
    parser.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import torch

    from .model.config import TrainOptions
    from .model.network import load_model
    from .model.training import train
    from .outputs import check_writable

    check_writable(args.out)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    architecture = TrainOptions()
    if args.init_from is not None:
        architecture = load_model(args.init_from, "cpu").config
    options = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                           seed=args.seed, device=args.device, labels=args.labels,
                           max_shift_mm=args.max_shift_mm, augment=args.augment,
                           channels=tuple(args.channels or architecture.channels),
                           strides=tuple(args.strides or architecture.strides),
                           num_res_units=(architecture.num_res_units if args.res_units is None
                                          else args.res_units),
                           init_from=None if args.init_from is None else str(args.init_from),
                           hold_out=tuple(args.hold_out))

    def print_epoch(entry: dict) -> None:  # flushed: a log (the Slicer panel's) shows it now
        print(f"epoch {entry['epoch']}: loss {entry['loss']:.4f} ({entry['seconds']:.0f} s)", flush=True)

    train(args.dataset, args.out, options, resume=args.resume,
          show_progress=progress_shown(args.quiet), on_epoch=print_epoch)
    print(f"model written to {args.out}")
    return 0


# --------------------------------------------------------------------------------------- predict
def _add_predict(commands) -> None:
    parser = commands.add_parser(
        "predict", help="Label a CT scan with the trained network.",
        description="Find each hip's ROI from the bone mask (bone extraction, then the thickest "
                    "bone of each side), run the network on its slices and write the same files "
                    "as `annotate` (labels.nii.gz, labels.seg.nrrd, bone.nii.gz, annotation.json "
                    "with each segment's volume and HU, overview.png) plus prediction.json "
                    "(model, timing, per hip its status, agreement with a shifted view and "
                    "warnings). All files are written together at the end: Ctrl-C leaves nothing "
                    "behind (exit code 130). Labels that are not a femoral head in its socket "
                    "are not kept (the hip is reported as not found, with the reason); a scan "
                    "where no hip is found is refused (exit code 2, nothing written). A hip whose "
                    "labels change when the network's view moves, or in a scan coarser than the "
                    "method was made for, is marked for review.")
    parser.add_argument("scan", type=Path, help="CT scan: NIfTI, NRRD, MetaImage or a DICOM folder.")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="Output folder: new or empty (or, with --overwrite, an earlier "
                             "result); must not be the scan's own folder.")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace an output folder that holds an earlier result (it has an "
                             "annotation.json, from `predict` or `annotate`) as a whole, once the "
                             "new results are complete. Without this option an output folder "
                             "that holds files is refused.")
    parser.add_argument("--model", type=Path, default=None, metavar="MODEL_DIR",
                        help="Model folder (default: the bundled Resources/model).")
    parser.add_argument("--side", choices=("both", "right", "left"), default="both",
                        help="Which hip(s) to label (default: both).")
    parser.add_argument("--quiet", action="store_true",
                        help="No progress bar (none is drawn either when stderr is not a "
                             "terminal, e.g. a log file); the per-hip summary is still printed.")
    parser.add_argument(dicom_seg.OPTION, action="store_true",
                        help=f"Also write the labels as a DICOM Segmentation object, "
                             f"{dicom_seg.DICOM_SEG_FILE}, referencing the source series (the "
                             "scan must be a DICOM series folder).")
    _device_option(parser)
    parser.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from . import io, outputs
    from .model.inference import predict_scan
    from .model.network import BUNDLED_MODEL_DIR, load_model
    from .overview import OVERVIEW_FILE, render_overview_png
    from .params import Params
    from .result import SIDES

    if args.dicom_seg:
        dicom_seg.check_dicom_input(args.scan)
    out_dir = outputs.check_output_dir(args.out, args.scan, args.overwrite)
    model_dir = args.model or BUNDLED_MODEL_DIR
    model = load_model(model_dir, args.device)
    scan = io.read_scan(args.scan)
    seg_source = (dicom_seg.read_seg_source(scan.dicom_files, scan.reference, dicom_seg.NETWORK)
                  if args.dicom_seg else None)
    began = time.perf_counter()
    sides = SIDES if args.side == "both" else (args.side,)
    with stage_progress_bar(progress_shown(args.quiet)) as progress:
        annotation = predict_scan(scan.volume, model, Params(), sides=sides,
                                  batch_size=args.batch_size, progress=progress)
    seconds = time.perf_counter() - began
    report = {"model": {"path": str(Path(model_dir).resolve()), "sha256": model.info["sha256"]},
              "device": str(model.device), "seconds": round(seconds, 2),
              "sides": {s: {"status": r.status, "message": r.message,
                            "model_agreement": r.model_agreement,
                            "needs_review": r.needs_review, "warnings": r.warnings}
                        for s, r in annotation.sides.items()}}
    written = outputs.write_outputs(
        out_dir, scan.reference, scan.volume, annotation, Params(), input_path=scan.path,
        extra_files={"prediction.json": (json.dumps(report, indent=2) + "\n").encode("utf-8"),
                     OVERVIEW_FILE: render_overview_png(scan.volume, annotation)},
        overwrite=args.overwrite, dicom_seg=seg_source)

    def show_results() -> None:
        for side, result in annotation.sides.items():
            print(f"{side} hip: {result.status} - {result.message}")
            if result.model_agreement is not None:
                agreement = result.model_agreement
                print(f"  agreement with a shifted view (Dice): acetabulum "
                      f"{agreement['acetabulum']:.3f}, femoral head "
                      f"{agreement['femoral_head']:.3f}; needs review: "
                      f"{'yes' if result.needs_review else 'no'}")
            for warning in result.warnings:
                print(f"  warning: {warning}")
        print(f"predicted in {seconds:.1f} s on {model.device}; wrote {len(written)} files to "
              f"{out_dir}")

    return finish_after_writing(args.out, show_results)


# ---------------------------------------------------------------------------------- review-queue
def _add_review_queue(commands) -> None:
    parser = commands.add_parser(
        "review-queue", help="Queue the training slices whose labels the network doubts most.",
        description="AAR (paper, section 3.3): predict every slice of the dataset, score "
                    "U = 1 / (Dice(prediction, label) + eps) and write the most uncertain slices "
                    "as review_queue.json / .csv with a thumbnail each (default folder: "
                    "DATASET/review).")
    parser.add_argument("dataset", type=Path, help="Slice dataset folder.")
    parser.add_argument("--model", type=Path, required=True, metavar="MODEL_DIR",
                        help="Model trained on this dataset.")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                        help="Queue the K most uncertain slices, at least 1 (default: 200, as "
                             "the paper).")
    amount.add_argument("--top-percent", type=number(Range(low=0, high=100, low_open=True)),
                        default=None, metavar="P",
                        help="Queue the P %% most uncertain slices instead, above 0 and at most "
                             "100 (paper: 3.8).")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="Queue folder (default: DATASET/review): new, empty or an earlier "
                             "queue, which is replaced as a whole.")
    _device_option(parser)
    parser.set_defaults(run=_run_review_queue)


def _run_review_queue(args: argparse.Namespace) -> int:
    from .model.aar import REVIEW_FOLDER, check_queue_folder, load_queue, write_review_queue
    from .model.network import load_model
    from .outputs import check_writable

    check_writable(args.out or args.dataset / REVIEW_FOLDER, whole=True)
    check_queue_folder(args.out or args.dataset / REVIEW_FOLDER)
    model = load_model(args.model, args.device)
    top_k = 200 if args.top_k is None and args.top_percent is None else args.top_k
    with tqdm(desc="scoring hips", file=sys.stderr, leave=False,
              disable=not progress_shown()) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        path = write_review_queue(args.dataset, model, args.model, top_k=top_k,
                                  top_percent=args.top_percent, batch_size=args.batch_size,
                                  out_dir=args.out, progress=progress)
    queue = load_queue(path)
    print(f"scored {queue['slices_scored']} slices; queued {len(queue['items'])} in {path}")
    for item in queue["items"][:10]:
        print(f"  {item['scan']} {item['side']} slice {item['slice']}: U = {item['uncertainty']:.3g}")
    return 0


# ----------------------------------------------------------------------------- apply-corrections
def _add_apply_corrections(commands) -> None:
    parser = commands.add_parser(
        "apply-corrections", help="Put corrected labels of queued slices into the dataset.",
        description="Read corrected labels (a .seg.nrrd saved from Slicer, or a label NIfTI, in "
                    "the scan's geometry; or a folder of <scan>.seg.nrrd / <scan>.nii.gz) and "
                    "replace the labels of the review queue's slices of that scan. The first "
                    "labels are kept as label_original in the dataset; files are replaced "
                    "atomically. Train again afterwards.")
    parser.add_argument("dataset", type=Path, help="Slice dataset folder.")
    parser.add_argument("corrections", type=Path, help="Corrected label file or folder of them.")
    parser.add_argument("--scan", default=None,
                        help="Scan name of a single correction file (default: its file name).")
    parser.add_argument("--queue", type=Path, default=None, metavar="JSON",
                        help="Review queue (default: DATASET/review/review_queue.json).")
    parser.set_defaults(run=_run_apply_corrections)


def _run_apply_corrections(args: argparse.Namespace) -> int:
    from .model.aar import apply_corrections
    from .outputs import check_writable

    check_writable(args.dataset)
    applied = apply_corrections(args.dataset, args.corrections, scan=args.scan,
                                queue_path=args.queue)
    for scan, count in applied.items():
        print(f"{scan}: {count} slice(s) corrected")
    return 0


# -------------------------------------------------------------------------------------- evaluate
def _add_evaluate(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="Dice and HD95 of predicted label maps against reference ones.",
        description="Match label maps by scan name (<scan>/labels.nii.gz or <scan>.nii.gz) and "
                    "print Dice and the 95 % Hausdorff distance (mm) per class and scan, and "
                    "their means.")
    parser.add_argument("predictions", type=Path, metavar="PRED_DIR",
                        help="Folder of predicted label maps (e.g. `predict` output), one per "
                             "scan: <scan>/labels.nii.gz or <scan>.nii.gz.")
    parser.add_argument("references", type=Path, metavar="TRUTH_DIR",
                        help="Folder of reference label maps, named by scan the same way (e.g. "
                             "a dataset's truth/ folder).")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="Also write the scores as JSON.")
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .model.evaluation import (declared_ignore_label, evaluate_folders, format_table,
                                   mean_scores)
    from .model.files import write_json_atomic
    from .outputs import check_writable

    if args.json is not None:
        check_writable(args.json, whole=True)
    scores = evaluate_folders(args.predictions, args.references)
    declared = declared_ignore_label(args.references)
    if declared is not None:
        print(f"reference voxels labelled {declared[0]} (ignore, as {declared[1]} declares) "
              "are left out of the scores")
    print(format_table(scores))
    if args.json is not None:
        write_json_atomic(args.json, {"scans": [asdict(s) for s in scores],
                                      "mean": mean_scores(scores)})
    return 0
