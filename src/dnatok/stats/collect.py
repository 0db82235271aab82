"""Reading results into the one internal long table that every stats function uses.

Two sources feed it:

* the pipeline's own runs: one ``metrics.json`` per fine-tuning run
  (``results/finetune/{benchmark}/{task}/{model}/{tokenizer}/seed{seed}/metrics.json``);
  :func:`collect_runs` turns a list of them into a runs table (TSV on disk);
* the study's published per-run CSVs (``combined_ss_results_cleaned.csv``,
  ``best_replicates_ss.csv``): :func:`read_study_csv` maps them onto the same columns.

The shared columns are :data:`KEY_COLUMNS` + :data:`HP_COLUMNS` + test metrics (plain
names: ``mcc``, ``accuracy`` …) + validation metrics (``val_`` prefix). ``name`` is what
the paired tests compare: ``model/tokenizer`` for pipeline runs (``mamba/char``), the
``model`` column for the published tables (``Mamba-char``). Row order is kept as read,
because the study protocol keeps the *first* row when a seed repeats.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from dnatok import registry
from dnatok.errors import DataError, UserError

# Test-set metrics, under their plain names; validation metrics get VAL_PREFIX.
# f1_macro: mean F1 over classes; f1_binary: F1 of the positive class (binary tasks only).
METRICS = ("accuracy", "mcc", "f1_macro", "f1_binary", "precision", "recall", "specificity", "auroc")
REQUIRED_METRICS = ("accuracy", "mcc", "f1_macro", "precision", "recall")
VAL_PREFIX = "val_"
KEY_COLUMNS = ("benchmark", "task", "category", "model", "tokenizer", "name", "protocol", "seed")
HP_COLUMNS = ("learning_rate", "batch_size", "rc_aug")
# Per-run facts of training (not metrics): how long it ran and which epoch it kept.
TRAINING_COLUMNS = ("epochs_run", "best_epoch")
REQUIRED_KEYS = ("benchmark", "task", "model", "tokenizer", "seed", "protocol", "test")
# hp: the grid point's id; hp_selection: the protocol's rule for choosing among grid points.
RUNS_COLUMNS = (KEY_COLUMNS + ("hp",) + HP_COLUMNS + ("hp_selection", "collapsed") + TRAINING_COLUMNS
                + METRICS + tuple(VAL_PREFIX + m for m in METRICS) + ("run_name", "source"))
STUDY_COLUMNS = ("task", "run_name", "seed", "learning_rate", "batch_size", "accuracy", "mcc",
                 "f1", "precision", "recall", "specificity", "model", "rc_aug")


# --------------------------------------------------------------------------- helpers
def normalise_study_task(task: str) -> str:
    """The study's normalised task name (``virus_covid`` -> ``covid`` …)."""
    return registry.STUDY_TASK_ALIASES.get(task, task)


def run_name(model: str, tokenizer: str) -> str:
    """The name a pipeline run is compared under in paired tests."""
    return f"{model}/{tokenizer}"


def _category(task: str, given) -> str | None:
    # The pipeline's own category wins (the demo's simulated tasks carry their own);
    # otherwise the registry's study category, None for tasks outside the 44.
    if isinstance(given, str) and given:
        return given
    return registry.category_of(task)


def _benchmark_of(task: str) -> str | None:
    for bench, tasks in registry.TASKS.items():
        if task in tasks and tasks[task].category is not None:
            return bench
    return None


