"""The femoral head's own shape where it is not a sphere: an ellipsoid fitted to its surface.

The sphere through the slices' circles finds the head and the joint, but a head flattened or
drawn out along one axis (osteoarthritis; 0.8-1.0 of its radius per axis on the sweep) spans
fewer or more slices than its sphere, and its sections are ellipses. Labels made with the
sphere then take a slab of acetabular roof above a flattened head, or the neck's section below a
short one (on the sweep's head_shape class, seeds 0-7: the sphere's top or bottom 2-6 mm off the
drawn head's in 12 of the 15 hips whose head it had found).

Here the points where rays from the center fall off the head
(:func:`.surface_refit.surface_points_mm`, the 3-D refit's own) are fitted with a general
ellipsoid (a quadric, by algebraic least squares, trimmed like the refit) and with a sphere. The
ellipsoid is kept only where it explains the surface clearly better than the sphere (RMS at most
``_BETTER_SHARE`` of the sphere's, on the points both keep) and is a head's shape (every
semi-axis within ``AXIS_RANGE`` of the sphere's radius, and all round no larger than it). In a
narrowed joint the rays near the top meet the acetabulum's cortex, and an ellipsoid through
those points is drawn out upward by 3-4 mm: larger than the sphere all round, or with a long
axis beyond the range. Measured on 120 captured sweep hips (head_shape seeds 0-15; typical,
narrow_joint, acetabular_shape, low_density and resolution seeds 0-7; noise 0-3): 12 of the 32
head_shape hips and no other hip kept an ellipsoid; on those 12 the labels' top and bottom came
within 0.9 mm of the drawn head's on average (at most 2.7 mm), against 1.9 mm (at most 5.8 mm)
for the sphere's. In the whole sweep (256 hips) two held-out acetabular-shape hips kept one too
(acetabulum 0.01 lower, within the targets).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .geometry import fit_sphere_least_squares, trimmed_fit
from .sphere import Sphere
from .surface_refit import MAX_SLICE_MM, miss_mm, surface_points_mm

# An ellipsoid is kept where its RMS distance to the surface points is at most this share of
# the sphere's (round heads: 0.72-1.0 on the sweep; non-spherical ones down to 0.29).
_BETTER_SHARE = 0.7
AXIS_RANGE = (0.8, 1.15)
"""Semi-axes allowed, as shares of the head sphere's radius."""
# ... and their geometric mean (the radius of a sphere of the same volume) at most this share:
# the sphere is a compromise between a head's short and long axes, so an ellipsoid larger than
# it all round has met something beyond the head (1.08-1.09 in narrowed joints with a contact
# area; 0.96-1.04 on the non-spherical heads that keep an ellipsoid).
_MAX_SIZE_SHARE = 1.04
_MIN_POINTS = 30
# An ellipsoid refused as larger than the sphere all round marks the hip for review where it
# fits the points this much better than a sphere and two of its semi-axes are this much longer
# than the head sphere's radius: the slices' sphere then followed the short axis of a head
# short from front to back or side to side (on the head-shape probe: RMS share 0.41, size 1.16,
# axes 1.17 / 1.28, a diameter 5.6 mm small and nothing else marking it). In narrowed joints
# the rays near the top meet the acetabulum's cortex and draw the ellipsoid out too, but it
# fits no better than 0.69 of the sphere's RMS (sweep, 256 hips: 0.69-0.85, middle axes up to
# 1.13); one drawn out along one axis only (a metal hip's, 1.44) leaves its middle axis at the
# radius; a sphere between a head's short and long axes leaves the ellipsoid no larger all
# round (the probe's good non-spherical heads: size 1.04 or less where the middle axis passes
# 1.1).
_OUTGROWN_RMS_SHARE, _OUTGROWN_AXIS_SHARE = 0.5, 1.1


class HeadShape(Protocol):
    """The surface of a head that is not a sphere, in mm (z y x), as the split and the labels
    use it: an :class:`Ellipsoid`, or a sphere cut flat on top
    (:class:`.head_flattening.CappedSphere`)."""

    def z_span_mm(self) -> tuple[float, float]:
        """Lowest and highest z (mm) of the head."""

    def depth_mm(self, points_mm: np.ndarray) -> np.ndarray:
        """How far inside (positive) or outside each point lies (mm)."""

    def shifted(self, offset_mm: np.ndarray) -> "HeadShape":
        """The same shape in a frame whose origin lies at ``offset_mm``."""

    def describe(self) -> str:
        """The shape in words, with its size in mm, for the user."""


@dataclass(frozen=True)
class Ellipsoid:
    """Points p (mm, z y x) with (p - center)^T shape (p - center) = 1."""

    center_mm: np.ndarray
    shape: np.ndarray  # 3 x 3, symmetric positive definite, 1 / mm^2

    @property
    def semi_axes_mm(self) -> np.ndarray:
        """Semi-axes, shortest first (mm)."""
        return 1.0 / np.sqrt(np.linalg.eigvalsh(self.shape)[::-1])

    def z_span_mm(self) -> tuple[float, float]:
        """Lowest and highest z (mm) of the ellipsoid."""
        half = float(np.sqrt(np.linalg.inv(self.shape)[0, 0]))
        return float(self.center_mm[0]) - half, float(self.center_mm[0]) + half

    def depth_mm(self, points_mm: np.ndarray) -> np.ndarray:
        """How far inside (positive) or outside each point lies, along the ray from the
        center (mm): a distance to the surface, exact for a sphere and close to it for the
        near-spheres kept here."""
        offsets = np.asarray(points_mm, float) - self.center_mm
        scale = np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", offsets, self.shape, offsets),
                                   1e-12))
        return np.linalg.norm(offsets, axis=-1) * (1.0 / scale - 1.0)

    def shifted(self, offset_mm: np.ndarray) -> "Ellipsoid":
        """The same ellipsoid in a frame whose origin lies at ``offset_mm``."""
        return Ellipsoid(self.center_mm - np.asarray(offset_mm, float), self.shape)

    def describe(self) -> str:
        return "an ellipsoid " + ", ".join(f"{2 * a:.1f}" for a in self.semi_axes_mm) + " mm across"


