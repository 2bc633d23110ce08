"""One case of a build: run BE + AFS on a scan and write its folder in one atomic step.

A case folder ``cases/<case>/`` holds what ``tha-annotator annotate`` writes (label maps,
segmentation, ``annotation.json``, ``overview.png``) and ``case.json``, the case's record. A
failed case's folder holds only ``case.json`` (with the reason). The folder is built under a
hidden name and renamed into place, so a killed run leaves either the whole case or none of it;
hidden leftovers are removed by the next run (:func:`remove_leftovers`).
"""
from __future__ import annotations

import json
import shutil
import time
import traceback
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from .. import __version__, io, outputs, pipeline
from ..errors import InputError
from ..model.files import RETIRED_MARK, replace_folder, write_json_atomic
from ..overview import OVERVIEW_FILE, render_overview_png
from ..params import Params
from ..result import Annotation, SideResult
from ..statistics import SegmentStatistics, segment_statistics
from ..volume import Volume
from .discover import ScanSource
from .manifest import pending_record

CASE_RECORD = "case.json"
THUMBNAIL_FILE = "thumbnail.jpg"
THUMBNAIL_WIDTH_PX = 360
ERROR_LOG = "error.txt"
_STAGING_MARK = ".partial-"


def settings_key(params: Params, sides: tuple[str, ...]) -> dict:
    """What, besides the scan's checksum, decides a case's result: software version, parameters
    and the sides asked for. A case recorded with another key is redone."""
    key = {"version": __version__, "params": asdict(params), "sides": list(sides)}
    return json.loads(json.dumps(key))  # as stored in case.json (tuples become lists)


def run_case(source: ScanSource, checksum: str, cases_dir: str | Path, params: Params,
             sides: tuple[str, ...]) -> dict:
    """Annotate one scan into ``cases_dir/<case>/`` and return its record (also in case.json).

    Never raises for a bad scan: the record's ``status`` is ``"done"`` or ``"failed"`` and
    ``reasons`` says why a scan failed or which hips were left out. Meant to run on a Dask
    worker; it reads the scan itself, so only paths travel between machines.
    """
    started = time.perf_counter()
    record = pending_record(source, checksum, settings_key(params, sides))
    cases_dir = Path(cases_dir)
    staging = cases_dir / f".{source.case}{_STAGING_MARK}{uuid.uuid4().hex[:12]}"
    try:
        scan = io.read_scan(source.path)
        annotation = pipeline.annotate(scan.volume, params, sides=sides)
        results = side_records(annotation, scan.volume)
        overview = render_overview_png(scan.volume, annotation)
        outputs.write_outputs(staging, scan.reference, scan.volume, annotation, params,
                              input_path=scan.path, extra_files={
                                  OVERVIEW_FILE: overview, THUMBNAIL_FILE: _thumbnail(overview)})
        record.update(status="done", reasons=[
            f"{side} hip: {r['message']}" for side, r in results.items() if r["message"]],
            sides_found=[side for side, r in results.items() if r["status"] == "segmented"],
            results=results)
    except InputError as error:
        record.update(status="failed", reasons=[str(error)])
    except Exception as error:  # a software fault on one scan must not stop the others
        record.update(status="failed", reasons=[
            f"internal error ({type(error).__name__}: {error}); see {ERROR_LOG} in the case "
            "folder"])
        staging.mkdir(parents=True, exist_ok=True)
        (staging / ERROR_LOG).write_text(traceback.format_exc(), encoding="utf-8")
    record.update(run_time_s=round(time.perf_counter() - started, 2),
                  finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    staging.mkdir(parents=True, exist_ok=True)
    write_json_atomic(staging / CASE_RECORD, record)
    replace_folder(staging, cases_dir / source.case)
    return record


def read_case_record(case_dir: str | Path) -> dict | None:
    """The record in ``case_dir/case.json``, or None when there is none or it is unreadable."""
    try:
        record = json.loads((Path(case_dir) / CASE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "status" in record else None


def remove_leftovers(cases_dir: str | Path) -> None:
    """Delete the hidden half-built and retired case folders of an interrupted run."""
    cases_dir = Path(cases_dir)
    leftovers = [p for p in cases_dir.glob(".*")
                 if _STAGING_MARK in p.name or RETIRED_MARK in p.name] if cases_dir.is_dir() else []
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def _thumbnail(png: bytes) -> bytes:
    """The overview ``png`` scaled to :data:`THUMBNAIL_WIDTH_PX` wide, as JPEG, for the report."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    height = round(image.shape[0] * THUMBNAIL_WIDTH_PX / image.shape[1])
    small = cv2.resize(image, (THUMBNAIL_WIDTH_PX, height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise RuntimeError("OpenCV could not encode the thumbnail as JPEG.")
    return encoded.tobytes()


def side_records(annotation: Annotation, volume: Volume) -> dict[str, dict]:
    """Each hip's entry in a case record (``results``): its status, sphere, surface check,
    measurements, warnings and its segments' volume (ml) and HU
    (:func:`~..statistics.segment_statistics` on ``volume``, the CT annotated)."""
    statistics = segment_statistics(volume, annotation.side_labels, tuple(annotation.sides))
    return {side: _side_record(result, statistics[side])
            for side, result in annotation.sides.items()}


def _side_record(result: SideResult, statistics: dict[str, SegmentStatistics]) -> dict:
    return {"status": result.status, "message": result.message,
            "head_diameter_mm": result.head_diameter_mm,
            "head_center_ras_mm": (list(result.sphere_center_ras_mm)
                                   if result.sphere_center_ras_mm is not None else None),
            "initial_slice": result.initial_slice,
            "surface_drop_hu": result.surface_drop_hu,
            "surface_edge_offset_mm": result.surface_edge_offset_mm,
            "needs_review": result.needs_review,
            "measurements": (None if result.measurements is None
                             else asdict(result.measurements)),
            "statistics": {key: asdict(value) for key, value in statistics.items()},
            "warnings": list(result.warnings)}
