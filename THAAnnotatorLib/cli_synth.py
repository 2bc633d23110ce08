"""Command line: ``tha-annotator synth-dataset``, a slice dataset of randomized sweep hips.

Options are checked as the command line is read (:mod:`.cli_types`), the class lists and the
output folder before any scan is rendered. Like ``slice-dataset``, every file is written
atomically, and a dataset folder that was new (or empty) is removed (emptied) again when the
command fails or is cancelled. torch and MONAI are imported only when the command runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from .cli_model import add_roi_arguments, roi_from_arguments, undone_on_failure
from .cli_progress import progress_shown
from .cli_types import positive_float, positive_int, seed
from .sweep.draw import CLASSES


def add_synth_command(commands: argparse._SubParsersAction) -> None:
    """Add ``synth-dataset`` to the ``tha-annotator`` sub-command parsers ``commands``."""
    from .model.synth_ranges import SynthRanges

    parser = commands.add_parser(
        "synth-dataset", help="Build a slice dataset of randomized sweep hips (truth labels).",
        description="Draw sweep scans (the randomized hip family, docs/sweep.md) and render each "
                    "native hip RENDERINGS times with random deformation, tissue intensities far "
                    "beyond real HU, bias field, streaks, resolution (0.5-5 mm slices, 0.5-1.5 mm "
                    "pixels), noise and gamma (ranges: THAAnnotatorLib/model/synth_ranges.py), "
                    "SynthSeg-style; store each rendering's ROI slices with the sweep's truth "
                    "labels as a slice dataset for `train`. Whole classes can be held out.")
    parser.add_argument("dataset", type=Path,
                        help="Dataset folder: a dataset to add to, or a new or empty folder.")
    parser.add_argument("--seeds", type=positive_int, default=4, metavar="N",
                        help="Sweep scans per class, at least 1 (default: 4).")
    parser.add_argument("--first-seed", type=seed, default=0, metavar="S",
                        help="First sweep seed; seeds S .. S+N-1 (default: 0).")
    parser.add_argument("--renderings", type=positive_int, default=2, metavar="N",
                        help="Randomized renderings per hip, at least 1 (default: 2).")
    parser.add_argument("--classes", nargs="+", choices=CLASSES, default=list(CLASSES),
                        metavar="CLASS",
                        help=f"Sweep classes to draw (default: all: {', '.join(CLASSES)}).")
    parser.add_argument("--hold-out", nargs="+", choices=CLASSES, default=[], metavar="CLASS",
                        help="Classes never drawn, to test on later (e.g. narrow_joint).")
    parser.add_argument("--appearance-seed", type=seed, default=0, metavar="S",
                        help="Seed of the randomized renderings, 0 to 4294967295 (default: 0).")
    anatomy = SynthRanges().anatomy_spacing_mm
    parser.add_argument("--anatomy-spacing-mm", type=positive_float, nargs=3,
                        default=list(anatomy), metavar=("SLICE", "ROW", "COLUMN"),
                        help="Voxel size (mm, above 0) the sweep's anatomy is drawn at before "
                             "each rendering blurs it to its random resolution; the ROI slices "
                             "are this far apart (default: "
                             f"{' '.join(f'{v:g}' for v in anatomy)}).")
    add_roi_arguments(parser)
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for torch (default: torch's choice); use fewer when "
                             "other work shares the machine.")
    parser.add_argument("--workers", type=positive_int, default=1, metavar="N",
                        help="Processes rendering sweep scans at once, one torch thread each "
                             "(default: 1; up to one per core: each takes about 1.5 GB). The "
                             "dataset is the same whatever the number.")
    parser.set_defaults(run=_run_synth_dataset)


def _run_synth_dataset(args: argparse.Namespace) -> int:
    import torch

    from .model.synth_ranges import SynthRanges
    from .model.synth_dataset import build_synth_dataset, synth_classes
    from .outputs import check_writable

    classes = synth_classes(args.classes, args.hold_out)
    check_writable(args.dataset)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    roi = roi_from_arguments(args)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with undone_on_failure(args.dataset):
        with tqdm(total=len(classes) * len(seeds), desc="sweep scans", file=sys.stderr,
                  leave=False, disable=not progress_shown()) as bar:
            def progress(message: str) -> None:
                bar.update(1)
                tqdm.write(message, file=sys.stdout)

            summary = build_synth_dataset(
                args.dataset, seeds, args.renderings, classes,
                ranges=SynthRanges(anatomy_spacing_mm=tuple(args.anatomy_spacing_mm)), roi=roi,
                appearance_seed=args.appearance_seed, progress=progress,
                workers=args.workers)
    for line in summary.skipped:
        print(f"left out: {line}")
    held = f"; held out: {', '.join(args.hold_out)}" if args.hold_out else ""
    print(f"dataset {args.dataset}: added {summary.cases} hips ({summary.slices} slices) from "
          f"{summary.scans} sweep scans of {', '.join(classes)}{held}; "
          f"{summary.seconds:.0f} s, {summary.seconds / summary.cases:.1f} s per hip")
    return 0
