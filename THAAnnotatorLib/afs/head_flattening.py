"""A femoral head flattened on top, found in the voxels of its upper layers.

Osteoarthritic heads flatten where they bear weight: from top to bottom (a spheroid), or cut
flat over the top. The ellipsoid fitted to the head's surface (:mod:`.head_ellipsoid`) finds
such a head only where rays from its center see the joint space above the top; in a joint
narrower than the slices are thick (1.5-1.7 mm at 2 mm slices) the rays near the pole meet the
roof's far edge instead, so the head looks round, its labels take one or two slabs of
acetabular roof and its diameter comes out 2-2.5 mm large, with nothing to flag it (the
head-shape probe, ``benchmarks/head_shape_probe.py``: heads of 1 x 1 x 0.8 of their radius at 2
and 2.5 mm slices, 9 of 16 hips missed, 1 flagged; heads cut flat at 0.8 of their height, 3
missed by one slab of roof, 1 flagged). A cut flat top keeps no ellipsoid at all.

Here the head's layers (spongy bone, cortex, joint space, roof) are taken as concentric to the
head's surface: the sphere below, and either a spheroid with the sphere's equator and a shorter
vertical semi-axis, or a horizontal plane cutting the sphere's top. For each shape the best
radial profile is fitted to the voxels' partial volume, as :mod:`.slab_height` does for the
sphere, and the shape is kept where it explains the voxels far better than any sphere. The
whole upper part of the head votes, not only the rays through the joint. Measured on the
sweep's round heads (typical, noise, narrow joints, low density, resolution, acetabular shape;
14 hips, the center's height fixed as here): spheroid 1.0 of the radius and cut 0.975-1.0 of
it, with at most 0.1 % less residual than a sphere (with the height searched too, 22 hips:
spheroid 0.925-1.025, at most 2.3 % less); on flattened heads (0.8): spheroid 0.800, 65-78 %
less; on heads cut flat at 0.8: cut at 0.800, 47-86 % less.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .head_ellipsoid import Ellipsoid
from .slab_height import HeadLayers
from .sphere import Sphere

# Polar semi-axes and flat tops' heights tried, as shares of the radius: coarse, then fine
# around the best.
_SHARES = np.arange(0.7, 1.0001, 0.05)
_FINE_SHARE = 0.0125
# Sphere heights tried, mm from the sphere's center.
_SHIFTS_MM = np.arange(-2.0, 2.0001, 0.25)
MAX_POLAR_SHARE = 0.92
"""A head counts as flattened where its polar semi-axis, or its flat top's height above the
center, is at most this share of its radius."""
MIN_GAIN = 0.15
"""... and the shape leaves at least this share less residual than the best sphere (round
heads on the sweep: at most 0.001, 0.023 with the center's height searched too; flattened
ones: 0.47-0.86)."""


@dataclass(frozen=True)
class CappedSphere:
    """A head cut flat on top: the sphere below a horizontal plane ``top_mm`` above its
    center (mm, z y x)."""

    center_mm: np.ndarray
    radius_mm: float
    top_mm: float

    def z_span_mm(self) -> tuple[float, float]:
        """Lowest and highest z (mm) of the head."""
        return (float(self.center_mm[0]) - self.radius_mm,
                float(self.center_mm[0]) + self.top_mm)

    def depth_mm(self, points_mm: np.ndarray) -> np.ndarray:
        """How far inside (positive) or outside each point lies: the nearer of the sphere's
        surface (along the ray from the center) and the plane's (mm)."""
        offsets = np.asarray(points_mm, float) - self.center_mm
        return np.minimum(self.radius_mm - np.linalg.norm(offsets, axis=-1),
                          self.top_mm - offsets[..., 0])

    def shifted(self, offset_mm: np.ndarray) -> "CappedSphere":
        """The same shape in a frame whose origin lies at ``offset_mm``."""
        return CappedSphere(self.center_mm - np.asarray(offset_mm, float), self.radius_mm,
                            self.top_mm)

    def describe(self) -> str:
        return (f"a sphere {2 * self.radius_mm:.1f} mm across cut flat "
                f"{self.radius_mm - self.top_mm:.1f} mm below its top")


def flattened_head(hu: np.ndarray, sphere: Sphere,
                   spacing_mm: np.ndarray) -> Ellipsoid | CappedSphere | None:
    """The shape (side-frame mm, like ``sphere``) of a head flattened from top to bottom (a
    spheroid) or cut flat on top, or None for a head its sphere describes (see the module's
    notes)."""
    layers = HeadLayers(hu, sphere, np.asarray(spacing_mm, float), min_polar_share=_SHARES[0])
    if layers.count < 10 * layers.knots.size:  # too few voxels to pin the profile down
        return None
    radius = sphere.radius_mm
    # the center's height stays the sphere's, which the sections around the equator fix: the
    # voxels pin down the head's top, but a lower center with a longer polar axis reaches the
    # same top almost as well (on a flattened head, 1.5 % more residual 2 mm lower)
    share, spheroid_cost = _refined(lambda s: layers.residual(0.0, s))
    top, capped_cost = _refined(lambda t: layers.residual(0.0, 1.0, t * radius))
    # against the best sphere at any height: a sphere merely placed too high is not flattened
    sphere_cost = min(layers.residual(shift) for shift in _SHIFTS_MM)
    spheroid = (spheroid_cost,
                Ellipsoid(sphere.center_mm.copy(),
                          np.diag([1.0 / (share * radius) ** 2, 1.0 / radius**2, 1.0 / radius**2])))
    capped = (capped_cost, CappedSphere(sphere.center_mm.copy(), radius, top * radius))
    candidates = [shape for shape, fraction in ((spheroid, share), (capped, top))
                  if fraction <= MAX_POLAR_SHARE]
    if not candidates:
        return None
    cost, shape = min(candidates, key=lambda candidate: candidate[0])
    return shape if 1.0 - cost / sphere_cost >= MIN_GAIN else None


def _refined(cost) -> tuple[float, float]:
    """The share of the radius with the least ``cost``, over ``_SHARES`` and then in steps of
    ``_FINE_SHARE`` between the best one's neighbours, and that cost."""
    costs = {float(share): cost(share) for share in _SHARES}
    coarse = min(costs, key=costs.get)
    for step in range(-3, 4):
        share = coarse + step * _FINE_SHARE
        if step and _SHARES[0] <= share <= 1.0:
            costs[share] = cost(share)
    best = min(costs, key=costs.get)
    return best, costs[best]
