"""Export a build for training frameworks: the nnU-Net v2 raw layout or a MONAI datalist.

Both hold each done case's CT as NIfTI and its label map (0 background, 1 acetabulum,
2 femoral head, 3 ignore: the half of the scan of a hip the build did not annotate, see
:mod:`.ignore`) in the same geometry, and a split drawn from a seed, so the same build and seed
always give the same split: nnU-Net gets 5 folds (``splits_final.json``), MONAI one train /
validation split. Splits are drawn over patients (:mod:`.groups`), never over single scans, and
a scan built twice (the same SHA-256) is exported once. The export is written under a hidden
name and renamed into place: it is complete or absent, and an existing folder is never
overwritten.
"""
from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..errors import InputError
from ..io import read_image
from ..model.files import write_json_atomic
from ..outputs import LABELS_FILE, write_failed
from ..result import CLASS_NAMES
from .discover import scan_checksum
from .ignore import (IGNORE_LABEL, IGNORE_NAME, ignored_sides, no_hip_labelled,
                     write_labels_with_ignore)
from .groups import case_groups, group_pattern
from .manifest import CASES_DIR, done_records, read_manifest

FORMATS = ("nnunet", "monai")
NNUNET_NAME = re.compile(r"^Dataset\d{3}_[A-Za-z0-9_-]+$")
LABELS = {"background": 0, **{name.replace(" ", "_"): code for code, name in CLASS_NAMES.items()},
          IGNORE_NAME: IGNORE_LABEL}
FILE_ENDING = ".nii.gz"
NNUNET_FOLDS = 5
DEFAULT_VALIDATION_FRACTION = 0.2


@dataclass
class Split:
    """Case names for training and for validation, those an export left out because a hip
    was marked for review, and the cases left out as duplicates (case: the case exported for it).
    ``groups`` maps each exported case to its patient group; ``folds`` holds nnU-Net's folds
    (``train`` / ``validation`` are then fold 0)."""

    train: list[str]
    validation: list[str]
    left_out_flagged: list[str] = field(default_factory=list)
    # cases with no hip annotated (all requested hips metal): nothing but ignore to learn from
    left_out_unannotated: list[str] = field(default_factory=list)
    # case -> the sides whose half of the scan is the ignore label (:mod:`.ignore`)
    ignored_hips: dict[str, list[str]] = field(default_factory=dict)
    left_out_duplicates: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    folds: list[dict] = field(default_factory=list)


def split_cases(cases: list[str], validation_fraction: float, seed: int,
                groups: dict[str, str] | None = None) -> Split:
    """Draw a validation set of about ``round(fraction * n)`` cases with a seeded generator,
    whole groups at a time: ``groups`` maps a case to its patient group (default: each case its
    own group), and no group is split between training and validation. Groups are shuffled and
    taken while they do not overshoot the count (the first one always, so a positive fraction
    with two or more groups validates at least one, and one group is always left to train on).
    Names are sorted first, so the split depends only on the cases, groups, fraction and seed."""
    if not 0.0 <= validation_fraction < 1.0:
        raise InputError("The validation fraction must be at least 0 and below 1.")
    names = sorted(cases)
    members = _members(names, groups)
    count = round(validation_fraction * len(names))
    if validation_fraction > 0 and len(names) > 1:
        count = min(max(count, 1), len(names) - 1)
    order = np.random.default_rng(seed).permutation(len(members))
    validation: set[str] = set()
    taken = 0
    for index in order:
        group = members[index]
        if len(validation) >= count or taken == len(members) - 1:
            break
        if not validation or len(validation) + len(group) <= count:
            validation.update(group)
            taken += 1
    return Split([n for n in names if n not in validation], [n for n in names if n in validation],
                 groups=dict(groups or {}))


