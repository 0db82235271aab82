"""The paper's headline table: mean test MCC per benchmark (or study category) and model.

Two steps, both plain means:

1. **task mean** of a (task, name): the mean of the metric over all runs of the one
   selected hyperparameter combination (rows with a missing metric are dropped; a seed
   that repeats is a separate run and counts, as in the published files);
2. **group mean** of a (group, name): the mean of the task means of the group's tasks.
   The ``overall`` row is the mean over *all included tasks* of the name — not the mean
   of the group means, which would weight a group of 8 tasks like one of 18.

Which tasks are included: by default the paper's 44 study tasks, i.e. tasks with a study
category (a pipeline run's own ``category`` counts, as for the demo's simulated tasks);
other tasks (GUE's EMP tasks, ``phage_fragments``, ``drosophilia_enhancers``) are dropped
and named on stderr. ``all_tasks=True`` keeps them: they count in their benchmark row and
in ``overall``; a task without the grouping's value (no category for ``by="category"``, no
benchmark for ``phage_fragments``) counts in ``overall`` only, and is named on stderr.

Names: ``model/tokenizer`` for pipeline runs, the ``model`` column for published files.
When the pipeline's runs carry more than one ``protocol``, their names become
``name[protocol]`` so protocols sit side by side instead of being averaged together.
One (task, name) with several hyperparameter combinations is refused: select first.
Missing cells (a name without tasks in a group) stay empty, never 0.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from dnatok import registry
from dnatok.errors import UserError
from dnatok.stats.collect import load_table
from dnatok.stats.select import require_one_grid_point

GROUPINGS = ("benchmark", "category")
OVERALL = "overall"
# Column order of the paper's summary table; other names follow in order of appearance.
PAPER_ORDER = ("CNN", "GPT", "DNABERT2", "Mamba-bpe", "NTv2", "DNABERT", "HyenaDNA",
               "Mamba-char", "Caduceus")
DETAIL_COLUMNS = ["group", "name", "mean", "std", "n_tasks", "n_runs"]


def load_inputs(paths) -> pd.DataFrame:
    """Runs tables and/or published CSVs as one table, with a ``source`` file per row."""
    if len(set(map(str, paths))) != len(paths):
        raise UserError("the same input was given twice")
    tables = [load_table(p).assign(source=str(p)) for p in paths]
    return label_protocols(pd.concat(tables, ignore_index=True))


def label_protocols(df: pd.DataFrame) -> pd.DataFrame:
    """``name`` -> ``name[protocol]`` for rows with a protocol, when there are several."""
    own = df["protocol"].notna()
    if df.loc[own, "protocol"].nunique() > 1:
        df = df.copy()
        df.loc[own, "name"] = df.loc[own, "name"] + "[" + df.loc[own, "protocol"].astype(str) + "]"
    return df


def task_means(df: pd.DataFrame, metric: str = "mcc") -> pd.DataFrame:
    """One row per (name, task): benchmark, category, mean of the metric, n_runs."""
    if metric not in df.columns:
        raise UserError(f"no {metric!r} column in the input")
    runs = df[df[metric].notna()]
    return (runs.groupby(["name", "task"], sort=False)
            .agg(benchmark=("benchmark", "first"), category=("category", "first"),
                 mean=(metric, "mean"), n_runs=(metric, "size")).reset_index())


def _ordered(values, first) -> list:
    present = list(dict.fromkeys(v for v in values if isinstance(v, str)))
    return [v for v in first if v in present] + [v for v in present if v not in first]


def _summary(tm: pd.DataFrame, keys) -> pd.DataFrame:
    g = tm.groupby(keys, sort=False)
    return g.agg(mean=("mean", "mean"), std=("mean", "std"), n_tasks=("task", "size"),
                 n_runs=("n_runs", "sum")).reset_index()


def headline_means(df: pd.DataFrame, by: str = "benchmark", metric: str = "mcc",
                   all_tasks: bool = False, warn=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(wide table: ``group`` + one column per name, long detail table); see module doc."""
    if by not in GROUPINGS:
        raise UserError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    # names already carry the protocol (label_protocols)
    require_one_grid_point(df, keys=("task", "name"), files="source")
    tm = task_means(df, metric)
    outside = sorted(tm.loc[tm["category"].isna(), "task"].unique())
    if outside and not all_tasks:
        _say(warn, f"excluded task(s) outside the 44 study tasks: {', '.join(outside)}")
        tm = tm[tm["category"].notna()]
    if tm.empty:
        raise UserError(f"no task with a {metric} value is left to average")
    loose = sorted(tm.loc[tm[by].isna(), "task"].unique())
    if loose:
        _say(warn, f"task(s) without a {by}, counted in '{OVERALL}' only: {', '.join(loose)}")
    groups = _summary(tm[tm[by].notna()], [by, "name"]).rename(columns={by: "group"})
    overall = _summary(tm, ["name"]).assign(group=OVERALL)
    detail = pd.concat([groups, overall], ignore_index=True)[DETAIL_COLUMNS]
    first = registry.BENCHMARKS if by == "benchmark" else registry.CATEGORIES
    rows = _ordered(groups["group"], first) + [OVERALL]
    names = _ordered(tm["name"], PAPER_ORDER)
    rank = {"group": {g: i for i, g in enumerate(rows)},
            "name": {n: i for i, n in enumerate(names)}}
    detail = detail.sort_values(["group", "name"], key=lambda col: col.map(rank[col.name]))
    wide = detail.pivot(index="group", columns="name", values="mean")
    wide = wide.reindex(index=rows, columns=names)
    wide = wide.rename_axis(index="group", columns=None).reset_index()
    return wide, detail.reset_index(drop=True)


def detail_path(out) -> Path:
    """``means.tsv`` -> ``means.detail.tsv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.detail{out.suffix}")


def _say(warn, message: str) -> None:
    if warn:
        warn(message)
