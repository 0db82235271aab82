"""BEND task files: a header BED, an HDF5 of per-base labels, and ``task.json``.

Layout of a task folder (BEND's own, plus a JSON description)::

    <name>.bed    tab-separated, header exactly ``chromosome start end strand split`` plus
                  ``label`` for multi-label tasks, nothing after (BEND's own layout; 0-based,
                  half-open; ``label`` is a comma list of label indices, possibly empty)
    <name>.hdf5   per-base tasks only: dataset ``labels``, one variable-length int8 array per
                  BED row (in BED order), of length end - start; dataset ``ids``, the record
                  ids (variable-length UTF-8 strings, one per BED row)
    task.json     {name, kind, num_classes | label_depth, genome {path, sha256}, class_names,
                  metric, read_strand, source, counts {split: rows}, bed, hdf5, ...}; for
                  multi-label tasks (no HDF5) also ``ids``, the record ids in BED order

Record ids are read from the HDF5's ``ids`` (per-base) or ``task.json``'s ``ids``; failing
those from a trailing ``name`` BED column (third-party files); failing that they are
``chrom:start-end(strand)``, as for BEND's released files. BEND's released files are read
too: their BED starts with ``chromosome start end`` and has a ``split`` column (``strand``
is optional, ``+`` when absent); columns this module does not know are ignored and listed
in ``meta["ignored_columns"]``. Without a
``task.json`` the number of classes / label depth is taken from the data
(``meta["inferred"]`` says so) unless passed explicitly.

Every problem found while reading is a :class:`~dnatok.errors.DataError` naming the
file and the BED line (the header is line 1) or the HDF5 row (0-based, with its id and
BED line). Writing validates everything first and writes the folder atomically, so a
failed write leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dnatok.errors import DataError, UserError
from dnatok.io import atomic_path

SPLITS = ("train", "valid", "test")
KINDS = ("per_base", "multi_label")
BED_REQUIRED = ("chromosome", "start", "end")
KNOWN_COLUMNS = ("chromosome", "start", "end", "strand", "split", "label", "name")
FORMAT_VERSION = 1
DEFAULT_METRIC = {"per_base": "mcc", "multi_label": "auroc"}
_MITO = ("chrM", "chrMT", "MT", "M")


# --------------------------------------------------------------------------- chromosome names
def resolve_chrom(name: str, names: Iterable[str]) -> str | None:
    """The member of ``names`` (a genome's sequence names) that ``name`` means, or None.

    Tries the name itself, then with the ``chr`` prefix added or removed ('2' vs 'chr2'),
    and the usual spellings of the mitochondrion. Used for BED rows and annotations alike.
    """
    names = names if isinstance(names, (set, frozenset, dict)) else set(names)
    cands = [name, name[3:] if name.startswith("chr") else "chr" + name]
    if name in _MITO:
        cands += [m for m in _MITO if m not in cands]
    return next((c for c in cands if c in names), None)


def genome_lengths(genome) -> dict[str, int]:
    """{sequence name: length} of a FASTA path or an already opened pyfaidx-like reader."""
    fa = _open(genome)
    return {k: len(fa[k]) for k in fa.keys()}


def _open(genome):
    if isinstance(genome, (str, Path)):
        from dnatok.data.genome import open_fasta

        return open_fasta(genome)
    return genome


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- data classes
@dataclass
class BendRecord:
    id: str
    chrom: str
    start: int
    end: int
    strand: str = "+"
    split: str = "train"

    @property
    def length(self) -> int:
        return self.end - self.start

    def default_id(self) -> str:
        return f"{self.chrom}:{self.start}-{self.end}({self.strand})"


@dataclass
class BendTask:
    """A task in memory. ``labels[i]`` belongs to ``records[i]``: for ``per_base`` an integer
    array of length end - start (int8 as written here; BEND's own files may hold int64),
    for ``multi_label`` a uint8 multi-hot array of length ``num_classes`` (= label_depth)."""
    name: str
    kind: str
    num_classes: int
    records: list[BendRecord]
    meta: dict = field(default_factory=dict)
    labels: list[np.ndarray] = field(default_factory=list)

    def split(self, name: str) -> list[int]:
        """Row indices of the records in split ``name``."""
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        return [i for i, r in enumerate(self.records) if r.split == name]

    def counts(self) -> dict[str, int]:
        return {s: sum(r.split == s for r in self.records) for s in SPLITS}

    def sequences(self, genome_fasta, rows: Sequence[int] | None = None) -> list[str]:
        """Upper-case sequences of ``rows`` (all by default) cut from ``genome_fasta`` (path or
        opened reader): + strand, unless the task reads strand (``meta['read_strand']``) and
        the row is on '-', then reverse-complemented."""
        from dnatok.data.genome import reverse_complement

        fa = _open(genome_fasta)
        names = set(fa.keys())
        read_strand = bool(self.meta.get("read_strand", False))
        out = []
        for i in (range(len(self.records)) if rows is None else rows):
            r = self.records[i]
            key = resolve_chrom(r.chrom, names)
            if key is None:
                raise UserError(f"row {i} ({r.id}): chromosome {r.chrom!r} is not in the genome")
            seq = str(fa[key][r.start:r.end]).upper()
            if len(seq) != r.end - r.start:
                raise UserError(f"row {i} ({r.id}): the genome's {key} has only {len(fa[key])} bases")
            if read_strand and r.strand == "-":
                seq = reverse_complement(seq)
            out.append(seq)
        return out


# --------------------------------------------------------------------------- writing
def _multi_hot(lab, depth: int, where: str) -> np.ndarray:
    """A multi-label row as multi-hot: an ndarray is taken as multi-hot already, a
    list/tuple/set as label indices."""
    if isinstance(lab, np.ndarray):
        arr = np.asarray(lab)
        if arr.shape != (depth,) or not np.isin(arr, (0, 1)).all():
            raise UserError(f"{where}: a multi-hot label row must be {depth} values of 0/1")
        return arr.astype(np.uint8)
    idx = [int(x) for x in lab]
    bad = [x for x in idx if not 0 <= x < depth]
    if bad:
        raise UserError(f"{where}: label indices {bad} outside 0..{depth - 1}")
    arr = np.zeros(depth, np.uint8)
    arr[idx] = 1
    return arr


def write_task(out_dir, name: str, kind: str, records: Sequence[BendRecord], labels: Sequence,
               num_classes: int, genome=None, class_names: Sequence[str] | None = None,
               extra_meta: dict | None = None) -> dict:
    """Validate and write a task folder atomically; returns the ``task.json`` content.

    ``genome`` (a FASTA path, optional) is recorded with its sha256 and used to check that
    each row lies on a chromosome of the genome and within it. For ``multi_label`` tasks
    ``num_classes`` is the label depth and each label row is a multi-hot ndarray or a list
    of indices. ``extra_meta`` is merged into ``task.json`` (it may set ``metric``,
    ``read_strand``, ``source`` ...). The BED gets BEND's columns only; the record ids go to
    the HDF5's ``ids`` (per-base) or ``task.json``'s ``ids`` (multi-label), an empty id as
    :meth:`BendRecord.default_id`.
    """
    records, labels = list(records), list(labels)
    _check_task_args(name, kind, records, labels, num_classes, class_names)
    lengths = genome_lengths(genome) if genome is not None else None
    rows = [_checked_row(f"task {name} row {i} ({r.id})", name, kind, r, lab, num_classes, lengths, genome)
            for i, (r, lab) in enumerate(zip(records, labels))]
    meta = _task_meta(name, kind, records, num_classes, genome, class_names, extra_meta)
    ids = [str(r.id) or r.default_id() for r in records]  # an empty id is stored as the default
    if kind == "multi_label":
        meta["ids"] = ids

    with atomic_path(out_dir, is_dir=True) as tmp:
        _write_bed(tmp / f"{name}.bed", kind, records, rows)
        if kind == "per_base":
            _write_hdf5(tmp / f"{name}.hdf5", rows, ids, num_classes)
        (tmp / "task.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return meta


def _check_task_args(name, kind, records, labels, num_classes, class_names) -> None:
    """The checks of :func:`write_task`'s arguments that do not look at single rows."""
    if kind not in KINDS:
        raise UserError(f"task kind {kind!r}: expected one of {', '.join(KINDS)}")
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"bad task name {name!r}")
    if len(labels) != len(records):
        raise UserError(f"task {name}: {len(labels)} label rows for {len(records)} records")
    if num_classes < 1:
        raise UserError(f"task {name}: num_classes must be >= 1")
    if class_names is not None and len(class_names) != num_classes:
        raise UserError(f"task {name}: {len(class_names)} class names for {num_classes} classes")


def _checked_row(where, name, kind, r: BendRecord, lab, num_classes, lengths, genome) -> np.ndarray:
    """Check one record (against ``lengths``, the genome's, when given) and return its label
    row as written: int8 per-base labels or a uint8 multi-hot row. Errors start with ``where``."""
    _check_record(where, r, lengths, genome)
    if kind == "multi_label":
        return _multi_hot(lab, num_classes, where)
    arr = np.asarray(lab)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{where}: per-base labels must be a 1-d integer array")
    if len(arr) != r.end - r.start:
        raise UserError(f"{where}: {len(arr)} labels for {r.end - r.start} bases")
    if len(arr) and (arr.min() < 0 or arr.max() >= num_classes):
        raise UserError(f"{where}: class ids outside 0..{num_classes - 1}")
    if num_classes > 127:
        raise UserError(f"task {name}: int8 labels hold at most 127 classes")
    return arr.astype(np.int8)


def _check_record(where, r: BendRecord, lengths, genome) -> None:
    if r.split not in SPLITS:
        raise UserError(f"{where}: split {r.split!r} is not one of {', '.join(SPLITS)}")
    if r.strand not in ("+", "-"):
        raise UserError(f"{where}: strand {r.strand!r} is not + or -")
    if not (isinstance(r.start, (int, np.integer)) and isinstance(r.end, (int, np.integer))
            and 0 <= r.start < r.end):
        raise UserError(f"{where}: bad interval {r.start}-{r.end}")
    if any(c in str(r.id) for c in "\t\n") or any(c in r.chrom for c in "\t\n "):
        raise UserError(f"{where}: id and chromosome may not contain tabs or newlines")
    if lengths is not None:
        key = resolve_chrom(r.chrom, lengths)
        if key is None:
            raise UserError(f"{where}: chromosome {r.chrom!r} is not in the genome {genome}")
        if r.end > lengths[key]:
            raise UserError(f"{where}: end {r.end} beyond {key} (length {lengths[key]})")


def _task_meta(name, kind, records, num_classes, genome, class_names, extra_meta) -> dict:
    """``task.json``'s content, without the multi-label ``ids`` (an ``ids`` in ``extra_meta``
    is dropped)."""
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "kind": kind,
        ("num_classes" if kind == "per_base" else "label_depth"): int(num_classes),
        "genome": ({"path": str(Path(genome).resolve()), "sha256": file_sha256(genome)}
                   if isinstance(genome, (str, Path)) else None),
        "class_names": list(class_names) if class_names is not None else None,
        "metric": DEFAULT_METRIC[kind],
        "read_strand": False,
        "source": None,
        "counts": {s: sum(r.split == s for r in records) for s in SPLITS},
        "rows": len(records),
        "bed": f"{name}.bed",
        "hdf5": f"{name}.hdf5" if kind == "per_base" else None,
    }
    if kind == "per_base":
        meta["bases"] = int(sum(r.end - r.start for r in records))
    meta.update(extra_meta or {})
    meta.pop("ids", None)
    return meta


