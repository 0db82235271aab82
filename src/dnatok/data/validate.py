"""Checks of a task folder (``train.csv``, ``[dev.csv]``, ``test.csv`` [+ ``task.json``]).

The same :class:`RowChecker` runs while a source is being prepared (errors then name the
*source* file and line) and in :func:`check_task_dir` (``dnatok data check``), so what
``prepare`` writes is exactly what ``check`` accepts.

Rules: header ``sequence,label`` or ``sequence,label,id``; labels are integers 0..K-1
and every class occurs in train; sequences are non-empty over A/C/G/T/N (lower case is
upper-cased; IUPAC ambiguity codes are errors unless ``map_iupac`` maps them to N);
lengths are at most the declared maximum. K and the maximum come from ``--num-classes``
/ ``--max-len``, else ``task.json``, else the registry entry of the task (named by
``task.json`` or recognised from the folder path); an out-of-range label is reported at
its file and line, naming the task and where its class count came from.
"""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dnatok.errors import DataError, UserError

SPLIT_ORDER = ("train", "dev", "test")
HEADERS = (("sequence", "label"), ("sequence", "label", "id"))
ALPHABET = frozenset("ACGTN")
# IUPAC ambiguity codes (not U: uracil is a definite base, not an ambiguity; an RNA file
# given by mistake should fail, not turn into N).
IUPAC = frozenset("RYSWKMBDHV")
_TO_N = str.maketrans({c: "N" for c in IUPAC})


@dataclass
class SplitStats:
    rows: int = 0
    labels: Counter = field(default_factory=Counter)
    min_len: int | None = None
    max_len: int = 0
    total_len: int = 0
    lowercase_rows: int = 0
    iupac_rows: int = 0
    n_rows: int = 0              # rows containing at least one N
    sha256: str | None = None
    path: str | None = None      # the file these rows came from (when one file)
    first_line: dict = field(default_factory=dict)   # label -> line of its first row

    def add(self, seq: str, label: int, line: int | None = None) -> None:
        n = len(seq)
        self.rows += 1
        self.labels[label] += 1
        if line is not None:
            self.first_line.setdefault(label, line)
        self.total_len += n
        self.max_len = max(self.max_len, n)
        self.min_len = n if self.min_len is None else min(self.min_len, n)
        if "N" in seq:
            self.n_rows += 1

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "label_counts": {str(k): v for k, v in sorted(self.labels.items())},
            "min_len": self.min_len,
            "max_len": self.max_len,
            "mean_len": round(self.total_len / self.rows, 2) if self.rows else None,
            "lowercase_rows": self.lowercase_rows,
            "iupac_mapped_rows": self.iupac_rows,
            "rows_with_N": self.n_rows,
            **({"sha256": self.sha256} if self.sha256 else {}),
        }


def label_out_of_range(label: int, num_classes: int, declared_by: str | None = None) -> str:
    """The problem text of a label outside 0..num_classes-1; ``declared_by`` names whose
    count it is, e.g. ``"task mouse_3 (registry gue/mouse_3)"``."""
    return (f"label {label} out of range for a {num_classes}-class {declared_by or 'task'}: "
            f"labels are 0..{num_classes - 1}")


