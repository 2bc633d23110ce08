"""The CI gate (.ci/check-pytest-summary): a run passes only with passed tests and no skips."""
from __future__ import annotations

import ast
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


def _xfail_marks() -> list[tuple[str, int, ast.Call]]:
    """Every ``pytest.mark.xfail(...)`` decorator call in the test files: (file, line, call)."""
    found = []
    for path in sorted(Path(__file__).resolve().parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "xfail" and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr == "mark"):
                found.append((path.name, node.lineno, node))
    return found


def test_every_xfail_is_strict_and_names_the_exception_it_expects():
    """Issue 22: an xfail is strict (an unexpected pass fails the run) and narrow (`raises=`:
    another error in the test is a failure, not an expected one)."""
    loose = []
    for name, line, call in _xfail_marks():
        keywords = {k.arg: k.value for k in call.keywords}
        strict = keywords.get("strict")
        is_strict = isinstance(strict, ast.Constant) and strict.value is True
        if not is_strict or "raises" not in keywords:
            loose.append(f"{name}:{line}")
    assert _xfail_marks() and loose == [], loose
