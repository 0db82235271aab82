"""GUE preparation from folders and zips laid out like the published GUE.zip, and the
duplicate/leakage report: the logic on small synthetic GUE trees, the real CSVs' row counts
and duplicate facts on ../shared."""
from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest

import dnatok.cli
from dnatok.data.gue import prepare_gue_task
from dnatok.data.leakage import leakage_report
from dnatok.data.validate import check_task_dir
from dnatok.errors import UserError
from dnatok.registry import get_task

from synthetic import random_dna, write_csv_task, write_gue_root, write_rows_csv


def run_cli(argv, monkeypatch, capsys):
    monkeypatch.setattr(dnatok.cli, "AREAS", ("dnatok.data.cli",))
    code = dnatok.cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def zip_gue(root: Path, rels, path: Path) -> Path:
    """A GUE.zip laid out like the published one (``GUE/<group>/<task>/*.csv``) holding the
    tasks ``rels`` of ``root``, with macOS shadow entries that must be ignored."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in rels:
            for split in ("train", "dev", "test"):
                zf.write(root / rel / f"{split}.csv", f"GUE/{rel}/{split}.csv")
                zf.writestr(f"__MACOSX/GUE/{rel}/._{split}.csv", b"\x00\x05junk")
    return path


@pytest.fixture(scope="module")
def syn_gue(tmp_path_factory) -> Path:
    """A synthetic GUE root: two complete registry tasks and a partial one (no train)."""
    root = write_gue_root(tmp_path_factory.mktemp("syn") / "GUE",
                          {"prom/prom_core_tata": {"train": 50, "dev": 8, "test": 9},
                           "tf/4": {"train": 30, "dev": 6, "test": 6}}, seed=4)
    write_csv_task(root / "splice/reconstructed", {"dev": 6, "test": 6}, length=400, num_classes=3, seed=5)
    return root


@pytest.fixture(scope="module")
def syn_zip(syn_gue, tmp_path_factory) -> Path:
    return zip_gue(syn_gue, ("prom/prom_core_tata", "tf/4"), tmp_path_factory.mktemp("zip") / "GUE.zip")


@pytest.fixture(scope="module")
def gue_zip(gue_dir, tmp_path_factory) -> Path:
    """The same layout with two real tasks."""
    return zip_gue(gue_dir, ("prom/prom_core_tata", "tf/4"), tmp_path_factory.mktemp("zip") / "GUE.zip")


def test_prepare_from_folder_and_zip_agree_synthetic(syn_gue, syn_zip, tmp_path):
    task = get_task("gue", "prom_core_tata")
    a = prepare_gue_task(syn_gue, task, tmp_path / "a")
    b = prepare_gue_task(syn_zip, task, tmp_path / "b")
    assert a["files"] == b["files"]
    assert a["files"]["train"]["rows"] == 50 and a["files"]["dev"]["rows"] == 8 and a["files"]["test"]["rows"] == 9
    assert b["source_files"]["train"]["path"] == f"{syn_zip}!GUE/prom/prom_core_tata/train.csv"
    assert a["source_files"]["train"]["path"] == str(syn_gue / "prom/prom_core_tata/train.csv")
    # upper-case sequence,label sources are copied byte for byte
    for split in ("train", "dev", "test"):
        assert (tmp_path / "b" / f"{split}.csv").read_bytes() == \
            (syn_gue / "prom/prom_core_tata" / f"{split}.csv").read_bytes()
    # task.json = registry fields + files + classes
    meta = json.loads((tmp_path / "b" / "task.json").read_text())
    assert {k: meta[k] for k in task.to_dict()} == task.to_dict()
    assert meta["classes"] is None
    assert check_task_dir(tmp_path / "b")["num_classes"] == 2
    # the task's own folder works as a source too
    c = prepare_gue_task(syn_gue / "prom/prom_core_tata", task, tmp_path / "c")
    assert c["files"] == a["files"]
    # the other task in the zip is found by its own source path
    d = prepare_gue_task(syn_zip, get_task("gue", "tf_4"), tmp_path / "d")
    assert d["files"]["train"]["rows"] == 30 and d["max_len"] == 101


def test_prepare_gue_errors(syn_gue, syn_zip, tmp_path):
    with pytest.raises(UserError, match=r"task tf_0 not found \(looked for tf/0/train.csv\)"):
        prepare_gue_task(syn_zip, get_task("gue", "tf_0"), tmp_path / "x")
    with pytest.raises(UserError, match="no train.csv"):
        prepare_gue_task(syn_gue, get_task("gue", "reconstructed"), tmp_path / "x")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(syn_zip.read_bytes()[: syn_zip.stat().st_size // 2])  # no central directory
    with pytest.raises(UserError):
        prepare_gue_task(bad, get_task("gue", "tf_4"), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_prepare_from_folder_and_zip_agree(gue_dir, gue_zip, tmp_path):
    """Real GUE: folder and zip give the same task, with the paper's row counts."""
    task = get_task("gue", "prom_core_tata")
    a = prepare_gue_task(gue_dir, task, tmp_path / "a")
    b = prepare_gue_task(gue_zip, task, tmp_path / "b")
    assert a["files"] == b["files"]
    assert a["files"]["train"]["rows"] == 4904 and a["files"]["test"]["rows"] == 613


