"""Errors the library raises on purpose; each message is one sentence a user can act on."""
from __future__ import annotations

from typing import Callable


def some_names(names: list[str], most: int = 4) -> str:
    """``names`` for a message: the first ``most``, comma-separated, then ", ..." if there are
    more (a folder's files, say)."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


class InputError(ValueError):
    """The input scan or an argument cannot be processed (bad file, not CT, no hip, ...)."""


class Cancelled(RuntimeError):
    """The user cancelled a long-running operation."""


def stage_marker(progress: Callable[[float, str], None] | None,
                 cancel: Callable[[], bool] | None,
                 cancelled: str) -> Callable[[float, str], None]:
    """``mark(fraction, stage)`` for the stages of long work: raises :class:`Cancelled` with the
    message ``cancelled`` once ``cancel()`` is true, else tells ``progress`` (either may be
    None)."""
    def mark(fraction: float, stage: str) -> None:
        if cancel is not None and cancel():
            raise Cancelled(cancelled)
        if progress is not None:
            progress(fraction, stage)
    return mark


class InvalidParam(InputError):
    """A :class:`~THAAnnotatorLib.params.Params` field outside its allowed range.

    ``field`` is the field's name; :meth:`requirement` words what it must be, naming fields
    (the other one of an ordered pair) by a given function, so that the command line can name
    its options instead.
    """

    def __init__(self, field: str, requirement: str, other: str | None = None) -> None:
        self.field, self.other = field, other
        self._requirement = requirement
        super().__init__(f"Params.{field} {self.requirement(lambda name: f'Params.{name}')}.")

    def requirement(self, name_of) -> str:
        """E.g. "must be an integer of at least 3, got 0"; ``name_of`` names the other field."""
        return self._requirement.replace("{other}", name_of(self.other) if self.other else "")


class OutputNotWritable(OSError):
    """The output folder cannot be created or written (read-only, no permission, a file in the
    way); found before any work starts."""
