"""A femoral head flattened from top to bottom, found in the voxels of its upper layers.

Osteoarthritic heads flatten where they bear weight. The ellipsoid fitted to the head's surface
(:mod:`.head_ellipsoid`) finds such a head only where rays from its center see the joint space
above the top; in a joint narrower than the slices are thick (1.5-1.7 mm at 2 mm slices) the
rays near the pole meet the roof's far edge instead, so the head looks round, its labels take
one or two slabs of acetabular roof and its diameter comes out 2-2.5 mm large, with nothing to
flag it (the head-shape probe, ``benchmarks/head_shape_probe.py``: heads of 1 x 1 x 0.8 of their
radius at 2 and 2.5 mm slices, 9 of 16 hips missed, 1 flagged).

Here the head's layers (spongy bone, cortex, joint space, roof) are taken as concentric to a
spheroid: the sphere's equator, and a vertical semi-axis that may be shorter. For each shape
and center height the best radial profile is fitted to the voxels' partial volume, as
:mod:`.slab_height` does for the sphere, and the spheroid is kept where it explains the voxels
far better than any sphere. The whole upper part of the head votes, not only the rays through
the joint. Measured on the sweep's round heads (typical, noise, narrow joints, low density,
resolution, acetabular shape, metal; 22 hips): polar share 0.925-1.025, residual at most 2.3 %
below the sphere's; on flattened heads (0.8): 0.800, 65-78 % below.
"""
from __future__ import annotations

import numpy as np

from .head_ellipsoid import Ellipsoid
from .slab_height import HeadLayers
from .sphere import Sphere

# Polar semi-axes tried, as shares of the radius: coarse, then fine around the best.
_SHARES = np.arange(0.7, 1.0001, 0.05)
_FINE_SHARE = 0.0125
# Sphere heights tried, mm from the sphere's center.
_SHIFTS_MM = np.arange(-2.0, 2.0001, 0.25)
MAX_POLAR_SHARE = 0.92
"""A head counts as flattened where its polar semi-axis is at most this share of its radius."""
MIN_GAIN = 0.15
"""... and the spheroid leaves at least this share less residual than the best sphere (round
heads on the sweep: at most 0.023; flattened ones: 0.65-0.78)."""


def flattened_head(hu: np.ndarray, sphere: Sphere, spacing_mm: np.ndarray) -> Ellipsoid | None:
    """The spheroid (side-frame mm, like ``sphere``) of a head flattened from top to bottom,
    or None for a head its sphere describes (see the module's notes)."""
    layers = HeadLayers(hu, sphere, np.asarray(spacing_mm, float), min_polar_share=_SHARES[0])
    if layers.count < 10 * layers.knots.size:  # too few voxels to pin the profile down
        return None
    # the center's height stays the sphere's, which the sections around the equator fix: the
    # voxels pin down the head's top, but a lower center with a longer polar axis reaches the
    # same top almost as well (on a flattened head, 1.5 % more residual 2 mm lower)
    share = _best(lambda s: layers.residual(0.0, s), _SHARES)
    fine = share + _FINE_SHARE * np.arange(-4, 5)
    share = _best(lambda s: layers.residual(0.0, s), fine[fine >= _SHARES[0]])
    # against the best sphere at any height: a sphere merely placed too high is not flattened
    sphere_cost = min(layers.residual(shift) for shift in _SHIFTS_MM)
    gain = 1.0 - layers.residual(0.0, share) / sphere_cost
    if share > MAX_POLAR_SHARE or gain < MIN_GAIN:
        return None
    equator, pole = sphere.radius_mm, share * sphere.radius_mm
    return Ellipsoid(sphere.center_mm.copy(), np.diag([1.0 / pole**2, 1.0 / equator**2, 1.0 / equator**2]))


def _best(cost, values: np.ndarray) -> float:
    """The value of ``values`` with the least ``cost``."""
    return float(values[int(np.argmin([cost(v) for v in values]))])
