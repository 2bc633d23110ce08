"""The manifest of a build: one record per scan, as ``manifest.json`` and ``manifest.csv``.

A record is what :func:`~.case.run_case` returns (and stores as the case's ``case.json``), a
``"pending"`` record for a scan not processed yet, or a ``"duplicate"`` record for a scan that is
byte for byte another case's (its ``duplicate_of``), which is not built again. Both files are
rewritten atomically after every finished case, so an interrupted build still leaves a manifest
that matches its folders.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..measure.hip import REPORTED
from ..model.files import write_bytes_atomic, write_json_atomic
from ..result import SIDES
from ..statistics import SEGMENT_KEYS, STATISTICS
from .discover import ScanSource

CASES_DIR = "cases"
"""Folder of a build holding one folder per case."""
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
CSV_COLUMNS = ("case", "source", "checksum", "status", "duplicate_of", "reasons", "sides_found",
               *(f"{side}_head_diameter_mm" for side in SIDES),
               *(f"{side}_surface_drop_hu" for side in SIDES),
               *(f"{side}_needs_review" for side in SIDES),
               *(f"{side}_{name}" for side in SIDES for name in REPORTED),
               *(f"{side}_{segment}_{quantity}" for side in SIDES
                 for segment in SEGMENT_KEYS.values() for quantity in STATISTICS),
               "run_time_s", "finished", "version", "parameters")


def pending_record(source: ScanSource, checksum: str, key: dict) -> dict:
    """The record of a scan that has not been processed with the current settings yet."""
    return {"case": source.case, "source": str(Path(source.path).resolve()),
            "checksum": checksum, "status": "pending", "reasons": [], "sides_found": [],
            "results": {}, **key}


def duplicate_record(source: ScanSource, checksum: str, key: dict, original: str) -> dict:
    """The record of a scan with the same checksum as the case ``original``: not built, and
    left out of exports, so that one scan is never trained and validated on."""
    record = pending_record(source, checksum, key)
    record.update(status="duplicate", duplicate_of=original, reasons=[
        f"the same scan as {original} (same SHA-256); built and exported once, as {original}"])
    return record


def write_manifest(out_dir: str | Path, records: list[dict], scans_dir: str | Path) -> None:
    """Write ``manifest.json`` and ``manifest.csv`` for ``records`` (in the given order)."""
    out_dir = Path(out_dir)
    counts = {status: sum(r["status"] == status for r in records)
              for status in ("done", "failed", "pending", "duplicate")}
    write_json_atomic(out_dir / MANIFEST_JSON, {
        "scans_dir": str(Path(scans_dir).resolve()), "software_version": __version__,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "counts": counts, "cases": records})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(_csv_row(record))
    write_bytes_atomic(out_dir / MANIFEST_CSV, text.getvalue().encode("utf-8"))


def read_manifest(out_dir: str | Path) -> dict:
    """The parsed ``manifest.json`` of a build folder.

    Raises
    ------
    InputError : there is no readable manifest with a list of case records.
    """
    out_dir = Path(out_dir)
    try:
        manifest = json.loads((out_dir / MANIFEST_JSON).read_text(encoding="utf-8"))
        cases = manifest["cases"]
        if not all(isinstance(r[k], str) for r in cases for k in ("case", "source", "status")):
            raise ValueError("a case record lacks its case, source or status")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{out_dir} has no readable {MANIFEST_JSON}; give the output folder "
                         "of `tha-annotator build-dataset`.") from error
    return manifest


def done_records(out_dir: str | Path) -> list[dict]:
    """The records of a build's done cases, in manifest order (see :func:`read_manifest`)."""
    return [r for r in read_manifest(out_dir)["cases"] if r["status"] == "done"]


def _csv_row(record: dict) -> dict:
    results = record.get("results", {})
    row = {key: record.get(key, "") for key in ("case", "source", "checksum", "status",
                                                "duplicate_of", "run_time_s", "finished",
                                                "version")}
    row["reasons"] = " | ".join(record.get("reasons", []))
    row["sides_found"] = " ".join(record.get("sides_found", []))
    for side in SIDES:
        for key in ("head_diameter_mm", "surface_drop_hu"):
            value = results.get(side, {}).get(key)
            row[f"{side}_{key}"] = "" if value is None else value
        review = results.get(side, {}).get("needs_review")
        row[f"{side}_needs_review"] = "" if review is None else ("yes" if review else "no")
        measurements = results.get(side, {}).get("measurements") or {}
        for name in REPORTED:
            value = measurements.get(name)
            row[f"{side}_{name}"] = "" if value is None else value
        statistics = results.get(side, {}).get("statistics") or {}
        for segment in SEGMENT_KEYS.values():
            for quantity in STATISTICS:
                value = statistics.get(segment, {}).get(quantity)
                row[f"{side}_{segment}_{quantity}"] = "" if value is None else value
    row["parameters"] = json.dumps({"params": record.get("params"), "sides": record.get("sides")},
                                   sort_keys=True, separators=(",", ":"))
    return row
