"""Atomic file writes: a crash part-way leaves the old file (or none), never half a file; and
folders replaced as a whole."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    The temporary name ends like ``path`` (``.nii.gz`` ...), so writers that pick the format
    from the name work on it. The folder is created if missing. On any exception the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".partial-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, content: bytes) -> None:
    """Write ``content`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(content)


def write_json_atomic(path: str | Path, value) -> None:
    """Write ``value`` as indented UTF-8 JSON to ``path`` atomically."""
    text = json.dumps(value, indent=2, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


RETIRED_MARK = ".retired-"
"""Part of the hidden name an earlier folder has while :func:`replace_folder` replaces it."""


def replace_folder(new: str | Path, target: str | Path) -> None:
    """Put the complete folder ``new`` in place of ``target`` (which may exist), with renames only.

    An earlier ``target`` is first renamed to a hidden ``.<name>.retired-<id>`` beside it, and
    deleted only once ``new`` is in place; should that last rename fail, it is renamed back. So
    the earlier results are never mixed with the new ones, and never lost before the new ones are
    complete. ``new`` must lie in ``target``'s folder (the same file system).
    """
    new, target = Path(new), Path(target)
    retired = None
    if target.exists():
        retired = target.with_name(f".{target.name}{RETIRED_MARK}{uuid.uuid4().hex[:12]}")
        os.rename(target, retired)
    try:
        os.rename(new, target)
    except BaseException:
        if retired is not None:
            os.rename(retired, target)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