def _write_bed(path: Path, kind: str, records, rows) -> None:
    """BEND's BED: the header, then one line per record (multi-label: with its label indices)."""
    cols = ["chromosome", "start", "end", "strand", "split"] + (["label"] if kind == "multi_label" else [])
    with open(path, "w") as fh:
        fh.write("\t".join(cols) + "\n")
        for r, lab in zip(records, rows):
            fields = [r.chrom, str(int(r.start)), str(int(r.end)), r.strand, r.split]
            if kind == "multi_label":
                fields.append(",".join(str(int(j)) for j in np.flatnonzero(lab)))
            fh.write("\t".join(fields) + "\n")


def _write_hdf5(path: Path, rows, ids, num_classes: int) -> None:
    """The per-base HDF5: datasets ``labels`` (vlen int8) and ``ids``, attribute ``num_classes``."""
    import h5py

    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("labels", (len(rows),), dtype=h5py.vlen_dtype(np.int8))
        for i, arr in enumerate(rows):
            ds[i] = arr
        ids_ds = h5.create_dataset("ids", (len(ids),), dtype=h5py.string_dtype("utf-8"))
        if ids:
            ids_ds[:] = ids
        h5.attrs["num_classes"] = int(num_classes)


# --------------------------------------------------------------------------- reading
def _locate(task_dir_or_bed, hdf5):
    """(bed, hdf5 or None, task.json content or None)."""
    p = Path(task_dir_or_bed)
    meta = None
    if p.is_dir():
        tj = p / "task.json"
        if tj.is_file():
            try:
                meta = json.loads(tj.read_text())
            except json.JSONDecodeError as err:
                raise DataError(tj, None, f"invalid JSON ({err})") from None
            bed = p / meta.get("bed", f"{meta.get('name', p.name)}.bed")
            if hdf5 is None and meta.get("hdf5"):
                hdf5 = p / meta["hdf5"]
        else:
            beds = sorted(p.glob("*.bed"))
            if len(beds) != 1:
                raise UserError(f"{p}: no task.json and {len(beds)} .bed files (expected one)")
            bed = beds[0]
    elif p.is_file():
        bed = p
        tj = p.parent / "task.json"
        if tj.is_file():
            try:
                cand = json.loads(tj.read_text())
            except json.JSONDecodeError:
                cand = None
            if cand and cand.get("bed") == p.name:
                meta = cand
    else:
        raise UserError(f"BEND task {p} does not exist")
    if not bed.is_file():
        raise UserError(f"BED file {bed} does not exist")
    if hdf5 is None:
        side = bed.with_suffix(".hdf5")
        hdf5 = side if side.is_file() else None
    return bed, (Path(hdf5) if hdf5 is not None else None), meta


