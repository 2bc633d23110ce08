"""What the sweep draws for one scan: the patient's anatomy per hip, bone density, imaging.

Each class of the sweep stresses one thing real patients vary in, over its whole range, while
everything else is drawn from the range of a typical adult hip CT; so a class's failures point at
one cause, and no class sees a fixed value of anything. All lengths in mm, angles in degrees,
densities in HU.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

SIDES = ("right", "left")

CLASSES = ("typical", "narrow_joint", "acetabular_shape", "head_shape", "low_density", "noise",
           "resolution", "metal")
"""The sweep's classes, each named for what it stresses (see :func:`draw_scan`)."""


@dataclass(frozen=True)
class HipDraw:
    """One hip's drawn anatomy (mm, degrees), in its local frame: lateral, anterior, superior."""

    side: str
    head_radius_mm: float
    head_axis_factors: tuple[float, float, float]
    """Semi-axes of the head (lateral, anterior, superior) as shares of ``head_radius_mm``."""
    head_top_factor: float
    """The head is cut flat at this share of its superior semi-axis (1: round; below 1: the
    flattened weight-bearing top of an arthritic or necrotic head)."""
    joint_space_mm: float
    contact_directions: tuple[tuple[float, float, float], ...]
    """Unit directions from the head center where the joint space closes to 0 (bone on bone)."""
    contact_width_deg: float
    bridge_directions: tuple[tuple[float, float, float], ...]
    """Unit directions of osteophyte bridges from the acetabular rim across the joint."""
    bridge_radius_mm: float
    cup_coverage_deg: float
    """Half-angle of the acetabular shell around its pole (90: a hemisphere; less: shallow,
    as in dysplasia; more: deep, as in protrusio)."""
    cup_inclination_deg: float
    cup_anteversion_deg: float
    acetabular_wall_mm: float
    neck_shaft_deg: float
    femoral_anteversion_deg: float
    femoral_offset_mm: float
    """Horizontal distance from the head's center to the femoral shaft's axis."""
    neck_radius_factor: float
    trochanter_top_mm: float
    """Height of the greater trochanter's top relative to the head's center (negative: below)."""
    implant: bool = False


@dataclass(frozen=True)
class DistantMetal:
    """Metal or dense contrast away from the hips: ``kind`` is "bead", "bladder_contrast" or
    "arm_vessel"; ``center_mm`` in body coordinates (LPS axes, origin between the hip centers)."""

    kind: str
    center_mm: tuple[float, float, float]
    size_mm: float
    hu: float


@dataclass(frozen=True)
class ScanDraw:
    """A whole scan's draw: both hips, the patient's bone and body, and the imaging."""

    hip_class: str
    seed: int
    hips: dict[str, HipDraw]
    hip_half_width_mm: float
    body_rotation_deg: tuple[float, float, float]
    """Pelvic tilt (about the left-right axis), obliquity (anterior-posterior axis) and
    rotation (superior axis) of the whole patient."""
    body_semi_axes_mm: tuple[float, float]
    fat_mm: float
    muscle_hu: float
    cancellous_hu: float
    cortex_hu: float
    cortex_mm: float
    spacing_mm: tuple[float, float, float]
    """Voxel size (slice, row, column)."""
    storage: str
    """"LPS" or "RAS": the order the scan's array is stored in."""
    noise_hu: float
    streak_hu: float
    """Amplitude of beam-hardening streaks between the hips."""
    psf_mm: float
    """Standard deviation of the scanner's in-plane point spread, mm."""
    distant_metal: tuple[DistantMetal, ...] = field(default_factory=tuple)

    def with_hips(self, **changes) -> ScanDraw:
        """This draw with the fields ``changes`` of :class:`HipDraw` set on both hips."""
        return replace(self, hips={side: replace(hip, **changes)
                                   for side, hip in self.hips.items()})


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _typical_hip(rng: np.random.Generator, side: str) -> HipDraw:
    return HipDraw(
        side=side,
        head_radius_mm=_uniform(rng, 20.5, 27.0),
        head_axis_factors=tuple(_uniform(rng, 0.97, 1.0) for _ in range(3)),
        head_top_factor=1.0,
        joint_space_mm=_uniform(rng, 1.5, 3.5),
        contact_directions=(),
        contact_width_deg=20.0,
        bridge_directions=(),
        bridge_radius_mm=2.0,
        cup_coverage_deg=_uniform(rng, 85.0, 100.0),
        cup_inclination_deg=_uniform(rng, 38.0, 52.0),
        cup_anteversion_deg=_uniform(rng, 10.0, 25.0),
        acetabular_wall_mm=_uniform(rng, 3.0, 6.0),
        neck_shaft_deg=_uniform(rng, 122.0, 138.0),
        femoral_anteversion_deg=_uniform(rng, 5.0, 25.0),
        femoral_offset_mm=_uniform(rng, 34.0, 44.0),
        neck_radius_factor=_uniform(rng, 0.55, 0.65),
        trochanter_top_mm=_uniform(rng, -8.0, 2.0),
    )


