"""argparse ``type=`` helpers of the ``tha-annotator`` commands: each option's value is parsed and
checked against its allowed range when the command line is read, before any work starts.

A value out of range ends the program with one ``error: argument --OPTION: must be ..., got ...``
line and exit code 2, like every other usage error (see :class:`OneLineErrorParser`).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from .limits import Range

SEED_RANGE = Range(low=0, high=2**32 - 1, integer=True)
"""Random seeds: what numpy's generators accept."""


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error: ...`` line on stderr (exit code 2),
    the form every refused input of ``tha-annotator`` takes; its sub-command parsers are of this
    class too."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def number(allowed: Range) -> Callable[[str], float | int]:
    """An argparse ``type``: the option's text as a number (an ``int`` when ``allowed.integer``)
    within ``allowed``; NaN and infinity are refused."""

    def parse(text: str) -> float | int:
        try:
            value = int(text) if allowed.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {allowed.describe()}, got {text!r}") from None
        problem = allowed.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = allowed.describe()
    return parse


positive_int = number(Range(low=1, integer=True))
"""An integer of at least 1 (counts, batch sizes, threads)."""
non_negative_int = number(Range(low=0, integer=True))
"""An integer of at least 0."""
seed = number(SEED_RANGE)
"""A random seed, 0 to 2**32 - 1."""
positive_float = number(Range(low=0, low_open=True))
"""A finite number above 0."""
non_negative_float = number(Range(low=0))
"""A finite number of at least 0."""


def workers_or_auto(text: str) -> int | None:
    """An argparse ``type`` for a number of worker processes: ``auto`` (None: the command
    chooses) or an integer of at least 1."""
    if text == "auto":
        return None
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be auto or an integer of at least 1, "
                                         f"got {text!r}") from None


def memory_size(text: str) -> str:
    """An argparse ``type`` for a memory size: ``auto`` or a positive amount such as ``4GB`` (as
    Dask reads it)."""
    if text == "auto":
        return text
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(text)
    except (ValueError, TypeError):
        size = 0
    if size <= 0:
        raise argparse.ArgumentTypeError(f"must be auto or a positive size such as 4GB, "
                                         f"got {text!r}")
    return text


def group_pattern(text: str):
    """An argparse ``type`` for ``--group-by``: a regular expression with a group naming the
    patient, compiled (see :func:`~THAAnnotatorLib.batch.groups.group_pattern`)."""
    from .batch.groups import group_pattern as compile_pattern

    try:
        return compile_pattern(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def scheduler_address(text: str) -> str:
    """An argparse ``type`` for ``--scheduler``: a Dask scheduler address with its host and port
    (``tcp://10.0.0.5:8786``, ``10.0.0.5:8786``; the port 1 to 65535), as Dask parses it."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        host, port = parse_host_port(parse_address(text)[1])
    except (ValueError, TypeError):
        host, port = "", 0
    if not host or not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a scheduler address with its port, such as tcp://10.0.0.5:8786, got "
            f"{text!r}")
    return text