def _as_bool(value, path, line):
    """rc_aug arrives as bool, 'True'/'true'/'False', 0/1 or missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return np.nan
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    if text in ("", "nan", "none", "na"):
        return np.nan
    raise DataError(path, line, f"rc_aug must be true/false, got {value!r}")


def _as_float(value, path, what):
    if value is None:
        return np.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(path, None, f"{what} must be a number or null, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise DataError(path, None, f"{what} must be a number or null, got {value!r}") from None


# --------------------------------------------------------------------------- metrics.json
def read_metrics_json(path) -> dict:
    """One metrics.json -> one flat row of the runs table.

    Extra keys are ignored; a missing required key raises DataError naming the file.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, None, "metrics file does not exist") from None
    except json.JSONDecodeError as err:
        raise DataError(path, err.lineno, f"not valid JSON: {err.msg}") from None
    if not isinstance(obj, dict):
        raise DataError(path, None, "expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise DataError(path, None, f"missing required key(s): {', '.join(missing)}")
    test = obj["test"]
    if not isinstance(test, dict):
        raise DataError(path, None, "'test' must be an object of metrics")
    missing = [m for m in REQUIRED_METRICS if m not in test]
    if missing:
        raise DataError(path, None, f"'test' lacks metric(s): {', '.join(missing)}")
    for key in ("benchmark", "task", "model", "tokenizer"):
        if not isinstance(obj[key], str) or not obj[key]:
            raise DataError(path, None, f"{key!r} must be a non-empty string")
    seed = obj["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(path, None, f"'seed' must be an integer, got {seed!r}")
    validation = obj.get("validation") or {}
    if not isinstance(validation, dict):
        raise DataError(path, None, "'validation' must be an object of metrics")
    hp = obj.get("hyperparameters") or {}
    if not isinstance(hp, dict):
        raise DataError(path, None, "'hyperparameters' must be an object")

    row = {
        "benchmark": obj["benchmark"],
        "task": obj["task"],
        "category": _category(obj["task"], obj.get("category")),
        "model": obj["model"],
        "tokenizer": obj["tokenizer"],
        "name": obj.get("label") or run_name(obj["model"], obj["tokenizer"]),
        "protocol": obj["protocol"],
        "seed": seed,
        "learning_rate": _as_float(hp.get("learning_rate"), path, "hyperparameters.learning_rate"),
        "batch_size": _as_float(hp.get("batch_size"), path, "hyperparameters.batch_size"),
        "rc_aug": _as_bool(hp.get("rc_aug"), path, None),
        "hp_selection": (obj.get("protocol_fields") or {}).get("hyperparameter_selection"),
        "collapsed": bool(obj.get("collapsed", False)),
        "epochs_run": _as_float(obj.get("epochs_run"), path, "epochs_run"),
        "best_epoch": _as_float(obj.get("best_epoch"), path, "best_epoch"),
        "run_name": obj.get("run_name", ""),
        "source": str(path),
    }
    for m in METRICS:
        row[m] = _as_float(test.get(m), path, f"test.{m}")
        row[VAL_PREFIX + m] = _as_float(validation.get(m), path, f"validation.{m}")
    row["hp"] = _hp_of(row)
    return row


def _hp_of(row: dict) -> str | None:
    from dnatok.config import hp_id

    values = [row[c] for c in HP_COLUMNS]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None
    return hp_id(dict(zip(HP_COLUMNS, values)))


def collect_runs(paths) -> pd.DataFrame:
    """metrics.json files -> runs table (one row per run, columns :data:`RUNS_COLUMNS`).

    Two files describing the same run (same benchmark, task, model, tokenizer, protocol,
    seed and hyperparameters) are an error: one of them would silently win otherwise.
    """
    rows = [read_metrics_json(p) for p in paths]
    if not rows:
        raise UserError("no metrics.json files given")
    runs = pd.DataFrame(rows, columns=list(RUNS_COLUMNS))
    key = ["benchmark", "task", "model", "tokenizer", "protocol", "seed", *HP_COLUMNS]
    dup = runs.duplicated(key, keep=False)
    if dup.any():
        first = runs.loc[dup, "source"].tolist()[:2]
        raise DataError(first[1], None, f"describes the same run as {first[0]}")
    # Whole-number batch sizes are written as integers (128, not 128.0), missing ones empty.
    bs = runs["batch_size"]
    if (bs.dropna() == bs.dropna().round()).all():
        runs["batch_size"] = bs.astype("Int64")
    return runs


# --------------------------------------------------------------------------- study CSV
# The attention models' files (best_replicates.csv, combined_attn_results_cleaned.csv) have
# their own columns: ``lr`` for the learning rate, a ``benchmark`` column, no run_name.
ATTENTION_COLUMNS = ("model", "lr", "benchmark", "task")
STUDY_BENCHMARKS = {"GUE": "gue", "GB": "gb", "NTv2": "nt"}
# NTv1 = the first release of the NT tasks (50 rows of the combined attention file, none in
# best_replicates.csv): kept apart as ``<task>_ntv1``, so outside the 44 study tasks.
SUPERSEDED_BENCHMARKS = {"NTv1": "nt"}


def read_study_csv(path) -> pd.DataFrame:
    """The study's long CSV -> internal table (original columns kept, task normalised).

    Added columns: ``name`` (= ``model``), ``category`` (registry; None for tasks outside
    the 44, e.g. ``phage_fragments``), ``benchmark`` (registry), ``tokenizer`` and
    ``protocol`` (empty: the published table does not carry them), ``raw_task``.
    The attention models' CSV is mapped onto the same columns (``lr`` -> ``learning_rate``,
    benchmark GUE/GB/NTv2 -> gue/gb/nt; see :func:`_from_attention_columns`).
    """
    path = Path(path)
    df = _read_csv(path, ",")
    missing = [c for c in ("task", "seed", "model", "mcc") if c not in df.columns]
    if missing:
        raise DataError(path, 1, f"missing column(s): {', '.join(missing)}")
    df = df.copy()
    df["raw_task"] = df["task"]
    df["task"] = df["task"].map(normalise_study_task)
    if _is_attention_table(df):
        df = _from_attention_columns(df, path)
    else:
        df["benchmark"] = df["task"].map(_benchmark_of)
    df["name"] = df["model"]
    df["category"] = df["task"].map(registry.category_of)
    df["tokenizer"] = np.nan
    df["protocol"] = np.nan
    if "rc_aug" in df.columns:
        df["rc_aug"] = [_as_bool(v, path, i + 2) for i, v in enumerate(df["rc_aug"])]
    _study_f1(df)
    _check_seeds(df, path)
    return df


def _study_f1(df: pd.DataFrame) -> None:
    """The study's one ``f1`` column as the matching dnatok metric: for binary tasks it is
    the positive class's F1 (on every published binary row it equals the harmonic mean of
    the row's precision and recall), for multi-class tasks a macro average (their recall
    differs from accuracy, so it is neither micro nor weighted)."""
    if "f1" not in df.columns:
        return
    tasks = registry.study_tasks()
    classes = df["task"].map(lambda t: tasks[t].num_classes if t in tasks else np.nan)
    df["f1_binary"] = np.where(classes == 2, df["f1"], np.nan)
    df["f1_macro"] = np.where(classes > 2, df["f1"], np.nan)


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    """pandas.read_csv with its failures turned into one-line DataErrors."""
    try:
        return pd.read_csv(path, sep=sep)
    except FileNotFoundError:
        raise DataError(path, None, "file does not exist") from None
    except pd.errors.EmptyDataError:
        raise DataError(path, 1, "file is empty") from None
    except pd.errors.ParserError as err:
        match = re.search(r"line (\d+)", str(err))
        raise DataError(path, int(match.group(1)) if match else None,
                        f"malformed table: {str(err).strip()}") from None


def _check_seeds(df: pd.DataFrame, path) -> None:
    bad = pd.to_numeric(df["seed"], errors="coerce").isna()
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # header is line 1
        raise DataError(path, line, f"seed is not a number: {df['seed'][bad].iloc[0]!r}")
    df["seed"] = pd.to_numeric(df["seed"]).astype(int)


def _is_attention_table(df: pd.DataFrame) -> bool:
    return all(c in df.columns for c in ATTENTION_COLUMNS) and "tokenizer" not in df.columns


def _from_attention_columns(df: pd.DataFrame, path) -> pd.DataFrame:
    """Benchmark names -> gue/gb/nt (checked against the registry), ``lr`` -> ``learning_rate``.

    A study task keeps its registry benchmark; other tasks (``drosophilia_enhancers``) take
    the file's. A task filed under another benchmark than the registry's is an error.
    """
    raw = df["benchmark"].astype(str)
    known = {**STUDY_BENCHMARKS, **SUPERSEDED_BENCHMARKS}
    bad = ~raw.isin(list(known))
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise DataError(path, line, f"unknown benchmark {raw[bad].iloc[0]!r}; "
                                    f"expected one of {', '.join(known)}")
    old = raw.isin(list(SUPERSEDED_BENCHMARKS))
    df.loc[old, "task"] = df.loc[old, "task"] + "_" + raw[old].str.lower()
    given = raw.map(known)
    expected = df["task"].map(_benchmark_of)
    clash = expected.notna() & (expected != given)
    if clash.any():
        i = int(np.flatnonzero(clash.to_numpy())[0])
        raise DataError(path, i + 2, f"task {df['task'].iloc[i]!r} is listed under benchmark "
                                     f"{raw.iloc[i]!r} but the registry has it in "
                                     f"{expected.iloc[i]!r}")
    df["benchmark"] = given
    return df.rename(columns={"lr": "learning_rate"})


def is_study_table(df: pd.DataFrame) -> bool:
    """The published formats: run_name and model (state-space file) or model, lr, benchmark
    and task (attention file), and no tokenizer column."""
    ss = "run_name" in df.columns and "model" in df.columns and "tokenizer" not in df.columns
    return ss or _is_attention_table(df)


# --------------------------------------------------------------------------- any table
def load_table(path) -> pd.DataFrame:
    """Read a runs table (TSV from ``stats collect``/``select``) or a published study CSV.

    The format is recognised by its columns, not its extension; both come back with the
    internal columns ``task, category, name, seed`` and the metrics.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file does not exist")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    df = _read_csv(path, sep)
    if is_study_table(df):
        return read_study_csv(path)
    missing = [c for c in ("task", "model", "tokenizer", "seed") if c not in df.columns]
    if missing:
        raise DataError(path, 1, f"not a runs table or study CSV: missing column(s) {', '.join(missing)}")
    df = df.copy()
    if "name" not in df.columns:
        df["name"] = [run_name(m, t) for m, t in zip(df["model"], df["tokenizer"])]
    given = df["category"] if "category" in df.columns else pd.Series([None] * len(df))
    df["category"] = [_category(t, c) for t, c in zip(df["task"], given)]
    for col in ("benchmark", "protocol"):
        if col not in df.columns:
            df[col] = np.nan
    if "rc_aug" in df.columns:
        df["rc_aug"] = [_as_bool(v, path, i + 2) for i, v in enumerate(df["rc_aug"])]
    _check_seeds(df, path)
    return df


def write_table(df: pd.DataFrame, path) -> None:
    """Write a table atomically; tab-separated for .tsv, comma otherwise."""
    from dnatok.io import atomic_path

    path = Path(path)
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep=sep, index=False)


def read_path_list(path) -> list[str]:
    """One path per line (blank lines and #-comments skipped)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file does not exist")
    return [ln.strip() for ln in path.read_text().splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]
