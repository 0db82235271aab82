"""Figures: per-task heatmap of all models (x tokenizers) and the A-vs-B scatter.

Both are written as PNG and PDF with fixed names so that workflow rules can declare them:

* ``{out_dir}/{metric}_heatmap.png|pdf`` — rows are tasks grouped by category, columns
  the compared names (``model/tokenizer`` or the published model names), cells the mean
  over seeds;
* ``{out_dir}/scatter_{a}_vs_{b}.png|pdf`` — one point per task: x = mean of B, y = mean
  of A, coloured by category, with the y = x diagonal (points above it favour A). With
  tokenizer names (``char``, ``bpe``) there is one panel per model that has both; with
  two names present in the ``name`` column (``Mamba-char``, ``Mamba-bpe``) one panel.
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dnatok.errors import UserError  # noqa: E402
from dnatok.io import atomic_path  # noqa: E402
from dnatok.registry import CATEGORIES  # noqa: E402

# PDFs without a creation date are byte-identical between runs.
PDF_METADATA = {"CreationDate": None}
UNCATEGORISED = "(none)"


def _category_order(categories) -> list[str]:
    known = [c for c in CATEGORIES if c in set(categories)]
    return known + sorted(set(categories) - set(known))


def task_means(runs: pd.DataFrame, metric: str = "mcc") -> pd.DataFrame:
    """Mean of ``metric`` per (category, task, name): the numbers both figures show."""
    if metric not in runs.columns:
        raise UserError(f"runs table has no {metric!r} column")
    data = runs[runs[metric].notna()].copy()
    if data.empty:
        raise UserError(f"no runs with a {metric!r} value")
    data["category"] = data["category"].fillna(UNCATEGORISED) if "category" in data else UNCATEGORISED
    return data.groupby(["category", "task", "name"], sort=True)[metric].mean().reset_index()


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{stem}.{ext}"
        with atomic_path(path) as tmp:
            if ext == "pdf":
                fig.savefig(tmp, format="pdf", bbox_inches="tight", metadata=PDF_METADATA)
            else:
                fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def heatmap(runs: pd.DataFrame, out_dir, metric: str = "mcc") -> list[Path]:
    """Tasks (rows, grouped by category) x names (columns) heatmap of mean ``metric``."""
    means = task_means(runs, metric)
    order = _category_order(means["category"])
    means["cat_rank"] = means["category"].map({c: i for i, c in enumerate(order)})
    tasks = means.sort_values(["cat_rank", "task"])[["category", "task"]].drop_duplicates()
    names = sorted(means["name"].unique())
    grid = means.pivot_table(index="task", columns="name", values=metric).reindex(
        index=tasks["task"], columns=names)
    values = grid.to_numpy(dtype=float)

    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 1.0 + 0.28 * len(tasks)))
    vmin = min(0.0, np.nanmin(values)) if np.isfinite(values).any() else 0.0
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis", vmin=vmin, vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    labels = [f"{t}  [{c}]" for c, t in tasks.itertuples(index=False)]
    ax.set_yticks(range(len(tasks)), labels, fontsize=7)
    if values.size <= 600:  # numbers stay legible only on small grids
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.5 else "black")
    # Lines between categories make the grouping visible.
    cats = tasks["category"].tolist()
    for i in range(1, len(cats)):
        if cats[i] != cats[i - 1]:
            ax.axhline(i - 0.5, color="white", linewidth=1.5)
    fig.colorbar(image, ax=ax, label=f"mean {metric.upper()} over seeds")
    ax.set_title(f"Per-task mean {metric.upper()}")
    return _save(fig, Path(out_dir), f"{metric}_heatmap")


def _comparisons(runs: pd.DataFrame, a: str, b: str) -> list[tuple[str, str, str]]:
    """(panel title, name A, name B) for every panel of the scatter figure."""
    names = set(runs["name"].dropna())
    if a in names and b in names:
        return [(f"{a} vs {b}", a, b)]
    if "tokenizer" not in runs.columns or runs["tokenizer"].isna().all():
        raise UserError(f"{a!r}/{b!r} are neither run names ({', '.join(sorted(names))}) "
                        "nor tokenizers of a runs table")
    panels = []
    for model, rows in runs.groupby("model", sort=True):
        toks = dict(zip(rows["tokenizer"], rows["name"]))
        if a in toks and b in toks:
            panels.append((str(model), toks[a], toks[b]))
    if not panels:
        raise UserError(f"no model has runs with both {a!r} and {b!r}")
    return panels


def scatter(runs: pd.DataFrame, out_dir, a: str, b: str, metric: str = "mcc") -> list[Path]:
    """A-vs-B scatter, one point per task, coloured by category, diagonal y = x."""
    panels = _comparisons(runs, a, b)
    means = task_means(runs, metric)
    order = _category_order(means["category"])
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(order)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.6), squeeze=False)
    seen = {}
    for ax, (title, name_a, name_b) in zip(axes[0], panels):
        wide = means[means["name"].isin([name_a, name_b])].pivot_table(
            index=["category", "task"], columns="name", values=metric).dropna()
        if wide.empty:
            ax.text(0.5, 0.5, "no task with both", ha="center", transform=ax.transAxes)
            continue
        for (cat, _task), row in wide.iterrows():
            seen[cat] = ax.scatter(row[name_b], row[name_a], color=colours[cat], s=28,
                                   edgecolor="black", linewidth=0.4)
        lo = min(0.0, float(wide.to_numpy().min()))
        ax.plot([lo, 1], [lo, 1], color="grey", linestyle="--", linewidth=1)
        ax.set_xlim(lo, 1)
        ax.set_ylim(lo, 1)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{name_b} mean {metric.upper()}")
        ax.set_ylabel(f"{name_a} mean {metric.upper()}")
        ax.set_title(f"{title} ({len(wide)} tasks)")
    handles = [seen[c] for c in order if c in seen]
    fig.tight_layout()
    # Outside the last panel, so no point is hidden; bbox_inches="tight" keeps it in the file.
    axes[0][-1].legend(handles, [c.replace("_", " ") for c in order if c in seen],
                       loc="center left", bbox_to_anchor=(1.03, 0.5), fontsize=8, title="category")
    return _save(fig, Path(out_dir), f"scatter_{_slug(a)}_vs_{_slug(b)}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def make_figures(runs: pd.DataFrame, out_dir, a: str = "char", b: str = "bpe",
                 metric: str = "mcc") -> list[Path]:
    """Both figures; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return heatmap(runs, out_dir, metric) + scatter(runs, out_dir, a, b, metric)


def means_figure(table: pd.DataFrame, out_dir, stem: str, metric: str = "mcc") -> list[Path]:
    """The headline means table (``stats means`` output: rows = groups, columns = names)
    as an annotated heatmap, ``{out_dir}/{stem}.png|pdf``."""
    if "group" not in table.columns or table.shape[1] < 2:
        raise UserError("a means table needs a 'group' column and at least one name column")
    names = [c for c in table.columns if c != "group"]
    values = table[names].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.5 + 1.0 * len(names), 1.0 + 0.45 * len(table)))
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis",
                      vmin=min(0.0, np.nanmin(values)) if np.isfinite(values).any() else 0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(table)), table["group"].astype(str).tolist())
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.5 else "black")
    fig.colorbar(image, ax=ax, label=f"mean over tasks of the per-task mean test {metric.upper()}")
    ax.set_title(f"Mean {metric.upper()} by {stem.split('_')[-1]}")
    return _save(fig, Path(out_dir), stem)
