"""The ``tha-annotator`` console script. Loading the command line imports numpy, SciPy,
SimpleITK and the rest (about a second): a Ctrl-C in that time ends the command as one during
its work does (one line, exit code 130), not with a traceback."""
from __future__ import annotations

import sys


def main() -> int:
    """Load and run the command line (:func:`THAAnnotatorLib.cli.main`); its exit code."""
    try:
        from .cli import main as run_command_line
    except KeyboardInterrupt:
        print("cancelled, nothing written", file=sys.stderr)
        return 130
    return run_command_line()
