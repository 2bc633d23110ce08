"""Which scans belong to one patient, so that an export's split never puts one patient's scans
on both sides: two series of a patient look alike, and a network validated on one of them after
training on the other is judged too kindly.

A DICOM series names its patient (PatientID, tag 0010,0020); any other scan is matched with a
``--group-by`` regular expression whose first group names the patient; a scan neither names is a
group of its own.
"""
from __future__ import annotations

import re
from pathlib import Path

import SimpleITK as sitk

from ..io import dicom_series_files

PATIENT_ID_TAG = "0010|0020"
"""DICOM PatientID."""
PATIENT_PREFIX = "patient:"
"""Group names of scans that say who their patient is (the same patient id from a DICOM
PatientID or from ``--group-by`` is one group)."""
SCAN_PREFIX = "scan:"
"""Group names of scans that are a group of their own (followed by the case name)."""


def group_pattern(text: str | re.Pattern) -> re.Pattern:
    """``text`` compiled as the ``--group-by`` regular expression.

    Raises
    ------
    ValueError : not a regular expression, or one without a group ``(...)`` to name the patient
        (the message reads after ``--group-by``: "must be ..., got ...").
    """
    try:
        pattern = text if isinstance(text, re.Pattern) else re.compile(text)
    except re.error as error:
        raise ValueError(f"must be a regular expression with a group naming the patient, got "
                         f"{text!r} ({error})") from None
    if pattern.groups < 1:
        raise ValueError("must be a regular expression with a group naming the patient, such as "
                         f"'^(P\\d+)_', got {pattern.pattern!r} (no group)")
    return pattern


def dicom_patient_id(folder: str | Path) -> str | None:
    """The PatientID of the DICOM series a build reads from ``folder`` (its series with most
    files, as :func:`~THAAnnotatorLib.io.read_scan` chooses), or None when ``folder`` is not a
    DICOM folder or the series has no PatientID."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    try:
        files = dicom_series_files(folder)
        if not files:
            return None
        reader = sitk.ImageFileReader()
        reader.SetFileName(files[max(files, key=lambda sid: len(files[sid]))][0])
        reader.ReadImageInformation()
        value = reader.GetMetaData(PATIENT_ID_TAG) if reader.HasMetaDataKey(PATIENT_ID_TAG) else ""
    except RuntimeError:
        return None
    value = value.strip().rstrip("\0").strip()
    return value or None


def case_groups(records: list[dict], scans_dir: str | Path | None,
                pattern: re.Pattern | None = None) -> dict[str, str]:
    """The group of each manifest record's case: ``patient:<id>`` from a DICOM series'
    PatientID, else from ``pattern``'s first group searched (``re.search``) in the scan's path
    relative to ``scans_dir`` (``P001/ct_a.nii.gz``; the file name when it lies elsewhere),
    else ``scan:<case>``."""
    groups = {}
    for record in records:
        source = Path(record["source"])
        patient = dicom_patient_id(source)
        if patient is None and pattern is not None:
            match = pattern.search(_relative(source, scans_dir))
            patient = match.group(1) if match and match.group(1) else None
        groups[record["case"]] = (PATIENT_PREFIX + patient if patient is not None
                                  else SCAN_PREFIX + record["case"])
    return groups


def _relative(source: Path, scans_dir: str | Path | None) -> str:
    if scans_dir is not None:
        try:
            return source.relative_to(Path(scans_dir)).as_posix()
        except ValueError:
            pass
    return source.name