def _read_bed(bed: Path, lengths: dict[str, int] | None, genome_label: str | None):
    """(records, label indices per row or None without a ``label`` column, BED line of each
    record, ignored column names). ``lengths`` (the genome's, optional) enables the
    chromosome/length check; ``genome_label`` names the genome in its errors."""
    records, label_idx, lines = [], [], []
    with open(bed) as fh:
        header, col, ignored = _read_bed_header(bed, fh.readline())
        for lineno, raw in enumerate(fh, start=2):
            line = raw.rstrip("\n\r")
            if not line.strip():
                continue
            f = line.split("\t")
            if len(f) != len(header):
                raise DataError(bed, lineno, f"{len(f)} columns, the header has {len(header)}")
            records.append(_bed_record(bed, lineno, f, col, lengths, genome_label))
            if "label" in col:
                label_idx.append(_bed_label(bed, lineno, f[col["label"]]))
            lines.append(lineno)
    return records, (label_idx if "label" in col else None), lines, ignored


def _read_bed_header(bed: Path, first_line: str) -> tuple[list[str], dict[str, int], list[str]]:
    """(header columns, {known column: index}, ignored column names) of the BED's first line."""
    header_line = first_line.rstrip("\n\r")
    header = header_line.lstrip("#").split("\t")
    if tuple(header[:3]) != BED_REQUIRED or "split" not in header:
        raise DataError(bed, 1, f"header {header_line!r}: expected 'chromosome start end strand split"
                                " [label]' (tab-separated)")
    if len(set(header)) != len(header):
        raise DataError(bed, 1, "repeated column names in the header")
    col = {c: header.index(c) for c in KNOWN_COLUMNS if c in header}
    ignored = [c for c in header if c not in KNOWN_COLUMNS]
    return header, col, ignored


