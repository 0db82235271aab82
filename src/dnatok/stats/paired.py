"""Paired tests between two models/tokenizers, following the study's protocol exactly, plus
the robustness columns the original lacked.

The study protocol (Lindsey et al. 2025, char vs BPE Mamba, metric MCC):

1. Input: one row per run (after hyperparameter selection). Rows whose metric is
   missing are dropped.
2. Per task, the runs of A and of B are matched by seed. When a seed repeats within a
   side, the first row (file order) is used. Tasks with fewer than 2 common seeds are
   skipped entirely.
3. ``by="task"``: each task is tested on its first 10 matched seeds (seeds sorted
   numerically); Bonferroni over the tasks tested (44 in the study, alpha = 0.05/44).
4. ``by="category"``: all matched pairs of all tasks of a category are pooled into one
   paired t-test; Bonferroni over the categories tested (9, alpha = 0.05/9).
5. ``by="all"``: one row pooling all matched pairs of all tasks (the study's OVERALL row:
   443 pairs on ``best_replicates_ss.csv``, the sum of the category rows' pairs, not 44 x
   10). It is a single test, so its Bonferroni/Holm family has size 1.
6. Test: two-sided paired t-test (``scipy.stats.ttest_rel``), difference = A - B,
   ``std_diff`` with ddof=1.

Tasks without a study category (e.g. ``phage_fragments`` in the published file) are not
among the 44 and are dropped from every level by default (``keep_uncategorised=True``
keeps them at the task level and in the overall row, for the pipeline's own tasks).

Extra columns: Wilcoxon signed-rank p (two-sided, zero differences dropped), Holm-adjusted
p over the same family as Bonferroni, a seeded percentile bootstrap 95% CI of the mean
difference, and Cohen's d_z = mean_diff / std_diff.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
from scipy import stats as sps

from dnatok.errors import UserError
from dnatok.stats.select import require_one_grid_point

LEVELS = ("task", "category", "all")
TASK_PAIR_LIMIT = 10          # the study tested each task on its first 10 matched seeds
ALPHA = 0.05
BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0
OVERALL = "OVERALL"

OUTPUT_COLUMNS = ["level", "group", "category", "a", "b", "metric", "n_tasks", "n_pairs",
                  "mean_a", "mean_b", "mean_diff", "std_diff", "t", "p", "m_tests", "alpha",
                  "p_bonferroni", "significant_bonferroni", "p_holm", "significant_holm",
                  "better", "p_wilcoxon", "ci_low", "ci_high", "cohen_dz"]


# --------------------------------------------------------------------------- corrections
def bonferroni(p, m: int | None = None) -> np.ndarray:
    """Bonferroni-adjusted p-values, min(1, p * m); m defaults to the number of finite p."""
    p = np.asarray(p, dtype=float)
    m = int(np.isfinite(p).sum()) if m is None else m
    return np.minimum(1.0, p * m)


def holm(p) -> np.ndarray:
    """Holm step-down adjusted p-values over the finite entries (NaN stays NaN).

    Sorted ascending, p_(i) is multiplied by (m - i + 1) and the running maximum is
    taken so adjusted values never decrease; capped at 1.
    """
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


# --------------------------------------------------------------------------- one test
def bootstrap_ci(diff, level: float = 0.95, n_boot: int = BOOTSTRAP_SAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``diff``; a fresh generator per call, so the
    result depends only on (diff, level, n_boot, seed)."""
    diff = np.asarray(diff, dtype=float)
    if len(diff) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    # Chunked so that 10,000 resamples of a few thousand pairs stay small in memory.
    chunk = max(1, 2_000_000 // len(diff))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, len(diff), size=(stop - start, len(diff)))
        means[start:stop] = diff[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return (float(low), float(high))


def pair_statistics(a, b, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """All per-row statistics of one paired comparison (difference = a - b)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    diff = a - b
    n = len(diff)
    std = float(np.std(diff, ddof=1)) if n > 1 else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        t, p = sps.ttest_rel(a, b) if n > 1 else (math.nan, math.nan)
    try:
        p_w = float(sps.wilcoxon(diff).pvalue) if n > 1 else math.nan
    except ValueError:  # all differences zero
        p_w = math.nan
    low, high = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
    mean_diff = float(diff.mean()) if n else math.nan
    return {
        "n_pairs": n,
        "mean_a": float(a.mean()) if n else math.nan,
        "mean_b": float(b.mean()) if n else math.nan,
        "mean_diff": mean_diff,
        "std_diff": std,
        "t": float(t),
        "p": float(p),
        "p_wilcoxon": p_w,
        "ci_low": low,
        "ci_high": high,
        "cohen_dz": mean_diff / std if std and std > 0 else math.nan,
    }


# --------------------------------------------------------------------------- matching
def _first_per_seed(rows: pd.DataFrame, metric: str) -> pd.Series:
    # Study rule: when a seed repeats, the first row in file order is used.
    rows = rows.drop_duplicates("seed", keep="first")
    return rows.set_index("seed")[metric]


def matched_pairs(df: pd.DataFrame, a: str, b: str, metric: str = "mcc",
                  keep_uncategorised: bool = False, warn=None) -> pd.DataFrame:
    """Seed-matched pairs per task: columns task, category, seed, a, b (seed-sorted).

    Tasks with fewer than 2 common seeds are dropped (the study skipped them).
    """
    for col in ("task", "name", "seed", metric):
        if col not in df.columns:
            raise UserError(f"input lacks column {col!r}")
    names = set(df["name"].dropna())
    for n in (a, b):
        if n not in names:
            raise UserError(f"no runs named {n!r}; known names: {', '.join(sorted(map(str, names)))}")
    data = df[df["name"].isin([a, b]) & df[metric].notna()]
    require_one_grid_point(data)
    if "category" not in data.columns:
        data = data.assign(category=None)
    uncategorised = sorted(data.loc[data["category"].isna(), "task"].unique())
    if uncategorised and not keep_uncategorised:
        if warn:
            warn(f"dropped task(s) without a study category: {', '.join(uncategorised)}")
        data = data[data["category"].notna()]
    pieces, skipped = [], []
    for task, rows in data.groupby("task", sort=True):
        sa = _first_per_seed(rows[rows["name"] == a], metric)
        sb = _first_per_seed(rows[rows["name"] == b], metric)
        common = sorted(set(sa.index) & set(sb.index))
        if len(common) < 2:
            skipped.append(task)
            continue
        category = rows["category"].iloc[0]
        pieces.append(pd.DataFrame({"task": task, "category": category, "seed": common,
                                    "a": sa.loc[common].to_numpy(), "b": sb.loc[common].to_numpy()}))
    if skipped and warn:
        warn(f"skipped task(s) with fewer than 2 seeds in common: {', '.join(skipped)}")
    if not pieces:
        raise UserError(f"no task has at least 2 seeds in common between {a!r} and {b!r}")
    return pd.concat(pieces, ignore_index=True)


# --------------------------------------------------------------------------- tables
def paired_test(df: pd.DataFrame, a: str, b: str, metric: str = "mcc", by: str = "category",
                task_pair_limit: int | None = TASK_PAIR_LIMIT, alpha: float = ALPHA,
                keep_uncategorised: bool = False, n_boot: int = BOOTSTRAP_SAMPLES,
                seed: int = BOOTSTRAP_SEED, warn=None) -> pd.DataFrame:
    """One level of the study's paired comparison of ``a`` vs ``b`` (see module doc).

    ``by`` is "task", "category" or "all". ``task_pair_limit`` (10 in the study) caps the
    pairs of each task at the task level only; ``None`` uses every matched pair.
    """
    if by not in LEVELS:
        raise UserError(f"--by must be one of {', '.join(LEVELS)}, got {by!r}")
    pairs = matched_pairs(df, a, b, metric, keep_uncategorised=keep_uncategorised, warn=warn)
    return level_table(pairs, by, a, b, metric, task_pair_limit, alpha, n_boot, seed)


def level_table(pairs: pd.DataFrame, by: str, a: str, b: str, metric: str = "mcc",
                task_pair_limit: int | None = TASK_PAIR_LIMIT, alpha: float = ALPHA,
                n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """The table of one level from :func:`matched_pairs` output."""
    rows = []
    if by == "task":
        for task, g in pairs.groupby("task", sort=False):
            if task_pair_limit is not None:
                g = g.head(task_pair_limit)  # pairs are seed-sorted: the first N seeds
            rows.append({"group": task, "category": g["category"].iloc[0], "n_tasks": 1,
                         **pair_statistics(g["a"], g["b"], n_boot, seed)})
    elif by == "category":
        for cat, g in pairs[pairs["category"].notna()].groupby("category", sort=True):
            rows.append({"group": cat, "category": cat, "n_tasks": g["task"].nunique(),
                         **pair_statistics(g["a"], g["b"], n_boot, seed)})
    elif by == "all":
        rows.append({"group": OVERALL, "category": None, "n_tasks": pairs["task"].nunique(),
                     **pair_statistics(pairs["a"], pairs["b"], n_boot, seed)})
    else:
        raise UserError(f"--by must be one of {', '.join(LEVELS)}, got {by!r}")
    if not rows:  # e.g. no task has a category: the level is empty, not an error
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    out = pd.DataFrame(rows)
    if by == "task":
        # Order tasks within categories, as the study's table does.
        out = out.sort_values(["category", "group"], na_position="last", kind="stable")
    return _finish(out.reset_index(drop=True), by, a, b, metric, alpha)


def _finish(out: pd.DataFrame, level: str, a: str, b: str, metric: str, alpha: float) -> pd.DataFrame:
    """Add the family-wise corrections and the verdict column."""
    finite = np.isfinite(out["p"].to_numpy(dtype=float))
    m = int(finite.sum())
    out["level"] = level
    out["a"], out["b"], out["metric"] = a, b, metric
    out["m_tests"] = m
    out["alpha"] = alpha / m if m else math.nan     # the per-test Bonferroni threshold
    out["p_bonferroni"] = bonferroni(out["p"], m)
    # The study compared p with alpha/m; the same comparison is kept so that borderline
    # values cannot flip through the rounding of p*m.
    out["significant_bonferroni"] = finite & (out["p"].to_numpy(dtype=float) < out["alpha"].to_numpy())
    out["p_holm"] = holm(out["p"])
    out["significant_holm"] = out["p_holm"] < alpha
    # Verdict follows the Bonferroni decision (as in the study's per-task table).
    out["better"] = np.where(~out["significant_bonferroni"], "ns",
                             np.where(out["mean_diff"] > 0, a, b))
    return out[OUTPUT_COLUMNS]


def paired_table(df: pd.DataFrame, a: str, b: str, metric: str = "mcc", levels=LEVELS,
                 task_pair_limit: int | None = TASK_PAIR_LIMIT, alpha: float = ALPHA,
                 keep_uncategorised: bool = False, n_boot: int = BOOTSTRAP_SAMPLES,
                 seed: int = BOOTSTRAP_SEED, warn=None) -> pd.DataFrame:
    """Several levels stacked into one table (``level`` column); pairs matched once."""
    pairs = matched_pairs(df, a, b, metric, keep_uncategorised=keep_uncategorised, warn=warn)
    return pd.concat([level_table(pairs, lv, a, b, metric, task_pair_limit, alpha, n_boot, seed)
                      for lv in levels], ignore_index=True)


def significance(runs: pd.DataFrame, a: str, b: str, metric: str = "mcc",
                 task_pair_limit: int | None = TASK_PAIR_LIMIT, alpha: float = ALPHA,
                 keep_uncategorised: bool = True, n_boot: int = BOOTSTRAP_SAMPLES,
                 seed: int = BOOTSTRAP_SEED, warn=None) -> pd.DataFrame:
    """Tokenizer ``a`` vs tokenizer ``b`` for every model (and protocol) that has both:
    task, category and overall levels in one table, with ``model`` and ``protocol`` columns.

    The pipeline's own tasks may lack a study category (e.g. GUE's yeast EMP tasks); by
    default they stay in the task level and the overall row.
    """
    for col in ("model", "tokenizer"):
        if col not in runs.columns:
            raise UserError(f"runs table lacks column {col!r}")
    protocol = runs["protocol"] if "protocol" in runs.columns else pd.Series(np.nan, index=runs.index)
    tables = []
    for (proto, model), rows in runs.assign(protocol=protocol).groupby(
            ["protocol", "model"], sort=True, dropna=False):
        toks = set(rows["tokenizer"])
        if a not in toks or b not in toks:
            continue
        name_a = rows.loc[rows["tokenizer"] == a, "name"].iloc[0]
        name_b = rows.loc[rows["tokenizer"] == b, "name"].iloc[0]
        table = paired_table(rows, name_a, name_b, metric, task_pair_limit=task_pair_limit,
                             alpha=alpha, keep_uncategorised=keep_uncategorised, n_boot=n_boot,
                             seed=seed, warn=warn)
        table.insert(0, "protocol", proto)
        table.insert(0, "model", model)
        tables.append(table)
    if not tables:
        raise UserError(f"no model has runs with both tokenizers {a!r} and {b!r}")
    return pd.concat(tables, ignore_index=True)


def stderr_warn(message: str) -> None:
    print(f"dnatok: note: {message}", file=sys.stderr)
