"""Batch builds on Dask: discovery, resumable builds, failures, interruption, the report, exports.

One build of 8 scans (6 phantoms, one of them a DICOM series folder, a corrupt file and a scan
without hips) is made once per module and reused; tests that change things work on copies.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from test_io import write_dicom_series
from THAAnnotatorLib import __version__
from THAAnnotatorLib.batch.build import build_dataset
from THAAnnotatorLib.batch.discover import find_scans, scan_checksum
from THAAnnotatorLib.batch.export import export_build, split_cases
from THAAnnotatorLib.batch.manifest import CASES_DIR, MANIFEST_CSV, MANIFEST_JSON, read_manifest
from THAAnnotatorLib.batch.report import REPORT_FILE
from THAAnnotatorLib.cli import main
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.params import Params
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk

# small, quick phantoms: the build's behaviour is under test here, not the pipeline's accuracy
SPACING_MM = (3.0, 1.5, 1.5)
FOV_MM = (120.0, 240.0, 360.0)
PHANTOM_SEEDS = (0, 1, 2, 3, 4)  # plus one DICOM series folder (seed 5)
DONE = {"ct0", "ct1", "ct2", "ct3", "ct4", "nested__dicom_ct5"}
HEAD_RADIUS_MM = (24.0, 23.0)  # right, left: every phantom's, whatever its seed
TRUE_HEAD_DIAMETER_MM = {"right": 2 * HEAD_RADIUS_MM[0], "left": 2 * HEAD_RADIUS_MM[1]}
FAILED = {"corrupt", "no_hips"}


def write_phantom(path: Path, seed: int, hips: bool = True) -> None:
    image = phantom_to_sitk(generate_phantom(spacing_mm=SPACING_MM, fov_mm=FOV_MM, seed=seed,
                                             hips=hips, head_radius_mm=HEAD_RADIUS_MM))
    sitk.WriteImage(image, str(path), useCompression=True)


@pytest.fixture(scope="module")
def scans_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scans")
    for seed in PHANTOM_SEEDS:
        write_phantom(root / f"ct{seed}.nii.gz", seed)
    dicom = phantom_to_sitk(generate_phantom(spacing_mm=SPACING_MM, fov_mm=FOV_MM, seed=5,
                                             head_radius_mm=HEAD_RADIUS_MM))
    write_dicom_series(dicom, root / "nested" / "dicom_ct5", "1.2.826.0.1.3680043.2.1125.5")
    write_phantom(root / "no_hips.nrrd", 6, hips=False)
    (root / "corrupt.nii.gz").write_bytes(b"\x1f\x8b this is not a NIfTI file")
    (root / "notes.txt").write_text("not a scan, ignored")
    return root


@pytest.fixture(scope="module")
def build(scans_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "out"
    return build_dataset(scans_dir, out, workers=2)


def outcome(records: list[dict]) -> dict:
    """What a build decided per case, without run times."""
    return {r["case"]: (r["status"], tuple(r["reasons"]), tuple(r["sides_found"]),
                        tuple((s, v["head_diameter_mm"]) for s, v in sorted(r["results"].items())))
            for r in records}


def test_finds_files_and_dicom_folders_and_names_cases(scans_dir, tmp_path):
    cases = {s.case: s.path for s in find_scans(scans_dir)}
    assert set(cases) == DONE | FAILED
    assert cases["nested__dicom_ct5"].is_dir()
    series = scans_dir / "nested" / "dicom_ct5"  # a series given as the scans folder itself
    assert [(s.case, s.path) for s in find_scans(series)] == [("dicom_ct5", series)]
    (tmp_path / "readme.txt").write_text("no scans here")
    with pytest.raises(InputError, match="holds no scans"):
        find_scans(tmp_path)


def test_case_names_stay_apart_when_only_the_suffix_differs(tmp_path):
    write_phantom(tmp_path / "a.nii.gz", 0)
    shutil.copy(tmp_path / "a.nii.gz", tmp_path / "a.nrrd")
    assert sorted(s.case for s in find_scans(tmp_path)) == ["a.nii.gz", "a.nrrd"]


def test_case_names_stay_apart_on_a_case_insensitive_file_system(tmp_path):
    """Names differing only in letter case would share one case folder on macOS or Windows
    (issue 22): they differ in more than case, and the same on every run."""
    for name in ("CT1.nii.gz", "ct1.nii.gz", "ct1.nrrd", "P1/ct.nii.gz", "p1/ct.nii.gz",
                 "other.nii.gz"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"only the names matter here")
    cases = [s.case for s in find_scans(tmp_path)]
    assert len({case.casefold() for case in cases}) == len(cases) == 6, cases
    assert "other" in cases and "ct1.nrrd" in cases  # no clash, or one the suffix settles
    assert cases == [s.case for s in find_scans(tmp_path)]


def test_build_records_done_and_failed_cases_with_reasons(build):
    records = {r["case"]: r for r in build.records}
    assert {c for c, r in records.items() if r["status"] == "done"} == DONE
    assert {c for c, r in records.items() if r["status"] == "failed"} == FAILED
    assert "not a readable image" in records["corrupt"]["reasons"][0]
    assert "No hip could be segmented" in records["no_hips"]["reasons"][0]
    for case in DONE:
        record = records[case]
        assert record["sides_found"] == ["right", "left"]
        for side, result in record["results"].items():  # the accuracy target: within 1.5 mm
            assert abs(result["head_diameter_mm"] - TRUE_HEAD_DIAMETER_MM[side]) <= 1.5, \
                (case, side, result["head_diameter_mm"])
        assert len(record["checksum"]) == 64 and record["run_time_s"] > 0
        folder = build.out_dir / CASES_DIR / case
        assert {"labels.nii.gz", "labels.seg.nrrd", "annotation.json", "case.json",
                "thumbnail.jpg"} <= {p.name for p in folder.iterdir()}


def test_manifest_json_and_csv_list_every_case(build, scans_dir):
    manifest = read_manifest(build.out_dir)
    assert manifest["counts"] == {"done": 6, "failed": 2, "pending": 0, "duplicate": 0}
    by_case = {r["case"]: r for r in manifest["cases"]}
    assert by_case["ct0"]["checksum"] == scan_checksum(scans_dir / "ct0.nii.gz")
    assert by_case["ct0"]["params"]["graph_cut_lambda"] == 2.0
    import csv

    rows = list(csv.DictReader((build.out_dir / MANIFEST_CSV).open(encoding="utf-8")))
    assert {row["case"] for row in rows} == DONE | FAILED
    row = next(r for r in rows if r["case"] == "ct1")
    assert float(row["right_head_diameter_mm"]) == by_case["ct1"]["results"]["right"][
        "head_diameter_mm"]
    for side in ("right", "left"):  # the surface check's drop, to sort a large build by
        drop = by_case["ct1"]["results"][side]["surface_drop_hu"]
        assert drop > 150 and float(row[f"{side}_surface_drop_hu"]) == drop
        assert row[f"{side}_needs_review"] == "no"
    assert json.loads(row["parameters"])["sides"] == ["right", "left"]


def test_second_run_does_no_work(build, scans_dir):
    again = build_dataset(scans_dir, build.out_dir, workers=2)
    assert again.processed == [] and sorted(again.skipped) == sorted(DONE | FAILED)
    assert outcome(again.records) == outcome(build.records)


def test_only_a_changed_scan_or_changed_settings_are_redone(build, scans_dir, tmp_path):
    scans, out = tmp_path / "scans", tmp_path / "out"
    shutil.copytree(scans_dir, scans)
    shutil.copytree(build.out_dir, out)
    write_phantom(scans / "ct3.nii.gz", 11)
    changed = build_dataset(scans, out, workers=1)
    assert changed.processed == ["ct3"]
    assert sorted(changed.skipped) == sorted((DONE | FAILED) - {"ct3"})
    record = next(r for r in changed.records if r["case"] == "ct3")
    assert record["checksum"] == scan_checksum(scans / "ct3.nii.gz") and record["status"] == "done"
    retried = build_dataset(scans, out, workers=1, retry_failed=True)
    assert sorted(retried.processed) == sorted(FAILED)


def test_other_settings_redo_every_case(scans_dir, tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("ct0.nii.gz", "corrupt.nii.gz"):
        shutil.copy(scans_dir / name, scans / name)
    first = build_dataset(scans, tmp_path / "out", workers=1)
    assert sorted(first.processed) == ["corrupt", "ct0"]
    other = build_dataset(scans, tmp_path / "out", Params(graph_cut_lambda=3.0), workers=1)
    assert sorted(other.processed) == ["corrupt", "ct0"]
    assert other.records[1]["params"]["graph_cut_lambda"] == 3.0
    one_side = build_dataset(scans, tmp_path / "out", Params(graph_cut_lambda=3.0), ("left",),
                             workers=1)
    assert sorted(one_side.processed) == ["corrupt", "ct0"]
    assert one_side.records[1]["sides_found"] == ["left"]


def test_an_interrupted_build_finishes_with_the_same_result(build, scans_dir, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "THAAnnotatorLib.cli", "build-dataset", str(scans_dir),
               str(out), "--workers", "1", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 240
    while not list((out / CASES_DIR).glob("ct*/case.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the whole run, Dask workers included
    process.wait()
    finished = [p.parent.name for p in (out / CASES_DIR).glob("*/case.json")]
    assert 0 < len(finished) < len(DONE | FAILED), "the kill must land mid-way"
    visible = [p for p in (out / CASES_DIR).iterdir() if not p.name.startswith(".")]
    assert all((p / "case.json").is_file() for p in visible), "no half-written case folder"
    json.loads((out / MANIFEST_JSON).read_text())  # the manifest is whole, never half-written

    resumed = build_dataset(scans_dir, out, workers=2)
    assert sorted(resumed.skipped) == sorted(finished)
    assert outcome(resumed.records) == outcome(build.records)
    assert not [p for p in (out / CASES_DIR).iterdir() if p.name.startswith(".")]


def test_runs_on_an_existing_cluster_given_its_scheduler_address(scans_dir, build, tmp_path):
    from distributed import LocalCluster

    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(scans_dir / "ct1.nii.gz", scans / "ct1.nii.gz")
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        summary = build_dataset(scans, tmp_path / "out", scheduler=cluster.scheduler_address)
        assert len(cluster.scheduler.workers) == 1  # the cluster's worker, no new one
    assert summary.processed == ["ct1"]
    assert outcome(summary.records)["ct1"] == outcome(build.records)["ct1"]


def test_a_scan_whose_requested_hips_are_all_metal_is_done_with_the_reason(tmp_path):
    """A post-operative scan is a result (issue 22): done, nothing segmented, the implant named
    (it failed as bad input before)."""
    scans = tmp_path / "scans"
    scans.mkdir()
    image = phantom_to_sitk(generate_phantom(spacing_mm=SPACING_MM, fov_mm=FOV_MM, seed=0,
                                             metal_side="left"))
    sitk.WriteImage(image, str(scans / "implant.nii.gz"), useCompression=True)
    summary = build_dataset(scans, tmp_path / "out", sides=("left",), workers=1)
    (record,) = summary.records
    assert record["status"] == "done" and record["sides_found"] == []
    assert record["reasons"] == ["left hip: metal implant, not segmented"]


def test_command_line_exit_code_and_summary(build, scans_dir, capsys):
    code = main(["build-dataset", str(scans_dir), str(build.out_dir), "--quiet"])
    assert code == 3  # finished, with failed cases
    out = capsys.readouterr().out
    assert "8 scans: 6 done, 2 failed (0 run now, 8 already up to date)" in out


def test_bad_build_arguments_are_refused(scans_dir, tmp_path, capsys):
    assert main(["build-dataset", str(scans_dir), str(scans_dir / "out"), "--quiet"]) == 2
    assert "overlaps the scans folder" in capsys.readouterr().err
    assert not (scans_dir / "out").exists()
    assert main(["build-dataset", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_build_is_never_written_into_a_folder_holding_other_files(scans_dir, tmp_path,
                                                                     capsys):
    """The build folder is new, empty or a build (only what a build writes): one holding other
    files is refused before any scan is read, as the build's files were mixed in with them."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("\\documentclass{article}\n")
    assert main(["build-dataset", str(scans_dir), str(mine), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(mine) in error and "thesis.tex" in error, error
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


class _ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and attrs.get("id", "").startswith("case-"):
            self.rows.append(attrs["id"].removeprefix("case-"))
        if tag == "img":
            self.images.append(attrs["src"])


def test_report_lists_every_case_with_thumbnails_and_failures(build):
    page = (build.out_dir / REPORT_FILE).read_text(encoding="utf-8")
    parser = _ReportParser()
    parser.feed(page)
    assert sorted(parser.rows) == sorted(DONE | FAILED)
    assert len(parser.images) == len(DONE)
    assert all((build.out_dir / src).is_file() for src in parser.images)
    assert "<b>2</b> failed" in page and "not a readable image" in page
    assert "<b>12</b> hips segmented" in page and "<b>0</b> marked for review" in page
    for record in build.records:  # right minus left diameter: shown signed, sorted by size
        if record["status"] == "done":
            right, left = (record["results"][s]["head_diameter_mm"] for s in ("right", "left"))
            assert f'data-sort="{abs(right - left):.2f}">{right - left:+.1f}</td>' in page
            for side in ("right", "left"):
                drop = record["results"][side]["surface_drop_hu"]
                assert f'<td class="num">{drop:.1f}</td>' in page


def test_split_is_reproducible_by_seed():
    cases = [f"case{i:02d}" for i in range(20)]
    first, again = split_cases(cases, 0.2, seed=7), split_cases(cases[::-1], 0.2, seed=7)
    assert first == again and len(first.validation) == 4
    assert sorted(first.train + first.validation) == cases
    assert split_cases(cases, 0.2, seed=8) != first


def test_nnunet_export_follows_the_raw_dataset_rules(build, tmp_path):
    dest = tmp_path / "Dataset501_THAHip"
    split = export_build(build.out_dir, dest, "nnunet", seed=3)
    meta = json.loads((dest / "dataset.json").read_text())
    # nnU-Net v2 raw format: channel_names, labels with background 0 and consecutive integers,
    # numTraining, file_ending; imagesTr/<case>_<channel:04d><ending>, labelsTr/<case><ending>
    assert meta["channel_names"] == {"0": "CT"} and meta["file_ending"] == ".nii.gz"
    assert meta["labels"]["background"] == 0
    assert sorted(meta["labels"].values()) == list(range(len(meta["labels"])))
    labels = sorted(p.name.removesuffix(".nii.gz") for p in (dest / "labelsTr").iterdir())
    images = sorted(p.name for p in (dest / "imagesTr").iterdir())
    assert labels == sorted(DONE) and meta["numTraining"] == len(labels)
    assert images == [f"{case}_0000.nii.gz" for case in labels]
    for case in labels:
        image = sitk.ReadImage(str(dest / "imagesTr" / f"{case}_0000.nii.gz"))
        label = sitk.ReadImage(str(dest / "labelsTr" / f"{case}.nii.gz"))
        assert image.GetSize() == label.GetSize()
        np.testing.assert_allclose(image.GetOrigin(), label.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(image.GetDirection(), label.GetDirection(), atol=1e-6)
        values = np.unique(sitk.GetArrayViewFromImage(label))
        assert set(values.tolist()) == {0, 1, 2}
    folds = json.loads((dest / "splits_final.json").read_text())  # nnU-Net's 5 folds
    assert len(folds) == 5 and folds[0] == {"train": split.train, "val": split.validation}
    assert sorted(c for fold in folds for c in fold["val"]) == sorted(DONE)
    assert all(sorted(f["train"] + f["val"]) == sorted(DONE) for f in folds)
    with pytest.raises(InputError, match="already exists"):
        export_build(build.out_dir, dest, "nnunet")
    with pytest.raises(InputError, match="DatasetXXX_Name"):
        export_build(build.out_dir, tmp_path / "hips", "nnunet")


def test_monai_export_loads_with_monai(build, tmp_path):
    from monai.data import Dataset, load_decathlon_datalist
    from monai.transforms import LoadImaged

    dest = tmp_path / "monai"
    assert main(["export", str(build.out_dir), "--format", "monai", str(dest), "--seed", "3",
                 "--validation-fraction", "0.34", "--quiet"]) == 0
    same = export_build(build.out_dir, tmp_path / "again", "monai", 0.34, seed=3)
    assert json.loads((dest / "export.json").read_text())["validation"] == same.validation
    training = load_decathlon_datalist(str(dest / "datalist.json"), True, "training")
    validation = load_decathlon_datalist(str(dest / "datalist.json"), True, "validation")
    assert len(training) + len(validation) == len(DONE) and len(validation) == 2
    for item in Dataset(training + validation, transform=LoadImaged(keys=["image", "label"])):
        assert item["image"].shape == item["label"].shape and item["image"].ndim == 3
        assert set(np.unique(item["label"].numpy()).tolist()) == {0.0, 1.0, 2.0}


@pytest.mark.parametrize("failure", ["image writer", "os"])
def test_export_to_a_disk_that_fills_is_one_error_line_naming_the_folder(build, tmp_path, capsys,
                                                                         monkeypatch, failure):
    """Disk full part-way through an export: exit code 1, one `error: cannot write to DEST` line
    naming the file, not the hidden staging folder, and nothing left (it was SimpleITK's
    traceback, or `[Errno 28] ...` naming the staging folder)."""
    from THAAnnotatorLib.batch import export as batch_export

    def disk_full(image, path, *args, **kwargs):
        if failure == "os":
            raise OSError(28, "No space left on device", str(path))
        raise RuntimeError(f"ITK ERROR: NiftiImageIO: Write: Error writing {path}")

    monkeypatch.setattr(batch_export.sitk, "WriteImage", disk_full)
    dest = tmp_path / "Dataset506_Full"
    assert main(["export", str(build.out_dir), "--format", "nnunet", str(dest), "--quiet"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write to {dest}: "), lines
    assert "partial" not in lines[0] and "_0000.nii.gz" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_scan_changed_since_the_build(build, scans_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(build.out_dir, out)
    moved = tmp_path / "ct2.nii.gz"
    shutil.copy(scans_dir / "ct2.nii.gz", moved)
    manifest = json.loads((out / MANIFEST_JSON).read_text())
    next(r for r in manifest["cases"] if r["case"] == "ct2")["source"] = str(moved)
    (out / MANIFEST_JSON).write_text(json.dumps(manifest))
    export_build(out, tmp_path / "Dataset502_Fresh", "nnunet")  # unchanged: exported
    write_phantom(moved, 12)
    with pytest.raises(InputError, match="changed or disappeared.*ct2"):
        export_build(out, tmp_path / "Dataset503_Stale", "nnunet")
    assert not (tmp_path / "Dataset503_Stale").exists()
    assert not list(tmp_path.glob(".Dataset503*"))


def test_flagged_hips_stay_out_of_exports_and_slice_datasets_unless_asked(scans_dir, tmp_path,
                                                                           capsys):
    """A scan at 3 mm voxels, where the joint space hardly shows, beside a good one: the
    pipeline marks both coarse hips for review (surface check), so an export and a slice
    dataset built from the build leave that case out, say so, and take it with
    --include-flagged."""
    from THAAnnotatorLib.model.build import add_annotated_scan, annotated_cases_of_build
    from THAAnnotatorLib.model.dataset import SliceDataset
    from THAAnnotatorLib.model.roi import RoiSpec

    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(scans_dir / "ct0.nii.gz", scans / "ct0.nii.gz")
    coarse = phantom_to_sitk(generate_phantom(spacing_mm=(3.0, 3.0, 3.0), fov_mm=FOV_MM, seed=1000))
    sitk.WriteImage(coarse, str(scans / "coarse.nii.gz"), useCompression=True)
    out = tmp_path / "out"
    assert main(["build-dataset", str(scans), str(out), "--workers", "1", "--quiet"]) == 0
    records = {r["case"]: r for r in read_manifest(out)["cases"]}
    assert all(r["status"] == "done" for r in records.values())
    assert all(r["surface_drop_hu"] > 150 for r in records["ct0"]["results"].values())
    assert not any(r["needs_review"] for r in records["ct0"]["results"].values())
    assert all(r["needs_review"] for r in records["coarse"]["results"].values())
    assert "<b>2</b> marked for review" in (out / REPORT_FILE).read_text(encoding="utf-8")

    dest = tmp_path / "Dataset510_Checked"
    capsys.readouterr()
    assert main(["export", str(out), "--format", "nnunet", str(dest), "--quiet"]) == 0
    assert "left out 1 case(s) with a hip marked for review: coarse" in capsys.readouterr().out
    assert sorted(p.name for p in (dest / "labelsTr").iterdir()) == ["ct0.nii.gz"]
    assert json.loads((dest / "export.json").read_text())["left_out_flagged"] == ["coarse"]
    everything = export_build(out, tmp_path / "Dataset511_All", "nnunet", include_flagged=True)
    assert sorted(everything.train + everything.validation) == ["coarse", "ct0"]
    assert everything.left_out_flagged == []

    for include in (False, True):
        dataset = SliceDataset.create(tmp_path / f"slices{include}", RoiSpec())
        added = {folder.name: add_annotated_scan(dataset, scan, folder, scan=folder.name,
                                                 include_flagged=include)
                 for scan, folder in annotated_cases_of_build(out)}
        assert added["ct0"] == (["right", "left"], [])
        assert added["coarse"] == ((["right", "left"], []) if include else ([], ["right", "left"]))


# ------------------------------------------- what the README promises of builds (issue 22)
def test_a_case_done_under_another_software_version_is_redone(tmp_path):
    """The software version is part of a case's resume key: a case built by another version is
    built again, and only then (a second run with this version does no work)."""
    scans = tmp_path / "scans"
    scans.mkdir()
    write_phantom(scans / "ct0.nii.gz", 0)
    out = tmp_path / "out"
    first = build_dataset(scans, out, workers=1)
    assert first.processed == ["ct0"] and first.records[0]["status"] == "done"
    case_json = out / CASES_DIR / "ct0" / "case.json"
    record = json.loads(case_json.read_text())
    record["version"] = "0.0.1.older"  # as an earlier release left it
    case_json.write_text(json.dumps(record))

    redone = build_dataset(scans, out, workers=1)
    assert redone.processed == ["ct0"] and redone.skipped == [], "a case of 0.0.1.older was kept"
    assert json.loads(case_json.read_text()).get("version") == __version__
    assert read_manifest(out)["cases"][0].get("version") == __version__
    again = build_dataset(scans, out, workers=1)
    assert again.processed == [] and again.skipped == ["ct0"]


class _HalfWritten:
    """A file opened for writing that takes half of what it is given, then fails (disk full)."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        self.file.write(data[:len(data) // 2])
        self.file.flush()
        raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.file.close()


@pytest.mark.parametrize("name", [MANIFEST_JSON, MANIFEST_CSV])
def test_a_manifest_write_that_fails_midway_leaves_the_old_manifest_whole(tmp_path, monkeypatch,
                                                                          name):
    """manifest.json and manifest.csv are written to a temporary file that is then renamed: a
    write cut short (disk full, a kill) leaves the earlier manifest as it was, and no temporary
    file behind."""
    import builtins
    import io

    from THAAnnotatorLib.batch.manifest import write_manifest

    def record(case):
        return {"case": case, "source": str(tmp_path / f"{case}.nii.gz"), "checksum": "0" * 64,
                "status": "done", "reasons": [], "sides_found": ["right", "left"],
                "results": {}, "version": __version__, "params": {}, "sides": ["right", "left"]}

    out = tmp_path / "build"
    out.mkdir()
    write_manifest(out, [record("a")], tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_open = builtins.open

    def failing_open(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        if any(m in mode for m in "wax") and Path(file).name.endswith(name):
            return _HalfWritten(opened)
        return opened

    monkeypatch.setattr(builtins, "open", failing_open)
    monkeypatch.setattr(io, "open", failing_open)
    with pytest.raises(OSError, match="No space left on device"):
        write_manifest(out, [record("a"), record("b" * 5000)], tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temporary file left
    assert (out / name).read_bytes() == before[name]
    if name == MANIFEST_JSON:
        assert [c["case"] for c in read_manifest(out)["cases"]] == ["a"]


def _two_failing_scans(folder: Path) -> Path:
    """Two scans that fail at once (not images): a build of them runs in seconds."""
    folder.mkdir()
    for case in ("bad1", "bad2"):
        (folder / f"{case}.nii.gz").write_bytes(f"{case}: not a NIfTI file".encode())
    return folder


def test_build_dataset_ctrl_c_exits_130_keeping_the_finished_cases(tmp_path, capsys,
                                                                   monkeypatch):
    from THAAnnotatorLib import cli_batch

    scans = _two_failing_scans(tmp_path / "scans")
    out = tmp_path / "out"

    def interrupted(self, record):
        raise KeyboardInterrupt  # Ctrl-C as the first case finishes

    monkeypatch.setattr(cli_batch._ProgressBar, "case_finished", interrupted)
    assert main(["build-dataset", str(scans), str(out), "--workers", "1", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted: the finished cases are kept in {out}" in err
    assert read_manifest(out)["cases"]  # whole, readable
    assert not [p for p in (out / CASES_DIR).iterdir() if p.name.startswith(".")]


def test_build_dataset_write_error_mid_build_exits_1(tmp_path, capsys, monkeypatch):
    """A write that fails once the build is under way (disk full): exit code 1, as for an output
    that cannot be written, with one error line; not 2 (bad input) nor 3 (failed cases)."""
    from THAAnnotatorLib.batch import build as batch_build

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(batch_build, "write_manifest", disk_full)
    scans = _two_failing_scans(tmp_path / "scans")
    assert main(["build-dataset", str(scans), str(tmp_path / "out"), "--workers", "1",
                 "--quiet"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "No space left" in lines[0], lines
