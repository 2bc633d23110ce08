"""Command line of batch builds: ``build-dataset`` (BE + AFS over a folder of scans, on Dask)
and ``export`` (nnU-Net v2 raw layout or MONAI datalist).

:func:`add_batch_commands` registers them on the ``tha-annotator`` parser. Dask is imported only
when ``build-dataset`` runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from .batch.build import BuildObserver
from .cli_progress import progress_shown
from .cli_types import (group_pattern, memory_size, number, positive_int, scheduler_address,
                        seed)
from .limits import Range

EXIT_SOME_FAILED = 3


def add_batch_commands(commands: argparse._SubParsersAction,
                       pipeline_options: argparse.ArgumentParser) -> None:
    """Add ``build-dataset`` and ``export``; ``pipeline_options`` is the parent parser holding
    ``--side``, ``--quiet`` and the pipeline parameters."""
    build = commands.add_parser(
        "build-dataset", parents=[pipeline_options],
        help="Annotate every scan in a folder, in parallel and resumably.",
        description="Run BE + AFS on every scan found under SCANS_DIR (NIfTI, NRRD, MetaImage "
                    "files and DICOM series folders, searched recursively) on a Dask cluster. "
                    "Each case is written atomically to OUT_DIR/cases/<case>/ (the `annotate` "
                    "outputs plus case.json); OUT_DIR/manifest.json and manifest.csv list every "
                    "case (source, SHA-256, status, reasons, sides, head diameters, measurements, "
                    "each segment's volume and HU, run time, version, parameters) and OUT_DIR/report.html shows them with thumbnails. "
                    "A rerun skips cases already built from the same scan with the same "
                    "settings, redoes changed ones, and finishes an interrupted build. A scan "
                    "byte for byte the same as another (same SHA-256) is built once and "
                    "listed as a duplicate of it. A scan "
                    "that fails is recorded with its reason and never stops the others. "
                    "Options and the output folder are checked before any scan is read. "
                    f"Exit code 0 when every case is done, {EXIT_SOME_FAILED} when the build "
                    "finished with failed cases, 2 for bad arguments, 1 when OUT_DIR cannot be "
                    "written, 130 when cancelled with Ctrl-C (the finished cases are kept; run "
                    "the same command again to do the rest).")
    build.add_argument("scans_dir", type=Path, help="Folder of scans (searched recursively).")
    build.add_argument("out_dir", type=Path,
                       help="Build folder: new, empty or an earlier build's; must lie outside "
                            "SCANS_DIR.")
    build.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="Worker processes of the local Dask cluster, one scan at a time "
                            "each (default: one per CPU core).")
    build.add_argument("--scheduler", type=scheduler_address, default=None, metavar="ADDRESS",
                       help="Use the running Dask cluster at this scheduler address (e.g. "
                            "tcp://10.0.0.5:8786) instead of a local one; its workers must see "
                            "the same paths and should run one thread each.")
    build.add_argument("--memory-per-worker", type=memory_size, default="auto", metavar="SIZE",
                       help="Memory limit of each local worker, e.g. 4GB (default: auto, the "
                            "machine's memory shared between the workers).")
    build.add_argument("--retry-failed", action="store_true",
                       help="Also redo cases that failed before with the same scan and settings.")
    build.set_defaults(run=_run_build)

    export = commands.add_parser(
        "export", help="Export a build for nnU-Net v2 or MONAI.",
        description="Write the done cases of a build as training data: the CT as NIfTI and its "
                    "label map (0 background, 1 acetabulum, 2 femoral head, 3 ignore: the "
                    "half of the scan of a hip not annotated, i.e. not asked for, metal or not "
                    "found, declared in dataset.json or datalist.json, which nnU-Net leaves out "
                    "of its loss; a case with no hip annotated is left out), with a split "
                    "drawn from --seed over patients, so that no patient is on both sides: a "
                    "DICOM series' PatientID names its patient, --group-by names the patient "
                    "of other scans, and a scan neither names is its own group. A scan built "
                    "twice (same SHA-256) is exported once. nnunet: DEST must be named "
                    "DatasetXXX_Name; it gets imagesTr/, labelsTr/, dataset.json and "
                    "splits_final.json with 5 folds (copy it to "
                    "nnUNet_preprocessed/DatasetXXX_Name/ to train on these folds). monai: "
                    "images/, labels/ and datalist.json (training and validation lists; "
                    "monai.data.load_decathlon_datalist reads it). DEST must not exist yet; it "
                    "is written beside, then renamed into place.")
    export.add_argument("build_dir", type=Path, help="Output folder of `build-dataset`.")
    export.add_argument("--format", dest="fmt", required=True, choices=("nnunet", "monai"),
                        help="Layout to write.")
    export.add_argument("dest", type=Path, help="Export folder to create.")
    export.add_argument("--validation-fraction", type=number(Range(low=0, high=1, high_open=True)),
                        default=None, metavar="F",
                        help="monai: share of cases held out for validation, at least 0 and "
                             "below 1 (default: 0.2). nnunet gets 5 folds instead and refuses "
                             "this option.")
    export.add_argument("--seed", type=seed, default=0,
                        help="Seed of the train / validation split, 0 to 4294967295 "
                             "(default: 0).")
    export.add_argument("--group-by", type=group_pattern, default=None, metavar="REGEX",
                        help="Regular expression searched in each scan's path relative to the "
                             "scans folder (e.g. P001/ct_a.nii.gz); its first group names the "
                             "patient, e.g. '^(P\\d+)/' or '^(\\w+?)_'. Scans of one patient "
                             "stay on one side of the split. DICOM series are grouped by their "
                             "PatientID; a scan neither names is its own group.")
    export.add_argument("--include-flagged", action="store_true",
                        help="Also export the cases with a hip marked for review (its sphere "
                             "does not sit on a clear head surface, or its size is unusual; left "
                             "out by default, so a network does not learn doubtful labels).")
    export.add_argument("--quiet", action="store_true", help="No progress bar.")
    export.set_defaults(run=_run_export)


class _ProgressBar(BuildObserver):
    """Terminal progress of a build: done / failed / remaining and the time left."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.done = self.failed = 0

    def found(self, scans: int) -> None:
        print(f"{scans} scans found; checking which are up to date")

    def started(self, to_run: int, skipped: int, dashboard: str | None) -> None:
        print(f"{to_run} to run, {skipped} already up to date")
        if dashboard:
            print(f"Dask dashboard: {dashboard}")
        self.bar = tqdm(total=to_run, desc="cases", unit="scan", file=sys.stderr,
                        disable=not self.enabled or to_run == 0)

    def case_finished(self, record: dict) -> None:
        self.done += record["status"] == "done"
        self.failed += record["status"] == "failed"
        remaining = self.bar.total - self.done - self.failed
        self.bar.set_postfix_str(f"done {self.done}, failed {self.failed}, left {remaining}",
                                 refresh=False)
        self.bar.update(1)
        if record["status"] == "failed":
            tqdm.write(f"{record['case']}: failed: {'; '.join(record['reasons'])}",
                       file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_build(args: argparse.Namespace) -> int:
    from .batch.build import build_dataset
    from .batch.manifest import MANIFEST_CSV
    from .batch.report import REPORT_FILE
    from .cli import SIDE_CHOICES, params_from_args
    from .outputs import check_writable

    params = params_from_args(args)
    check_writable(args.out_dir)
    bar = _ProgressBar(progress_shown(args.quiet))
    try:
        summary = build_dataset(args.scans_dir, args.out_dir, params,
                                SIDE_CHOICES[args.side], workers=args.workers,
                                scheduler=args.scheduler,
                                memory_per_worker=args.memory_per_worker,
                                retry_failed=args.retry_failed, observer=bar)
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: the finished cases are kept in {args.out_dir}; run the same "
              "command again to do the rest", file=sys.stderr)
        return 130
    finally:
        bar.close()
    duplicates = (f", {len(summary.duplicates)} duplicate(s) built once"
                  if summary.duplicates else "")
    print(f"{len(summary.records)} scans: {summary.count('done')} done, "
          f"{summary.count('failed')} failed{duplicates} ({len(summary.processed)} run now, "
          f"{len(summary.skipped)} already up to date) in {summary.seconds:.0f} s")
    if summary.duplicates:
        print("same scan (SHA-256) as another case, not built again and left out of exports: "
              + ", ".join(f"{case} = {original}"
                          for case, original in sorted(summary.duplicates.items())))
    print(f"manifest: {args.out_dir / MANIFEST_CSV}; report: {args.out_dir / REPORT_FILE}")
    return EXIT_SOME_FAILED if summary.count("failed") else 0


