"""Femoral head coverage: the share (%) of the upper hemisphere of the head's sphere that the
acetabulum covers, seen radially from the head's center (as three-dimensional CT coverage is
measured, e.g. Dandachli et al., J Bone Joint Surg Br 2008;90:1428-34). The upper hemisphere is
the half above the axial plane through the center (scanner axes); a direction is covered unless
it looks out through the acetabular opening (:mod:`.articular`)."""
from __future__ import annotations

import numpy as np

from .articular import ArticularSurface


def head_coverage_percent(surface: ArticularSurface) -> float:
    upper = surface.directions[:, 2] > 0
    return float(100.0 * np.mean(~surface.opening[upper]))
