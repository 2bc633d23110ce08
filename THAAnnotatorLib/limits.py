"""Allowed ranges of numeric settings, one description used by the library's checks, the
command line's option parsing and the help texts.

NaN and infinity are outside every range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real


@dataclass(frozen=True)
class Range:
    """Finite numbers (integers when ``integer``) from ``low`` to ``high``, either bound optional;
    an open bound (``low_open``, ``high_open``) is itself excluded. ``unit`` is named in texts."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    unit: str = ""

    def describe(self, plural: bool = False) -> str:
        """The range in words, e.g. "an integer of at least 3", "a number above 0 mm" (plural:
        "integers of at least 3", "numbers above 0 mm")."""
        bounds = []
        if self.low is not None:
            relation = "above" if self.low_open else "of at least"
            bounds.append(f"{relation} {self._with_unit(self.low)}")
        if self.high is not None:
            relation = "below" if self.high_open else "of at most"
            bounds.append(f"{relation} {self._with_unit(self.high)}")
        if not bounds:
            kind = "finite numbers" if plural else "a finite number"
            return kind + (f" of {self.unit}" if self.unit else "")
        kind = ("integers" if plural else "an integer") if self.integer else (
            "numbers" if plural else "a number")
        return f"{kind} {' and '.join(bounds)}".replace(" and of ", " and ")

    def contains(self, value: object) -> bool:
        """Whether ``value`` is a number of the right kind within the range (never a bool)."""
        if isinstance(value, bool) or not isinstance(value, Integral if self.integer else Real):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def problem(self, value: object) -> str | None:
        """None when ``value`` lies in the range, else "must be <range>, got <value>"."""
        if self.contains(value):
            return None
        wrong_kind = self.integer and not isinstance(value, Integral)
        return f"must be {self.describe()}, got {repr(value) if wrong_kind else shown(value)}"

    def _with_unit(self, bound: float) -> str:
        return shown(bound) + (f" {self.unit}" if self.unit else "")


def shown(value: object) -> str:
    """A number as a user would type it (3, 0.8, nan), anything else as its repr."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return repr(value)
    if isinstance(value, Integral) or (math.isfinite(value) and float(value).is_integer()):
        return str(int(value))
    return f"{float(value):g}"
