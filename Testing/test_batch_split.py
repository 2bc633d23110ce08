"""Duplicates and patients across an export's split (issue 22, item 2).

One build of 8 scans made once per module: two series of patient P001 (named by file name), a
scan and a byte-for-byte copy of it (built once), two DICOM series of one PatientID and three
more patients; exports are written and read back.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import SimpleITK as sitk

from test_batch import FOV_MM, SPACING_MM, write_phantom
from THAAnnotatorLib.batch.build import build_dataset
from THAAnnotatorLib.batch.export import export_build, group_folds, split_cases
from THAAnnotatorLib.batch.groups import case_groups, dicom_patient_id
from THAAnnotatorLib.batch.manifest import CASES_DIR, MANIFEST_CSV, read_manifest
from THAAnnotatorLib.cli import main
from THAAnnotatorLib.phantom import generate_phantom, phantom_to_sitk

GROUP_BY = r"^(P\d+)_"
FILES = {"P001_a": 0, "P001_b": 1, "P002_a": 2, "P004_a": 5, "P005_a": 6}
DICOM = {"dicom_x": (3, "PAT9"), "dicom_y": (4, "PAT9")}
EXPORTED = set(FILES) | set(DICOM)
SAME_PATIENT = [("P001_a", "P001_b"), ("dicom_x", "dicom_y")]


def write_dicom_series(image: sitk.Image, folder: Path, series_uid: str,
                       patient_id: str | None) -> None:
    """One CT DICOM file per slice along k, with a PatientID when given."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetSize()[2]):
        slab = image[:, :, k : k + 1]
        tags = {"0008|0016": "1.2.840.10008.5.1.4.1.1.2", "0008|0018": f"{series_uid}.{k + 1}",
                "0008|0060": "CT", "0010|0010": "Phantom^Test",
                "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": series_uid,
                "0020|0013": str(k + 1)}
        if patient_id is not None:
            tags["0010|0020"] = patient_id
        for key, value in tags.items():
            slab.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{series_uid}_{k:03d}.dcm"))
        writer.Execute(slab)


@pytest.fixture(scope="module")
def scans_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scans")
    for name, seed in FILES.items():
        write_phantom(root / f"{name}.nii.gz", seed)
    shutil.copy(root / "P002_a.nii.gz", root / "copy_of_P002.nii.gz")
    for number, (name, (seed, patient)) in enumerate(DICOM.items()):
        image = phantom_to_sitk(generate_phantom(spacing_mm=SPACING_MM, fov_mm=FOV_MM, seed=seed))
        write_dicom_series(image, root / name, f"1.2.826.0.1.3680043.2.1125.7{number}", patient)
    return root


@pytest.fixture(scope="module")
def build(scans_dir, tmp_path_factory):
    return build_dataset(scans_dir, tmp_path_factory.mktemp("build") / "out", workers=2)


def fold_of(folds: list[dict], case: str) -> int:
    (index,) = [i for i, fold in enumerate(folds) if case in fold["val"]]
    return index


def test_a_duplicate_scan_is_built_once_and_named(build):
    records = {r["case"]: r for r in build.records}
    assert records["copy_of_P002"]["status"] == "duplicate"
    assert records["copy_of_P002"]["duplicate_of"] == "P002_a"
    assert "same scan as P002_a" in records["copy_of_P002"]["reasons"][0]
    assert records["copy_of_P002"]["checksum"] == records["P002_a"]["checksum"]
    assert {c for c, r in records.items() if r["status"] == "done"} == EXPORTED
    assert build.duplicates == {"copy_of_P002": "P002_a"}
    assert "copy_of_P002" not in build.processed
    assert not (build.out_dir / CASES_DIR / "copy_of_P002").exists()
    manifest = read_manifest(build.out_dir)
    assert manifest["counts"]["duplicate"] == 1 and manifest["counts"]["done"] == 7
    rows = {r["case"]: r for r in csv.DictReader(
        (build.out_dir / MANIFEST_CSV).open(encoding="utf-8"))}
    assert rows["copy_of_P002"]["duplicate_of"] == "P002_a"
    assert rows["P002_a"]["duplicate_of"] == ""


