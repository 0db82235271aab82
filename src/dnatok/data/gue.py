"""GUE (DNABERT-2's Genome Understanding Evaluation) and any folder in its format.

GUE ships as ``GUE.zip`` with ``GUE/<group>/<task>/{train,dev,test}.csv`` (header
``sequence,label``); a registry task's ``source`` is ``<group>/<task>``. The demo
simulator writes raw folders in the same format, prepared by :func:`prepare_csv_task`.
Both go through :func:`dnatok.data.taskdir.write_task_dir`: copy (upper-cased, optionally
IUPAC->N), validate, ``task.json``, atomically.
"""
from __future__ import annotations

import csv
from pathlib import Path

from dnatok.data.archive import SourceTree
from dnatok.data.taskdir import task_fields, write_task_dir
from dnatok.data.validate import HEADERS, SPLIT_ORDER, iter_csv_handle
from dnatok.errors import DataError, UserError


def _split_rows(tree: SourceTree, name: str):
    """(has_id, rows, sha256) of one source split file."""
    fh, digest = tree.open_text(name)
    label = tree.label(name)
    first = fh.readline()
    fh.seek(0)
    header = tuple(next(csv.reader([first]), []))
    if header not in HEADERS:
        raise DataError(label, 1, f"header must be 'sequence,label' or 'sequence,label,id', got {first.strip()!r}")

    def rows():
        for line, fields in iter_csv_handle(fh, label):
            yield label, line, fields[0], fields[1], (fields[2] if len(fields) == 3 else None)

    return len(header) == 3, rows(), digest


def _prepare_from_tree(tree: SourceTree, prefix: str, task, out_dir, map_iupac: bool) -> dict:
    splits, source_files = {}, {}
    for split in SPLIT_ORDER:
        name = tree.find(f"{prefix}/{split}.csv" if prefix else f"{split}.csv")
        if name is None:
            continue
        has_id, rows, digest = _split_rows(tree, name)
        splits[split] = (rows, has_id)
        source_files[split] = {"path": tree.label(name), "sha256": digest}
    for needed in ("train", "test"):
        if needed not in splits:
            where = f"{tree.root}" + (f" under {prefix}/" if prefix else "")
            raise UserError(f"{where}: no {needed}.csv (a task needs train.csv and test.csv; dev.csv is optional)")
    return write_task_dir(out_dir, task, splits, map_iupac=map_iupac, source_files=source_files)


def prepare_csv_task(src_dir, task_info, out_dir, map_iupac: bool = False) -> dict:
    """Prepare a folder already in GUE format (``train.csv``, [``dev.csv``], ``test.csv``).

    ``task_info``: a registry ``Task`` or a dict with its fields (name, benchmark,
    num_classes, max_len required; optional ``classes`` = label names).
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise UserError(f"source folder {src_dir} does not exist")
    info = task_fields(task_info)
    if not info.get("source"):
        info["source"] = str(src_dir)
    task = {**info, **({"classes": task_info["classes"]} if isinstance(task_info, dict)
                       and task_info.get("classes") is not None else {})}
    # The folder itself: no suffix search, so a nested copy elsewhere can never be picked up.
    tree = SourceTree(src_dir)
    splits, source_files = {}, {}
    for split in SPLIT_ORDER:
        path = src_dir / f"{split}.csv"
        if path.is_file():
            has_id, rows, digest = _split_rows(tree, str(path))
            splits[split] = (rows, has_id)
            source_files[split] = {"path": str(path), "sha256": digest}
    for needed in ("train", "test"):
        if needed not in splits:
            raise UserError(f"{src_dir}: no {needed}.csv (a task needs train.csv and test.csv; dev.csv is optional)")
    return write_task_dir(out_dir, task, splits, map_iupac=map_iupac, source_files=source_files)


def prepare_gue_task(source, task, out_dir, map_iupac: bool = False) -> dict:
    """Prepare one GUE task from ``GUE.zip`` or an extracted ``GUE/`` folder.

    The task's files are found at ``<task.source>/{train,dev,test}.csv`` under any top
    folder; the task folder itself may also be given directly.
    """
    info = task_fields(task)
    rel = (info.get("source") or "").strip("/")
    if not rel:
        raise UserError(f"task {info['name']} has no source path (e.g. prom/prom_core_all)")
    with SourceTree(source) as tree:
        found = [sp for sp in SPLIT_ORDER if tree.find(f"{rel}/{sp}.csv") is not None]
        if not found and tree.zip is None and (tree.root / "train.csv").is_file():
            # the task's own folder was given
            return _prepare_from_tree(tree, "", task, out_dir, map_iupac)
        if not found:
            raise UserError(f"{source}: task {info['name']} not found (looked for {rel}/train.csv)")
        return _prepare_from_tree(tree, rel, task, out_dir, map_iupac)
