"""Exact-duplicate report of a task folder: within each split and across splits.

Benchmarks are not deduplicated (GUE's ``prom_core_all`` train has 47,356 rows but 47,208
distinct sequences, 42 of them also in test), and a sequence seen in training and scored
again in test inflates the test metric. The report counts, per split, duplicate rows and
sequences carrying conflicting labels; per pair of splits, the distinct sequences shared,
the rows of the later split they cover, and sequences whose *reverse complement* occurs in
the earlier split (a leak for models trained with reverse-complement augmentation).
Sequences are compared upper-cased.
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from dnatok.data.genome import reverse_complement
from dnatok.data.validate import iter_csv, split_files
from dnatok.errors import UserError
from dnatok.io import atomic_path


def _read(path) -> tuple[dict[str, set], dict[str, int]]:
    """``sequence -> labels`` and ``sequence -> rows`` of one split file."""
    labels: dict[str, set] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for _, fields in iter_csv(path):
        seq = fields[0].upper()
        labels[seq].add(fields[1])
        counts[seq] += 1
    return labels, counts


def leakage_report(task_dir, examples: int = 3) -> dict:
    task_dir = Path(task_dir)
    files = split_files(task_dir)
    data, counts, splits = {}, {}, {}
    for split, path in files.items():
        labels, counts[split] = _read(path)
        rows = sum(counts[split].values())
        data[split] = labels
        splits[split] = {
            "rows": rows,
            "distinct": len(labels),
            "duplicate_rows": rows - len(labels),
            "conflicting_label_sequences": sum(1 for v in labels.values() if len(v) > 1),
        }
    pairs = []
    for a, b in combinations(list(files), 2):   # train-dev, train-test, dev-test
        shared = data[a].keys() & data[b].keys()
        rc = {s for s in data[b] if s not in data[a] and reverse_complement(s) in data[a]}
        pairs.append({
            "split": a, "other": b,
            "shared_distinct": len(shared),
            "shared_rows_in_other": sum(counts[b][s] for s in shared),
            "shared_label_conflicts": sum(1 for s in shared if data[a][s] != data[b][s]),
            "shared_revcomp_distinct": len(rc),
            "examples": sorted(shared)[:examples],
        })
    return {"task_dir": str(task_dir), "splits": splits, "pairs": pairs}


def write_leakage(reports: list[dict], out) -> None:
    """Write one or several reports as JSON (``.json``) or long-format TSV (anything else):
    ``task_dir, scope, split, other, metric, value``."""
    out = Path(out)
    if not reports:
        raise UserError("no task folders given")
    with atomic_path(out) as tmp:
        if out.suffix == ".json":
            tmp.write_text(json.dumps(reports if len(reports) > 1 else reports[0], indent=2) + "\n")
            return
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(("task_dir", "scope", "split", "other", "metric", "value"))
            for rep in reports:
                for split, d in rep["splits"].items():
                    for k, v in d.items():
                        w.writerow((rep["task_dir"], "within", split, "", k, v))
                for p in rep["pairs"]:
                    for k, v in p.items():
                        if k not in ("split", "other", "examples"):
                            w.writerow((rep["task_dir"], "across", p["split"], p["other"], k, v))