def _bed_record(bed: Path, lineno: int, f: list[str], col: dict[str, int], lengths, genome_label) -> BendRecord:
    """The checked record of one BED line's fields ``f``."""
    chrom = f[col["chromosome"]]
    try:
        start, end = int(f[col["start"]]), int(f[col["end"]])
    except ValueError:
        raise DataError(bed, lineno, f"start/end {f[col['start']]!r}, {f[col['end']]!r} "
                                     "are not integers") from None
    if not 0 <= start < end:
        raise DataError(bed, lineno, f"start {start} must be >= 0 and < end {end}")
    strand = f[col["strand"]] if "strand" in col else "+"
    if strand not in ("+", "-"):
        raise DataError(bed, lineno, f"strand {strand!r} is not + or -")
    split = f[col["split"]]
    if split not in SPLITS:
        raise DataError(bed, lineno, f"split {split!r} is not one of {', '.join(SPLITS)}")
    if lengths is not None:
        key = resolve_chrom(chrom, lengths)
        if key is None:
            raise DataError(bed, lineno, f"chromosome {chrom!r} is not in the genome {genome_label}")
        if end > lengths[key]:
            raise DataError(bed, lineno, f"end {end} is beyond the end of {key} "
                                         f"(length {lengths[key]}) in {genome_label}")
    rec = BendRecord(id="", chrom=chrom, start=start, end=end, strand=strand, split=split)
    rec.id = f[col["name"]] if "name" in col and f[col["name"]] else rec.default_id()  # ids may
    # still come from the HDF5 / task.json (read_task)
    return rec


