"""Export a build for training frameworks: the nnU-Net v2 raw layout or a MONAI datalist.

Both hold each done case's CT as NIfTI and its label map (0 background, 1 acetabulum,
2 femoral head, 3 ignore: the half of the scan of a hip the build did not annotate, see
:mod:`.ignore`) in the same geometry, and a train / validation split drawn from a seed, so the
same build and seed always give the same split. The export is written under a hidden name and
renamed into place: it is complete or absent, and an existing folder is never overwritten.
"""
from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..errors import InputError
from ..io import read_image
from ..model.files import write_json_atomic
from ..outputs import LABELS_FILE
from ..result import CLASS_NAMES
from .discover import scan_checksum
from .ignore import (IGNORE_LABEL, IGNORE_NAME, ignored_sides, no_hip_labelled,
                     write_labels_with_ignore)
from .manifest import CASES_DIR, done_records

FORMATS = ("nnunet", "monai")
NNUNET_NAME = re.compile(r"^Dataset\d{3}_[A-Za-z0-9_-]+$")
LABELS = {"background": 0, **{name.replace(" ", "_"): code for code, name in CLASS_NAMES.items()},
          IGNORE_NAME: IGNORE_LABEL}
FILE_ENDING = ".nii.gz"


@dataclass
class Split:
    """Case names for training and for validation, and those an export left out because a hip
    was marked for review."""

    train: list[str]
    validation: list[str]
    left_out_flagged: list[str] = field(default_factory=list)
    # cases with no hip annotated (all requested hips metal): nothing but ignore to learn from
    left_out_unannotated: list[str] = field(default_factory=list)
    # case -> the sides whose half of the scan is the ignore label (:mod:`.ignore`)
    ignored_hips: dict[str, list[str]] = field(default_factory=dict)


def split_cases(cases: list[str], validation_fraction: float, seed: int) -> Split:
    """Draw a validation set of ``round(fraction * n)`` cases (at least 1 when the fraction is
    positive and there are two or more cases) with a seeded generator; names are sorted first,
    so the split depends only on the case names, the fraction and the seed."""
    if not 0.0 <= validation_fraction < 1.0:
        raise InputError("The validation fraction must be at least 0 and below 1.")
    names = sorted(cases)
    count = round(validation_fraction * len(names))
    if validation_fraction > 0 and len(names) > 1:
        count = min(max(count, 1), len(names) - 1)
    order = np.random.default_rng(seed).permutation(len(names))
    validation = {names[i] for i in order[:count]}
    return Split([n for n in names if n not in validation], [n for n in names if n in validation])


def flagged_cases(records: list[dict]) -> list[str]:
    """The cases of manifest ``records`` with a hip the pipeline marked for review (its sphere
    failed the surface check, or its size is unusual): their labels are doubtful."""
    return [r["case"] for r in records
            if any(side.get("needs_review") for side in r.get("results", {}).values())]