def group_folds(cases: list[str], seed: int, groups: dict[str, str] | None = None,
                folds: int = NNUNET_FOLDS) -> list[dict]:
    """nnU-Net's cross-validation folds as ``splits_final.json`` holds them: a list of
    ``{"train": [...], "val": [...]}``, the ``val`` lists disjoint and covering every case, no
    group (see :func:`split_cases`) in both lists of a fold. Groups are shuffled by ``seed``,
    then placed, largest first, in the fold with fewest cases. With fewer groups than ``folds``
    there is one fold per group; a single group gives one fold with an empty ``val``."""
    names = sorted(cases)
    members = _members(names, groups)
    if len(members) < 2:
        return [{"train": names, "val": []}]
    order = np.random.default_rng(seed).permutation(len(members))
    ranked = sorted((members[i] for i in order), key=len, reverse=True)  # stable: keeps shuffle
    held: list[list[str]] = [[] for _ in range(min(folds, len(members)))]
    for group in ranked:
        min(held, key=len).extend(group)
    return [{"train": [n for n in names if n not in val], "val": sorted(val)} for val in held]


def _members(names: list[str], groups: dict[str, str] | None) -> list[list[str]]:
    """The cases of each group, groups in the order of their sorted names."""
    by_group: dict[str, list[str]] = {}
    for name in names:
        by_group.setdefault((groups or {}).get(name, "scan:" + name), []).append(name)
    return [by_group[key] for key in sorted(by_group)]


def flagged_cases(records: list[dict]) -> list[str]:
    """The cases of manifest ``records`` with a hip the pipeline marked for review (its sphere
    failed the surface check, or its size is unusual): their labels are doubtful."""
    return [r["case"] for r in records
            if any(side.get("needs_review") for side in r.get("results", {}).values())]


