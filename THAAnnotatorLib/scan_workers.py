"""Worker processes that share one scan's pipeline work: bone extraction a few axial slices at a
time (BE treats each slice on its own), then one hip each.

The calling process is one of the workers; the others are child processes. The scan's HU and
its bone mask live in shared memory, which each child maps once; a task is a module-level
function called as ``task(scan, item)`` on a :class:`SharedScan`, wherever it runs, so the
results are the same, bit for bit, whatever the number of workers. The calling process reports
progress as tasks finish and checks ``cancel`` between them and while it waits; a cancel reaches
the children through an event that stands in for ``cancel`` there (the library checks it as
often as it checks ``cancel``).

Workers are started with ``spawn``: forking a process that runs threads (a Dask worker, a GUI)
can deadlock. Ctrl-C reaches the calling process only (the workers ignore SIGINT); it stops the
workers, each within one slice or one of AFS's cancel checks.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from .errors import Cancelled
from .params import Params
from .volume import Volume

_POLL_S = 0.05
"""How often (s) the calling process checks ``cancel`` while the workers run."""
AUTOMATIC_MIN_VOXELS = 10_000_000
"""Smallest scan (voxels; 512 x 512 x 40 slices) that :func:`automatic_workers` shares out: a
smaller one takes a few seconds in one process, about what a second one costs to start."""


def automatic_workers(voxels: int) -> int:
    """The workers a scan of ``voxels`` voxels gets by default: two (one per hip) where this
    process may run on two or more cores and the scan is at least :data:`AUTOMATIC_MIN_VOXELS`,
    else one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 if (cores or 1) >= 2 and voxels >= AUTOMATIC_MIN_VOXELS else 1


@dataclass
class SharedScan:
    """What every task works on.

    Attributes
    ----------
    volume : the canonical CT volume (read only).
    bone : uint8 (z, y, x) bone mask in the volume's layout, filled in by the bone tasks; with
        workers, in shared memory freed when the runner ends (copy what is kept).
    params : the pipeline parameters.
    cancel : returns True once the run is cancelled; None: never.
    progress : ``progress(fraction, message)`` of a task's own work (0-1), where the calling
        process runs the task; None in child processes (there a task reports only its end).
    """

    volume: Volume
    bone: np.ndarray
    params: Params
    cancel: Callable[[], bool] | None
    progress: Callable[[float, str], None] | None = None


@contextmanager
def scan_runner(volume: Volume, params: Params, workers: int,
                cancel: Callable[[], bool] | None = None) -> Iterator[Runner]:
    """A :class:`Runner` of tasks on ``volume`` with ``workers`` processes (1: in this one).

    Raises :class:`Cancelled` from :meth:`Runner.run` once ``cancel()`` turns true.
    """
    if workers == 1:
        yield Runner(SharedScan(volume, np.zeros(volume.shape, np.uint8), params, cancel))
        return
    with ExitStack() as stack:
        hu = _shared_block(stack, volume.shape, volume.hu.dtype)
        bone = _shared_block(stack, volume.shape, np.dtype(np.uint8))
        stop = multiprocessing.get_context("spawn").Event()
        executor = ProcessPoolExecutor(
            max_workers=workers - 1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(_SharedArray.of(hu), _SharedArray.of(bone), volume.index_to_lps,
                      volume.source_axes, volume.source_flipped, params, stop))

        scan = SharedScan(volume, bone.array, params, cancel)
        # one process starts per task while none is idle: each child starts on its no-op task
        with _sigint_blocked():
            started = [executor.submit(_started) for _ in range(workers - 1)]
        hu.array[...] = volume.hu  # while the children start: none reads it before a task

        def stop_workers() -> None:  # on any exit: a task still running ends at its next check
            stop.set()
            executor.shutdown(wait=True, cancel_futures=True)
            scan.bone = hu.array = bone.array = None  # no view may outlive its block

        stack.callback(stop_workers)
        yield Runner(scan, executor, started, stop)