def _bed_label(bed: Path, lineno: int, field_text: str) -> list[int]:
    """The label indices of a ``label`` field (a comma list, possibly empty)."""
    text = field_text.strip()
    try:
        idx = [int(x) for x in text.split(",") if x.strip()] if text else []
    except ValueError:
        raise DataError(bed, lineno, f"label {text!r} is not a comma list of integers") from None
    if any(x < 0 for x in idx):
        raise DataError(bed, lineno, f"negative label index in {text!r}")
    return idx


def _set_ids(records, ids, source, lines, bed=None) -> None:
    """Give ``records`` the ids stored in ``source`` (HDF5 dataset or task.json list)."""
    if not isinstance(ids, (list, tuple)) or not all(isinstance(x, str) for x in ids):
        raise DataError(source, None, "'ids' must be a list of strings")
    if len(ids) != len(records):
        raise DataError(source, None, f"{len(ids)} ids for {len(records)} BED rows"
                                      + (f" in {bed}" if bed is not None else ""))
    for i, (r, x, lineno) in enumerate(zip(records, ids, lines)):
        if not x:
            raise DataError(source, None, f"row {i} (BED line {lineno}): empty id")
        r.id = x


def read_task(task_dir_or_bed, hdf5=None, genome=None, num_classes: int | None = None,
              label_depth: int | None = None) -> BendTask:
    """Read and check a task folder (with ``task.json``) or a bare BEND BED (+ HDF5).

    ``genome`` (FASTA path or reader) enables the chromosome/length check. Without a
    ``task.json``, ``num_classes``/``label_depth`` may be given; otherwise they are
    inferred from the data (recorded in ``meta['inferred']``).
    """
    bed, hdf5, meta = _locate(task_dir_or_bed, hdf5)
    lengths, glabel = None, None
    if genome is not None:
        lengths = genome_lengths(genome)
        glabel = str(genome) if isinstance(genome, (str, Path)) else "genome"
    records, label_idx, lines, ignored = _read_bed(bed, lengths, glabel)
    meta = dict(meta or {})
    json_ids = meta.pop("ids", None)
    if json_ids is not None:
        _set_ids(records, json_ids, bed.parent / "task.json", lines)
    meta.setdefault("name", bed.stem)
    meta["bed_path"] = str(bed)
    if ignored:
        meta["ignored_columns"] = ignored
    kind = meta["kind"] = _task_kind(meta, bed, hdf5, label_idx)
    inferred: list[str] = []
    if kind == "multi_label":
        labels, n_classes = _multi_label_labels(bed, meta, label_idx, lines, label_depth, inferred)
    else:
        labels, n_classes = _per_base_labels(bed, hdf5, meta, records, lines, num_classes, inferred)
    if inferred:
        meta["inferred"] = inferred
    meta.setdefault("read_strand", False)
    return BendTask(name=meta["name"], kind=kind, num_classes=n_classes, records=records, meta=meta,
                    labels=labels)


def _task_kind(meta: dict, bed: Path, hdf5: Path | None, label_idx) -> str:
    """The task's kind: ``task.json``'s, else per-base with an HDF5, multi-label with a
    ``label`` column."""
    if meta.get("kind"):
        kind = meta["kind"]
        if kind not in KINDS:
            raise DataError(bed.parent / "task.json", None, f"kind {kind!r} is not one of {', '.join(KINDS)}")
        return kind
    if hdf5 is not None:
        return "per_base"
    if label_idx is not None:
        return "multi_label"
    raise DataError(bed, None, "no labels: no HDF5 beside the BED and no 'label' column")