class RowChecker:
    """Validates and normalises one row at a time; raises ``DataError(path, line, problem)``."""

    def __init__(self, num_classes: int | None = None, max_len: int | None = None, map_iupac: bool = False,
                 declared_by: str | None = None):
        self.num_classes = int(num_classes) if num_classes is not None else None
        self.max_len = int(max_len) if max_len is not None else None
        self.map_iupac = map_iupac
        # who declared the class count, for the error: "task mouse_3 (registry gue/mouse_3)"
        self.declared_by = declared_by

    def sequence(self, seq: str, stats: SplitStats, path, line) -> str:
        if not seq:
            raise DataError(path, line, "empty sequence")
        up = seq.upper()
        if up != seq:
            stats.lowercase_rows += 1
        if not ALPHABET.issuperset(up):
            bad = sorted(set(up) - ALPHABET)
            pos = next(i for i, c in enumerate(up) if c not in ALPHABET) + 1
            if self.map_iupac and IUPAC.issuperset(bad):
                up = up.translate(_TO_N)
                stats.iupac_rows += 1
            else:
                shown = ", ".join(repr(c) for c in bad)
                hint = " (IUPAC ambiguity codes can be mapped to N with --map-iupac)" \
                    if IUPAC.intersection(bad) and not self.map_iupac else ""
                raise DataError(path, line, f"invalid symbol(s) {shown} in sequence, first at position "
                                f"{pos}; allowed: A, C, G, T, N{hint}")
        if self.max_len is not None and len(up) > self.max_len:
            raise DataError(path, line, f"sequence length {len(up)} exceeds the declared maximum {self.max_len}")
        return up

    def label(self, value, path, line) -> int:
        if isinstance(value, str):
            if not (value.isascii() and value.isdigit()):
                raise DataError(path, line, f"label {value!r} is not a non-negative integer")
            lab = int(value)
        else:
            try:
                lab = int(value)
            except (TypeError, ValueError):
                raise DataError(path, line, f"label {value!r} is not an integer") from None
            if lab != value or lab < 0:
                raise DataError(path, line, f"label {value!r} is not a non-negative integer")
        if self.num_classes is not None and lab >= self.num_classes:
            raise DataError(path, line, label_out_of_range(lab, self.num_classes, self.declared_by))
        return lab

    def row(self, seq, label, stats: SplitStats, path, line) -> tuple[str, int]:
        s = self.sequence(seq, stats, path, line)
        lab = self.label(label, path, line)
        stats.add(s, lab, line)
        return s, lab


def check_class_coverage(stats: dict[str, SplitStats], num_classes: int | None, where, names=None) -> int:
    """Every class must occur in train (the model cannot learn a class it never sees);
    without a declared count, the labels seen must be exactly 0..K-1. Returns K."""
    seen = set()
    for st in stats.values():
        seen.update(st.labels)
    if not seen:
        raise DataError(where, None, "no data rows")
    k = num_classes if num_classes is not None else max(seen) + 1
    if num_classes is None:
        missing = sorted(set(range(k)) - seen)
        if missing:
            problem = (f"labels are not 0..{k - 1}: {missing} never occur "
                       "(declare the class count with --num-classes if that is intended)")
            # point at the first row of the highest label, the likeliest culprit
            at = next(((st.path, st.first_line[k - 1]) for st in stats.values()
                       if st.path is not None and k - 1 in st.first_line), None)
            if at is not None:
                raise DataError(at[0], at[1], f"label {k - 1} first occurs here, but {problem}")
            raise DataError(where, None, problem)
    if "train" in stats:
        missing = sorted(set(range(k)) - set(stats["train"].labels))
        if missing:
            shown = ", ".join(f"{m} ({names[m]})" if names else str(m) for m in missing)
            raise DataError(where, None, f"class(es) {shown} never occur in train (task declares {k} classes)")
    return k


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_header(path) -> tuple[str, ...]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        first = next(csv.reader(fh), None)
    if first is None:
        raise DataError(path, 1, "empty file: expected a header 'sequence,label'")
    return tuple(first)


