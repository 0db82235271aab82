"""Task-folder checks (`dnatok data check`) and the atomic prepare path: on small synthetic
GUE-format folders and broken copies of them, every kind of bad input is rejected with its
file and line, and a failed prepare leaves nothing behind; the real GUE files (../shared)
pass with their registry declarations."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import dnatok.cli
from dnatok.data.gue import prepare_csv_task
from dnatok.data.validate import check_task_dir
from dnatok.errors import DataError, UserError
from dnatok.registry import TASKS

from synthetic import write_csv_task, write_gue_root

COMPLETE_GUE = ["prom/prom_core_all", "prom/prom_core_notata", "prom/prom_core_tata", "prom/prom_300_tata",
                "mouse/0", "mouse/2", "mouse/3", "mouse/4", "tf/0", "tf/1", "tf/2", "tf/3", "tf/4"]


def run_cli(argv, monkeypatch, capsys):
    """The real `dnatok` entry point, restricted to the data area's commands."""
    monkeypatch.setattr(dnatok.cli, "AREAS", ("dnatok.data.cli",))
    code = dnatok.cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def small_task(tmp_path) -> Path:
    """A synthetic GUE-format folder: 40/10/10 rows of 70 bp, two classes, upper case."""
    return write_csv_task(tmp_path / "raw", {"train": 40, "dev": 10, "test": 10}, length=70, num_classes=2, seed=0)


def edit_line(path: Path, line_no: int, new: str | None) -> None:
    """Replace (or with None delete) physical line ``line_no`` (1 = header)."""
    lines = path.read_text().splitlines()
    if new is None:
        del lines[line_no - 1]
    else:
        lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n")


def test_real_gue_tasks_pass_with_registry_declarations(gue_dir):
    for rel in COMPLETE_GUE:
        summary = check_task_dir(gue_dir / rel)
        assert summary["declared_from"].startswith("registry gue/"), rel
        task = next(t for t in TASKS["gue"].values() if t.source == rel)
        assert summary["num_classes"] == task.num_classes
        for split in ("train", "dev", "test"):
            s = summary["splits"][split]
            assert s["max_len"] <= task.max_len and s["min_len"] > 0
            assert sorted(s["label_counts"]) == [str(k) for k in range(task.num_classes)]
    # row counts of the GUE paper (Table 12) for one task
    s = check_task_dir(gue_dir / "prom/prom_core_all")["splits"]
    assert (s["train"]["rows"], s["dev"]["rows"], s["test"]["rows"]) == (47356, 5920, 5920)


def test_registry_declarations_apply_to_a_recognised_folder(tmp_path):
    root = write_gue_root(tmp_path / "GUE", {"mouse/3": {"train": 20, "dev": 4, "test": 4}}, seed=1)
    summary = check_task_dir(root / "mouse/3")
    assert summary["declared_from"] == "registry gue/mouse_3" and summary["num_classes"] == 2
    assert summary["splits"]["train"]["max_len"] == TASKS["gue"]["mouse_3"].max_len
    # a row one base longer than the registry's maximum is refused at its line
    edit_line(root / "mouse/3/dev.csv", 3, "A" * (TASKS["gue"]["mouse_3"].max_len + 1) + ",0")
    with pytest.raises(DataError) as err:
        check_task_dir(root / "mouse/3")
    assert err.value.line == 3 and "exceeds the declared maximum 101" in err.value.problem
    # so is a label outside the registry's class count
    edit_line(root / "mouse/3/dev.csv", 3, "ACGT,2")
    with pytest.raises(DataError, match="out of range") as err:
        check_task_dir(root / "mouse/3")
    assert err.value.line == 3 and err.value.path == str(root / "mouse/3/dev.csv")


def test_partial_gue_task_is_reported_missing_train(tmp_path):
    d = write_csv_task(tmp_path / "splice/reconstructed", {"dev": 6, "test": 6}, length=400, num_classes=3)
    with pytest.raises(DataError) as err:
        check_task_dir(d)
    assert err.value.path.endswith("reconstructed/train.csv") and "missing" in err.value.problem


# (line to edit, replacement, expected words in the problem); line 1 is the header
BAD_ROWS = [
    (1, "seq,label", "header must be"),
    (1, "sequence,label,id,extra", "header must be"),
    (5, "ACGT,1,extra", "expected 2 fields"),
    (6, ",1", "empty sequence"),
    (7, "ACGTXACGT,0", "invalid symbol(s) 'X'"),
    (8, "ACGT-ACGT,0", "invalid symbol(s) '-'"),
    (9, "ACGUACGU,1", "invalid symbol(s) 'U'"),
    (10, "ACGTRACGT,1", "--map-iupac"),
    (11, "ACGT,1.0", "not a non-negative integer"),
    (12, "ACGT,-1", "not a non-negative integer"),
    (13, "ACGT,yes", "not a non-negative integer"),
    (14, "ACGT,2", "out of range"),
    (15, "A" * 71, "expected 2 fields"),
    (16, "A" * 71 + ",0", "exceeds the declared maximum 70"),
    (17, "", "empty line"),
]


