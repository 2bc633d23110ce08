"""The femur / pelvis split around one hip (labels.split_femur_pelvis) on a drawn joint."""
from __future__ import annotations

import numpy as np

from THAAnnotatorLib.labels import fill_enclosed_slices, split_femur_pelvis

SPACING_MM = np.array([1.0, 1.0, 1.0])
CENTER_IDX = np.array([40.0, 40.0, 40.0])
RADIUS_MM = 12.0


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
    femur, pelvis = split_femur_pelvis(bone, femur_seed, CENTER_IDX, RADIUS_MM, SPACING_MM)
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
