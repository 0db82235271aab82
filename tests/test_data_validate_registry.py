"""Task folders checked against the class count their task declares (registry entry
recognised from the path, or task.json): an out-of-range label is an error at its own
file and line, from `dnatok data check` and from the fine-tuning loader alike."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dnatok.cli
from dnatok.data.validate import check_task_dir
from dnatok.errors import DataError
from dnatok.train.splits import load_task

SEQ = "ACGT" * 25        # 100 bp, within mouse_3's 101


def run_cli(argv, monkeypatch, capsys):
    monkeypatch.setattr(dnatok.cli, "AREAS", ("dnatok.data.cli",))
    code = dnatok.cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def write_task(d: Path, bad: tuple[str, int, int] | None = None, meta: dict | None = None) -> Path:
    """train (8 rows), dev and test (4 rows each) with labels 0/1; ``bad = (split, line,
    label)`` puts ``label`` on physical ``line`` (1 = header) of that split."""
    d.mkdir(parents=True)
    for split, n in (("train", 8), ("dev", 4), ("test", 4)):
        rows = [f"{SEQ},{i % 2}" for i in range(n)]
        if bad is not None and bad[0] == split:
            rows[bad[1] - 2] = f"{SEQ},{bad[2]}"
        (d / f"{split}.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    if meta is not None:
        (d / "task.json").write_text(json.dumps(meta))
    return d


def test_registry_folder_out_of_range_label_names_file_and_line(tmp_path):
    d = write_task(tmp_path / "gue" / "mouse" / "3", bad=("test", 3, 7))
    with pytest.raises(DataError) as err:
        check_task_dir(d)
    e = err.value
    assert e.path == str(d / "test.csv") and e.line == 3
    assert "label 7 out of range for a 2-class task mouse_3 (registry gue/mouse_3)" in e.problem
    assert str(e).startswith(f"{d / 'test.csv'}:3: ")
    # a clean copy passes, with the registry's count
    ok = check_task_dir(write_task(tmp_path / "ok" / "mouse" / "3"))
    assert ok["num_classes"] == 2 and ok["declared_from"] == "registry gue/mouse_3"


def test_explicit_num_classes_wins_over_registry(tmp_path):
    d = write_task(tmp_path / "mouse" / "3", bad=("test", 3, 2))
    with pytest.raises(DataError, match=r"label 2 out of range for a 2-class task mouse_3 \(registry"):
        check_task_dir(d)
    with pytest.raises(DataError, match=r"class\(es\) 2 never occur in train \(task declares 3 classes\)"):
        check_task_dir(d, num_classes=3)
    (d / "train.csv").write_text((d / "train.csv").read_text() + f"{SEQ},2\n")
    s = check_task_dir(d, num_classes=3)
    assert s["num_classes"] == 3 and s["declared_from"] == "arguments"
    with pytest.raises(DataError, match=r"train.csv:10: label 2 out of range for a 2-class task mouse_3 "
                                        r"\(--num-classes\)"):
        check_task_dir(d, num_classes=2)


def _problem_at(call, path, line) -> str:
    """The problem text of the DataError ``call()`` raises, checked to be at ``path:line``."""
    with pytest.raises(DataError) as err:
        call()
    assert (err.value.path, err.value.line) == (str(path), line)
    return err.value.problem


def test_task_json_count_and_registry_name(tmp_path):
    meta = {"name": "my_task", "benchmark": "demo", "num_classes": 2, "max_len": 100}
    d = write_task(tmp_path / "anywhere", bad=("dev", 4, 5), meta=meta)
    problem = _problem_at(lambda: check_task_dir(d), d / "dev.csv", 4)
    assert "label 5 out of range for a 2-class task my_task (task.json)" in problem
    # task.json naming a registry task but no class count: the registry's count applies
    d2 = write_task(tmp_path / "elsewhere", bad=("train", 6, 3), meta={"name": "mouse_3", "benchmark": "gue"})
    problem = _problem_at(lambda: check_task_dir(d2), d2 / "train.csv", 6)
    assert "2-class task mouse_3 (registry gue/mouse_3)" in problem


def test_unrecognised_folder_points_at_the_highest_label(tmp_path):
    d = write_task(tmp_path / "unknown_task", bad=("train", 5, 7))
    problem = _problem_at(lambda: check_task_dir(d), d / "train.csv", 5)
    assert "labels are not 0..7: [2, 3, 4, 5, 6] never occur" in problem


def test_load_task_reports_the_bad_labels_own_file_and_line(tmp_path):
    d = write_task(tmp_path / "gue" / "mouse" / "3", bad=("test", 4, 7))
    problem = _problem_at(lambda: load_task(d), d / "test.csv", 4)
    assert "label 7 out of range for a 2-class task mouse_3 (registry gue/mouse_3)" in problem
    meta = {"name": "my_task", "benchmark": "demo", "num_classes": 2, "max_len": 100}
    d2 = write_task(tmp_path / "t", bad=("dev", 2, 9), meta=meta)
    assert "(task.json)" in _problem_at(lambda: load_task(d2), d2 / "dev.csv", 2)
    # an explicit task wins over task.json
    data = load_task(d2, {"name": "my_task", "benchmark": "demo", "num_classes": 10})
    assert data.num_classes == 10


def test_cli_exit_code_and_message(tmp_path, monkeypatch, capsys):
    d = write_task(tmp_path / "mouse" / "3", bad=("test", 3, 7))
    code, out, err = run_cli(["data", "check", str(d)], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert err.strip() == (f"dnatok: error: {d / 'test.csv'}:3: label 7 out of range for a 2-class task "
                           "mouse_3 (registry gue/mouse_3): labels are 0..1")
    code, out, err = run_cli(["data", "check", str(d), "--num-classes", "8"], monkeypatch, capsys)
    assert code == 2 and "task declares 8 classes" in err and "registry" not in err


@pytest.fixture
def broken_mouse_3(tmp_path, gue_dir) -> tuple[Path, int]:
    """A copy of the real GUE mouse/3 (path ending in mouse/3) with one test label set to 7."""
    d = tmp_path / "gue" / "mouse" / "3"
    shutil.copytree(gue_dir / "mouse" / "3", d)
    lines = (d / "test.csv").read_text().splitlines()
    line_no = len(lines) // 2
    seq, _ = lines[line_no - 1].rsplit(",", 1)
    lines[line_no - 1] = f"{seq},7"
    (d / "test.csv").write_text("\n".join(lines) + "\n")
    return d, line_no


def test_real_mouse_3_with_a_label_7(broken_mouse_3, monkeypatch, capsys):
    d, line_no = broken_mouse_3
    where = f"{d / 'test.csv'}:{line_no}"
    with pytest.raises(DataError) as err:
        check_task_dir(d)
    assert str(err.value) == (f"{where}: label 7 out of range for a 2-class task mouse_3 "
                              "(registry gue/mouse_3): labels are 0..1")
    with pytest.raises(DataError) as err:
        load_task(d)
    assert (err.value.path, err.value.line) == (str(d / "test.csv"), line_no)
    code, _, msg = run_cli(["data", "check", str(d)], monkeypatch, capsys)
    assert code == 2 and msg.startswith(f"dnatok: error: {where}: label 7 out of range")
    # the installed command line, as a user runs it
    proc = subprocess.run([sys.executable, "-m", "dnatok", "data", "check", str(d)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and f"{where}: label 7 out of range for a 2-class task mouse_3" in proc.stderr