@pytest.mark.parametrize("line,new,words", BAD_ROWS)
def test_check_rejects_bad_rows_with_file_and_line(small_task, line, new, words):
    edit_line(small_task / "train.csv", line, new)
    with pytest.raises(DataError) as err:
        check_task_dir(small_task, num_classes=2, max_len=70)
    assert err.value.path == str(small_task / "train.csv")
    assert err.value.line == line
    assert words in err.value.problem
    assert str(err.value).startswith(f"{small_task / 'train.csv'}:{line}: ")


def test_iupac_codes_map_to_n_only_when_asked(small_task):
    edit_line(small_task / "dev.csv", 3, "ACGTRYKMACGTN,1")
    with pytest.raises(DataError):
        check_task_dir(small_task, num_classes=2, max_len=70)
    s = check_task_dir(small_task, num_classes=2, max_len=70, map_iupac=True)
    assert s["splits"]["dev"]["iupac_mapped_rows"] == 1
    assert s["splits"]["dev"]["rows_with_N"] >= 1


def test_lower_case_is_accepted_and_counted(small_task):
    lines = (small_task / "test.csv").read_text().splitlines()
    edit_line(small_task / "test.csv", 2, lines[1].lower())
    s = check_task_dir(small_task, num_classes=2, max_len=70)
    assert s["splits"]["test"]["lowercase_rows"] == 1