def export_build(build_dir: str | Path, dest: str | Path, fmt: str,
                 validation_fraction: float | None = None, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None,
                 include_flagged: bool = False, group_by: str | re.Pattern | None = None,
                 ) -> Split:
    """Export the done cases of a build folder to ``dest`` in format ``fmt`` (see
    :data:`FORMATS`); returns the split, with the cases left out. Cases with a hip marked for review
    (:func:`flagged_cases`) are left out, and listed in ``export.json``, unless
    ``include_flagged``: a network would learn their doubtful labels. In each label map the half
    of the scan of a hip without labels (not asked for, metal or not found) is the ignore label
    (:mod:`.ignore`; ``ignored_hips`` in ``export.json``), and a case with no hip labelled at all
    is left out (``left_out_unannotated``).

    Cases are split by patient (:func:`~.groups.case_groups`: a DICOM series' PatientID, else
    ``group_by``'s first group in the scan's path relative to the scans folder, else the case
    alone). Done cases with the same scan checksum as an earlier one (a build made before
    duplicates were recognised) are exported once; the others are listed in ``export.json``.

    nnU-Net: ``dest`` must be named ``DatasetXXX_Name``; it gets ``imagesTr/<case>_0000.nii.gz``,
    ``labelsTr/<case>.nii.gz``, ``dataset.json`` and ``splits_final.json`` (5 grouped folds,
    :func:`group_folds`; copy it to ``nnUNet_preprocessed/DatasetXXX_Name/``); the returned
    split is fold 0, and ``validation_fraction`` must be None. MONAI: ``images/``, ``labels/``
    and ``datalist.json`` with ``training`` and ``validation`` lists (``validation_fraction``,
    default 0.2, of the cases; :func:`split_cases`), paths relative to the file
    (``monai.data.load_decathlon_datalist`` reads it). ``progress(done, total)`` is called after
    each case.

    Raises
    ------
    InputError : no manifest or no done case, a scan changed since it was built, an unknown
        format, a badly named nnU-Net folder, a validation fraction for nnU-Net, a ``group_by``
        that is no regular expression with a group, or an existing ``dest``.
    """
    build_dir, dest = Path(build_dir), Path(dest)
    if fmt not in FORMATS:
        raise InputError(f"Unknown export format {fmt!r}; choose {' or '.join(FORMATS)}.")
    if fmt == "nnunet" and not NNUNET_NAME.match(dest.name):
        raise InputError(f"nnU-Net needs the dataset folder named DatasetXXX_Name (three digits, "
                         f"e.g. Dataset501_THAHip); got {dest.name!r}.")
    if fmt == "nnunet" and validation_fraction is not None:
        raise InputError(f"nnU-Net exports get {NNUNET_FOLDS} folds, each validating about a "
                         f"fifth of the cases; --validation-fraction is for --format monai.")
    try:
        pattern = None if group_by is None else group_pattern(group_by)
    except ValueError as error:
        raise InputError(f"argument --group-by: {error}") from None
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
    records, duplicates = _without_duplicates(records)
    groups = case_groups(records, read_manifest(build_dir).get("scans_dir"), pattern)
    cases = [r["case"] for r in records]
    if fmt == "nnunet":
        folds = group_folds(cases, seed, groups)
        split = Split(folds[0]["train"], folds[0]["val"], groups=groups, folds=folds)
    else:
        split = split_cases(cases, DEFAULT_VALIDATION_FRACTION if validation_fraction is None
                            else validation_fraction, seed, groups)
    split.left_out_flagged = flagged
    split.left_out_unannotated = unannotated
    split.left_out_duplicates = duplicates

    staging = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        layout = _LAYOUTS[fmt]
        pairs = {}
        for number, record in enumerate(records, start=1):
            image = layout.image.format(case=record["case"])
            label = layout.label.format(case=record["case"])
            scan = read_image(record["source"])
            with _writing(dest, image, staging):
                (staging / image).parent.mkdir(parents=True, exist_ok=True)
                (staging / label).parent.mkdir(parents=True, exist_ok=True)
                sitk.WriteImage(scan, str(staging / image), useCompression=True)
            labels_path = build_dir / CASES_DIR / record["case"] / LABELS_FILE
            with _writing(dest, label, staging):
                if ignored_sides(record):
                    split.ignored_hips[record["case"]] = ignored_sides(record)
                    write_labels_with_ignore(labels_path, staging / label, scan,
                                             ignored_sides(record))
                else:
                    shutil.copyfile(labels_path, staging / label)
            pairs[record["case"]] = {"image": image, "label": label}
            if progress is not None:
                progress(number, len(records))
        with _writing(dest, "its index", staging):
            layout.write_index(staging, dest.name, pairs, split)
        summary = {
            "format": fmt, "build": str(build_dir.resolve()), "software_version": __version__,
            "validation_fraction": validation_fraction, "seed": seed,
            "group_by": None if pattern is None else pattern.pattern,
            "train": split.train, "validation": split.validation,
            **({"folds": split.folds} if split.folds else {}), "groups": split.groups,
            "left_out_flagged": split.left_out_flagged,
            "left_out_unannotated": split.left_out_unannotated,
            "ignored_hips": split.ignored_hips,
            "left_out_duplicates": split.left_out_duplicates}
        with _writing(dest, "export.json", staging):
            write_json_atomic(staging / "export.json", summary)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return split


@contextmanager
def _writing(dest: Path, name: str, staging: Path) -> Iterator[None]:
    """A failed write of ``name`` into ``staging`` (disk full, say) raised as
    :class:`~THAAnnotatorLib.errors.OutputNotWritable` naming ``dest``, not the staging folder."""
    try:
        yield
    except (OSError, RuntimeError) as error:  # SimpleITK's failed writes: RuntimeError
        raise write_failed(dest, name, staging, error) from error


def _without_duplicates(records: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """``records`` less those whose scan checksum an earlier record has, and those left out
    (case: the case kept for it)."""
    first: dict[str, str] = {}
    kept, duplicates = [], {}
    for record in records:
        checksum = record.get("checksum")
        if checksum and checksum in first:
            duplicates[record["case"]] = first[checksum]
        else:
            first.setdefault(checksum, record["case"])
            kept.append(record)
    return kept, duplicates


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
    write_json_atomic(folder / "splits_final.json", split.folds)


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
