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
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnatok.data.validate import label_out_of_range
from dnatok.errors import DataError, UserError
from dnatok.registry import Task, task_from_path

SPLIT_FILES = ("train", "dev", "test")

# How a held-out validation set is drawn from train (Protocol.validation_split).
# "by_benchmark" is the study's rule, resolved per task by validation_split_method.
VALIDATION_SPLITS = ("stratified", "torch_random_split", "datasets_train_test_split", "by_benchmark")
_SPLIT_LABELS = {
    "stratified": "stratified",
    "torch_random_split": "random (torch random_split)",
    "datasets_train_test_split": "random (datasets train_test_split)",
}


def validation_split_method(rule: str, benchmark: str | None) -> str:
    """The concrete split method for ``rule`` on a task of ``benchmark``.

    ``by_benchmark`` follows the study: its Nucleotide Transformer tasks were split
    by Hugging Face ``datasets`` (``Dataset.train_test_split(test_size, seed)``), its
    Genomic Benchmarks and GUE tasks (and any unknown task) by
    ``torch.utils.data.random_split``.
    """
    if rule not in VALIDATION_SPLITS:
        raise UserError(f"validation split {rule!r}: expected one of {VALIDATION_SPLITS}")
    if rule == "by_benchmark":
        return "datasets_train_test_split" if benchmark == "nt" else "torch_random_split"
    return rule


@dataclass
class Split:
    """One split's rows, in file order."""
    sequences: list[str]
    labels: np.ndarray          # int64
    ids: list[str]
    # rows of the file this split was taken from (None: all of them, in order), so that
    # work done once per file (tokenization) can be reused for any subset
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, index) -> "Split":
        index = np.asarray(index, dtype=np.int64)
        rows = index if self.rows is None else self.rows[index]
        return Split([self.sequences[i] for i in index], self.labels[index], [self.ids[i] for i in index], rows)


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


def read_split_csv(path: Path, split: str, num_classes: int | None = None,
                   declared_by: str | None = None) -> Split:
    """Read a ``sequence,label[,id]`` CSV; a bad row raises DataError(path, line).

    With ``num_classes``, a label outside 0..num_classes-1 is such an error too;
    ``declared_by`` (e.g. ``"task mouse_3 (registry gue/mouse_3)"``) says whose count it is.
    """
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
            if num_classes is not None and lab >= num_classes:
                raise DataError(path, line, label_out_of_range(lab, num_classes, declared_by))
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
    info = task_info(task_dir, task)
    info.setdefault("name", task_dir.name)
    info.setdefault("benchmark", None)
    info.setdefault("category", None)
    declared = info.get("num_classes")
    declared = int(declared) if declared is not None else None
    source = ("given task" if task is not None else
              "task.json" if (task_dir / "task.json").is_file() else
              f"registry {info['benchmark']}/{info['name']}")
    declared_by = f"task {info['name']} ({source})"
    # every row is checked against the declared class count as it is read, so an
    # out-of-range label is reported at its own file and line
    splits = {name: read_split_csv(task_dir / f"{name}.csv", name, declared, declared_by)
              for name in SPLIT_FILES if (task_dir / f"{name}.csv").is_file()}
    train, test, dev = splits["train"], splits["test"], splits.get("dev")
    seen = max(int(s.labels.max()) for s in splits.values()) + 1
    info["num_classes"] = declared if declared is not None else seen
    true_max = max(len(s) for sp in splits.values() for s in sp.sequences)
    info.setdefault("max_len", true_max)
    info["observed_max_len"] = true_max
    return TaskData(task_dir, train, test, dev, info)


def holdout_split(labels, fraction: float, seed: int, method: str = "stratified") -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) holding out ``fraction`` of the rows. ``method``:

    - ``"stratified"``: per class, a seeded permutation and the first
      ``round(fraction * n_class)`` rows (at least one when the class has two or
      more) go to validation, so every class is represented in the same proportion.
    - ``"torch_random_split"``: exactly ``torch.utils.data.random_split(rows,
      [fraction, 1 - fraction], generator=torch.Generator().manual_seed(seed))``
      with validation first: the study's split for Genomic Benchmarks and GUE.
    - ``"datasets_train_test_split"``: the rows Hugging Face ``datasets`` puts in
      the "test" part of ``Dataset.train_test_split(test_size=fraction, seed=seed)``:
      the study's split for Nucleotide Transformer tasks. Re-implemented here:
      ``ceil(fraction * n)`` rows (the float product, as datasets computes it) are
      the first ones of ``numpy.random.default_rng(seed).permutation(n)``.

    Both index arrays are sorted, so downstream order depends only on the training seed.
    """
    if method not in _SPLIT_LABELS:
        raise UserError(f"validation split {method!r}: expected one of {tuple(_SPLIT_LABELS)}")
    labels = np.asarray(labels)
    n = labels.size
    if not 0 < fraction < 1:
        raise UserError(f"validation fraction must be in (0, 1), got {fraction}")
    if method == "stratified":
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
    elif method == "torch_random_split":
        import torch  # the study's exact split comes from torch's generator

        val_part, _ = torch.utils.data.random_split(range(n), [fraction, 1 - fraction],
                                                    generator=torch.Generator().manual_seed(int(seed)))
        val_idx = np.sort(np.asarray(list(val_part.indices), dtype=np.int64))
    else:
        n_val = math.ceil(float(fraction) * n)
        if n_val >= n:
            raise UserError(f"a validation fraction of {fraction} of {n} rows leaves no training rows")
        val_idx = np.sort(np.random.default_rng(int(seed)).permutation(n)[:n_val]).astype(np.int64)
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def make_validation(data: TaskData, seed: int, from_train: bool, method: str = "stratified",
                    fraction: float = 0.1) -> tuple[Split, Split, str]:
    """(train, validation, where-from) under a protocol's validation rule.

    ``method`` is a :data:`VALIDATION_SPLITS` name (``"by_benchmark"`` is resolved
    with the task's benchmark).
    The where-from string names the method, e.g. ``"random (datasets
    train_test_split) 0.1 of train.csv, split seed 1"``.
    """
    if data.dev is not None and not from_train:
        return data.train, data.dev, "dev.csv"
    method = validation_split_method(method, data.info.get("benchmark"))
    tr, va = holdout_split(data.train.labels, fraction, seed, method)
    how = f"{_SPLIT_LABELS[method]} {fraction:g} of train.csv, split seed {seed}"
    return data.train.subset(tr), data.train.subset(va), how