def fit_ellipsoid(points_mm: np.ndarray) -> Ellipsoid | None:
    """Ellipsoid (any orientation) through (n, 3) points by algebraic least squares; None for
    too few points or a quadric that is not an ellipsoid."""
    points_mm = np.asarray(points_mm, float)
    if len(points_mm) < 9:
        return None
    mean = points_mm.mean(axis=0)
    z, y, x = (points_mm - mean).T
    design = np.column_stack([z * z, y * y, x * x, 2 * z * y, 2 * z * x, 2 * y * x,
                              2 * z, 2 * y, 2 * x])
    (a, b, c, d, e, f, g, h, i), *_ = np.linalg.lstsq(design, np.ones(len(z)), rcond=None)
    quadratic = np.array([[a, d, e], [d, b, f], [e, f, c]])
    if np.any(np.linalg.eigvalsh(quadratic) <= 0):
        return None
    center = -np.linalg.solve(quadratic, np.array([g, h, i]))
    scale = 1.0 + center @ quadratic @ center
    return Ellipsoid(center + mean, quadratic / scale)


@dataclass(frozen=True)
class SurfaceEllipsoid:
    """The ellipsoid fitted to a head's surface points, kept or not, and how it compares with
    the sphere fitted to the same points."""

    ellipsoid: Ellipsoid
    rms_share: float  # its RMS distance to the points over the sphere's, on the points both keep
    axes_share: np.ndarray  # its semi-axes over the head sphere's radius, shortest first

    @property
    def size_share(self) -> float:
        """The radius of a sphere of its volume over the head sphere's radius."""
        return float(np.prod(self.axes_share) ** (1.0 / 3.0))

    @property
    def is_head_shape(self) -> bool:
        """Kept for the labels: clearly better than the sphere, and a head's shape (see the
        module's notes)."""
        return bool(self.rms_share <= _BETTER_SHARE and AXIS_RANGE[0] <= self.axes_share[0]
                    and self.axes_share[-1] <= AXIS_RANGE[1]
                    and self.size_share <= _MAX_SIZE_SHARE)

    @property
    def outgrows_sphere(self) -> bool:
        """The surface is an ellipsoid far better than any sphere, larger than the head's
        sphere all round and wider than it along two axes: that sphere followed the short axis
        of a head that is not round (see ``_OUTGROWN_RMS_SHARE``)."""
        return bool(self.rms_share <= _OUTGROWN_RMS_SHARE
                    and self.size_share > _MAX_SIZE_SHARE
                    and self.axes_share[1] >= _OUTGROWN_AXIS_SHARE)


def surface_ellipsoid(hu: np.ndarray, sphere: Sphere,
                      spacing_mm: np.ndarray) -> SurfaceEllipsoid | None:
    """The ellipsoid fitted to the head's surface points around ``sphere`` (side-frame mm),
    kept or not; None where too few surface points are found, or where slices lie more than
    ``MAX_SLICE_MM`` apart (rays through thick slabs put the surface high)."""
    spacing_mm = np.asarray(spacing_mm, float)
    if spacing_mm[0] > MAX_SLICE_MM:
        return None
    points = surface_points_mm(hu, sphere, spacing_mm)
    fitted_sphere = trimmed_fit(points, fit_sphere_least_squares, miss_mm, _MIN_POINTS)
    fitted = trimmed_fit(points, fit_ellipsoid, lambda p, e: -e.depth_mm(p), _MIN_POINTS)
    if fitted_sphere is None or fitted is None:
        return None
    (center, radius), on_sphere = fitted_sphere
    ellipsoid, on_ellipsoid = fitted
    both = on_sphere & on_ellipsoid
    if both.sum() < _MIN_POINTS:
        return None
    sphere_rms = np.sqrt(np.mean(miss_mm(points[both], (center, radius)) ** 2))
    ellipsoid_rms = np.sqrt(np.mean(ellipsoid.depth_mm(points[both]) ** 2))
    return SurfaceEllipsoid(ellipsoid, float(ellipsoid_rms / max(sphere_rms, 1e-9)),
                            ellipsoid.semi_axes_mm / sphere.radius_mm)


def head_ellipsoid(hu: np.ndarray, sphere: Sphere, spacing_mm: np.ndarray) -> Ellipsoid | None:
    """The ellipsoid of a head that is not a sphere (side-frame mm, like ``sphere``), or None
    where the sphere describes the head as well, or where :func:`surface_ellipsoid` finds
    none."""
    fit = surface_ellipsoid(hu, sphere, spacing_mm)
    return fit.ellipsoid if fit is not None and fit.is_head_shape else None
