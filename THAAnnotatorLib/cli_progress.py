"""Progress bars of the ``tha-annotator`` commands, on stderr.

A bar redraws itself with carriage returns, which only a terminal shows as one line: written to
a log file or a pipe it becomes a stream of ``\\r`` frames. So a bar is drawn only when stderr is
a terminal (and ``--quiet`` is not given); the commands' result lines on stdout are the same
either way.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

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

        yield report
