"""Work in a separate process, so that the panel stays responsive and Cancel takes effect at
once, whatever the library is doing: cancelling kills the process.

:class:`BackgroundRun` is one run of the library on a volume (:mod:`.worker`);
:class:`CommandRun` is one ``tha-annotator`` command (fine-tuning, rebuilding a review queue).
The Slicer process only polls (the panel with a QTimer): a thread starts the process and
collects what it prints. Nothing here touches MRML.
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
import time

import numpy as np

import THAAnnotatorLib
from THAAnnotatorLib.errors import InputError

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


def pythonCommand(module: str, *arguments: str) -> list[str]:
    """``PythonSlicer -m MODULE ARGUMENTS`` (this Python outside Slicer)."""
    python = shutil.which("PythonSlicer") or sys.executable
    return [python, "-m", module, *arguments]


def workerCommand(folder: str) -> list[str]:
    """``PythonSlicer -m THAAnnotatorSlicerLib.worker FOLDER``."""
    return pythonCommand(f"{__package__}.worker", folder)


def libraryCommand(*arguments: str) -> list[str]:
    """``PythonSlicer -m THAAnnotatorLib.cli ARGUMENTS``: the ``tha-annotator`` command line."""
    return pythonCommand("THAAnnotatorLib.cli", *arguments)


def _workerEnvironment() -> dict:
    """This environment, with the package's and the library's folders first on the Python path,
    and Python's output unbuffered (the panel shows it as it comes)."""
    folders = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
               os.path.dirname(os.path.dirname(os.path.abspath(THAAnnotatorLib.__file__)))]
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    environment["PYTHONPATH"] = os.pathsep.join(folders + [p for p in [environment.get("PYTHONPATH")] if p])
    return environment


class BackgroundProcess:
    """A command line in a separate process, started by :meth:`start`, polled by :meth:`poll`.

    Subclasses say what to run (:meth:`command`), what to write first and read after
    (:meth:`before`, :meth:`after`, both in the background thread) and what a line of output
    means (:meth:`takeLine`). ``fraction`` and ``message`` are the last progress report.
    Call :meth:`poll` until it is no longer RUNNING, then :meth:`error` (FAILED), and :meth:`close`.
    """

    MERGE_STDERR = False
    """Whether standard error is read with standard output (else it goes to the run's log file)."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="THAAnnotator-")
        self.fraction, self.message = 0.0, "starting"
        self.started = time.monotonic()
        self.closeCallbacks = []
        self._lines = queue.Queue()
        self._lock = threading.Lock()
        self._process = None
        self._threadError = None
        self._succeeded = False
        self._cancelled = False
        self._thread = threading.Thread(target=self._work, daemon=True)

    def command(self) -> list[str]:
        raise NotImplementedError

    def before(self) -> None:
        """Write the process's input (in the background thread)."""

    def after(self) -> bool:
        """Read what the process wrote after it exited with 0 (background thread); False if it
        wrote nothing usable."""
        return True

    def takeLine(self, line: str) -> None:
        """One line the process printed (without its line end)."""

    def start(self):
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            self.before()
            with self._lock, open(os.path.join(self.folder, "log.txt"), "wb") as log:
                if self._cancelled:
                    return
                self._process = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT if self.MERGE_STDERR else log,
                                                 env=_workerEnvironment())
            for line in self._process.stdout:
                self._lines.put(line)
            self._succeeded = self._process.wait() == 0 and not self._cancelled and self.after()
        except Exception as error:  # reported by error(); the process's own failures are in log.txt
            self._threadError = error

    def poll(self) -> str:
        """Take the process's output; RUNNING, DONE, FAILED or CANCELLED."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            self.takeLine(line.decode("utf-8", errors="replace").rstrip("\r\n"))
        if self._cancelled:
            return CANCELLED
        if self._thread.is_alive():
            return RUNNING
        return DONE if self._succeeded else FAILED

    def cancel(self) -> None:
        """Stop the work now: the process is killed, its files removed."""
        with self._lock:
            self._cancelled = True
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
        self.close()

    def log(self) -> str:
        """The end of what the process wrote to its standard error."""
        try:
            with open(os.path.join(self.folder, "log.txt"), encoding="utf-8", errors="replace") as stream:
                return stream.read()[-2000:].strip()
        except OSError:
            return ""

    def error(self) -> Exception:
        """Why a FAILED run failed: RuntimeError with the end of its log."""
        if self._threadError is not None:
            return RuntimeError(f"The background run failed: {self._threadError}")
        return RuntimeError(f"The background run failed (exit code {self._process.returncode}): {self.log()}")

    def close(self) -> None:
        """Remove the run's files and call :attr:`closeCallbacks` (once)."""
        self._thread.join()
        shutil.rmtree(self.folder, ignore_errors=True)
        callbacks, self.closeCallbacks = self.closeCallbacks, []
        for callback in callbacks:
            callback()


