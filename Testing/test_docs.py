"""What the README promises: its links and the docs' lead somewhere, its command examples are
valid commands, `make demo` installs only the base dependencies and the demo runs without PyTorch."""
from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from THAAnnotatorLib import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    anchors = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files_and_headings(page):
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: no heading for #{anchor} in {path}"


def test_readme_gives_a_valid_example_of_every_command():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    shown = set()
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("tha-annotator "):
            argv = shlex.split(line.split(" #")[0])[1:]
            parser.parse_args(argv)  # exits (SystemExit) on an invalid example
            shown.add(argv[0])
    assert shown == set(commands.choices)


def _make_dry_run(target: str) -> str:
    """The commands `make TARGET` would run on a fresh checkout (nothing is run)."""
    done = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_installs_only_the_base_dependencies_and_make_test_the_test_extras():
    demo = _make_dry_run("demo")
    assert "pip install -e .\n" in demo and "tha-annotator demo --out demo-output" in demo
    assert "torch" not in demo and "[test]" not in demo
    test = _make_dry_run("test")
    assert "pip install -e '.[test]'" in test and "torch" in test and "pytest Testing" in test


def test_demo_runs_without_pytorch(tmp_path):
    """`make demo` installs no torch, MONAI or test packages: the demo must not import them."""
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("torch", "monai", "safetensors", "slicer", "pytest"):
                    raise ImportError("not installed for make demo: " + name)
        sys.meta_path.insert(0, Block())
        from THAAnnotatorLib import cli
        sys.exit(cli.main(["demo", "--out", {str(tmp_path / "demo")!r}, "--quiet", "--side", "right"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "right hip: acetabulum Dice" in done.stdout


def test_the_readme_stays_a_front_door_under_150_lines():
    """Issue 22: the README is a front door, under 150 lines; details go to docs/."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 150, f"README.md has {len(lines)} lines; move details to docs/"
