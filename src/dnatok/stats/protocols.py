"""The two protocols side by side: each task's selected runs under ``original`` and
``corrected``, so the replayed quirks' combined effect is measured per task.

Input: selected runs (one grid point per protocol x task x model x tokenizer, from the
``select`` stage). Output: one row per (benchmark, task, category, model, tokenizer) with,
per protocol, the selected grid point, the number of seeds and the mean and std of the
metric, then ``diff`` = mean under ``a`` minus mean under ``b`` (default original -
corrected). A task run under only one protocol keeps its row with the other side empty.
"""
from __future__ import annotations

import pandas as pd

from dnatok.errors import UserError
from dnatok.stats.select import require_one_grid_point

KEYS = ["benchmark", "task", "category", "model", "tokenizer"]


def compare_protocols(runs: pd.DataFrame, a: str = "original", b: str = "corrected",
                      metric: str = "mcc") -> pd.DataFrame:
    for col in [*KEYS, "protocol", "hp", "seed", metric]:
        if col not in runs.columns:
            raise UserError(f"runs table lacks column {col!r}")
    present = set(runs["protocol"].dropna())
    for name in (a, b):
        if name not in present:
            raise UserError(f"no runs under protocol {name!r} (present: {', '.join(sorted(present))})")
    data = runs[runs["protocol"].isin([a, b])]
    require_one_grid_point(data)
    stats = (data.groupby([*KEYS, "protocol"], dropna=False)
             .agg(hp=("hp", "first"), n=(metric, "count"), mean=(metric, "mean"), std=(metric, "std"))
             .reset_index())
    wide = stats.pivot_table(index=KEYS, columns="protocol", values=["hp", "n", "mean", "std"],
                             aggfunc="first", dropna=False)
    out = pd.DataFrame(index=wide.index)
    for proto in (a, b):
        for field in ("hp", "n", "mean", "std"):
            out[f"{field}_{proto}" if field != "mean" else f"{metric}_{proto}"] = (
                wide[(field, proto)] if (field, proto) in wide.columns else None)
    for proto in (a, b):
        out[f"n_{proto}"] = pd.to_numeric(out[f"n_{proto}"]).astype("Int64")
    out["diff"] = pd.to_numeric(out[f"{metric}_{a}"]) - pd.to_numeric(out[f"{metric}_{b}"])
    return out.reset_index().dropna(subset=[f"{metric}_{a}", f"{metric}_{b}"], how="all")
