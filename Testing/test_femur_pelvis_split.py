"""The femur / pelvis split around one hip (labels.split_femur_pelvis) on a drawn joint."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from THAAnnotatorLib.labels import fill_enclosed_slices, split_femur_pelvis

SPACING_MM = np.array([1.0, 1.0, 1.0])
CENTER_IDX = np.array([40.0, 40.0, 40.0])
RADIUS_MM = 12.0
CORTEX_HU, SPONGY_HU, LOW_DENSITY_HU, FLUID_HU = 900.0, 250.0, 110.0, 20.0
HEAD_RADIUS_MM = 22.0


def _ct(shape, *regions):
    """A CT of joint fluid with each (mask, HU) region painted in turn."""
    hu = np.full(shape, FLUID_HU, dtype=np.float32)
    for mask, value in regions:
        hu[mask] = value
    return hu


def _ball(shape=(80, 80, 80), center=(40, 40, 40)):
    """Distance (mm) of each voxel from ``center`` (the head's), and the voxel indices."""
    z, y, x = np.indices(shape).astype(float)
    return np.sqrt((z - center[0]) ** 2 + (y - center[1]) ** 2 + (x - center[2]) ** 2), z, y, x


def _joint():
    """A side frame (z up, x lateral to medial) with a head, a neck and shaft running down
    laterally, and an acetabular shell 3-7 mm outside the head on its medial side, the shell's
    lower rim joined to the neck by a bridge of bone (as a bone mask joins them where the rim
    lies against the neck). Returns (bone, head and femur truth, shell truth)."""
    z, y, x = np.indices((80, 80, 80)).astype(float)
    distance = np.sqrt((z - 40) ** 2 + (y - 40) ** 2 + (x - 40) ** 2)
    head = distance <= RADIUS_MM
    # the neck and shaft: a bar from the head's center down and lateral, to the volume's floor
    neck = (np.abs(y - 40) <= 5) & (x >= 14) & (x <= 34) & (z <= 40) & (z >= 0)
    femur = head | neck
    shell = (distance >= RADIUS_MM + 3) & (distance <= RADIUS_MM + 7) & (x >= 38) & (z >= 26)
    # the pelvis goes on above the head (the ilium) so it reaches its own seed region
    shell |= (np.abs(y - 40) <= 8) & (x >= 40) & (x <= 60) & (z >= 53)
    bridge = (np.abs(y - 40) <= 3) & (x >= 30) & (x <= 40) & (z >= 27) & (z <= 30)
    bone = femur | shell | bridge
    return bone, femur & ~shell, shell & ~femur


def test_a_femur_seed_that_ran_into_the_pelvis_in_the_head_slices_does_not_take_it():
    """The femur seed, tracked up slice by slice, takes whatever bone touches it: here every
    bone voxel below the head's center, the shell's lower half included. Only its part below
    the head counts, so the shell stays pelvis and the femur stays femur."""
    bone, femur_truth, shell = _joint()
    femur_seed = bone.copy()
    femur_seed[40:] = False
    hu = np.where(bone, CORTEX_HU, FLUID_HU).astype(np.float32)
    femur, pelvis = split_femur_pelvis(hu, bone, femur_seed, CENTER_IDX, RADIUS_MM, SPACING_MM)
    assert not (femur & pelvis).any()
    assert pelvis[shell].mean() >= 0.95, pelvis[shell].mean()
    assert femur[femur_truth].mean() >= 0.95, femur[femur_truth].mean()


def test_spongy_bone_inside_one_bone_s_cortex_is_filled_but_not_the_joint_between_two():
    """A head kept only as its cortex (a shell 1 mm thick with a 2 mm break) and an
    acetabular shell 3 mm outside it: the head's interior is filled, the joint space between
    the two bones is not, since each bone is filled on its own."""
    z, y, x = np.indices((40, 60, 60)).astype(float)
    distance = np.sqrt((z - 20) ** 2 + (y - 30) ** 2 + (x - 30) ** 2)
    head_cortex = (distance <= RADIUS_MM) & (distance > RADIUS_MM - 1.0)
    head_cortex &= ~((y >= 30) & (y <= 31) & (x > 30))  # a break in the shell
    shell = (distance >= RADIUS_MM + 3) & (distance <= RADIUS_MM + 6) & (x >= 30)
    femur = fill_enclosed_slices(head_cortex, SPACING_MM)
    pelvis = fill_enclosed_slices(shell, SPACING_MM) & ~femur
    inside = distance <= RADIUS_MM - 1.5
    joint = (distance > RADIUS_MM + 0.5) & (distance < RADIUS_MM + 2.5) & (x >= 30)
    assert femur[inside].mean() >= 0.97, femur[inside].mean()
    assert not (femur | pelvis)[joint].any()
    assert pelvis[shell].all()


def _closed_joint(head_top_mm: float, joint_mm: float):
    """A head of radius HEAD_RADIUS_MM (an adult's) with a neck running down laterally, under
    an acetabular shell (1.5 mm inner cortex, spongy bone, 1.5 mm outer cortex) on its medial and upper side
    whose inner surface lies ``joint_mm`` outside the head. Above ``head_top_mm`` (relative to
    the center) the head is cut flat and the shell follows it down. Returns distance, the bone
    mask, the femur seed (the neck), femur truth and pelvis truth."""
    distance, z, y, x = _ball()
    flat = z - 40 > head_top_mm
    # distance of each voxel beyond the head's surface (sphere below the cut, plane above it)
    beyond_mm = np.where(flat & (distance <= HEAD_RADIUS_MM + 8), z - 40 - head_top_mm,
                         distance - HEAD_RADIUS_MM)
    head = (beyond_mm <= 0) & (distance <= HEAD_RADIUS_MM)
    neck = (np.abs(y - 40) <= 5) & (x >= 14) & (x <= 34) & (z <= 40)
    femur = head | neck
    depth = beyond_mm - joint_mm
    cup = (depth > 0) & (depth <= 7) & (x >= 38) & (z >= 30)
    ilium = (np.abs(y - 40) <= 8) & (x >= 40) & (x <= 70) & (z >= 40 + HEAD_RADIUS_MM + 8)
    pelvis = (cup | ilium) & ~femur
    cortex = femur & (beyond_mm > -1.5) | pelvis & ((depth <= 1.5) | (depth > 5.5))
    bone = cortex | neck | ilium
    return distance, bone, neck & (z < 40 - HEAD_RADIUS_MM), femur, pelvis, cortex


def test_a_head_and_acetabulum_in_contact_are_cut_at_the_head_s_surface():
    """Bone on bone: no joint space, the two cortices one band in the bone mask, the spongy
    bone of both darker than bone extraction kept. The head's cortex stays femur and the
    acetabulum's inner cortex pelvis; before the cut along the joint, the band went to
    whichever piece was nearest and the acetabulum's spongy bone lost its inner wall."""
    distance, bone, seed, femur_truth, pelvis_truth, cortex = _closed_joint(HEAD_RADIUS_MM, 0.0)
    hu = _ct(bone.shape, (femur_truth | pelvis_truth, SPONGY_HU), (cortex, CORTEX_HU))
    femur, pelvis = split_femur_pelvis(hu, bone, seed, CENTER_IDX, HEAD_RADIUS_MM, SPACING_MM)
    head_cortex = bone & femur_truth & (distance <= HEAD_RADIUS_MM)
    inner_cortex = bone & pelvis_truth & (distance <= HEAD_RADIUS_MM + 2)
    # the nearest-piece rule gave half the head's cortex to the pelvis (0.50)
    assert femur[head_cortex].mean() >= 0.9, femur[head_cortex].mean()
    assert pelvis[inner_cortex].mean() >= 0.9, pelvis[inner_cortex].mean()


def test_a_joint_space_the_bone_mask_bridges_is_neither_femur_nor_pelvis():
    """A 1.5 mm joint space blurred as a CT blurs it (0.7 mm): its middle reads 200-340 HU and
    bone extraction keeps it. Its voxels go to neither bone, and the two cortices each stay
    with their own bone (before, the split gave 97 % of the joint's middle to the bones)."""
    distance, _, seed, femur_truth, pelvis_truth, cortex = _closed_joint(HEAD_RADIUS_MM, 1.5)
    sharp = _ct(femur_truth.shape, (femur_truth | pelvis_truth, SPONGY_HU), (cortex, CORTEX_HU))
    hu = ndimage.gaussian_filter(sharp, 0.7)
    bone = hu > 150.0
    beside_cup = ndimage.binary_dilation(pelvis_truth, iterations=3)
    middle = (~femur_truth & ~pelvis_truth & beside_cup
              & (distance > HEAD_RADIUS_MM + 0.5) & (distance < HEAD_RADIUS_MM + 1.0))
    assert bone[middle].mean() >= 0.9  # the bone mask bridges the joint
    femur, pelvis = split_femur_pelvis(hu, bone, seed, CENTER_IDX, HEAD_RADIUS_MM, SPACING_MM)
    assert (femur | pelvis)[middle].mean() <= 0.2, (femur | pelvis)[middle].mean()
    assert femur[bone & femur_truth].mean() >= 0.97, femur[bone & femur_truth].mean()
    assert pelvis[bone & pelvis_truth].mean() >= 0.97, pelvis[bone & pelvis_truth].mean()


def test_a_flattened_head_keeps_its_own_surface_where_the_joint_space_shows():
    """The head's top cut flat 3 mm under its sphere, the acetabulum following it down across
    a 1.5 mm joint space of fluid: the acetabulum's bone inside the sphere stays pelvis (the
    labels follow the bone, not the sphere)."""
    distance, bone, seed, femur_truth, pelvis_truth, cortex = _closed_joint(HEAD_RADIUS_MM - 3, 1.5)
    hu = _ct(bone.shape, (femur_truth | pelvis_truth, SPONGY_HU), (cortex, CORTEX_HU))
    femur, pelvis = split_femur_pelvis(hu, bone, seed, CENTER_IDX, HEAD_RADIUS_MM, SPACING_MM)
    inside_sphere = bone & pelvis_truth & (distance <= HEAD_RADIUS_MM)
    assert inside_sphere.sum() > 100
    assert pelvis[inside_sphere].mean() >= 0.9, pelvis[inside_sphere].mean()
    assert femur[bone & femur_truth].mean() >= 0.95, femur[bone & femur_truth].mean()


def test_a_low_density_head_kept_only_as_its_cortex_stays_femur():
    """Osteoporotic: the head's spongy bone (110 HU) is not in the bone mask, only its cortex
    is, 3 mm from the acetabulum's. The cortex has no bone path to the head's interior; it
    goes with the femur, not with the nearest bone (the acetabulum)."""
    distance, bone, seed, femur_truth, pelvis_truth, cortex = _closed_joint(HEAD_RADIUS_MM, 3.0)
    hu = _ct(bone.shape, (femur_truth | pelvis_truth, LOW_DENSITY_HU), (cortex, CORTEX_HU))
    femur, pelvis = split_femur_pelvis(hu, bone, seed, CENTER_IDX, HEAD_RADIUS_MM, SPACING_MM)
    head_cortex = bone & femur_truth & (distance <= HEAD_RADIUS_MM)
    assert femur[head_cortex].mean() >= 0.95, femur[head_cortex].mean()
    assert pelvis[bone & pelvis_truth].mean() >= 0.95, pelvis[bone & pelvis_truth].mean()


def test_an_acetabulum_wrapped_around_the_head_does_not_take_the_joint_space():
    """In a slice where the acetabulum's ring closes round the head, the ring encloses the
    head and the joint space: filling the pelvis's interior must leave them out when the femur
    is given (they are not the pelvis's spongy bone)."""
    distance, _, _, _ = _ball((40, 80, 80), center=(20, 40, 40))
    head = distance <= HEAD_RADIUS_MM
    ring = (distance >= HEAD_RADIUS_MM + 2.5) & (distance <= HEAD_RADIUS_MM + 4.5)
    joint = (distance > HEAD_RADIUS_MM + 0.5) & (distance < HEAD_RADIUS_MM + 2)
    pelvis = fill_enclosed_slices(ring, SPACING_MM, other=head) & ~head
    assert not pelvis[joint].any()
    assert pelvis[ring].all()


def test_a_slice_whose_cortex_broke_wide_holds_what_its_neighbours_enclose():
    """A tube of cortex (a bone's shell around spongy bone bone extraction left out) whose ring
    is open 8 mm wide in one slice, too wide to bridge in-plane: that slice's interior is filled
    as its neighbours' are, except where the other bone lies."""
    z, y, x = np.indices((9, 60, 60)).astype(float)
    radius = np.hypot(y - 30, x - 30)
    interior = radius < 13
    cortex = (radius >= 13) & (radius <= 15)
    cortex[4] &= ~((x[4] > 30) & (np.abs(y[4] - 30) <= 4))  # the break, 8 mm wide
    other = np.zeros_like(cortex)
    other[4, 28:32, 20:24] = True
    filled = fill_enclosed_slices(cortex, SPACING_MM, other=other)
    assert filled[4][interior[4] & ~other[4]].all()
    assert not filled[4][other[4]].any()


def test_a_cortex_ring_cut_by_the_box_is_closed_by_the_bone_beyond_it():
    """An ilium whose cortex ring runs out of the hip's box: in the box the ring is open, so its
    spongy interior is enclosed only together with the bone beyond the box, given as
    ``beyond``. Soft tissue outside the ring stays unfilled."""
    z, y, x = np.indices((3, 80, 120)).astype(float)
    radius = np.hypot((y - 40) / 30, (x - 60) / 50)  # an elliptic bone, 100 x 60 mm
    cortex = (radius >= 0.9) & (radius <= 1.0)
    box = (slice(0, 3), slice(0, 80), slice(0, 70))  # cuts the ring where x = 70
    inside, outside = (radius < 0.9)[box], (radius > 1.05)[box]
    alone = fill_enclosed_slices(cortex[box], SPACING_MM)
    assert not alone[inside].any()  # open in the box: nothing enclosed
    filled = fill_enclosed_slices(cortex[box], SPACING_MM, beyond=(cortex, box))
    assert filled[inside].all()
    assert not filled[outside].any()


def test_a_head_whose_cortex_the_split_gave_in_part_to_the_pelvis_is_filled():
    """Where head and acetabulum touch, the split may give a stretch of the head's cortex to
    the pelvis, leaving the head's ring open wider than a break is bridged. The region the two
    bones enclose together is the head's interior when nearly all its rim is the head's; the
    joint space between a head and an acetabulum ring round it is not."""
    z, y, x = np.indices((3, 60, 60)).astype(float)
    radius = np.hypot(y - 30, x - 30)
    cortex = (radius >= 13) & (radius <= 15)
    taken = cortex & (x > 40) & (np.abs(y - 30) <= 5)  # 10 mm of the ring, given to the pelvis
    femur = fill_enclosed_slices(cortex & ~taken, SPACING_MM, other=taken)
    assert femur[radius < 12.5].all()
    assert not femur[taken].any()
