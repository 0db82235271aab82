"""The one code path that writes a prepared task folder, whatever the benchmark.

Every ``prepare_*`` function turns its source into rows ``(source_path, line, sequence,
label, id)`` per split and hands them to :func:`write_task_dir`, which validates each row
(errors name the *source* file and line), writes ``{split}.csv`` + ``task.json`` +
``provenance.json`` into a temporary folder, re-checks the result with
:func:`~dnatok.data.validate.check_task_dir` and only then renames it into place: a
failure leaves no partial folder.
"""
from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from dnatok.errors import UserError
from dnatok.io import atomic_path, provenance
from dnatok.data.validate import RowChecker, SplitStats, check_class_coverage, check_task_dir

log = logging.getLogger(__name__)

TASK_FIELDS = ("name", "benchmark", "source", "num_classes", "max_len", "study_len", "metric", "category")


def task_fields(task) -> dict:
    """Registry ``Task`` or a dict with its fields -> the dict task.json starts from.

    Required: name, benchmark, num_classes, max_len; source/study_len/metric/category
    default to the source path, max_len, "mcc" and None. Unknown keys are refused so a
    typo in a config cannot silently drop a setting.
    """
    if hasattr(task, "to_dict"):
        return task.to_dict()
    if not isinstance(task, dict):
        raise UserError(f"task description must be a registry Task or a dict, got {type(task).__name__}")
    extra = set(task) - set(TASK_FIELDS) - {"classes"}
    if extra:
        raise UserError(f"unknown task field(s) {sorted(extra)}; known: {', '.join(TASK_FIELDS)}, classes")
    missing = [k for k in ("name", "benchmark", "num_classes", "max_len") if task.get(k) is None]
    if missing:
        raise UserError(f"task description lacks {', '.join(missing)}")
    out = {k: task.get(k) for k in TASK_FIELDS}
    out["num_classes"], out["max_len"] = int(out["num_classes"]), int(out["max_len"])
    out["study_len"] = int(out["study_len"]) if out["study_len"] is not None else out["max_len"]
    out["metric"] = out["metric"] or "mcc"
    return out


def write_task_dir(out_dir, task, splits: dict[str, tuple[Iterable, bool]], *, classes=None,
                   map_iupac: bool = False, source_files: dict | None = None, extra=None) -> dict:
    """Validate and write a task folder atomically; return the task.json content.

    ``splits``: ``{split: (rows, has_id)}`` with rows ``(src_path, line, seq, label, id)``.
    ``classes``: label names in label order, when the source names them.
    ``source_files``: ``{split: {path, sha256}}`` of the inputs, recorded for provenance.
    ``extra``: more task.json fields, or a function returning them, called after every row
    has been read (for counts gathered while reading).
    """
    info = task_fields(task)
    if classes is None and isinstance(task, dict):
        classes = task.get("classes")
    if classes is not None and len(classes) != info["num_classes"]:
        raise UserError(f"{info['name']}: {len(classes)} class names {list(classes)} but "
                        f"num_classes = {info['num_classes']}")
    checker = RowChecker(info["num_classes"], info["max_len"], map_iupac)
    out_dir = Path(out_dir)
    stats: dict[str, SplitStats] = {}
    with atomic_path(out_dir, is_dir=True) as tmp:
        for split, (rows, has_id) in splits.items():
            st = stats[split] = SplitStats()
            first_src = None
            with open(tmp / f"{split}.csv", "w", newline="") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(("sequence", "label", "id") if has_id else ("sequence", "label"))
                for src, line, seq, label, rid in rows:
                    first_src = first_src or src
                    s, lab = checker.row(seq, label, st, src, line)
                    w.writerow((s, lab, rid) if has_id else (s, lab))
            if st.rows == 0:
                raise UserError(f"{info['name']}: split {split} has no rows"
                                + (f" (source {first_src})" if first_src else ""))
        where = (source_files or {}).get("train", {}).get("path") or info.get("source") or out_dir
        check_class_coverage(stats, info["num_classes"], where, classes)
        # The same check `dnatok data check` runs, on what was actually written.
        summary = check_task_dir(tmp, info["num_classes"], info["max_len"])
        extra = extra() if callable(extra) else extra
        meta = {
            **info,
            "classes": list(classes) if classes is not None else None,
            "files": {s: {"rows": v["rows"], "sha256": v["sha256"]} for s, v in summary["splits"].items()},
            "summary": {s: {k: v for k, v in d.items() if k != "sha256"} for s, d in summary["splits"].items()},
            "normalisation": {
                "uppercased_rows": sum(st.lowercase_rows for st in stats.values()),
                "iupac_mapped_rows": sum(st.iupac_rows for st in stats.values()),
                "map_iupac": map_iupac,
            },
            "source_files": source_files or {},
            **(extra or {}),
        }
        (tmp / "task.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        (tmp / "provenance.json").write_text(json.dumps(provenance(stage="data.prepare", task=info["name"],
                                                                   benchmark=info["benchmark"]),
                                                        indent=2, sort_keys=True, default=str) + "\n")
    log.info("prepared %s/%s -> %s (%s)", info["benchmark"], info["name"], out_dir,
             ", ".join(f"{s}={st.rows}" for s, st in stats.items()))
    return meta
