"""Finding the scans of a build: image files and DICOM series folders, each named as a case."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io import FILE_SUFFIXES

_DICOM_MAGIC_OFFSET = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MHD_DATA = re.compile(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", re.MULTILINE)
_NHDR_DATA = re.compile(r"^\s*data ?file\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class ScanSource:
    """One scan of a build: ``case`` names its output folder, ``path`` is a file or DICOM folder."""

    case: str
    path: Path


def find_scans(root: str | Path) -> list[ScanSource]:
    """All scans under ``root``, sorted by case name.

    Image files are recognised by their suffix (NIfTI, NRRD, MetaImage); a folder holding DICOM
    files (a ``.dcm`` suffix or the ``DICM`` marker), ``root`` included, is one scan, and its
    sub-folders are not searched further. Hidden files and folders are skipped. The case name
    is the path relative to ``root`` without the image suffix, folders joined by ``__``, other
    characters than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``. Names are told
    apart without regard to letter case, as case-insensitive file systems (macOS, Windows) hold
    ``CT1/`` and ``ct1/`` as one folder: two scans that would share a name keep their suffix, and
    two that still would (``CT1.nii.gz``, ``ct1.nii.gz``) get a short hash of their relative path
    (``ct1.nii.gz_`` and eight hex digits).

    Raises
    ------
    InputError : ``root`` is not a folder, or holds no scan.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"The scans folder {root} does not exist or is not a folder.")
    found: list[tuple[Path, str]] = []
    for folder, subfolders, files in os.walk(root):
        folder = Path(folder)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        files = sorted(f for f in files if not f.startswith("."))
        if any(_is_dicom(folder / f) for f in files):
            found.append((folder, ""))
            subfolders.clear()
            continue
        for name in files:
            suffix = next((s for s in FILE_SUFFIXES if name.lower().endswith(s)), None)
            if suffix is not None:
                found.append((folder / name, suffix))
    if not found:
        raise InputError(
            f"The folder {root} holds no scans (NIfTI, NRRD, MetaImage files or DICOM series "
            "folders); check the path.")
    # a DICOM series given as the scans folder itself is named after that folder
    names = [_case_name(path.relative_to(root.parent if path == root else root), suffix)
             for path, suffix in found]
    names = [_case_name(path.relative_to(root), "") if clash else name
             for (path, _), name, clash in zip(found, names, _clashes(names))]
    names = [f"{name}_{_path_hash(path.relative_to(root))}" if clash else name
             for (path, _), name, clash in zip(found, names, _clashes(names))]
    sources = [ScanSource(name, path) for (path, _), name in zip(found, names)]
    return sorted(sources, key=lambda s: s.case)


def _clashes(names: list[str]) -> list[bool]:
    """For each name, whether another one equals it when letter case is ignored."""
    folded = [name.casefold() for name in names]
    return [folded.count(name) > 1 for name in folded]


def _path_hash(relative: Path) -> str:
    """Eight hex digits of the SHA-256 of a relative path, the same on every run."""
    return hashlib.sha256(relative.as_posix().encode("utf-8")).hexdigest()[:8]


def scan_checksum(path: str | Path) -> str:
    """Hex SHA-256 of a scan: the bytes of its files, in order, each after its size.

    A file is hashed with the data file its header names (``.mhd``, ``.nhdr``); a DICOM folder
    with all its files in name order (sub-folders excluded). Names are left out, so a copy of a
    scan under another name has the same checksum (a build takes it for a duplicate).
    """
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [
        path, *_detached_data_files(path)]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.stat().st_size.to_bytes(8, "little"))
        with open(file, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _detached_data_files(header: Path) -> list[Path]:
    """The voxel data file a MetaImage (``ElementDataFile = x.raw``) or detached NRRD
    (``data file: x.raw``) header points to, when it exists beside the header."""
    pattern = {".mhd": _MHD_DATA, ".nhdr": _NHDR_DATA}.get(header.suffix.lower())
    if pattern is None:
        return []
    match = pattern.search(header.read_text(encoding="latin-1", errors="replace"))
    data = header.parent / match.group(1).strip() if match else None
    return [data] if data is not None and data.is_file() else []


def _case_name(relative: Path, suffix: str) -> str:
    text = str(relative)
    stem = text[: len(text) - len(suffix)] if suffix else text
    return _UNSAFE.sub("_", "__".join(Path(stem).parts)).strip("_") or "scan"


def _is_dicom(path: Path) -> bool:
    if path.name.lower().endswith(".dcm"):
        return True
    try:
        with open(path, "rb") as stream:
            stream.seek(_DICOM_MAGIC_OFFSET)
            return stream.read(4) == b"DICM"
    except OSError:
        return False
