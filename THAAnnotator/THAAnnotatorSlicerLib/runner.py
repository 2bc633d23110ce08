"""A run in a separate process (:mod:`.worker`), so that the panel stays responsive and Cancel
takes effect at once, whatever the library is doing: cancelling kills the process.

The Slicer process only copies the voxels, then polls (the panel with a QTimer): a thread writes
the input, starts the process and collects its progress lines. Nothing here touches MRML.
"""
from __future__ import annotations

import json
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading

import numpy as np

import THAAnnotatorLib
from THAAnnotatorLib.errors import InputError

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


def workerCommand(folder: str) -> list[str]:
    """``PythonSlicer -m THAAnnotatorSlicerLib.worker FOLDER`` (this Python outside Slicer)."""
    python = shutil.which("PythonSlicer") or sys.executable
    return [python, "-m", f"{__package__}.worker", folder]


def _workerEnvironment() -> dict:
    """This environment, with the package's and the library's folders first on the Python path."""
    folders = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
               os.path.dirname(os.path.dirname(os.path.abspath(THAAnnotatorLib.__file__)))]
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(folders + [p for p in [environment.get("PYTHONPATH")] if p])
    return environment


class BackgroundRun:
    """One :mod:`.worker` job on a copy of ``array`` (the volume node's voxels, (k, j, i)).

    ``request`` holds mode, params, sides, modelPath, device, name (for messages) and
    arrayIndexToLps. ``prepare(result)``, if given, runs in the background thread on what the
    worker computed (the part of writing it that needs no MRML) and returns the result to keep.
    Call :meth:`poll` until it is no longer RUNNING, then :meth:`result` (DONE) or :meth:`error`
    (FAILED), and :meth:`close`. ``fraction`` and ``message`` are the last progress report.
    """

    def __init__(self, request: dict, array: np.ndarray, prepare=None):
        self.folder = tempfile.mkdtemp(prefix="THAAnnotator-")
        self.fraction, self.message = 0.0, "starting"
        self.closeCallbacks = []
        self._lines = queue.Queue()
        self._lock = threading.Lock()
        self._process = None
        self._threadError = None
        self._input = np.array(array)  # the node's voxels may change while the run works
        self._result = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._work, args=(request, prepare), daemon=True)
        self._thread.start()

    def _work(self, request: dict, prepare) -> None:
        try:
            with open(os.path.join(self.folder, "request.pickle"), "wb") as stream:
                pickle.dump(request, stream, protocol=pickle.HIGHEST_PROTOCOL)
            np.save(os.path.join(self.folder, "input.npy"), self._input)
            self._input = None
            with self._lock, open(os.path.join(self.folder, "log.txt"), "wb") as log:
                if self._cancelled:
                    return
                self._process = subprocess.Popen(workerCommand(self.folder), stdout=subprocess.PIPE, stderr=log,
                                                 env=_workerEnvironment())
            for line in self._process.stdout:
                self._lines.put(line)
            path = os.path.join(self.folder, "result.pickle")
            if self._process.wait() == 0 and not self._cancelled and os.path.isfile(path):
                with open(path, "rb") as stream:  # here, not on the main thread: it takes a while
                    result = pickle.load(stream)
                self._result = prepare(result) if prepare is not None else result
        except Exception as error:  # reported by error(); the worker's own failures are in log.txt
            self._threadError = error

    def poll(self) -> str:
        """Take the worker's progress reports; RUNNING, DONE, FAILED or CANCELLED."""
        while True:
            try:
                report = json.loads(self._lines.get_nowait())
            except queue.Empty:
                break
            except ValueError:  # a line the worker did not mean as progress
                continue
            self.fraction, self.message = report["fraction"], report["message"]
        if self._cancelled:
            return CANCELLED
        if self._thread.is_alive():
            return RUNNING
        return DONE if self._result is not None else FAILED

    def cancel(self) -> None:
        """Stop the work now: the process is killed, its files removed."""
        with self._lock:
            self._cancelled = True
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
        self.close()

    def result(self) -> dict:
        """What the worker computed (bone, annotation, messages, the volume's geometry), prepared."""
        return self._result

    def error(self) -> Exception:
        """Why a FAILED run failed: InputError for bad input, else RuntimeError with the worker's log."""
        path = os.path.join(self.folder, "error.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as stream:
                return InputError(json.load(stream)["message"])
        if self._threadError is not None:
            return RuntimeError(f"The background run failed: {self._threadError}")
        try:
            with open(os.path.join(self.folder, "log.txt"), encoding="utf-8", errors="replace") as stream:
                log = stream.read()[-2000:]
        except OSError:
            log = ""
        return RuntimeError(f"The background run failed (exit code {self._process.returncode}): {log.strip()}")

    def close(self) -> None:
        """Remove the run's files and call :attr:`closeCallbacks` (once)."""
        self._thread.join()
        shutil.rmtree(self.folder, ignore_errors=True)
        callbacks, self.closeCallbacks = self.closeCallbacks, []
        for callback in callbacks:
            callback()
