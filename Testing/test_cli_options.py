"""Every option of every ``tha-annotator`` command is checked before any work starts (issue 22,
item 3): a value out of range, NaN, infinity or a pair out of order ends the run with one
``error: argument --OPTION: must be ...`` line naming the option and its allowed values, exit
code 2, and nothing written. Library callers get the same check as a ValueError naming the field.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import SimpleITK as sitk

from THAAnnotatorLib import cli, params, pipeline
from THAAnnotatorLib.batch.build import build_dataset
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk

# {scan}, {dataset}, {model}, {build} never exist: a run that got as far as reading them would
# fail with another message, so a message naming the option shows it was checked first.
BAD_OPTIONS = [
    # (command line, option, what the message says is allowed)
    ("annotate {scan} --out {out} --n-rays 0", "--n-rays", "an integer of at least 3, got 0"),
    ("annotate {scan} --out {out} --n-rays 2.5", "--n-rays", "got '2.5'"),
    ("annotate {scan} --out {out} --hough-peaks 0", "--hough-peaks", "at least 1, got 0"),
    ("annotate {scan} --out {out} --metal-threshold-hu nan", "--metal-threshold-hu",
     "a finite number of HU, got nan"),
    ("annotate {scan} --out {out} --boundary-sigma-hu inf", "--boundary-sigma-hu",
     "above 0 HU, got inf"),
    ("annotate {scan} --out {out} --min-head-radius-mm 40", "--min-head-radius-mm",
     "below --max-head-radius-mm (35), got 40"),
    ("annotate {scan} --out {out} --metal-threshold-hu 100", "--min-bone-threshold-hu",
     "below --metal-threshold-hu (100), got 150"),
    ("annotate {scan} --out {out} --blur-sigma-mm -1", "--blur-sigma-mm",
     "a number of at least 0 mm, got -1"),
    ("annotate {scan} --out {out} --propagation-radius-window 1.2 0.8",
     "--propagation-radius-window", "two numbers above 0, the first below the second, got 1.2 0.8"),
    ("annotate {scan} --out {out} --usual-head-diameter-mm 38 nan", "--usual-head-diameter-mm",
     "a number above 0 mm, got nan"),
    ("annotate {scan} --out {out} --enhance-percentile 101", "--enhance-percentile",
     "at least 0 and at most 100, got 101"),
    ("annotate {scan} --out {out} --search-extent 1", "--search-extent", "above 1, got 1"),
    ("demo --out {out} --n-rays 0", "--n-rays", "at least 3"),
    ("demo --out {out} --seed -1", "--seed", "at least 0 and at most 4294967295, got -1"),
    ("build-dataset {scans} {out} --hough-peaks 0", "--hough-peaks", "at least 1"),
    ("build-dataset {scans} {out} --workers 0", "--workers", "at least 1, got 0"),
    ("build-dataset {scans} {out} --memory-per-worker lots", "--memory-per-worker",
     "auto or a positive size"),
    ("build-dataset {scans} {out} --scheduler nope", "--scheduler",
     "a scheduler address with its port, such as tcp://10.0.0.5:8786, got 'nope'"),
    ("build-dataset {scans} {out} --scheduler tcp://10.0.0.5", "--scheduler", "got 'tcp://"),
    ("build-dataset {scans} {out} --scheduler 10.0.0.5:99999", "--scheduler", "got '10.0"),
    ("export {build} --format monai {out} --validation-fraction 1", "--validation-fraction",
     "at least 0 and below 1, got 1"),
    ("export {build} --format monai {out} --seed -5", "--seed", "got -5"),
    ("export {build} --format monai {out} --group-by (P", "--group-by",
     "a regular expression with a group naming the patient, got '(P'"),
    ("export {build} --format monai {out} --group-by P\\d+", "--group-by", "(no group)"),
    ("slice-dataset {out} --phantoms -1", "--phantoms", "at least 0, got -1"),
    ("slice-dataset {out} --phantoms 1 --roi-pixels 8", "--roi-pixels", "at least 16, got 8"),
    ("slice-dataset {out} --phantoms 1 --roi-size-mm nan", "--roi-size-mm", "above 0, got nan"),
    ("slice-dataset {out} --phantoms 1 --roi-half-height-mm 0", "--roi-half-height-mm",
     "above 0, got 0"),
    ("slice-dataset {out} --phantoms 1 --coarse-copies 3 0.5", "--coarse-copies",
     "at least 1 mm, got 0.5"),
    ("train {dataset} --out {out} --epochs 0", "--epochs", "at least 1, got 0"),
    ("train {dataset} --out {out} --batch-size 0", "--batch-size", "at least 1, got 0"),
    ("train {dataset} --out {out} --lr 0", "--lr", "above 0, got 0"),
    ("train {dataset} --out {out} --lr nan", "--lr", "above 0, got nan"),
    ("train {dataset} --out {out} --threads 0", "--threads", "at least 1, got 0"),
    ("train {dataset} --out {out} --channels 8 0", "--channels", "at least 1, got 0"),
    ("train {dataset} --out {out} --strides 0", "--strides", "at least 1, got 0"),
    ("train {dataset} --out {out} --res-units -1", "--res-units", "at least 0, got -1"),
    ("train {dataset} --out {out} --max-shift-mm -1", "--max-shift-mm", "at least 0, got -1"),
    ("train {dataset} --out {out} --seed 4294967296", "--seed", "got 4294967296"),
    ("predict {scan} --out {out} --batch-size 0", "--batch-size", "at least 1, got 0"),
    ("review-queue {dataset} --model {model} --batch-size 0", "--batch-size", "at least 1"),
    ("review-queue {dataset} --model {model} --top-k 0", "--top-k", "at least 1, got 0"),
    ("review-queue {dataset} --model {model} --top-percent 0", "--top-percent", "above 0"),
    ("review-queue {dataset} --model {model} --top-percent 150", "--top-percent",
     "at most 100, got 150"),
]


def run_cli(argv: list[str]) -> int:
    """The exit code of ``tha-annotator argv``: the main program's, or argparse's exit."""
    try:
        return cli.main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def command_line(template: str, tmp: Path) -> list[str]:
    paths = {name: str(tmp / name) for name in ("out", "scans", "dataset", "model", "build")}
    return template.format(scan=str(tmp / "ct.nii.gz"), **paths).split()


@pytest.mark.parametrize("template, option, allowed", BAD_OPTIONS,
                         ids=[f"{t.split()[0]} {o} {t.split()[-1]}" for t, o, _ in BAD_OPTIONS])
def test_a_bad_option_is_one_error_line_naming_it_exit_2_before_any_work(
        tmp_path, capsys, template, option, allowed):
    code = run_cli(command_line(template, tmp_path))
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: argument {option}: must be "), lines[0]
    assert allowed in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []


def test_every_param_has_a_range_and_its_option_help_shows_it(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit):
        cli.main(["annotate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(Params):
        if isinstance(field.default, bool):
            continue
        assert field.name in params.PARAM_RANGES, f"Params.{field.name} has no allowed range"
        allowed = params.allowed_values(field.name, cli.option_name)
        assert f"allowed: {allowed})" in text, f"help of {cli.option_name(field.name)}"


@pytest.mark.parametrize("argv", [
    ["--n-rays", "3", "--hough-peaks", "1", "--blur-sigma-mm", "0", "--enhance-percentile", "100"],
    ["--propagation-radius-window", "0.5", "0.6", "--min-head-radius-mm", "34.9",
     "--metal-min-volume-ml", "0", "--joint-region-factor", "1"],
])
def test_values_at_the_edges_of_their_ranges_are_accepted(argv):
    args = cli.build_parser().parse_args(["annotate", "ct.nii.gz", "--out", "out", *argv])
    assert cli.params_from_args(args).validate()


@pytest.mark.parametrize("changes, field", [
    ({"n_rays": 0}, "n_rays"),
    ({"n_rays": 90.0}, "n_rays"),
    ({"hough_peaks": 0}, "hough_peaks"),
    ({"metal_threshold_hu": float("nan")}, "metal_threshold_hu"),
    ({"min_head_radius_mm": 40.0}, "min_head_radius_mm"),
    ({"blur_sigma_mm": -1.0}, "blur_sigma_mm"),
    ({"propagation_radius_window": (1.2, 0.8)}, "propagation_radius_window"),
    ({"usual_head_diameter_mm": (38.0,)}, "usual_head_diameter_mm"),
    ({"use_fsg": "no"}, "use_fsg"),
])
def test_params_validate_names_the_bad_field(changes, field):
    assert Params().validate() == Params()
    with pytest.raises(ValueError, match=rf"^Params\.{field} must be "):
        Params(**changes).validate()


def test_library_annotate_refuses_bad_params_before_any_work():
    phantom = generate_phantom(spacing_mm=(3.0, 1.5, 1.5), fov_mm=(120.0, 240.0, 360.0))
    stages = []
    with pytest.raises(ValueError, match=r"Params\.n_rays must be an integer of at least 3"):
        pipeline.annotate(phantom.volume, Params(n_rays=0),
                          progress=lambda fraction, message: stages.append(message))
    assert stages == []  # not even bone extraction began


def test_library_build_refuses_bad_params_before_reading_a_scan(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    image = phantom_to_sitk(generate_phantom(spacing_mm=(3.0, 1.5, 1.5),
                                             fov_mm=(120.0, 240.0, 360.0)))
    sitk.WriteImage(image, str(scans / "ct.nii.gz"))
    with pytest.raises(ValueError, match=r"Params\.hough_peaks must be an integer of at least 1"):
        build_dataset(scans, tmp_path / "out", Params(hough_peaks=0), workers=1)
    assert not (tmp_path / "out").exists()
