"""The human-readable report of a pipeline run: significance tables, summaries, tokenizer
statistics and figures gathered into Markdown (``results/report/index.md``), LaTeX
(``tables.tex``) and optionally one self-contained HTML page (figures embedded).

The Snakemake report (``snakemake --report``) shows the same files through the captions
in ``workflow/report/``; this module serves readers without Snakemake. Workflow code can
call :func:`write_report` directly; ``dnatok stats report`` wraps it.
"""
from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

import pandas as pd

from dnatok.errors import DataError, UserError
from dnatok.io import atomic_path
from dnatok.stats.tables import tex_escape, to_latex, to_markdown

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 80em; }
table { border-collapse: collapse; font-size: 0.8em; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin-bottom: 1em; }
"""
# The columns of a summary table that a reader wants; the TSV keeps everything.
SUMMARY_SHOWN = ["task", "category", "model", "tokenizer", "protocol", "n", "n_collapsed",
                 "mcc_pm", "accuracy_pm", "f1_pm"]


def read_any(path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file does not exist")
    return pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".tab") else ",")


def figure_files(paths) -> list[Path]:
    """PNG files from a mix of files and folders (a figures folder contributes its PNGs)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.glob("*.png"))
        elif p.exists():
            if p.suffix.lower() != ".png":
                raise DataError(p, None, "only PNG figures can go into the report")
            out.append(p)
        else:
            raise DataError(p, None, "figure file or folder does not exist")
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}"
    return str(v)


def _md_table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "|".join("---" for _ in df.columns) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _tex_table(df: pd.DataFrame, caption: str) -> str:
    spec = "l" * len(df.columns)
    rows = [" & ".join(tex_escape(_fmt(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    return "\n".join([r"\begin{table}[ht]", r"\centering", r"\scriptsize",
                      rf"\caption{{{tex_escape(caption)}}}", rf"\begin{{tabular}}{{{spec}}}",
                      r"\toprule", " & ".join(tex_escape(c) for c in df.columns) + r" \\",
                      r"\midrule", *rows, r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])


def _summary_view(df: pd.DataFrame) -> pd.DataFrame:
    return df[[c for c in SUMMARY_SHOWN if c in df.columns]]


def write_report(out_md=None, out_tex=None, out_html=None, significance=(), summaries=(),
                 token_stats=(), figures=(), title: str = "dnatok results", tables=()) -> list[Path]:
    """Write any of the three report formats from the given result files.

    ``significance``: ``stats significance``/``stats paired`` outputs; ``summaries``:
    ``stats summary`` outputs; ``token_stats``: tokenizer statistics TSVs (shown as they
    are); ``figures``: PNG files or folders of them; ``tables``: any other tables (the
    study's mean-MCC tables, the protocol comparison), shown first, as they are. Returns
    the written paths.
    """
    if not (out_md or out_tex or out_html):
        raise UserError("give at least one of --out-md, --out-tex, --out")
    sig = [(Path(p), read_any(p)) for p in significance]
    summ = [(Path(p), read_any(p)) for p in summaries]
    toks = [(Path(p), read_any(p)) for p in token_stats]
    other = [(Path(p), read_any(p)) for p in tables]
    figs = figure_files(figures)
    written = []

    if out_md:
        out_md = Path(out_md)
        parts = [f"# {title}\n",
                 "Paired tests follow the study's protocol (seed-matched paired t-test; first "
                 "10 matched seeds per task, all pairs pooled per category and overall; "
                 "Bonferroni within each level) with Holm, Wilcoxon, bootstrap CI and "
                 "Cohen's d_z added.\n"]
        for path, df in other:
            parts += [f"## Table: `{path}`\n", _md_table(df)]
        for path, df in sig:
            parts += [f"## Significance: `{path}`\n", to_markdown(df)]
        if figs:
            parts.append("## Figures\n")
            for f in figs:
                # Links relative to the Markdown file so the folder can be moved as a whole.
                rel = os.path.relpath(f.resolve(), out_md.resolve().parent)
                parts.append(f"![{f.stem}]({rel})\n")
        for path, df in summ:
            parts += [f"## Summary: `{path}`\n", _md_table(_summary_view(df))]
        for path, df in toks:
            parts += [f"## Tokenizer statistics: `{path}`\n", _md_table(df)]
        with atomic_path(out_md) as tmp:
            tmp.write_text("\n".join(parts), encoding="utf-8")
        written.append(out_md)

    if out_tex:
        parts = ["% generated by `dnatok stats report`; needs \\usepackage{booktabs}"]
        for path, df in other:
            parts.append(_tex_table(df, f"{path}"))
        for _path, df in sig:
            parts.append(to_latex(df))
        for path, df in summ:
            parts.append(_tex_table(_summary_view(df), f"Summary over seeds: {path}"))
        for path, df in toks:
            parts.append(_tex_table(df, f"Tokenizer statistics: {path}"))
        with atomic_path(out_tex) as tmp:
            tmp.write_text("\n".join(parts), encoding="utf-8")
        written.append(Path(out_tex))

    if out_html:
        body = [f"<h1>{html.escape(title)}</h1>"]
        table = lambda df: df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0)  # noqa: E731
        for path, df in other:
            body += [f"<h2>{html.escape(str(path))}</h2>", table(df)]
        for path, df in sig:
            body += [f"<h2>Significance: {html.escape(str(path))}</h2>", table(df)]
        for f in figs:
            data = base64.b64encode(f.read_bytes()).decode("ascii")
            body.append(f"<h2>{html.escape(f.stem)}</h2>"
                        f'<img alt="{html.escape(f.name)}" src="data:image/png;base64,{data}">')
        for path, df in summ:
            body += [f"<h2>Summary: {html.escape(str(path))}</h2>", table(_summary_view(df))]
        for path, df in toks:
            body += [f"<h2>Tokenizer statistics: {html.escape(str(path))}</h2>", table(df)]
        page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
                f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
                + "\n".join(body) + "</body></html>\n")
        with atomic_path(out_html) as tmp:
            tmp.write_text(page, encoding="utf-8")
        written.append(Path(out_html))
    return written
