"""Per task x model (x tokenizer) summaries over seeds: ``results/{benchmark}/{tokenizer}/summary.tsv``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dnatok.errors import UserError
from dnatok.stats.collect import HP_COLUMNS, METRICS, TRAINING_COLUMNS, VAL_PREFIX

SUMMARY_KEYS = ("benchmark", "task", "category", "model", "tokenizer", "name", "protocol", "hp") + HP_COLUMNS
# Human-readable "mean ± std" columns for the metrics people quote.
FORMATTED = ("mcc", "accuracy", "f1_macro", "f1_binary")


def format_pm(mean: float, std: float, digits: int = 3) -> str:
    """'0.512 ± 0.013'; a single run has no spread and shows its value alone."""
    if pd.isna(mean):
        return ""
    if pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summarise(runs: pd.DataFrame, tokenizer: str | None = None) -> pd.DataFrame:
    """n, mean and sample std (ddof=1) of every metric per task x model x tokenizer (and
    protocol and hyperparameters, so a table that still holds several combinations is
    summarised per combination instead of mixing them).

    Metrics are averaged over the runs where they exist; ``n_<metric>`` counts those.
    ``n`` counts all runs, ``n_collapsed`` the runs the trainer flagged as collapsed
    (predicting a single class) — they are included, as in the study.
    """
    if tokenizer is not None:
        if "tokenizer" not in runs.columns or runs["tokenizer"].isna().all():
            raise UserError("--tokenizer needs a runs table with a tokenizer column "
                            "(the published study tables have none)")
        runs = runs[runs["tokenizer"] == tokenizer]
        if runs.empty:
            raise UserError(f"no runs with tokenizer {tokenizer!r}")
    keys = [k for k in SUMMARY_KEYS if k in runs.columns]
    metrics = [m for m in METRICS if m in runs.columns and runs[m].notna().any()]
    metrics += [VAL_PREFIX + m for m in METRICS
                if VAL_PREFIX + m in runs.columns and runs[VAL_PREFIX + m].notna().any()]
    # epochs trained and the epoch kept, per tokenizer: an early-stopping bias shows here
    metrics += [c for c in TRAINING_COLUMNS if c in runs.columns and runs[c].notna().any()]
    if not metrics:
        raise UserError("the runs table has no metric columns with values")
    rows = []
    for key, g in runs.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key))
        row["n"] = len(g)
        row["n_collapsed"] = int(g["collapsed"].astype(bool).sum()) if "collapsed" in g else 0
        row["seeds"] = ",".join(str(s) for s in sorted(g["seed"].unique()))
        for m in metrics:
            values = g[m].dropna().to_numpy(dtype=float)
            row[f"n_{m}"] = len(values)
            row[f"{m}_mean"] = values.mean() if len(values) else np.nan
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else np.nan
        for m in FORMATTED:
            if m in metrics:
                row[f"{m}_pm"] = format_pm(row[f"{m}_mean"], row[f"{m}_std"])
        rows.append(row)
    out = pd.DataFrame(rows)
    # Keys that are empty throughout (e.g. tokenizer for the published tables) only add noise.
    empty = [k for k in keys if out[k].isna().all()]
    return out.drop(columns=empty)