def test_file_level_problems(small_task, tmp_path):
    # a class that never occurs in train
    rows = [ln for ln in (small_task / "train.csv").read_text().splitlines()[1:] if ln.endswith(",1")]
    (small_task / "train.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"class\(es\) 0 never occur in train"):
        check_task_dir(small_task, num_classes=2)
    # undeclared class count: labels must be 0..K-1 over all splits
    (small_task / "dev.csv").write_text("sequence,label\nACGT,1\nACGT,3\n")
    with pytest.raises(DataError, match=r"labels are not 0..3"):
        check_task_dir(small_task)
    # header only / empty file
    (small_task / "dev.csv").write_text("sequence,label\n")
    with pytest.raises(DataError, match="no data rows"):
        check_task_dir(small_task)
    (small_task / "dev.csv").write_text("")
    with pytest.raises(DataError) as err:
        check_task_dir(small_task)
    assert err.value.line == 1 and "empty file" in err.value.problem
    (small_task / "test.csv").unlink()
    with pytest.raises(DataError, match="test.csv: missing"):
        check_task_dir(small_task)
    with pytest.raises(UserError, match="does not exist"):
        check_task_dir(tmp_path / "nowhere")


def test_prepare_csv_task_writes_the_contract(small_task, tmp_path):
    info = {"name": "tata_small", "benchmark": "demo", "num_classes": 2, "max_len": 70,
            "category": "promoters", "classes": ["non-promoter", "promoter"]}
    out = tmp_path / "data" / "demo" / "tata_small"
    meta = prepare_csv_task(small_task, info, out)
    assert sorted(p.name for p in out.iterdir()) == ["dev.csv", "provenance.json", "task.json", "test.csv", "train.csv"]
    on_disk = json.loads((out / "task.json").read_text())
    assert on_disk == json.loads(json.dumps(meta))
    for k in ("name", "benchmark", "source", "num_classes", "max_len", "study_len", "metric", "category"):
        assert k in on_disk
    assert on_disk["study_len"] == 70 and on_disk["metric"] == "mcc" and on_disk["source"] == str(small_task)
    assert on_disk["classes"] == ["non-promoter", "promoter"]
    assert on_disk["files"]["train"]["rows"] == 40 and on_disk["files"]["dev"]["rows"] == 10
    # the source was upper-case sequence,label: the copy is byte-identical
    for split in ("train", "dev", "test"):
        assert (out / f"{split}.csv").read_bytes() == (small_task / f"{split}.csv").read_bytes()
    # `check` reads K and L from task.json and verifies the recorded checksums
    assert check_task_dir(out)["declared_from"] == "task.json"
    with open(out / "dev.csv", "a") as fh:
        fh.write("ACGT,0\n")
    with pytest.raises(DataError, match="task.json"):
        check_task_dir(out)


def test_prepare_normalises_case_and_iupac(small_task, tmp_path):
    edit_line(small_task / "train.csv", 2, "acgtnacgt,0")
    edit_line(small_task / "train.csv", 3, "ACGTSWACG,1")
    info = {"name": "t", "benchmark": "demo", "num_classes": 2, "max_len": 70}
    with pytest.raises(DataError) as err:
        prepare_csv_task(small_task, info, tmp_path / "out")
    assert err.value.path == str(small_task / "train.csv") and err.value.line == 3
    meta = prepare_csv_task(small_task, info, tmp_path / "out", map_iupac=True)
    rows = (tmp_path / "out" / "train.csv").read_text().splitlines()
    assert rows[1] == "ACGTNACGT,0" and rows[2] == "ACGTNNACG,1"
    assert meta["normalisation"] == {"uppercased_rows": 1, "iupac_mapped_rows": 1, "map_iupac": True}


def test_failed_prepare_leaves_no_partial_output(small_task, tmp_path):
    info = {"name": "t", "benchmark": "demo", "num_classes": 2, "max_len": 70}
    # the problem sits in the last split written (test), after train and dev were written
    edit_line(small_task / "test.csv", 11, "ACGTZ,0")
    parent = tmp_path / "data"
    with pytest.raises(DataError) as err:
        prepare_csv_task(small_task, info, parent / "t")
    assert err.value.line == 11
    assert list(parent.iterdir()) == []          # no folder, no temporary leftovers
    # an earlier good result survives a failed re-run untouched
    edit_line(small_task / "test.csv", 11, "ACGT,0")
    prepare_csv_task(small_task, info, parent / "t")
    before = {p.name: p.read_bytes() for p in (parent / "t").iterdir()}
    edit_line(small_task / "dev.csv", 4, "ACGT,7")
    with pytest.raises(DataError, match="out of range"):
        prepare_csv_task(small_task, info, parent / "t")
    assert {p.name: p.read_bytes() for p in (parent / "t").iterdir()} == before
    assert [p.name for p in parent.iterdir()] == ["t"]


def test_task_info_is_validated(small_task, tmp_path):
    with pytest.raises(UserError, match="unknown task field"):
        prepare_csv_task(small_task, {"name": "t", "benchmark": "d", "num_classes": 2, "max_len": 70,
                                      "num_class": 2}, tmp_path / "o")
    with pytest.raises(UserError, match="lacks max_len"):
        prepare_csv_task(small_task, {"name": "t", "benchmark": "d", "num_classes": 2}, tmp_path / "o")
    with pytest.raises(UserError, match="class names"):
        prepare_csv_task(small_task, {"name": "t", "benchmark": "d", "num_classes": 2, "max_len": 70,
                                      "classes": ["a", "b", "c"]}, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_cli_check_exit_codes_and_messages(small_task, tmp_path, monkeypatch, capsys):
    code, out, _ = run_cli(["data", "check", str(small_task), "--num-classes", "2", "--max-len", "70"],
                           monkeypatch, capsys)
    assert code == 0 and json.loads(out)["splits"]["train"]["rows"] == 40
    code, _, err = run_cli(["data", "check", str(small_task), "--max-len", "60"], monkeypatch, capsys)
    assert code == 2
    assert f"{small_task / 'train.csv'}:2: sequence length 70 exceeds the declared maximum 60" in err
    edit_line(small_task / "dev.csv", 9, "ACGTMACGT,1")
    code, _, err = run_cli(["data", "check", str(small_task)], monkeypatch, capsys)
    assert code == 2 and f"{small_task / 'dev.csv'}:9: invalid symbol(s) 'M'" in err
    code, _, _ = run_cli(["data", "check", str(small_task), "--map-iupac"], monkeypatch, capsys)
    assert code == 0
    # prepare through the CLI with a task description given as JSON
    info = json.dumps({"name": "t", "benchmark": "demo", "num_classes": 2, "max_len": 70})
    code, _, err = run_cli(["data", "prepare", "--benchmark", "csv", "--task", "t", "--source", str(small_task),
                            "--task-json", info, "--out", str(tmp_path / "o")], monkeypatch, capsys)
    assert code == 2 and "dev.csv:9" in err and not (tmp_path / "o").exists()
    code, out, _ = run_cli(["data", "prepare", "--benchmark", "csv", "--task", "t", "--source", str(small_task),
                            "--task-json", info, "--out", str(tmp_path / "o"), "--map-iupac"], monkeypatch, capsys)
    assert code == 0 and json.loads(out)["files"]["dev"]["rows"] == 10
    code, _, err = run_cli(["data", "prepare", "--benchmark", "csv", "--task", "t", "--source", str(small_task),
                            "--out", str(tmp_path / "p")], monkeypatch, capsys)
    assert code == 2 and "needs --task-json" in err