def _perpendicular_basis(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to the unit vector ``axis`` and to each other."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(axis, e1)


def _random_direction(rng: np.random.Generator, around: np.ndarray, within_deg: float) -> tuple:
    """A unit vector within ``within_deg`` of the unit vector ``around``, uniform over that cap."""
    cos_max = np.cos(np.radians(within_deg))
    cos_t = rng.uniform(cos_max, 1.0)
    phi = rng.uniform(0.0, 2.0 * np.pi)
    e1, e2 = _perpendicular_basis(around)
    sin_t = np.sqrt(1.0 - cos_t**2)
    v = cos_t * around + sin_t * (np.cos(phi) * e1 + np.sin(phi) * e2)
    return tuple(float(c) for c in v / np.linalg.norm(v))


def cup_opening_normal(hip: HipDraw) -> np.ndarray:
    """Unit normal of the acetabular opening, pointing out of the cup (lateral, anterior,
    inferior), from Murray's radiographic inclination and anteversion."""
    inc, ant = np.radians(hip.cup_inclination_deg), np.radians(hip.cup_anteversion_deg)
    return np.array([np.sin(inc) * np.cos(ant), np.sin(ant), -np.cos(inc) * np.cos(ant)])


def _narrow_joint(rng: np.random.Generator, hip: HipDraw) -> HipDraw:
    pole = -cup_opening_normal(hip)
    n_contacts = int(rng.integers(0, 4))
    n_bridges = int(rng.integers(0, 3))
    # bridges start on the rim: the cone of the cup's coverage around its pole
    rim = np.radians(hip.cup_coverage_deg) - 0.08
    e1, e2 = _perpendicular_basis(pole)
    bridges = []
    for phi in rng.uniform(0.0, 2.0 * np.pi, n_bridges):
        d = np.cos(rim) * pole + np.sin(rim) * (np.cos(phi) * e1 + np.sin(phi) * e2)
        bridges.append(tuple(float(c) for c in d))
    dome = np.array([0.3, 0.0, 0.95]) / np.hypot(0.3, 0.95)  # the weight-bearing, upper-lateral part
    return replace(
        hip, joint_space_mm=_uniform(rng, 0.0, 1.0),
        contact_directions=tuple(_random_direction(rng, dome, 45.0) for _ in range(n_contacts)),
        contact_width_deg=_uniform(rng, 12.0, 30.0),
        bridge_directions=tuple(bridges), bridge_radius_mm=_uniform(rng, 1.5, 3.0))


def _acetabular_shape(rng: np.random.Generator, hip: HipDraw) -> HipDraw:
    return replace(hip, cup_coverage_deg=_uniform(rng, 65.0, 115.0),
                   cup_inclination_deg=_uniform(rng, 30.0, 65.0),
                   cup_anteversion_deg=_uniform(rng, -5.0, 35.0),
                   acetabular_wall_mm=_uniform(rng, 2.0, 8.0))


def _head_shape(rng: np.random.Generator, hip: HipDraw) -> HipDraw:
    flat = rng.random() < 0.5
    return replace(hip, head_axis_factors=tuple(_uniform(rng, 0.8, 1.0) for _ in range(3)),
                   head_top_factor=_uniform(rng, 0.8, 0.95) if flat else 1.0)


_HIP_CLASS_CHANGES = {"narrow_joint": _narrow_joint, "acetabular_shape": _acetabular_shape,
                      "head_shape": _head_shape}


def _distant_metal(rng: np.random.Generator, half_width_mm: float) -> tuple[DistantMetal, ...]:
    kind = ("bead", "bladder_contrast", "arm_vessel")[int(rng.integers(0, 3))]
    if kind == "bead":  # a bullet, clip or seed: 0.5-2 ml, 60 mm or more from both hips
        radius = float((3 * rng.uniform(500.0, 2000.0) / (4 * np.pi)) ** (1 / 3))
        where = rng.integers(0, 3)
        center = ((0.0, -40.0, 45.0), (rng.choice([-1, 1]) * (half_width_mm + 15), 75.0, 55.0),
                  (rng.choice([-1, 1]) * 40.0, -80.0, -5.0))[int(where)]
        return (DistantMetal("bead", tuple(float(c) for c in center), radius, 3500.0),)
    if kind == "bladder_contrast":  # excreted contrast layered in the bladder, midline
        return (DistantMetal("bladder_contrast", (0.0, -45.0, 5.0), _uniform(rng, 15.0, 25.0),
                             _uniform(rng, 2600.0, 3200.0)),)
    side = float(rng.choice([-1, 1]))  # an arm at the patient's side with contrast in a vein
    return (DistantMetal("arm_vessel", (side * (half_width_mm + 115.0), 0.0, 0.0),
                         _uniform(rng, 2.5, 4.5), _uniform(rng, 2600.0, 3500.0)),)


def draw_scan(hip_class: str, seed: int) -> ScanDraw:
    """Draw one scan of the sweep's class ``hip_class`` (one of :data:`CLASSES`).

    typical: a normal adult hip CT. narrow_joint: joint space 0-1 mm, up to 3 contact areas on
    the weight-bearing dome and up to 2 osteophyte bridges from the rim. acetabular_shape:
    shallow (65 deg) to deep (115 deg) cups, inclination 30-65 deg, version -5 to 35 deg, walls
    2-8 mm. head_shape: ellipsoidal heads (0.8-1.0 of the radius on each axis), half of them
    with a flattened top. low_density: cancellous bone 80-150 HU, cortex 0.6-1.2 mm and
    500-900 HU. noise: 40-60 HU noise and beam-hardening streaks. resolution: 0.5-1.5 mm
    in-plane, slices 0.6-5 mm. metal: a hip implant on one side, or metal / dense contrast
    away from the hips.
    """
    if hip_class not in CLASSES:
        raise ValueError(f"hip_class must be one of {', '.join(CLASSES)}; got {hip_class!r}.")
    rng = np.random.default_rng(np.random.SeedSequence([CLASSES.index(hip_class), seed]))
    hips = {side: _typical_hip(rng, side) for side in SIDES}
    change = _HIP_CLASS_CHANGES.get(hip_class)
    if change is not None:
        hips = {side: change(rng, hip) for side, hip in hips.items()}
    half_width = _uniform(rng, 82.0, 98.0)
    scan = ScanDraw(
        hip_class=hip_class, seed=seed, hips=hips, hip_half_width_mm=half_width,
        body_rotation_deg=(_uniform(rng, -8.0, 8.0), _uniform(rng, -4.0, 4.0),
                           _uniform(rng, -4.0, 4.0)),
        body_semi_axes_mm=(_uniform(rng, 150.0, 185.0), _uniform(rng, 105.0, 130.0)),
        fat_mm=_uniform(rng, 8.0, 35.0), muscle_hu=_uniform(rng, 35.0, 65.0),
        cancellous_hu=_uniform(rng, 180.0, 350.0), cortex_hu=_uniform(rng, 900.0, 1500.0),
        cortex_mm=_uniform(rng, 1.2, 3.0),
        spacing_mm=(_uniform(rng, 1.0, 3.0), *[_uniform(rng, 0.6, 0.9)] * 2),
        storage=("LPS", "RAS")[int(rng.integers(0, 2))],
        noise_hu=_uniform(rng, 10.0, 25.0), streak_hu=_uniform(rng, 0.0, 30.0),
        psf_mm=_uniform(rng, 0.3, 0.6))
    if hip_class == "low_density":
        scan = replace(scan, cancellous_hu=_uniform(rng, 80.0, 150.0),
                       cortex_mm=_uniform(rng, 0.6, 1.2), cortex_hu=_uniform(rng, 500.0, 900.0))
    elif hip_class == "noise":
        scan = replace(scan, noise_hu=_uniform(rng, 40.0, 60.0), streak_hu=_uniform(rng, 30.0, 120.0))
    elif hip_class == "resolution":
        scan = replace(scan, spacing_mm=(_uniform(rng, 0.6, 5.0), *[_uniform(rng, 0.5, 1.5)] * 2))
    elif hip_class == "metal":
        if rng.random() < 0.5:
            side = SIDES[int(rng.integers(0, 2))]
            scan = replace(scan, hips={**hips, side: replace(hips[side], implant=True)})
        else:
            scan = replace(scan, distant_metal=_distant_metal(rng, half_width))
    return scan
