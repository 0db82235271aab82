"""Nucleotide Transformer (revised) preparation from parquet files laid out like the hub
snapshot (``<task>/{train,test}.parquet``, columns sequence/name/label/task), written
here from synthetic 300 bp sequences (the format is what is tested, not the data)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dnatok.cli
from dnatok.data.download import download
from dnatok.data.nucleotide_transformer import nt_source, prepare_nt_task
from dnatok.data.validate import check_task_dir
from dnatok.errors import DataError, UserError
from dnatok.registry import TASKS

from synthetic import labelled_rows

_ROWS = {"train": labelled_rows(21, 60, 300), "test": labelled_rows(22, 20, 300)}


def rows_of(split, n):
    """The first ``n`` rows of a split, as (sequences, labels): the same rows every call."""
    rows = _ROWS[split][:n]
    return [r[0] for r in rows], [r[1] for r in rows]


def write_parquet(path: Path, seqs, labels, task=None, names=True):
    cols = {"sequence": seqs, "label": pa.array(labels, pa.int64())}
    if names:
        cols["name"] = [f"chr1:{1000 * i}-{1000 * i + 300}|{lab}" for i, lab in enumerate(labels)]
    if task is not None:
        cols["task"] = [task] * len(seqs) if isinstance(task, str) else task
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)


@pytest.fixture
def snapshot(tmp_path) -> Path:
    root = tmp_path / "hub"
    for split, n in (("train", 60), ("test", 20)):
        seqs, labels = rows_of(split, n)
        write_parquet(root / "promoter_tata" / f"{split}.parquet", seqs, labels, task="promoter_tata")
        write_parquet(root / "H3K4me3" / f"{split}.parquet", seqs[:10], labels[:10], task="H3K4me3")
    return root


def test_prepare_from_snapshot(snapshot, tmp_path):
    task = TASKS["nt"]["promoter_tata"]
    meta = prepare_nt_task(snapshot, task, tmp_path / "out")
    assert sorted(meta["files"]) == ["test", "train"]            # NT revised has no dev split
    assert meta["files"]["train"]["rows"] == 60 and meta["files"]["test"]["rows"] == 20
    with open(tmp_path / "out" / "train.csv") as fh:
        rows = list(csv.DictReader(fh))
    seqs, labels = rows_of("train", 60)
    assert [r["sequence"] for r in rows] == seqs and [int(r["label"]) for r in rows] == labels
    assert rows[1]["id"] == f"chr1:1000-1300|{labels[1]}"
    assert check_task_dir(tmp_path / "out")["declared_from"] == "task.json"
    # the task's own folder works as well; without `name` there is no id column
    for split in ("train", "test"):
        s, lab = rows_of(split, 12)
        write_parquet(tmp_path / "own" / f"{split}.parquet", s, lab, names=False)
    prepare_nt_task(tmp_path / "own", task, tmp_path / "out2")
    assert (tmp_path / "out2" / "train.csv").read_text().splitlines()[0] == "sequence,label"


def test_task_column_filters_and_guards(snapshot, tmp_path):
    task = TASKS["nt"]["promoter_tata"]
    seqs, labels = rows_of("train", 30)
    mixed = ["promoter_tata"] * 20 + ["promoter_all"] * 10
    write_parquet(snapshot / "promoter_tata" / "train.parquet", seqs, labels, task=mixed)
    meta = prepare_nt_task(snapshot, task, tmp_path / "a")
    assert meta["files"]["train"]["rows"] == 20
    write_parquet(snapshot / "promoter_tata" / "train.parquet", seqs, labels, task="enhancers")
    with pytest.raises(DataError, match=r"no row has task == 'promoter_tata' \(found enhancers\)"):
        prepare_nt_task(snapshot, task, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_bad_parquet_content_is_located(snapshot, tmp_path):
    task = TASKS["nt"]["promoter_tata"]
    seqs, labels = rows_of("test", 20)
    seqs[6] = seqs[6][:100] + "X" + seqs[6][101:]
    path = snapshot / "promoter_tata" / "test.parquet"
    write_parquet(path, seqs, labels, task="promoter_tata")
    with pytest.raises(DataError) as err:
        prepare_nt_task(snapshot, task, tmp_path / "o")
    assert err.value.path == f"{path} (row 7)" and "invalid symbol(s) 'X'" in err.value.problem
    labels[3] = 2
    write_parquet(path, rows_of("test", 20)[0], labels, task="promoter_tata")
    with pytest.raises(DataError, match=r"row 4.*label 2 out of range"):
        prepare_nt_task(snapshot, task, tmp_path / "o")
    pq.write_table(pa.table({"seq": ["ACGT"], "label": [0]}), path)
    with pytest.raises(DataError, match="no 'sequence' column"):
        prepare_nt_task(snapshot, task, tmp_path / "o")
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable parquet"):
        prepare_nt_task(snapshot, task, tmp_path / "o")
    with pytest.raises(UserError, match="no enhancers/train.parquet"):
        prepare_nt_task(snapshot, TASKS["nt"]["enhancers"], tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_hub_mirror_then_prepare_through_cli(snapshot, tmp_path, monkeypatch, capsys):
    src = nt_source(["promoter_tata"])
    assert src["repo_id"] == "InstaDeepAI/nucleotide_transformer_downstream_tasks_revised"
    hub = download(src, tmp_path / "resources" / "hub", mirror=snapshot)
    assert sorted(p.relative_to(hub).as_posix() for p in hub.rglob("*.parquet")) == \
        ["promoter_tata/test.parquet", "promoter_tata/train.parquet"]
    monkeypatch.setattr(dnatok.cli, "AREAS", ("dnatok.data.cli",))
    assert dnatok.cli.main(["data", "prepare", "--benchmark", "nt", "--task", "promoter_tata", "--source", str(hub),
                            "--out", str(tmp_path / "data" / "nt" / "promoter_tata")]) == 0
    assert json.loads(capsys.readouterr().out)["files"]["test"]["rows"] == 20
    meta = json.loads((tmp_path / "data" / "nt" / "promoter_tata" / "task.json").read_text())
    assert meta["benchmark"] == "nt" and meta["category"] == "promoters" and meta["max_len"] == 300