class Runner:
    """Runs tasks on :attr:`scan` in this process and in child processes (none: all here): each
    child that has started (its ``started`` task done) has one task at a time, handed out in the
    items' order, and this process takes the next item whenever none is free, so it does not
    wait for a child's start-up (importing the library takes a second or two)."""

    def __init__(self, scan: SharedScan, executor: ProcessPoolExecutor | None = None,
                 started: Sequence[Future] = (), stop=None) -> None:
        self.scan, self._executor, self._started, self._stop = scan, executor, started, stop

    def _children_ready(self) -> int:
        for future in self._started:
            if future.done():
                future.result()  # a child that could not start ends the run
        return sum(future.done() for future in self._started)

    def run(self, task: Callable[[SharedScan, Any], Any], items: Sequence,
            on_done: Callable[[int], None] | None = None) -> list:
        """``task(scan, item)`` for each of ``items``; the results in the items' order.
        ``on_done(n)`` is called each time a task has finished, with how many have."""
        results: dict[int, Any] = {}
        running: dict[Future, int] = {}

        def collect(timeout: float) -> None:
            done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                results[running.pop(future)] = future.result()  # a task's exception ends the run
            if done and on_done is not None:
                on_done(len(results))

        for index, item in enumerate(items):
            if len(running) < self._children_ready():
                running[self._executor.submit(_run_task, task, item)] = index
                continue
            results[index] = task(self.scan, item)  # cancel: checked inside, as with 1 worker
            if on_done is not None:
                on_done(len(results))
            collect(timeout=0)
        while running:
            if self.scan.cancel is not None and self.scan.cancel():
                self._stop.set()
                raise Cancelled("The annotation was cancelled.")
            collect(timeout=_POLL_S)
        return [results[index] for index in range(len(items))]


@dataclass(frozen=True)
class _SharedArray:
    """A numpy array in a named shared memory block: what a worker needs to map it."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, block: _Block) -> _SharedArray:
        return cls(block.memory.name, block.array.shape, block.array.dtype.str)

    def attach(self) -> _Block:
        memory = shared_memory.SharedMemory(name=self.name)
        return _Block(memory, np.ndarray(self.shape, np.dtype(self.dtype), buffer=memory.buf))


@dataclass
class _Block:
    memory: shared_memory.SharedMemory
    array: np.ndarray


def _shared_block(stack: ExitStack, shape: tuple[int, ...], dtype: np.dtype) -> _Block:
    """An array of zeros (a new shared memory block is zero-filled) in a new shared memory
    block, freed when ``stack`` closes."""
    memory = shared_memory.SharedMemory(create=True,
                                        size=max(int(np.prod(shape)) * dtype.itemsize, 1))
    stack.callback(memory.unlink)
    stack.callback(memory.close)
    return _Block(memory, np.ndarray(shape, dtype, buffer=memory.buf))


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Hold SIGINT back (pending, not lost) in this thread while it starts child processes: they
    inherit the blocked signal, so a Ctrl-C during their start-up cannot interrupt them before
    :func:`_start_worker` has them ignore it."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no SIGINT to a process group
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


_worker_scan: SharedScan | None = None
_worker_blocks: list[_Block] = []  # kept mapped for the worker's life


def _start_worker(hu: _SharedArray, bone: _SharedArray, index_to_lps: np.ndarray,
                  source_axes: tuple, source_flipped: tuple, params: Params, stop) -> None:
    global _worker_scan
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the calling process handles Ctrl-C
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # see _sigint_blocked
    hu_block, bone_block = hu.attach(), bone.attach()
    _worker_blocks.extend((hu_block, bone_block))
    hu_block.array.flags.writeable = False
    volume = Volume(hu_block.array, index_to_lps, source_axes, source_flipped)
    _worker_scan = SharedScan(volume, bone_block.array, params, stop.is_set)


def _started() -> None:
    """A child's first task: done once the child has started."""


def _run_task(task: Callable[[SharedScan, Any], Any], item: Any) -> Any:
    return task(_worker_scan, item)
