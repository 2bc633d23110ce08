"""The resumable build: BE + AFS on every scan of a folder, on a Dask cluster.

By default a local cluster of worker processes with one thread each (one scan at a time per
worker, so memory per worker stays that of one scan); give a scheduler address to use an existing
Dask cluster unchanged (its workers must see the same file paths and should run with one thread
each). Only paths travel to the workers; each worker reads its scan and writes its case folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, some_names
from ..params import Params
from ..result import SIDES
from .case import read_case_record, remove_leftovers, run_case, settings_key
from .discover import ScanSource, find_scans, scan_checksum
from .manifest import (CASES_DIR, MANIFEST_CSV, MANIFEST_JSON, duplicate_record, pending_record,
                       write_manifest)
from .report import REPORT_FILE, write_report

_LOCK_FILE = ".build.lock"


@dataclass
class BuildSummary:
    """What a build did. ``skipped``: cases already up to date; ``processed``: cases run now;
    ``duplicates``: cases not built because their scan is byte for byte that of another case
    (case: that case's name)."""

    out_dir: Path
    records: list[dict]
    skipped: list[str] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)
    dashboard: str | None = None
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """Number of cases whose record has ``status`` ("done", "failed", "pending" or
        "duplicate")."""
        return sum(r["status"] == status for r in self.records)


class BuildObserver:
    """Callbacks a build makes while it runs; the command line draws its progress bar from them."""

    def found(self, scans: int) -> None:
        """``scans`` scans were found; their checksums are being compared with the cases'."""

    def started(self, to_run: int, skipped: int, dashboard: str | None) -> None:
        """The work is known: ``to_run`` cases will be processed, ``skipped`` are up to date."""

    def case_finished(self, record: dict) -> None:
        """One case is done or failed (its record)."""


BUILD_ENTRIES = frozenset({CASES_DIR, MANIFEST_JSON, MANIFEST_CSV, REPORT_FILE})
"""What a build writes into its folder (besides hidden files: its lock, files being written)."""


def _check_build_folder(out_dir: Path) -> None:
    """Refuse a build folder that holds what a build does not write (hidden files aside, such
    as a lock or macOS's .DS_Store): the build's files would be mixed with others."""
    if not out_dir.is_dir():
        return
    foreign = sorted(entry.name for entry in out_dir.iterdir()
                     if entry.name not in BUILD_ENTRIES and not entry.name.startswith("."))
    if foreign:
        raise InputError(
            f"The build folder {out_dir} holds {some_names(foreign)}, which a build does "
            "not write; choose a new or empty folder, or an earlier build's, so the build's "
            "files are not mixed with others.")


def build_dataset(scans_dir: str | Path, out_dir: str | Path, params: Params = Params(),
                  sides: tuple[str, ...] = SIDES, workers: int | None = None,
                  scheduler: str | None = None, memory_per_worker: str = "auto",
                  retry_failed: bool = False,
                  observer: BuildObserver | None = None) -> BuildSummary:
    """Annotate every scan under ``scans_dir`` into ``out_dir/cases/<case>/``, skipping cases
    already built from the same scan (SHA-256) with the same settings. A scan with the same
    SHA-256 as a case before it (in case name order) is built once: its record has status
    ``"duplicate"`` and ``duplicate_of`` that case, and it gets no case folder.

    Parameters
    ----------
    scans_dir : folder searched recursively for scans (see :func:`~.discover.find_scans`).
    out_dir : build folder (created): ``cases/``, ``manifest.json``/``.csv``, ``report.html``.
    params, sides : pipeline parameters and the hips to annotate.
    workers : worker processes of the local cluster (default: one per CPU core).
    scheduler : address of a running Dask scheduler (``tcp://host:8786``); no local cluster.
    memory_per_worker : memory limit of each local worker, e.g. ``"4GB"``; ``"auto"`` shares
        the machine's memory between the workers.
    retry_failed : also redo cases that failed before with the same scan and settings.
    observer : progress callbacks.

    Raises
    ------
    InputError : no scans, an output folder that overlaps the scans folder or holds files a
        build does not write, another build running in the same output folder, or ``params``
        outside their ranges
        (:meth:`Params.validate`); all found before any scan is read.
    """
    params.validate()
    scans_dir, out_dir = Path(scans_dir).resolve(), Path(out_dir).resolve()
    if out_dir == scans_dir or scans_dir in out_dir.parents or out_dir in scans_dir.parents:
        raise InputError(f"The output folder {out_dir} overlaps the scans folder {scans_dir}; "
                         "choose a folder outside it, so outputs are never taken for scans.")
    if workers is not None and workers < 1:
        raise InputError("--workers must be at least 1.")
    _check_build_folder(out_dir)
    observer = observer or BuildObserver()
    sources = find_scans(scans_dir)
    started = time.perf_counter()
    cases_dir = out_dir / CASES_DIR
    cases_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir):
        remove_leftovers(cases_dir)
        observer.found(len(sources))
        records, to_run = _plan(sources, cases_dir, settings_key(params, sides), retry_failed)
        duplicates = {case: r["duplicate_of"] for case, r in records.items()
                      if r["status"] == "duplicate"}
        summary = BuildSummary(out_dir, [], skipped=sorted(
            set(records) - {s.case for s, _ in to_run} - set(duplicates)), duplicates=duplicates)

        def save() -> None:
            summary.records = [records[s.case] for s in sources]
            write_manifest(out_dir, summary.records, scans_dir)

        save()
        try:
            if not to_run:
                observer.started(0, len(summary.skipped), None)
            else:
                from distributed import as_completed

                with _dask_client(workers, scheduler, memory_per_worker) as client:
                    summary.dashboard = _dashboard(client)
                    observer.started(len(to_run), len(summary.skipped), summary.dashboard)
                    futures = [client.submit(run_case, source, checksum, cases_dir, params,
                                             sides, key=f"case-{source.case}", pure=False)
                               for source, checksum in to_run]
                    for future in as_completed(futures):
                        record = _result_or_failure(future, to_run)
                        records[record["case"]] = record
                        summary.processed.append(record["case"])
                        save()
                        observer.case_finished(record)
        finally:
            save()
            write_report(out_dir, summary.records)
    summary.seconds = time.perf_counter() - started
    return summary


