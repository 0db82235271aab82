"""Hyperparameter selection: which (learning_rate, batch_size, rc_aug) combination's runs
represent a (task, model) in the tables and tests.

Two rules, named so nobody uses the wrong one by accident:

``study``
    Replays the paper exactly. Rows with missing MCC are dropped; for each (task, model)
    the runs are grouped by (learning_rate, batch_size, rc_aug); Mamba-char and Mamba-bpe
    only consider groups with >= 10 replicates, every other model prefers groups with
    >= 10 replicates, else >= 3, else any; the group with the highest mean **test** MCC
    is kept. Choosing on the test set inflates the kept scores; it exists to reproduce
    the published ``best_replicates_ss.csv``, not for new results.

``validation``
    For the pipeline's own runs: the same grouping and replicate preference (>= 10, else
    >= 3, else any), but the group with the highest mean **validation** MCC is kept, so
    test metrics stay an unbiased estimate.

Ties on the mean score keep the group that sorts first by (learning_rate, batch_size,
rc_aug), which makes the choice independent of row order.

Which rule a pipeline run gets follows its protocol (:func:`rule_for_protocol`, from the
protocol's ``hyperparameter_selection`` field carried in every run's metrics.json):
``corrected`` selects on validation, ``original`` replays the study's test-set choice.
:func:`select_runs` applies it per protocol and also returns the candidate table — every
grid point's replicate count and mean scores, which were eligible, which one won — so the
choice can be read, not only trusted.
"""
from __future__ import annotations

import pandas as pd

from dnatok.errors import UserError
from dnatok.stats.collect import HP_COLUMNS, VAL_PREFIX, normalise_study_task

RULES = ("study", "validation")
# The study required full replicate sets for the two models it tested against each other.
STUDY_STRICT_MODELS = ("Mamba-char", "Mamba-bpe")
PREFERRED_REPLICATES = (10, 3)


def normalise_task(task: str) -> str:
    """The study's task name for a raw published name (``human_tf_0`` -> ``tf_0``)."""
    return normalise_study_task(task)


def _eligible(counts: pd.Series, strict: bool) -> pd.Series:
    """Which hyperparameter groups may be chosen, given their replicate counts."""
    if strict:
        return counts >= PREFERRED_REPLICATES[0]
    for minimum in PREFERRED_REPLICATES:
        if (counts >= minimum).any():
            return counts >= minimum
    return counts >= 1


def rule_for_protocol(hyperparameter_selection: str) -> str:
    """The selection rule of a protocol's ``hyperparameter_selection`` field."""
    rules = {"validation": "validation", "test": "study"}
    if hyperparameter_selection not in rules:
        raise UserError(f"unknown hyperparameter_selection {hyperparameter_selection!r}; "
                        f"expected one of {', '.join(rules)}")
    return rules[hyperparameter_selection]


