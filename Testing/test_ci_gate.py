"""The CI gate (.ci/check-pytest-summary): a run passes only with passed tests and no skips."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parents[1] / ".ci" / "check-pytest-summary"


@pytest.mark.parametrize("closing, passes", [
    ("==== 496 passed, 2 xfailed in 272.01s (0:04:32) ====", True),
    ("==== 495 passed, 1 skipped, 2 xfailed in 270.00s ====", False),
    ("==== 12 skipped in 0.50s ====", False),
    ("==== no tests ran in 0.01s ====", False),
    ("==== 0 passed in 0.01s ====", False),
])
def test_the_ci_gate_wants_passed_tests_and_no_skips(tmp_path, closing, passes):
    log = tmp_path / "pytest.log"
    log.write_text(f"collected 498 items\n...\n{closing}\n")
    result = subprocess.run(["bash", str(GATE), str(log)], capture_output=True, text=True)
    assert (result.returncode == 0) == passes, result.stderr