def test_leakage_facts_of_real_gue(gue_dir):
    rep = leakage_report(gue_dir / "prom/prom_core_all")
    tr = rep["splits"]["train"]
    assert (tr["rows"], tr["distinct"]) == (47356, 47208)
    pair = next(p for p in rep["pairs"] if (p["split"], p["other"]) == ("train", "test"))
    assert pair["shared_distinct"] == 42
    assert len(pair["examples"]) == 3
    rep = leakage_report(gue_dir / "tf/4")
    tr = rep["splits"]["train"]
    assert (tr["rows"], tr["distinct"], tr["duplicate_rows"]) == (19000, 15211, 3789)
    pair = next(p for p in rep["pairs"] if (p["split"], p["other"]) == ("train", "dev"))
    assert pair["shared_distinct"] == 346
    assert pair["shared_rows_in_other"] >= 346


def test_leakage_counts_on_a_constructed_case(tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    rows = {
        "train": [("AACC", 0), ("aacc", 0), ("GGTA", 1), ("GGTA", 0), ("TTTT", 1)],
        "dev": [("CCCA", 0)],
        # AACC shared (same label); GGTA shared with a conflicting label; TACC is the
        # reverse complement of GGTA; GGTT of AACC
        "test": [("AACC", 0), ("GGTA", 1), ("TACC", 1), ("GGTT", 0), ("AACC", 0)],
    }
    for split, rs in rows.items():
        with open(d / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(("sequence", "label"))
            w.writerows(rs)
    rep = leakage_report(d)
    assert rep["splits"]["train"] == {"rows": 5, "distinct": 3, "duplicate_rows": 2, "conflicting_label_sequences": 1}
    tt = next(p for p in rep["pairs"] if (p["split"], p["other"]) == ("train", "test"))
    assert tt["shared_distinct"] == 2 and tt["shared_rows_in_other"] == 3
    assert tt["shared_label_conflicts"] == 1 and tt["shared_revcomp_distinct"] == 2
    assert [(p["split"], p["other"]) for p in rep["pairs"]] == [("train", "dev"), ("train", "test"), ("dev", "test")]


def leaky_task(folder: Path, seed: int) -> Path:
    """A task folder with known duplicates: train 30 distinct + 5 repeated rows; dev 10
    rows, 3 of them train sequences; test 10 new rows."""
    pool = [random_dna(seed * 1000 + i, 60) for i in range(50)]
    lab = {s: i % 2 for i, s in enumerate(pool)}
    write_rows_csv(folder / "train.csv", [(s, lab[s]) for s in pool[:30] + pool[:5]])
    write_rows_csv(folder / "dev.csv", [(s, lab[s]) for s in pool[25:28] + pool[30:37]])
    write_rows_csv(folder / "test.csv", [(s, lab[s]) for s in pool[40:50]])
    return folder


def test_cli_leakage_tsv_and_json(tmp_path, monkeypatch, capsys):
    a, b = leaky_task(tmp_path / "GUE/tf/4", 1), leaky_task(tmp_path / "GUE/mouse/3", 2)
    tsv = tmp_path / "leak.tsv"
    code, _, _ = run_cli(["data", "leakage", str(a), str(b), "--out", str(tsv)], monkeypatch, capsys)
    assert code == 0
    with open(tsv) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    hit = [r for r in rows if r["task_dir"].endswith("tf/4") and r["scope"] == "across" and r["split"] == "train"
           and r["other"] == "dev" and r["metric"] == "shared_distinct"]
    assert len(hit) == 1 and hit[0]["value"] == "3"
    none = [r for r in rows if r["task_dir"].endswith("tf/4") and r["scope"] == "across" and r["split"] == "train"
            and r["other"] == "test" and r["metric"] == "shared_distinct"]
    assert len(none) == 1 and none[0]["value"] == "0"
    assert {r["task_dir"] for r in rows} == {str(a), str(b)}
    js = tmp_path / "leak.json"
    code, _, _ = run_cli(["data", "leakage", str(a), "--out", str(js)], monkeypatch, capsys)
    tr = json.loads(js.read_text())["splits"]["train"]
    assert code == 0 and (tr["rows"], tr["distinct"], tr["duplicate_rows"]) == (35, 30, 5)
    code, _, err = run_cli(["data", "leakage", str(tmp_path / "none")], monkeypatch, capsys)
    assert code == 2 and "does not exist" in err
