"""Command line: ``tha-annotator annotate SCAN --out DIR`` and ``tha-annotator demo``.

Every pipeline parameter of :class:`~THAAnnotatorLib.params.Params` is an option, generated from
the dataclass: its help text is the docstring written under the field in ``params.py``, so the
units and meaning are stated in one place, followed by its allowed values
(:data:`~THAAnnotatorLib.params.PARAM_RANGES`). Boolean switches that default to on (``use_fsg``)
become ``--no-fsg``.

Every option is checked before any work starts (before the scan is read): a value out of its
range (NaN and infinity never pass), pairs out of order, an output folder that cannot be written
or already holds files (``annotate`` and ``demo`` replace an earlier result only with
``--overwrite``; ``demo`` also replaces an earlier demo's folder).

Exit codes: 0 done, 2 bad input or arguments (one ``error:`` line on stderr, nothing written),
1 the output could not be written (one ``error: cannot write to DIR: ...`` line; an unwritable
folder is found before any work), 130 cancelled with Ctrl-C (nothing written). Once the results
are in place the run is done: a Ctrl-C then only cuts the summary short (exit code 0).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import __version__, dicom_seg, io, outputs, pipeline
from .cli_batch import add_batch_commands
from .cli_model import add_model_commands
from .cli_progress import finish_after_writing, progress_shown, stage_progress_bar
from .cli_synth import add_synth_command
from .cli_types import OneLineErrorParser, number, seed, workers_or_auto
from .errors import InputError, InvalidParam
from .labels import truth_side_labels
from .metrics import dice
from .overview import OVERVIEW_FILE, measurement_lines, render_overview_png, side_summary
from .params import PARAM_RANGES, Params, allowed_values
from .phantom import Phantom, generate_phantom
from .result import CLASS_NAMES, SIDES, Annotation, segment_code
from .scan_workers import AUTOMATIC_MIN_VOXELS, automatic_workers
from .volume import Volume

SIDE_CHOICES = {"both": SIDES, "right": ("right",), "left": ("left",)}
DEMO_SPACING_MM = (2.0, 0.8, 0.8)
"""Voxel size of the demo phantom along (S-I, A-P, L-R), in mm."""
DEMO_SCAN_NAME = "sample_ct.nii.gz"
OVERVIEW_NAME = OVERVIEW_FILE
OVERWRITE_HELP = ("Replace an output folder that holds an earlier result (it has an "
                  "annotation.json) as a whole: the new results are written beside it and take "
                  "its place only once complete, and nothing of the earlier result is kept. "
                  "Without this option an output folder that holds files is refused.")
HIP_WORKERS_HELP = (
    "Processes that share the scan's work, with the same results for any number: bone "
    "extraction a few slices at a time, then one hip each (more than two speed up bone "
    "extraction only). auto (the default): 2 where this machine has two or more cores and the "
    f"scan has at least {AUTOMATIC_MIN_VOXELS:,} voxels, else 1. Two take about 1.6 times the "
    "memory of one (1158 against 735 MiB for a 512 x 512 x 200 scan): give 1 where memory is "
    "short.")
DICOM_SEG_HELP = (f"Also write the labels as a DICOM Segmentation object, "
                  f"{dicom_seg.DICOM_SEG_FILE}, referencing the source series (the scan must be "
                  "a DICOM series folder), with the four segments of labels.seg.nrrd.")


def param_docs() -> dict[str, str]:
    """Docstring of each :class:`Params` field (the string literal right under it), one line each."""
    class_def = ast.parse(textwrap.dedent(inspect.getsource(Params))).body[0]
    docs = {}
    for statement, following in zip(class_def.body, class_def.body[1:]):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def option_name(field: str) -> str:
    """The command-line option of :class:`Params` field ``field`` (``--no-fsg`` for ``use_fsg``)."""
    default = Params.__dataclass_fields__[field].default
    if isinstance(default, bool):
        name = field.removeprefix("use_").replace("_", "-")
        return f"--no-{name}" if default else f"--{name}"
    return f"--{field.replace('_', '-')}"


def _add_param_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "pipeline parameters", "Defaults are the paper's; change them for ablations or odd scans.")
    docs = param_docs()
    for field in dataclasses.fields(Params):
        default = field.default
        doc = docs.get(field.name, "").replace("%", "%%")
        option = option_name(field.name)
        if isinstance(default, bool):
            if default:
                group.add_argument(option, dest=field.name, action="store_false",
                                   help=f"Switch off (on by default): {doc}")
            else:
                group.add_argument(option, dest=field.name, action="store_true", help=doc)
            continue
        allowed = allowed_values(field.name, option_name)
        parse = number(PARAM_RANGES[field.name])  # each number; pairs' order: params_from_args
        if isinstance(default, tuple):
            group.add_argument(option, dest=field.name, type=parse, nargs=len(default),
                               default=default, metavar="X",
                               help=f"{doc} (default: {' '.join(map(str, default))}; "
                                    f"allowed: {allowed})")
        else:
            group.add_argument(option, dest=field.name, type=parse, default=default,
                               metavar="X", help=f"{doc} (default: {default}; allowed: {allowed})")


def params_from_args(args: argparse.Namespace) -> Params:
    """The :class:`Params` given by parsed pipeline options (defaults where none was given).

    Raises :class:`InputError` naming the option (``argument --n-rays: must be ...``) when a value
    is out of its range or a pair out of order (:meth:`Params.validate`).
    """
    values = {}
    for field in dataclasses.fields(Params):
        value = getattr(args, field.name)
        values[field.name] = tuple(value) if isinstance(field.default, tuple) else value
    try:
        return Params(**values).validate()
    except InvalidParam as error:
        raise InputError(f"argument {option_name(error.field)}: "
                         f"{error.requirement(option_name)}") from None


def build_parser() -> argparse.ArgumentParser:
    """The ``tha-annotator`` argument parser with its ``annotate`` and ``demo`` commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--side", choices=SIDE_CHOICES, default="both",
                        help="Which hip(s) to annotate (default: both).")
    common.add_argument("--quiet", action="store_true",
                        help="No progress bar (none is drawn either when stderr is not a "
                             "terminal, e.g. a log file); the results are still printed.")
    _add_param_options(common)

    parser = OneLineErrorParser(
        prog="tha-annotator",
        description="Annotate hip CT scans: bone mask, acetabulum and femoral head labels, the "
                    "femoral head's Hough circles, center and diameter (Zhang et al.'s BE + AFS).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    annotate = commands.add_parser(
        "annotate", parents=[common], help="Annotate one CT scan.",
        description="Annotate one CT scan and write the label maps, measurements and an "
                    "overview picture into the output folder (the scan itself is never changed).")
    annotate.add_argument("scan", type=Path,
                          help="CT scan: NIfTI (.nii, .nii.gz), NRRD, MetaImage or a DICOM folder.")
    annotate.add_argument("--out", type=Path, required=True, metavar="DIR",
                          help="Output folder: new or empty (or, with --overwrite, an earlier "
                               "result); must not be the scan's own folder.")
    annotate.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    annotate.add_argument("--hip-workers", type=workers_or_auto, default=None, metavar="N",
                          help=HIP_WORKERS_HELP)
    annotate.add_argument(dicom_seg.OPTION, action="store_true", help=DICOM_SEG_HELP)
    annotate.set_defaults(run=_run_annotate)

    demo = commands.add_parser(
        "demo", parents=[common], help="Annotate a generated phantom and score it.",
        description="Generate a synthetic hip CT phantom (0.8 mm in-plane, 2 mm slices), save it "
                    f"as {DEMO_SCAN_NAME}, annotate it like `annotate` does and print the Dice "
                    "score of each label against the phantom's ground truth.")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), metavar="DIR",
                      help="Output folder (default: demo-output). A folder holding an earlier "
                           f"demo (its {DEMO_SCAN_NAME} and {outputs.REPORT_FILE}) is replaced "
                           "whole, so the demo can be run again into the same folder; any other "
                           "non-empty folder is refused unless --overwrite is given.")
    demo.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    demo.add_argument("--hip-workers", type=workers_or_auto, default=None, metavar="N",
                      help=HIP_WORKERS_HELP)
    demo.add_argument("--seed", type=seed, default=0,
                      help="Phantom random seed, 0 to 4294967295 (default: 0).")
    demo.set_defaults(run=_run_demo)
    add_model_commands(commands)
    add_synth_command(commands)
    add_batch_commands(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code. Without arguments: the help, which
    lists the commands, on stderr (exit code 2: nothing was done)."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        print(parser.format_help(), file=sys.stderr, end="")
        return 2
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cancelled, nothing written", file=sys.stderr)
        return 130


def annotate_scan(scan_path: Path, out_dir: Path, params: Params, sides: tuple[str, ...],
                  show_progress: bool = True, extra_files: dict[str, bytes] | None = None,
                  overwrite: bool = False, write_dicom_seg: bool = False,
                  workers: int | None = None,
                  recorded_path: Path | None = None) -> tuple[Annotation, dict[str, Path]]:
    """Read a scan, annotate it and write all outputs (plus ``extra_files``) into ``out_dir``.

    The parameters and the output folder are checked before any work starts
    (:func:`~.outputs.check_output_dir`; ``overwrite`` replaces an earlier result), and outputs
    are written atomically at the end, so a failure or Ctrl-C leaves nothing behind (and an
    earlier result as it was). ``write_dicom_seg`` adds a DICOM SEG of the labels
    (:mod:`.dicom_seg`; the scan must be a DICOM series, checked first, and one a SEG can
    reference, checked before the pipeline runs). ``workers`` processes share the work (None:
    :func:`~.scan_workers.automatic_workers` for the scan's size). ``recorded_path``: the scan's
    path for ``annotation.json`` where it is not ``scan_path`` (the demo's copy in ``out_dir``).
    Returns the annotation and the paths written, by output name.
    """
    params.validate()
    if write_dicom_seg:
        dicom_seg.check_dicom_input(scan_path)
    out_dir = outputs.check_output_dir(out_dir, scan_path, overwrite)
    scan = io.read_scan(scan_path)
    seg_source = (dicom_seg.read_seg_source(scan.dicom_files, scan.reference, dicom_seg.PIPELINE)
                  if write_dicom_seg else None)
    with stage_progress_bar(show_progress) as report:
        annotation = pipeline.annotate(
            scan.volume, params, sides=sides, progress=report,
            workers=automatic_workers(scan.volume.hu.size) if workers is None else workers)
    files = {OVERVIEW_NAME: render_overview_png(scan.volume, annotation), **(extra_files or {})}
    written = outputs.write_outputs(out_dir, scan.reference, scan.volume, annotation, params,
                                    input_path=recorded_path or scan.path, extra_files=files,
                                    overwrite=overwrite, dicom_seg=seg_source)
    return annotation, written


def _print_summary(annotation: Annotation, written: dict[str, Path], out_dir: Path) -> None:
    for result in annotation.sides.values():
        print(side_summary(result))
        for line in measurement_lines(result):
            print(line)
        for warning in result.warnings:
            print(f"  warning: {warning}")
    names = sorted(os.path.relpath(path, out_dir) for path in written.values())
    print(f"wrote {len(names)} files to {out_dir}: {', '.join(names)}")


def _run_annotate(args: argparse.Namespace) -> int:
    annotation, written = annotate_scan(args.scan, args.out, params_from_args(args),
                                        SIDE_CHOICES[args.side],
                                        show_progress=progress_shown(args.quiet),
                                        overwrite=args.overwrite,
                                        write_dicom_seg=args.dicom_seg,
                                        workers=args.hip_workers)
    return finish_after_writing(args.out, lambda: _print_summary(annotation, written, args.out))


def _holds_a_demo(folder: Path) -> bool:
    """Whether ``folder`` holds what an earlier ``demo`` wrote (its scan and report)."""
    return (folder / DEMO_SCAN_NAME).is_file() and (folder / outputs.REPORT_FILE).is_file()


def _run_demo(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    overwrite = args.overwrite or _holds_a_demo(args.out)
    outputs.check_output_dir(args.out, overwrite=overwrite)  # before the phantom is made
    phantom = generate_phantom(spacing_mm=DEMO_SPACING_MM, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        scan_path = Path(tmp) / DEMO_SCAN_NAME
        _write_scan(phantom.volume, scan_path)
        annotation, written = annotate_scan(
            scan_path, args.out, params, SIDE_CHOICES[args.side],
            show_progress=progress_shown(args.quiet),
            extra_files={DEMO_SCAN_NAME: scan_path.read_bytes()}, overwrite=overwrite,
            workers=args.hip_workers, recorded_path=args.out / DEMO_SCAN_NAME)

    def show_results() -> None:
        _print_summary(annotation, written, args.out)
        _print_truth_comparison(annotation, phantom, params)

    return finish_after_writing(args.out, show_results)


def _print_truth_comparison(annotation: Annotation, phantom: Phantom, params: Params) -> None:
    """Dice per hip and class, and the head's diameter and center error, against the phantom."""
    truth = truth_side_labels(phantom, params)
    print("against the phantom's ground truth:")
    for side, result in annotation.sides.items():
        scores = []
        for label, name in CLASS_NAMES.items():
            code = segment_code(side, label)
            scores.append(f"{name} Dice {dice(annotation.side_labels == code, truth == code):.3f}")
        print(f"  {side} hip: {', '.join(scores)}")
        head = phantom.heads.get(side)
        if result.status == "segmented" and head is not None:
            error_mm = np.linalg.norm(np.subtract(result.sphere_center_ras_mm, head.center_ras_mm))
            print(f"  {side} hip: head diameter {result.head_diameter_mm:.1f} mm "
                  f"(true {2 * head.radius_mm:.1f} mm), center off by {error_mm:.1f} mm")


def _write_scan(volume: Volume, path: Path) -> None:
    """Save a volume as a 16-bit HU image file (format from the suffix), in its source geometry."""
    hu = np.clip(np.round(volume.to_source_layout(volume.hu)), -32768, 32767).astype(np.int16)
    image = sitk.GetImageFromArray(hu)
    image.CopyInformation(io.sitk_reference_from_volume(volume))
    sitk.WriteImage(image, str(path), useCompression=True)


if __name__ == "__main__":
    sys.exit(main())