def select_runs(runs: pd.DataFrame, metric: str = "mcc") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selected runs, candidate table) of a pipeline runs table, each protocol under its
    own rule. Every run must say how its protocol selects (column ``hp_selection``)."""
    if "hp_selection" not in runs.columns or runs["hp_selection"].isna().any():
        raise UserError("runs table lacks hp_selection for some runs (collect them from metrics.json "
                        "written by this version of dnatok)")
    kept, tables = [], []
    for (protocol, how), rows in runs.groupby(["protocol", "hp_selection"], sort=True):
        rule = rule_for_protocol(how)
        cand, winners = _choose(rows, rule, metric, None, STUDY_STRICT_MODELS)
        cand.insert(0, "rule", rule)
        tables.append(cand)
        kept.append(winners)
    if runs["protocol"].nunique() != len(tables):
        raise UserError("a protocol's runs disagree on hp_selection; they come from different protocol definitions")
    selected = runs[runs.index.isin(kept[0].append(kept[1:]))] if kept else runs.iloc[0:0]
    return selected, pd.concat(tables, ignore_index=True)


def candidates(df: pd.DataFrame, rule: str = "validation", metric: str = "mcc",
               group_keys: list[str] | None = None, strict_models=STUDY_STRICT_MODELS) -> pd.DataFrame:
    """One row per (group, hyperparameter combination): ``n_runs``, mean validation and test
    ``metric``, the ``score`` the rule ranks by, ``eligible`` (replicate rule) and
    ``selected`` (the one kept per group; none when no combination is eligible)."""
    return _choose(df, rule, metric, group_keys, strict_models)[0]


def _choose(df: pd.DataFrame, rule: str, metric: str, group_keys, strict_models) -> tuple[pd.DataFrame, pd.Index]:
    """(candidate table, index of the rows of the selected combinations)."""
    if rule not in RULES:
        raise UserError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    score = metric if rule == "study" else VAL_PREFIX + metric
    if score not in df.columns or df[score].isna().all():
        hint = (" (the published tables carry test metrics only; `--rule study` replays the "
                "paper's selection on test MCC)") if rule == "validation" else ""
        raise UserError(f"selection rule {rule!r} needs column {score!r} with values{hint}")
    missing_hp = [c for c in HP_COLUMNS if c not in df.columns]
    if missing_hp:
        raise UserError(f"cannot select hyperparameters: missing column(s) {', '.join(missing_hp)}")
    if group_keys is None:
        group_keys = [c for c in ("benchmark", "task", "model", "tokenizer", "protocol")
                      if c in df.columns and df[c].notna().any()]
    # The study drops runs whose metric is missing before selecting (failed runs).
    data = df[df[score].notna()]
    tables, kept = [], []
    for key, rows in data.groupby(group_keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        model = dict(zip(group_keys, key)).get("model")
        strict = rule == "study" and model in tuple(strict_models)
        agg = {"n_runs": (score, "size"), "score": (score, "mean")}
        for col, name in ((VAL_PREFIX + metric, f"mean_val_{metric}"), (metric, f"mean_test_{metric}")):
            if col in rows.columns:
                agg[name] = (col, "mean")
        by_hp = rows.groupby(list(HP_COLUMNS), sort=True, dropna=False)
        hp = by_hp.agg(**agg).reset_index()
        hp["eligible"] = _eligible(hp["n_runs"], strict).to_numpy()
        hp["selected"] = False
        if hp["eligible"].any():
            # idxmax returns the first maximum in the sorted hyperparameter order (tie rule).
            best = hp.loc[hp["eligible"], "score"].idxmax()
            hp.loc[best, "selected"] = True
            # ngroup numbers the combinations in the same sorted order as the table's rows
            kept.append(rows.index[(by_hp.ngroup() == best).to_numpy()])
        for col, value in zip(group_keys, key):
            hp[col] = value
        tables.append(hp)
    if not tables:
        empty = pd.DataFrame(columns=[*group_keys, *HP_COLUMNS, "n_runs", "score", "eligible", "selected"])
        return empty, df.index[:0]
    out = pd.concat(tables, ignore_index=True)
    out["score_column"] = score
    out = out[[*group_keys, *[c for c in out.columns if c not in group_keys]]]
    return out, (kept[0].append(kept[1:]) if kept else df.index[:0])


def select_best(df: pd.DataFrame, rule: str = "validation", metric: str = "mcc",
                group_keys: list[str] | None = None,
                strict_models=STUDY_STRICT_MODELS) -> pd.DataFrame:
    """Keep, per ``group_keys`` (default: everything that identifies a model on a task),
    the rows of the best hyperparameter combination under ``rule``.

    Returns the kept rows in their original order with the input's columns. A (task,
    model) with no eligible group (e.g. Mamba with fewer than 10 replicates everywhere
    under the study rule) contributes no rows.
    """
    _, kept = _choose(df, rule, metric, group_keys, strict_models)
    # Original row order matters downstream: the paired tests keep the first row of a seed.
    return df[df.index.isin(kept)]


def require_one_grid_point(df: pd.DataFrame, keys=("task", "name", "protocol"),
                           files: str | None = None) -> None:
    """Refuse a table where one (task, name[, protocol]) mixes hyperparameter combinations:
    a test or a mean over it would silently mix them. Selection comes first. ``files``: a
    column naming each row's input file, to name the offending file(s) in the error."""
    hp = [c for c in HP_COLUMNS if c in df.columns]
    if not hp:
        return
    keys = [c for c in keys if c in df.columns]
    combos = df[keys + hp + ([files] if files else [])].drop_duplicates(keys + hp)
    n = combos.groupby(keys, dropna=False).size()
    if (n > 1).any():
        bad = dict(zip(keys, n[n > 1].index[0]))
        where = ""
        if files:
            mask = (combos["task"] == bad["task"]) & (combos["name"] == bad["name"])
            where = ", ".join(sorted(set(combos.loc[mask, files]))) + ": "
        raise UserError(f"{where}{bad['name']} on {bad['task']} has runs with several hyperparameter "
                        "combinations; run `dnatok stats select` first")