def iter_csv(path):
    """``(line, fields)`` for the data rows of a split file; validates the header and the
    field count. ``line`` counts physical lines (header = 1)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        yield from iter_csv_handle(fh, path)


def iter_csv_handle(fh, path):
    """:func:`iter_csv` on an open text handle; ``path`` is how errors name the file."""
    reader = csv.reader(fh)
    header = next(reader, None)
    if header is None:
        raise DataError(path, 1, "empty file: expected a header 'sequence,label'")
    if tuple(header) not in HEADERS:
        raise DataError(path, 1, f"header must be 'sequence,label' or 'sequence,label,id', got {','.join(header)!r}")
    ncol = len(header)
    for fields in reader:
        line = reader.line_num
        if not fields:
            raise DataError(path, line, "empty line")
        if len(fields) != ncol:
            raise DataError(path, line, f"expected {ncol} fields ({','.join(header)}), found {len(fields)}")
        yield line, fields


def check_csv(path, checker: RowChecker) -> SplitStats:
    stats = SplitStats(path=str(path))
    for line, fields in iter_csv(path):
        checker.row(fields[0], fields[1], stats, path, line)
    if stats.rows == 0:
        raise DataError(path, None, "no data rows")
    return stats


def split_files(task_dir) -> dict[str, Path]:
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise UserError(f"task folder {task_dir} does not exist")
    found = {s: task_dir / f"{s}.csv" for s in SPLIT_ORDER if (task_dir / f"{s}.csv").is_file()}
    for needed in ("train", "test"):
        if needed not in found:
            raise DataError(task_dir / f"{needed}.csv", None, "missing (a task folder needs train.csv and "
                            "test.csv, dev.csv is optional)")
    return found


def load_task_json(task_dir) -> dict | None:
    meta = Path(task_dir) / "task.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text())
    except json.JSONDecodeError as err:
        raise DataError(meta, err.lineno, f"invalid JSON: {err.msg}") from None


def _registry_task(task_dir, meta: dict | None):
    """The registry entry of a task folder: the one ``task.json`` names (benchmark and
    name), else, when ``task.json`` names no task, the one recognised from the path."""
    from dnatok.registry import TASKS, task_from_path

    if meta is not None and meta.get("name") is not None:
        return TASKS.get(meta.get("benchmark"), {}).get(meta["name"])
    return task_from_path(str(Path(task_dir).resolve()))


def check_task_dir(task_dir, num_classes: int | None = None, max_len: int | None = None,
                   map_iupac: bool = False) -> dict:
    """Validate a task folder; return a summary dict or raise ``DataError``.

    The class count and maximum length come from the arguments, else from ``task.json``,
    else from the registry entry of the task (the one ``task.json`` names, or the one
    recognised from the folder path, ``.../prom/prom_core_all``). A label outside the
    declared count is an error at its file and line that names the task and where the
    count came from. When ``task.json`` lists files, their row counts and sha256 must match.
    """
    task_dir = Path(task_dir)
    files = split_files(task_dir)
    meta = load_task_json(task_dir)
    known = _registry_task(task_dir, meta)
    reg = f"registry {known.benchmark}/{known.name}" if known is not None else None
    k_from = "--num-classes" if num_classes is not None else None
    l_from = "--max-len" if max_len is not None else None
    if meta is not None:
        if num_classes is None and meta.get("num_classes") is not None:
            num_classes, k_from = meta["num_classes"], "task.json"
        if max_len is None and meta.get("max_len") is not None:
            max_len, l_from = meta["max_len"], "task.json"
    if known is not None:
        if num_classes is None:
            num_classes, k_from = known.num_classes, reg
        if max_len is None:
            max_len, l_from = known.max_len, reg
    # the summary names the strongest source used: arguments, then task.json, then registry
    used = {f for f in (k_from, l_from) if f is not None}
    declared_from = ("arguments" if used & {"--num-classes", "--max-len"} else
                     "task.json" if "task.json" in used else reg if used else None)
    name = (meta or {}).get("name") or (known.name if known is not None else None)
    declared_by = f"task {name} ({k_from})" if name else f"task ({k_from})"
    checker = RowChecker(num_classes, max_len, map_iupac, declared_by=declared_by)
    stats = {}
    for split, path in files.items():
        stats[split] = check_csv(path, checker)
        stats[split].sha256 = sha256_file(path)
    k = check_class_coverage(stats, checker.num_classes, task_dir)
    if meta is not None:
        names = meta.get("classes")
        if names is not None and len(names) != k:
            raise DataError(task_dir / "task.json", None, f"{len(names)} class names but {k} classes")
        for split, rec in (meta.get("files") or {}).items():
            path = task_dir / f"{split}.csv"
            if split not in stats:
                raise DataError(path, None, "listed in task.json but missing")
            if rec.get("rows") is not None and rec["rows"] != stats[split].rows:
                raise DataError(path, None, f"has {stats[split].rows} rows, task.json says {rec['rows']}")
            if rec.get("sha256") and rec["sha256"] != stats[split].sha256:
                raise DataError(path, None, "sha256 differs from task.json: the file changed after it was prepared")
    return {
        "task_dir": str(task_dir),
        "num_classes": k,
        "max_len": checker.max_len,
        "declared_from": declared_from,
        "map_iupac": map_iupac,
        "splits": {s: st.summary() for s, st in stats.items()},
    }
