"""Nucleotide Transformer downstream tasks, revised version (hub dataset
``InstaDeepAI/nucleotide_transformer_downstream_tasks_revised``).

Layout assumed (the dataset's file tree on the hub): one folder per task,
``<task>/train.parquet`` and ``<task>/test.parquet`` (the ``.fna`` files beside them
hold the same records and are not needed), columns ``sequence`` (str), ``name`` (str),
``label`` (int) and, since the conversion to parquet, ``task`` (the task name). There is
no dev split. Sharded names (``train-00000-of-00002.parquet``) are read in order too.

If a ``task`` column is present, only rows whose value equals the task's source name are
kept, and a file with none is an error (so a mis-filed shard cannot become a task).
"""
from __future__ import annotations

from pathlib import Path

from dnatok.data.download import KNOWN_SOURCES
from dnatok.data.taskdir import task_fields, write_task_dir
from dnatok.data.validate import sha256_file
from dnatok.errors import DataError, UserError

NT_REPO = KNOWN_SOURCES["nt"]["repo_id"]
NT_SPLITS = ("train", "test")


def nt_source(tasks: list[str] | None = None) -> dict:
    """Hub source for :func:`dnatok.data.download.download`: only the parquet files
    (of the given tasks), not the duplicate ``.fna`` copies."""
    patterns = [f"{t}/{s}*.parquet" for t in tasks for s in NT_SPLITS] if tasks else \
        [f"*/{s}*.parquet" for s in NT_SPLITS]
    return {**KNOWN_SOURCES["nt"], "allow_patterns": patterns}


def _split_files(root: Path, task_name: str, split: str) -> list[Path]:
    for folder in (root / task_name, root):
        hits = sorted(folder.glob(f"{split}.parquet")) + sorted(folder.glob(f"{split}-*.parquet"))
        if hits:
            return hits
    return []


def _rows(files: list[Path], task_name: str):
    import pyarrow.parquet as pq

    for path in files:
        try:
            schema = pq.read_schema(path)
        except Exception as err:  # pyarrow raises ArrowInvalid/OSError for non-parquet input
            raise DataError(path, None, f"not a readable parquet file: {err}") from None
        cols = set(schema.names)
        for need in ("sequence", "label"):
            if need not in cols:
                raise DataError(path, None, f"no '{need}' column (columns: {', '.join(schema.names)})")
        wanted = [c for c in ("sequence", "label", "name", "task") if c in cols]
        table = pq.read_table(path, columns=wanted)
        data = table.to_pydict()
        keep = range(table.num_rows)
        if "task" in data:
            keep = [i for i, t in enumerate(data["task"]) if t == task_name]
            if not keep:
                found = sorted({str(t) for t in data["task"]})[:5]
                raise DataError(path, None, f"no row has task == {task_name!r} (found {', '.join(found)})")
        names = data.get("name")
        for i in keep:
            # parquet has no lines: errors say "row N" (1-based data row) in the message
            where = f"{path} (row {i + 1})"
            yield where, None, data["sequence"][i], data["label"][i], (names[i] if names is not None else None)


def prepare_nt_task(parquet_source, task, out_dir, map_iupac: bool = False) -> dict:
    """Prepare one NT task from a hub snapshot folder (``<task>/{train,test}.parquet``) or
    the task's own folder. Writes ``sequence,label,id`` (id = the dataset's ``name``)."""
    info = task_fields(task)
    root = Path(parquet_source)
    if not root.is_dir():
        raise UserError(f"NT source {root} is not a folder (expected a snapshot with <task>/train.parquet)")
    source_name = info.get("source") or info["name"]
    splits, source_files = {}, {}
    for split in NT_SPLITS:
        files = _split_files(root, source_name, split)
        if not files:
            raise UserError(f"{root}: no {source_name}/{split}.parquet")
        import pyarrow.parquet as pq
        try:
            has_id = "name" in pq.read_schema(files[0]).names
        except Exception as err:
            raise DataError(files[0], None, f"not a readable parquet file: {err}") from None
        splits[split] = (_rows(files, source_name), has_id)
        source_files[split] = {"path": str(files[0]) if len(files) == 1 else [str(f) for f in files],
                               "sha256": sha256_file(files[0]) if len(files) == 1 else [sha256_file(f) for f in files]}
    return write_task_dir(out_dir, info, splits, map_iupac=map_iupac, source_files=source_files)
