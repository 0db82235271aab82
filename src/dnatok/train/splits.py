"""Reading a task folder and carving the validation set out of it.

A task folder holds ``train.csv``, ``test.csv``, optionally ``dev.csv`` (GUE
format: header ``sequence,label`` plus an optional ``id`` column) and optionally
``task.json`` (the registry fields: name, benchmark, num_classes, max_len,
study_len, metric, category). Without ``task.json`` the task is recognised from the
folder path (``.../prom/prom_core_tata``) through the registry when possible.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnatok.errors import DataError, UserError
from dnatok.registry import Task, task_from_path

SPLIT_FILES = ("train", "dev", "test")


@dataclass
class Split:
    """One split's rows, in file order."""
    sequences: list[str]
    labels: np.ndarray          # int64
    ids: list[str]

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, index) -> "Split":
        index = np.asarray(index, dtype=np.int64)
        return Split([self.sequences[i] for i in index], self.labels[index], [self.ids[i] for i in index])


@dataclass
class TaskData:
    path: Path
    train: Split
    test: Split
    dev: Split | None
    info: dict = field(default_factory=dict)   # name, benchmark, num_classes, max_len, study_len …

    @property
    def num_classes(self) -> int:
        return int(self.info["num_classes"])


def read_split_csv(path: Path, split: str) -> Split:
    """Read a ``sequence,label[,id]`` CSV; a bad row raises DataError(path, line)."""
    path = Path(path)
    seqs, labels, ids = [], [], []
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise DataError(path, 1, "empty file (expected header 'sequence,label')") from None
        if "sequence" not in header or "label" not in header:
            raise DataError(path, 1, f"header {header} lacks 'sequence' and 'label' columns")
        i_seq, i_lab = header.index("sequence"), header.index("label")
        i_id = header.index("id") if "id" in header else None
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < len(header):
                raise DataError(path, line, f"{len(row)} fields, expected {len(header)}")
            seq = row[i_seq].strip().upper()
            if not seq:
                raise DataError(path, line, "empty sequence")
            try:
                lab = int(row[i_lab])
            except ValueError:
                raise DataError(path, line, f"label {row[i_lab]!r} is not an integer") from None
            if lab < 0:
                raise DataError(path, line, f"negative label {lab}")
            seqs.append(seq)
            labels.append(lab)
            ids.append(row[i_id] if i_id is not None else f"{split}_{len(ids)}")
    if not seqs:
        raise DataError(path, None, "no data rows")
    return Split(seqs, np.asarray(labels, dtype=np.int64), ids)


def task_info(task_dir: Path, task: "Task | dict | None" = None) -> dict:
    """Registry-style description of the task in ``task_dir``: an explicit ``task``
    wins, then ``task.json``, then the registry entry recognised from the path."""
    if isinstance(task, Task):
        return task.to_dict()
    if isinstance(task, dict):
        return dict(task)
    meta = Path(task_dir) / "task.json"
    if meta.is_file():
        try:
            return json.loads(meta.read_text())
        except json.JSONDecodeError as err:
            raise DataError(meta, err.lineno, f"invalid JSON: {err.msg}") from None
    known = task_from_path(str(Path(task_dir).resolve()))
    return known.to_dict() if known else {}


def load_task(task_dir, task: "Task | dict | None" = None) -> TaskData:
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise UserError(f"task folder {task_dir} does not exist")
    for needed in ("train", "test"):
        if not (task_dir / f"{needed}.csv").is_file():
            raise UserError(f"{task_dir} has no {needed}.csv (expected train.csv, [dev.csv,] test.csv)")
    train = read_split_csv(task_dir / "train.csv", "train")
    test = read_split_csv(task_dir / "test.csv", "test")
    dev = read_split_csv(task_dir / "dev.csv", "dev") if (task_dir / "dev.csv").is_file() else None
    info = task_info(task_dir, task)
    info.setdefault("name", task_dir.name)
    info.setdefault("benchmark", None)
    info.setdefault("category", None)
    seen = max(int(s.labels.max()) for s in (train, test, dev) if s is not None) + 1
    declared = info.get("num_classes")
    if declared is not None and seen > int(declared):
        raise DataError(task_dir / "train.csv", None, f"labels reach {seen - 1} but the task declares "
                        f"{declared} classes")
    info["num_classes"] = int(declared or seen)
    true_max = max(len(s) for sp in (train, test, dev) if sp is not None for s in sp.sequences)
    info.setdefault("max_len", true_max)
    info["observed_max_len"] = true_max
    return TaskData(task_dir, train, test, dev, info)


def holdout_split(labels, fraction: float, seed: int, stratified: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) holding out ``fraction`` of the rows.

    ``stratified=True``: per class, a seeded permutation and the first
    ``round(fraction * n_class)`` rows (at least one when the class has two or more)
    go to validation, so every class is represented in the same proportion.
    ``stratified=False``: exactly ``torch.utils.data.random_split(rows, [fraction,
    1 - fraction], generator=torch.Generator().manual_seed(seed))`` with validation
    first, i.e. the study's split, row for row.
    Both sorted, so downstream order depends only on the training seed.
    """
    labels = np.asarray(labels)
    n = labels.size
    if not 0 < fraction < 1:
        raise UserError(f"validation fraction must be in (0, 1), got {fraction}")
    if stratified:
        rng = np.random.default_rng(seed)
        val = []
        for cls in np.unique(labels):
            rows = np.flatnonzero(labels == cls)
            rows = rows[rng.permutation(rows.size)]
            take = int(round(fraction * rows.size))
            if rows.size >= 2:
                take = max(take, 1)
            val.append(rows[:take])
        val_idx = np.sort(np.concatenate(val))
    else:
        import torch  # the study's exact split comes from torch's generator

        val_part, _ = torch.utils.data.random_split(range(n), [fraction, 1 - fraction],
                                                    generator=torch.Generator().manual_seed(int(seed)))
        val_idx = np.sort(np.asarray(list(val_part.indices), dtype=np.int64))
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def make_validation(data: TaskData, seed: int, from_train: bool, stratified: bool,
                    fraction: float = 0.1) -> tuple[Split, Split, str]:
    """(train, validation, where-from) under a protocol's validation rule."""
    if data.dev is not None and not from_train:
        return data.train, data.dev, "dev.csv"
    tr, va = holdout_split(data.train.labels, fraction, seed, stratified)
    how = f"{'stratified' if stratified else 'random'} {fraction:g} of train.csv, split seed {seed}"
    return data.train.subset(tr), data.train.subset(va), how