def _run_export(args: argparse.Namespace) -> int:
    from .batch.export import NNUNET_FOLDS, export_build
    from .batch.groups import SCAN_PREFIX
    from .batch.ignore import IGNORE_LABEL
    from .errors import InputError
    from .outputs import check_writable

    if args.fmt == "nnunet" and args.validation_fraction is not None:
        raise InputError(f"argument --validation-fraction: nnU-Net exports get {NNUNET_FOLDS} "
                         "folds, each validating about a fifth of the cases; the option is for "
                         "--format monai.")
    check_writable(args.dest, whole=True)

    bars: list[tqdm] = []  # made at the first case, so that a refused export draws no bar

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="export", unit="case", file=sys.stderr,
                             disable=not progress_shown(args.quiet), leave=False))
        bars[0].update(done - bars[0].n)

    try:
        split = export_build(args.build_dir, args.dest, args.fmt, args.validation_fraction,
                             args.seed, progress=progress, include_flagged=args.include_flagged,
                             group_by=args.group_by)
    finally:
        for bar in bars:
            bar.close()
    if split.left_out_flagged:
        print(f"left out {len(split.left_out_flagged)} case(s) with a hip marked for review: "
              f"{', '.join(split.left_out_flagged)} (--include-flagged exports them)")
    if split.left_out_unannotated:
        print(f"left out {len(split.left_out_unannotated)} case(s) with no hip annotated (metal, "
              f"not found or not asked for): {', '.join(split.left_out_unannotated)}")
    if split.ignored_hips:
        hips = [f"{case} {side}" for case, sides in split.ignored_hips.items() for side in sides]
        print(f"{len(hips)} hip(s) not annotated (not asked for, metal or not found) labelled "
              f"ignore ({IGNORE_LABEL}) over their half of the scan: {', '.join(hips[:10])}"
              + (", ..." if len(hips) > 10 else ""))
    if split.left_out_duplicates:
        print(f"left out {len(split.left_out_duplicates)} case(s) with the same scan (SHA-256) "
              "as an exported one: " + ", ".join(
                  f"{case} = {kept}" for case, kept in sorted(split.left_out_duplicates.items())))
    cases = len(split.train) + len(split.validation)
    patients = len(set(split.groups.values()))
    grouped = sum(not g.startswith(SCAN_PREFIX) for g in split.groups.values())
    unmatched = [c for c, g in sorted(split.groups.items()) if g.startswith(SCAN_PREFIX)]
    print(f"{cases} cases in {patients} groups: {grouped} named a patient (DICOM PatientID "
          f"or --group-by), {len(unmatched)} on their own"
          + (f" (not matched by --group-by: {', '.join(unmatched[:5])}"
             f"{', ...' if len(unmatched) > 5 else ''})" if args.group_by and unmatched else ""))
    if split.folds:
        print(f"exported {cases} cases to {args.dest} (nnunet): {len(split.folds)} folds in "
              f"splits_final.json, validating "
              f"{', '.join(str(len(f['val'])) for f in split.folds)} cases (seed {args.seed})")
    else:
        print(f"exported {cases} cases to {args.dest} ({args.fmt}): {len(split.train)} for "
              f"training, {len(split.validation)} for validation (seed {args.seed})")
    return 0
