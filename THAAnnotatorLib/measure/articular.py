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

from .rays import Probe, crossings, fibonacci_directions

DIRECTIONS = 4000
"""Directions sampled over the sphere (about 1.8 deg apart)."""
START_SHARE, REACH_SHARE = 0.6, 1.35
"""Rays look for the acetabulum between these shares of the head's radius from its center
(the joint space is a few mm: the inner surface lies at 1.0-1.2 radii)."""
_NEIGHBOURS = 6


@dataclass(frozen=True)
class ArticularSurface:
    """``directions`` (n, 3) unit vectors; ``distance_mm`` (n,) from the head's center to the
    acetabulum along each (NaN: none within reach); ``opening`` (n,) the directions through
    the acetabular opening; ``neighbours`` (n, k) each direction's nearest others."""

    directions: np.ndarray
    distance_mm: np.ndarray
    opening: np.ndarray
    neighbours: np.ndarray

    @property
    def points_mm(self) -> np.ndarray:
        """The inner surface's points (hip frame, mm) where a ray met it."""
        hit = np.isfinite(self.distance_mm)
        return self.directions[hit] * self.distance_mm[hit, None]

    @property
    def rim(self) -> np.ndarray:
        """Covered directions next to the opening: the rim of the articular surface."""
        return ~self.opening & self.opening[self.neighbours].any(axis=1)


def articular_surface(acetabulum: Probe, head_radius_mm: float,
                      count: int = DIRECTIONS) -> ArticularSurface:
    directions = fibonacci_directions(count)
    distance = crossings(acetabulum, directions, START_SHARE * head_radius_mm,
                         REACH_SHARE * head_radius_mm)
    neighbours = cKDTree(directions).query(directions, _NEIGHBOURS + 1)[1][:, 1:]
    return ArticularSurface(directions, distance, _largest_open_region(distance, neighbours),
                            neighbours)


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
