"""What the ``tha-annotator`` commands show while they run (progress bars, on stderr) and once
their results are written.

A bar redraws itself with carriage returns, which only a terminal shows as one line: written to
a log file or a pipe it becomes a stream of ``\\r`` frames. So a bar is drawn only when stderr is
a terminal (and ``--quiet`` is not given); the commands' result lines on stdout are the same
either way.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm import tqdm


def progress_shown(quiet: bool = False) -> bool:
    """Whether a command draws its progress bar: not with ``--quiet``, and only when stderr is a
    terminal."""
    return not quiet and sys.stderr.isatty()


@contextlib.contextmanager
def stage_progress_bar(enabled: bool) -> Iterator[Callable[[float, str], None]]:
    """A progress callback (fraction 0..1, stage message), as the pipeline and the model's
    prediction call it, that drives a bar on stderr (none unless ``enabled``)."""
    with tqdm(total=100, file=sys.stderr, disable=not enabled, leave=False,
              bar_format="{desc:<32.32}{percentage:3.0f}%|{bar}| {elapsed}") as bar:
        def report(fraction: float, message: str) -> None:
            bar.set_description_str(message, refresh=False)
            bar.update(int(round(100 * min(max(fraction, 0.0), 1.0))) - bar.n)
            if fraction >= 1.0:  # the bar skips frames closer than 0.1 s: never its last one
                bar.refresh()

        yield report


def finish_after_writing(out_dir: Path, show_results: Callable[[], None]) -> int:
    """Print a run's results once all its files are in place (``show_results``); exit code 0.

    A Ctrl-C while they are printed cuts them short, but the run is done: rather than the
    "cancelled, nothing written" of an interrupted run (exit code 130), one line on stderr says
    the results are complete, and the exit code stays 0.
    """
    try:
        show_results()
    except KeyboardInterrupt:
        print(f"interrupted after the results were written: {out_dir} is complete",
              file=sys.stderr)
    return 0