def test_the_terminal_summary_names_the_duplicates(build, scans_dir, capsys):
    assert main(["build-dataset", str(scans_dir), str(build.out_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "8 scans: 7 done, 0 failed, 1 duplicate(s) built once (0 run now, 7 already" in out
    assert "copy_of_P002 = P002_a" in out


def test_nnunet_export_has_five_grouped_folds(build, tmp_path, capsys):
    dest = tmp_path / "Dataset520_Grouped"
    assert main(["export", str(build.out_dir), "--format", "nnunet", str(dest),
                 "--group-by", GROUP_BY, "--quiet"]) == 0
    assert "7 cases in 5 groups" in capsys.readouterr().out
    labels = {p.name.removesuffix(".nii.gz") for p in (dest / "labelsTr").iterdir()}
    assert labels == EXPORTED  # the copy is exported once, as P002_a
    folds = json.loads((dest / "splits_final.json").read_text())
    assert isinstance(folds, list) and len(folds) == 5
    vals = [set(fold["val"]) for fold in folds]
    assert all(vals) and sum(len(v) for v in vals) == len(EXPORTED)
    assert set().union(*vals) == EXPORTED  # disjoint (sizes add up) and covering every case
    for fold in folds:
        assert set(fold["train"]) == EXPORTED - set(fold["val"])
    for one, other in SAME_PATIENT:
        assert fold_of(folds, one) == fold_of(folds, other)
    groups = json.loads((dest / "export.json").read_text())["groups"]
    assert groups["P001_a"] == groups["P001_b"] == "patient:P001"
    assert groups["dicom_x"] == groups["dicom_y"] == "patient:PAT9"
    assert groups["P002_a"] == "patient:P002"


def test_monai_split_keeps_a_patient_on_one_side(build, tmp_path):
    for seed in range(4):
        split = export_build(build.out_dir, tmp_path / f"monai{seed}", "monai", 0.3, seed=seed,
                             group_by=GROUP_BY)
        datalist = json.loads((tmp_path / f"monai{seed}" / "datalist.json").read_text())
        validation = {Path(item["label"]).name.removesuffix(".nii.gz")
                      for item in datalist["validation"]}
        training = {Path(item["label"]).name.removesuffix(".nii.gz")
                    for item in datalist["training"]}
        assert validation == set(split.validation) and validation
        assert training | validation == EXPORTED and not training & validation
        for one, other in SAME_PATIENT:
            assert (one in validation) == (other in validation)


def test_without_group_by_dicom_patients_still_group(build):
    records = [r for r in read_manifest(build.out_dir)["cases"] if r["status"] == "done"]
    groups = case_groups(records, read_manifest(build.out_dir)["scans_dir"])
    assert groups["dicom_x"] == groups["dicom_y"] == "patient:PAT9"
    assert groups["P001_a"] == "scan:P001_a" and groups["P001_b"] == "scan:P001_b"


def test_dicom_patient_id_is_read_from_the_series(scans_dir, tmp_path):
    assert dicom_patient_id(scans_dir / "dicom_x") == "PAT9"
    assert dicom_patient_id(scans_dir / "P001_a.nii.gz") is None
    image = phantom_to_sitk(generate_phantom(spacing_mm=(6.0, 6.0, 6.0), fov_mm=FOV_MM, seed=0))
    write_dicom_series(image, tmp_path / "anonymous", "1.2.826.0.1.3680043.2.1125.79", None)
    assert dicom_patient_id(tmp_path / "anonymous") is None


def test_export_leaves_out_done_duplicates_of_an_older_build(build, tmp_path):
    """A build made before duplicates were recognised has both copies done: exported once."""
    out = tmp_path / "out"
    shutil.copytree(build.out_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    by_case = {r["case"]: r for r in manifest["cases"]}
    copy = dict(by_case["P002_a"], case="copy_of_P002",
                source=by_case["copy_of_P002"]["source"])
    manifest["cases"] = [copy if r["case"] == "copy_of_P002" else r for r in manifest["cases"]]
    (out / "manifest.json").write_text(json.dumps(manifest))
    shutil.copytree(out / CASES_DIR / "P002_a", out / CASES_DIR / "copy_of_P002")
    split = export_build(out, tmp_path / "Dataset521_Old", "nnunet")
    assert split.left_out_duplicates == {"copy_of_P002": "P002_a"}
    assert {c for fold in split.folds for c in fold["val"]} == EXPORTED


def test_folds_and_split_never_cut_a_group():
    cases = [f"c{i:02d}" for i in range(23)]
    groups = {c: f"patient:{int(c[1:]) // 3}" for c in cases}  # 8 patients of 3, one of 2
    for seed in range(10):
        folds = group_folds(cases, seed, groups)
        assert len(folds) == 5
        assert sorted(c for fold in folds for c in fold["val"]) == cases
        for fold in folds:
            assert not {groups[c] for c in fold["val"]} & {groups[c] for c in fold["train"]}
        split = split_cases(cases, 0.2, seed, groups)
        assert not {groups[c] for c in split.validation} & {groups[c] for c in split.train}
        assert 3 <= len(split.validation) <= 6
    # fewer patients than folds: one fold per patient; one patient: nothing to validate on
    assert [f["val"] for f in group_folds(["a", "b", "c"], 0, {"a": "p", "b": "p"})] in (
        [["a", "b"], ["c"]], [["c"], ["a", "b"]])
    assert group_folds(["a", "b"], 0, {"a": "p", "b": "p"}) == [{"train": ["a", "b"], "val": []}]


@pytest.mark.parametrize("pattern", ["(P", r"P\d+", ""])
def test_a_bad_group_by_is_refused_before_any_work(build, tmp_path, capsys, pattern):
    dest = tmp_path / "Dataset522_Bad"
    with pytest.raises(SystemExit) as exit_info:  # argparse's exit, as for every bad option
        main(["export", str(build.out_dir), "--format", "nnunet", str(dest), "--group-by",
              pattern, "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument --group-by: must be a regular "
                                               "expression with a group")
    assert not dest.exists() and not list(tmp_path.glob(".Dataset522*"))


def test_nnunet_refuses_a_validation_fraction(build, tmp_path, capsys):
    dest = tmp_path / "Dataset523_Fraction"
    assert main(["export", str(build.out_dir), "--format", "nnunet", str(dest),
                 "--validation-fraction", "0.3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--validation-fraction" in err[0] and "5 folds" in err[0]
    assert not dest.exists()