def _multi_label_labels(bed: Path, meta: dict, label_idx, lines, label_depth, inferred: list[str]):
    """(multi-hot rows, label depth) of a multi-label task from its BED's label indices; sets
    ``meta['label_depth']`` and appends to ``inferred`` when the depth came from the data."""
    if label_idx is None:
        raise DataError(bed, 1, "a multi-label task needs a 'label' column")
    depth = meta.get("label_depth", label_depth)
    if depth is None:
        depth = max((max(ix) for ix in label_idx if ix), default=-1) + 1
        inferred.append("label_depth")
    depth = int(depth)
    labels = []
    for ix, lineno in zip(label_idx, lines):
        bad = [x for x in ix if x >= depth]
        if bad:
            raise DataError(bed, lineno, f"label indices {bad} not below label_depth {depth}")
        arr = np.zeros(depth, np.uint8)
        arr[ix] = 1
        labels.append(arr)
    meta["label_depth"] = depth
    return labels, depth


def _per_base_labels(bed: Path, hdf5: Path | None, meta: dict, records, lines, num_classes,
                     inferred: list[str]):
    """(label arrays, number of classes) of a per-base task from its HDF5, which may also give
    the records their ids; sets ``meta['num_classes']``/``meta['hdf5_path']`` and appends to
    ``inferred`` when the number of classes came from the data."""
    if hdf5 is None or not hdf5.is_file():
        raise UserError(f"per-base task {bed}: HDF5 label file {hdf5 or bed.with_suffix('.hdf5')} "
                        "does not exist")
    raw, h5_ids = _read_hdf5(hdf5, bed, len(records))
    if h5_ids is not None:
        _set_ids(records, h5_ids, hdf5, lines, bed)
    labels = []
    for i, (r, lineno) in enumerate(zip(records, lines)):
        arr = np.asarray(raw[i])
        where = f"row {i} ({r.id}, {bed.name} line {lineno})"
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(hdf5, None, f"{where}: labels are not a 1-d integer array")
        if len(arr) != r.end - r.start:
            raise DataError(hdf5, None, f"{where}: {len(arr)} labels for {r.end - r.start} bases")
        labels.append(arr)
    n_classes = meta.get("num_classes", num_classes)
    if n_classes is None:
        n_classes = max((int(a.max()) for a in labels if len(a)), default=-1) + 1
        inferred.append("num_classes")
    n_classes = int(n_classes)
    for i, (r, arr, lineno) in enumerate(zip(records, labels, lines)):
        if len(arr) and (arr.min() < 0 or arr.max() >= n_classes):
            bad = sorted(set(arr[(arr < 0) | (arr >= n_classes)].tolist()))
            raise DataError(hdf5, None, f"row {i} ({r.id}, {bed.name} line {lineno}): class ids "
                                        f"{bad[:5]} outside 0..{n_classes - 1}")
    meta["num_classes"] = n_classes
    meta["hdf5_path"] = str(hdf5)
    return labels, n_classes


def _read_hdf5(hdf5: Path, bed: Path, n_rows: int):
    """(the ``labels`` dataset's rows, the ``ids`` as strings or None) of a per-base HDF5
    that must hold ``n_rows`` label rows (the BED's)."""
    import h5py

    try:
        h5 = h5py.File(hdf5, "r")
    except OSError as err:
        raise DataError(hdf5, None, f"cannot open HDF5: {err}") from None
    with h5:
        if "labels" not in h5:
            raise DataError(hdf5, None, f"no dataset 'labels' (found: {', '.join(h5.keys()) or 'none'})")
        ds = h5["labels"]
        if ds.shape[0] != n_rows:
            raise DataError(hdf5, None, f"{ds.shape[0]} label rows for {n_rows} BED rows in {bed}")
        raw = ds[()]
        h5_ids = None
        if "ids" in h5:
            try:
                h5_ids = [x.decode() if isinstance(x, bytes) else str(x) for x in h5["ids"][()].ravel()]
            except (TypeError, ValueError, UnicodeDecodeError) as err:
                raise DataError(hdf5, None, f"dataset 'ids' is not a list of strings ({err})") from None
    return raw, h5_ids
