"""The acetabulum's articular (inner) surface as seen from the femoral head's center.

A ray from the head's center in each of many evenly spread directions meets the acetabulum's
inner surface, or leaves through the acetabular opening. The opening is the largest connected
set of directions that meet no acetabulum within reach; smaller such sets (a thin fossa floor
or a gap in the label) are surrounded by acetabulum and count as covered. Everything is in the
hip's frame (:mod:`.rays`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .edges import MIN_CONTRAST_HU, acetabular_surface_distances
from .rays import Probe, crossings, fibonacci_directions

DIRECTIONS = 4000
"""Directions sampled over the sphere (about 1.8 deg apart)."""
START_SHARE, REACH_SHARE = 0.6, 1.35
"""Rays look for the acetabulum between these shares of the head's radius from its center
(the joint space is a few mm: the inner surface lies at 1.0-1.2 radii)."""
MIN_PLACED = 200
"""Rays (of :data:`DIRECTIONS`) on which the CT must place the surface for the sphere to be
fitted to those points alone (a hemisphere holds 2000)."""
HEAD_START_SHARE = 0.5
"""Rays look for the head's surface from this share of its radius outward."""
_NEIGHBOURS = 6


@dataclass(frozen=True)
class ArticularSurface:
    """``directions`` (n, 3) unit vectors; ``distance_mm`` (n,) from the head's center to the
    acetabulum along each (NaN: none within reach); ``opening`` (n,) the directions through
    the acetabular opening; ``neighbours`` (n, k) each direction's nearest others;
    ``placed_mm`` (n,) the distance to the surface the CT shows beyond the joint space
    (:mod:`.edges`; NaN where it shows none, or without a CT); ``nearest_mm`` the least
    distance of the surface where the CT shows the joint space on too few rays (the head's
    radius; 0 without a CT)."""

    directions: np.ndarray
    distance_mm: np.ndarray
    opening: np.ndarray
    neighbours: np.ndarray
    placed_mm: np.ndarray
    nearest_mm: float = 0.0

    @property
    def points_mm(self) -> np.ndarray:
        """The inner surface's points (hip frame, mm): where the CT placed it on at least
        :data:`MIN_PLACED` rays, else where the rays met the acetabulum, but no nearer than
        ``nearest_mm``. A joint the CT shows on so few rays is narrower than the scan
        resolves: bone extraction keeps it, and the split between the two labels runs through
        it, at or inside the head's sphere (on the sweep's narrowed joints a median 0.1-0.3 mm
        inside, the acetabular diameter 0.5-1.6 mm small). A socket is no smaller than the
        head it holds."""
        placed = np.isfinite(self.placed_mm)
        if placed.sum() >= MIN_PLACED:
            return self.directions[placed] * self.placed_mm[placed, None]
        hit = np.isfinite(self.distance_mm)
        return self.directions[hit] * np.maximum(self.distance_mm[hit], self.nearest_mm)[:, None]

    @property
    def holes(self) -> np.ndarray:
        """Directions that meet no acetabulum but are surrounded by it (not the opening)."""
        return np.isnan(self.distance_mm) & ~self.opening

    @property
    def rim(self) -> np.ndarray:
        """Covered directions next to the opening, where a ray met the acetabulum: the rim of
        the articular surface."""
        return (~self.opening & self.opening[self.neighbours].any(axis=1)
                & np.isfinite(self.distance_mm))


def articular_surface(acetabulum: Probe, head_radius_mm: float, head: Probe | None = None,
                      ct: Probe | None = None, count: int = DIRECTIONS,
                      rise_hu: float = MIN_CONTRAST_HU,
                      dip_past_sphere: bool = False) -> ArticularSurface:
    """The surface seen from the head's center (the frame's origin); with the ``head`` and
    the ``ct`` (HU), also where the CT places it beyond the joint space (:mod:`.edges`; a rise
    of ``rise_hu`` after the joint's dip, looked for past the head's sphere too with
    ``dip_past_sphere``)."""
    directions = fibonacci_directions(count)
    distance = crossings(acetabulum, directions, START_SHARE * head_radius_mm,
                         REACH_SHARE * head_radius_mm)
    placed = np.full(count, np.nan)
    if ct is not None:
        head_edge = crossings(head, directions, HEAD_START_SHARE * head_radius_mm,
                              REACH_SHARE * head_radius_mm, entering=False)
        placed = acetabular_surface_distances(ct, directions, head_edge, distance, rise_hu,
                                              head_radius_mm if dip_past_sphere else 0.0)
    neighbours = cKDTree(directions).query(directions, _NEIGHBOURS + 1)[1][:, 1:]
    return ArticularSurface(directions, distance, _largest_open_region(distance, neighbours),
                            neighbours, placed, head_radius_mm if ct is not None else 0.0)


def _largest_open_region(distance: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    open_ = np.isnan(distance)
    rows = np.repeat(np.arange(len(distance)), neighbours.shape[1])
    cols = neighbours.ravel()
    keep = open_[rows] & open_[cols]
    graph = coo_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])),
                       shape=(len(distance),) * 2)
    _, component = connected_components(graph, directed=False)
    if not open_.any():
        return open_
    sizes = np.bincount(component[open_])
    return open_ & (component == np.argmax(sizes))