def _plan(sources: list[ScanSource], cases_dir: Path, key: dict, retry_failed: bool,
          ) -> tuple[dict[str, dict], list[tuple[ScanSource, str]]]:
    """Each scan's current record (its case.json when up to date, a duplicate record when an
    earlier scan has the same checksum, else a pending one) and the scans to run, with their
    checksums. A duplicate's case folder left by an earlier build is removed."""
    records: dict[str, dict] = {}
    to_run: list[tuple[ScanSource, str]] = []
    first: dict[str, str] = {}  # checksum: the first case (by name) built from it
    for source in sorted(sources, key=lambda s: s.case):
        checksum = scan_checksum(source.path)
        if checksum in first:
            records[source.case] = duplicate_record(source, checksum, key, first[checksum])
            shutil.rmtree(cases_dir / source.case, ignore_errors=True)
            continue
        first[checksum] = source.case
        record = read_case_record(cases_dir / source.case)
        if _up_to_date(record, checksum, key, retry_failed):
            records[source.case] = record
        else:
            records[source.case] = pending_record(source, checksum, key)
            to_run.append((source, checksum))
    return records, to_run


def _up_to_date(record: dict | None, checksum: str, key: dict, retry_failed: bool) -> bool:
    if record is None or record.get("checksum") != checksum:
        return False
    if any(record.get(name) != value for name, value in key.items()):
        return False
    return record["status"] == "done" or (record["status"] == "failed" and not retry_failed)


def _result_or_failure(future, to_run: list[tuple[ScanSource, str]]) -> dict:
    """The record a worker returned, or a failed record when the worker itself died."""
    try:
        return future.result()
    except Exception as error:  # KilledWorker (out of memory, crash) and the like
        case = future.key.removeprefix("case-")
        source, checksum = next((s, c) for s, c in to_run if s.case == case)
        # no settings recorded, and no case folder: the next run tries this case again
        record = pending_record(source, checksum, {})
        record.update(status="failed", reasons=[
            f"the worker running this case stopped ({type(error).__name__}: {error}); it may "
            "have run out of memory: try fewer workers or more --memory-per-worker"])
        return record


@contextlib.contextmanager
def _dask_client(workers: int | None, scheduler: str | None,
                 memory_per_worker: str) -> Iterator:
    from distributed import Client, LocalCluster

    from .workers import SingleThreadedLibraries

    if scheduler:
        cluster = contextlib.nullcontext(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               memory_limit=memory_per_worker, dashboard_address=":0",
                               silence_logs=logging.ERROR)
    with cluster as address, Client(address) as client:
        client.register_plugin(SingleThreadedLibraries(), name="tha-single-threaded")
        yield client


def _dashboard(client) -> str | None:
    """The dashboard address, when the scheduler serves one (it needs the bokeh package)."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return None
    return client.dashboard_link


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold a lock on ``out_dir`` so that two builds never write into the same folder."""
    with open(out_dir / _LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"Another build is running in {out_dir}; wait for it to finish "
                             "or choose another output folder.") from None
        yield
