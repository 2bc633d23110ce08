"""All measurements of one hip from two probes (:mod:`.rays`): its acetabulum and its head.

The same function serves the pipeline's labels and the sweep's drawn shapes (their truth), so
a benchmark compares one definition applied to both.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .articular import START_SHARE, ArticularSurface, articular_surface
from .coverage import head_coverage_percent
from .edges import min_rise_hu
from .edge_angles import SlicePlanes, center_edge_angle, sector_angles
from .opening import OpeningPlane, opening_plane
from .rays import Probe
from .sphere import AcetabularSphere, acetabular_sphere
from .sphericity import Sphericity, head_sphericity

MIN_COVERED_SHARE = 0.2
"""Below this share of the directions from the head's center meeting acetabulum, the
acetabulum is too incomplete to measure (a hemisphere is 0.5, a shallow dysplastic cup 0.3)."""


class Incomplete(ValueError):
    """The acetabulum is too incomplete to measure; the message says why."""


@dataclass(frozen=True)
class HipGeometry:
    """One hip's measurements in its own frame (:mod:`.rays`): mm and degrees."""

    sphere: AcetabularSphere
    opening: OpeningPlane
    center_edge_deg: float | None
    anterior_sector_deg: float | None
    posterior_sector_deg: float | None
    head_coverage_percent: float | None
    sphericity: Sphericity | None
    withheld: dict[str, str] = field(default_factory=dict)
    """Values left out (None), each with why: the label's edge stops short of the CT's."""


def measure_geometry(acetabulum: Probe, head: Probe, head_radius_mm: float,
                     ct: Probe | None = None, edge_fill: Probe | None = None,
                     edge_shift_mm: float = 0.0,
                     labels_floor_mm: float | None = None,
                     slice_planes: SlicePlanes | None = None,
                     bone_contrast_hu: float | None = None,
                     dip_past_sphere: bool = False) -> HipGeometry:
    """Measure a hip whose head's sphere has its center at the frame's origin; with ``ct``
    (HU) the acetabulum's articular surface is placed by the CT (:mod:`.edges`), and with
    ``edge_fill`` (the acetabulum whose edges the CT's partial volume moves by at most
    ``edge_shift_mm``, :mod:`.partial_volume`) the acetabulum's edges, which the center-edge
    and sector angles and the coverage measure, are read from it; ``bone_contrast_hu`` sets
    the joint's dip the CT must show (:func:`.edges.min_rise_hu`), ``dip_past_sphere`` whether
    it is looked for past the head's sphere too (:mod:`.edges`). Raises
    :class:`Incomplete` when too few rays from the head's center meet the acetabulum, none
    leaves through an opening, or the rim above the notch is too short to fit a plane."""
    surface = articular_surface(acetabulum, head_radius_mm, head, ct,
                                rise_hu=min_rise_hu(bone_contrast_hu),
                                dip_past_sphere=dip_past_sphere)
    covered = float(np.mean(np.isfinite(surface.distance_mm)))
    if covered < MIN_COVERED_SHARE:
        raise Incomplete(f"the acetabulum meets {100 * covered:.0f} % of the rays from the head's "
                         f"center, too few to measure it (a hemisphere meets 50 %)")
    if not surface.opening.any():
        raise Incomplete("the acetabulum surrounds the head: no opening to measure")
    opening = opening_plane(surface, head_radius_mm, labels_floor_mm)
    if opening is None:
        raise Incomplete("the acetabulum's rim is too short to fit its opening plane")
    edges = _edge_values(acetabulum, surface, head_radius_mm, slice_planes)
    withheld = {}
    if edge_fill is not None:
        moved = _edge_values(edge_fill, articular_surface(edge_fill, head_radius_mm),
                             head_radius_mm, slice_planes)
        edges, withheld = _moved_edges(edges, moved,
                                       edge_shift_mm / (START_SHARE * head_radius_mm))
    center_edge, anterior, posterior, coverage = edges
    return HipGeometry(acetabular_sphere(surface), opening, center_edge, anterior, posterior,
                       coverage, head_sphericity(head, head_radius_mm), withheld)


def _edge_values(acetabulum: Probe, surface: ArticularSurface, head_radius_mm: float,
                 slice_planes: SlicePlanes | None
                 ) -> tuple[float | None, float | None, float | None, float]:
    """Center-edge, anterior and posterior sector angles (deg) and coverage (%)."""
    return (center_edge_angle(acetabulum, head_radius_mm, surface),
            *sector_angles(acetabulum, head_radius_mm, surface, slice_planes),
            head_coverage_percent(surface))


EDGE_VALUES = ("center_edge_deg", "anterior_sector_deg", "posterior_sector_deg",
               "head_coverage_percent")
"""The values read from the acetabulum's edges, in :func:`_edge_values`' order."""


def _moved_edges(label: tuple, moved: tuple,
                 max_turn_rad: float) -> tuple[tuple, dict[str, str]]:
    """The values of the moved edges where they lie within what moving them can change: an
    edge moved by at most ``max_turn_rad`` (seen from the head's center, at the nearest an
    acetabulum is looked for) turns an angle by at most that, and shifts the coverage's
    opening by a band that wide along a boundary at most half a great circle long (a share of
    the upper hemisphere of at most half that). The share only lowers the label's edge
    voxels, so it can only draw an edge in. A value it draws in farther than that is the
    label's: the share broke the bone (spongy bone darker than its cortex, at thick slices:
    center-edge 36 deg off, the label's 5 deg; on the sweep, seeds 0-15, six values of five
    hips that met the targets). A value it reads larger by more than that means the label's
    own edge stopped short (a gap in a nearly closed joint's roof: the label's 38 deg off, the
    share's 5 deg): that value is withheld (None), with why."""
    limits = (np.degrees(max_turn_rad),) * 3 + (100.0 * max_turn_rad / 2.0,)
    values, withheld = [], {}
    for name, a, m, limit in zip(EDGE_VALUES, label, moved, limits):
        if m is None or a is None:
            values.append(a)
        elif m - a > limit:
            unit = "points" if name == "head_coverage_percent" else "deg"
            withheld[name] = (f"the acetabulum's label gives {a:.1f} and the CT's edges "
                              f"{m:.1f}, {m - a:.1f} {unit} beyond it where slices allow at "
                              f"most {limit:.1f}: the label's edge may stop short")
            values.append(None)
        else:
            values.append(m if a - m <= limit else a)
    return tuple(values), withheld