class BackgroundRun(BackgroundProcess):
    """One :mod:`.worker` job on a copy of ``array`` (the volume node's voxels, (k, j, i)).

    ``request`` holds mode, params, sides, modelPath, device, name (for messages) and
    arrayIndexToLps. ``prepare(result)``, if given, runs in the background thread on what the
    worker computed (the part of writing it that needs no MRML) and returns the result to keep.
    When DONE, :meth:`result` is what it computed.
    """

    def __init__(self, request: dict, array: np.ndarray, prepare=None):
        super().__init__()
        self._request, self._prepare = request, prepare
        self._input = np.array(array)  # the node's voxels may change while the run works
        self._result = None
        self.start()

    def command(self) -> list[str]:
        return workerCommand(self.folder)

    def before(self) -> None:
        with open(os.path.join(self.folder, "request.pickle"), "wb") as stream:
            pickle.dump(self._request, stream, protocol=pickle.HIGHEST_PROTOCOL)
        np.save(os.path.join(self.folder, "input.npy"), self._input)
        self._input = None

    def after(self) -> bool:
        path = os.path.join(self.folder, "result.pickle")
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as stream:  # here, not on the main thread: it takes a while
            result = pickle.load(stream)
        self._result = self._prepare(result) if self._prepare is not None else result
        return True

    def takeLine(self, line: str) -> None:
        try:
            report = json.loads(line)
        except ValueError:  # a line the worker did not mean as progress
            return
        self.fraction, self.message = report["fraction"], report["message"]

    def result(self) -> dict:
        """What the worker computed (bone, annotation, messages, the volume's geometry), prepared."""
        return self._result

    def error(self) -> Exception:
        """InputError for bad input (the worker's message), else as :meth:`BackgroundProcess.error`."""
        path = os.path.join(self.folder, "error.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as stream:
                return InputError(json.load(stream)["message"])
        return super().error()


class CommandRun(BackgroundProcess):
    """A ``tha-annotator`` command (``arguments`` after the program name), its output (standard
    output and error together) kept as :attr:`lines`. Its output is not a terminal, so the
    command draws no progress bar: what it prints are its result lines (per epoch, per queue)."""

    MERGE_STDERR = True

    def __init__(self, arguments: list[str], description: str):
        super().__init__()
        self.arguments = [str(a) for a in arguments]
        self.description = description
        self.lines = []
        self.start()

    def command(self) -> list[str]:
        return libraryCommand(*self.arguments)

    def error(self) -> Exception:
        """InputError with the command's own "error:" line (bad input, exit code 2), else
        RuntimeError with the end of its output."""
        if self._threadError is None and self._process.returncode == 2 and self.lines \
                and self.lines[-1].startswith("error: "):
            return InputError(f"{self.description} refused: {self.lines[-1][len('error: '):]}")
        tail = "\n".join(self.lines[-20:])
        return RuntimeError(f"{self.description} failed (exit code {self._process.returncode}): {tail}")

    def takeLine(self, line: str) -> None:
        if line.strip():
            self.lines.append(line)
            self.message = line.strip()
