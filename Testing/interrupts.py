"""Commands started as from a terminal, for tests that press Ctrl-C (SIGINT to the command's
process group)."""
from __future__ import annotations

import signal
import subprocess


def _sigint_as_in_a_terminal() -> None:
    # a shell without job control starts background jobs with SIGINT ignored, and a child keeps
    # that (Python then installs no KeyboardInterrupt handler): a test run from such a job would
    # otherwise see its Ctrl-C ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_in_own_session(argv: list[str]) -> subprocess.Popen:
    """``argv`` in a new session (its own process group, to signal as a whole), SIGINT handled
    as in a terminal; stdout and stderr piped as text."""
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_sigint_as_in_a_terminal)