def export_build(build_dir: str | Path, dest: str | Path, fmt: str,
                 validation_fraction: float = 0.2, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None,
                 include_flagged: bool = False) -> Split:
    """Export the done cases of a build folder to ``dest`` in format ``fmt`` (see
    :data:`FORMATS`); returns the split, with the cases left out. Cases with a hip marked for review
    (:func:`flagged_cases`) are left out, and listed in ``export.json``, unless
    ``include_flagged``: a network would learn their doubtful labels. In each label map the half
    of the scan of a hip without labels (not asked for, metal or not found) is the ignore label
    (:mod:`.ignore`; ``ignored_hips`` in ``export.json``), and a case with no hip labelled at all
    is left out (``left_out_unannotated``).

    nnU-Net: ``dest`` must be named ``DatasetXXX_Name``; it gets ``imagesTr/<case>_0000.nii.gz``,
    ``labelsTr/<case>.nii.gz``, ``dataset.json`` and ``splits_final.json`` (one fold; copy it to
    ``nnUNet_preprocessed/DatasetXXX_Name/`` to train on this split). MONAI: ``images/``,
    ``labels/`` and ``datalist.json`` with ``training`` and ``validation`` lists, paths relative
    to the file (``monai.data.load_decathlon_datalist`` reads it). ``progress(done, total)`` is
    called after each case.

    Raises
    ------
    InputError : no manifest or no done case, a scan changed since it was built, an unknown
        format, a badly named nnU-Net folder, or an existing ``dest``.
    """
    build_dir, dest = Path(build_dir), Path(dest)
    if fmt not in FORMATS:
        raise InputError(f"Unknown export format {fmt!r}; choose {' or '.join(FORMATS)}.")
    if fmt == "nnunet" and not NNUNET_NAME.match(dest.name):
        raise InputError(f"nnU-Net needs the dataset folder named DatasetXXX_Name (three digits, "
                         f"e.g. Dataset501_THAHip); got {dest.name!r}.")
    if dest.exists():
        raise InputError(f"{dest} already exists; choose a new folder (an export never "
                         "overwrites one).")
    records = done_records(build_dir)
    flagged = [] if include_flagged else flagged_cases(records)
    records = [r for r in records if r["case"] not in flagged]
    unannotated = [r["case"] for r in records if no_hip_labelled(r)]
    records = [r for r in records if r["case"] not in unannotated]
    if not records:
        raise InputError(f"The build {build_dir} has no done case to export"
                         + (f" ({len(flagged)} left out because a hip was marked for review; "
                            "--include-flagged exports them)" if flagged else "")
                         + (f" ({len(unannotated)} with no hip annotated: metal or not asked "
                            "for)" if unannotated else "") + ".")
    _check_sources_unchanged(records)
    split = split_cases([r["case"] for r in records], validation_fraction, seed)
    split.left_out_flagged = flagged
    split.left_out_unannotated = unannotated

    staging = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        layout = _LAYOUTS[fmt]
        pairs = {}
        for number, record in enumerate(records, start=1):
            image = layout.image.format(case=record["case"])
            label = layout.label.format(case=record["case"])
            (staging / image).parent.mkdir(parents=True, exist_ok=True)
            (staging / label).parent.mkdir(parents=True, exist_ok=True)
            scan = read_image(record["source"])
            sitk.WriteImage(scan, str(staging / image), useCompression=True)
            labels_path = build_dir / CASES_DIR / record["case"] / LABELS_FILE
            if ignored_sides(record):
                split.ignored_hips[record["case"]] = ignored_sides(record)
                write_labels_with_ignore(labels_path, staging / label, scan,
                                         ignored_sides(record))
            else:
                shutil.copyfile(labels_path, staging / label)
            pairs[record["case"]] = {"image": image, "label": label}
            if progress is not None:
                progress(number, len(records))
        layout.write_index(staging, dest.name, pairs, split)
        write_json_atomic(staging / "export.json", {
            "format": fmt, "build": str(build_dir.resolve()), "software_version": __version__,
            "validation_fraction": validation_fraction, "seed": seed,
            "train": split.train, "validation": split.validation,
            "left_out_flagged": split.left_out_flagged,
            "left_out_unannotated": split.left_out_unannotated,
            "ignored_hips": split.ignored_hips})
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return split


def _check_sources_unchanged(records: list[dict]) -> None:
    stale = [r["case"] for r in records
             if not Path(r["source"]).exists() or scan_checksum(r["source"]) != r["checksum"]]
    if stale:
        raise InputError(f"{len(stale)} scan(s) changed or disappeared since they were built "
                         f"({', '.join(stale[:5])}{', ...' if len(stale) > 5 else ''}); run "
                         "`tha-annotator build-dataset` again first.")


def _nnunet_index(folder: Path, name: str, pairs: dict, split: Split) -> None:
    write_json_atomic(folder / "dataset.json", {
        "channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": len(pairs),
        "file_ending": FILE_ENDING, "name": name,
        "description": "Acetabulum and femoral head pseudo labels made by THA Annotator "
                       "(BE + AFS, Zhang et al.)"})
    write_json_atomic(folder / "splits_final.json",
                      [{"train": split.train, "val": split.validation}])


def _monai_index(folder: Path, name: str, pairs: dict, split: Split) -> None:
    write_json_atomic(folder / "datalist.json", {
        "name": name,
        "description": "Acetabulum and femoral head pseudo labels made by THA Annotator",
        "labels": {str(code): label for label, code in LABELS.items()},
        "training": [pairs[c] for c in split.train],
        "validation": [pairs[c] for c in split.validation]})


@dataclass(frozen=True)
class _Layout:
    image: str  # file of a case's CT, relative to the export folder; {case} is replaced
    label: str  # file of its label map
    write_index: Callable[[Path, str, dict, Split], None]


_LAYOUTS = {
    "nnunet": _Layout(f"imagesTr/{{case}}_0000{FILE_ENDING}", f"labelsTr/{{case}}{FILE_ENDING}",
                      _nnunet_index),
    "monai": _Layout(f"images/{{case}}{FILE_ENDING}", f"labels/{{case}}{FILE_ENDING}",
                     _monai_index),
}
