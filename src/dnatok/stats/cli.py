"""`dnatok stats …`: aggregation, hyperparameter selection, paired tests, figures, tables.

Every command reads either the pipeline's runs table (TSV written by ``stats collect``) or
the study's published per-run CSV; the format is recognised from the columns. Each computed
output gets a provenance record beside it (``<output stem>.provenance.json``;
``provenance.json`` inside a figures directory).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dnatok.errors import UserError

STUDY_ADDED_COLUMNS = ("raw_task", "name", "category", "benchmark", "tokenizer", "protocol", "f1_binary",
                       "f1_macro")


def _provenance(out: Path, args: argparse.Namespace, **extra) -> None:
    from dnatok.io import provenance, write_json

    out = Path(out)
    target = out / "provenance.json" if out.is_dir() else out.with_name(f"{out.stem}.provenance.json")
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    write_json(target, provenance(stage=f"stats {args.stats_command}", params=params, **extra))


def _load_runs(paths):
    """One or more runs tables / study CSVs as one table (e.g. one runs.tsv per tokenizer)."""
    import pandas as pd

    from dnatok.stats.collect import load_table

    if len(set(map(str, paths))) != len(paths):
        raise UserError("the same runs table was given twice")
    tables = [load_table(p) for p in paths]
    return tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)


def _warn(message: str) -> None:
    from dnatok.stats.paired import stderr_warn

    stderr_warn(message)


# --------------------------------------------------------------------------- handlers
def cmd_collect(args) -> int:
    from dnatok.stats.collect import collect_runs, read_path_list, write_table

    paths = list(args.metrics or [])
    for listing in args.metrics_list or []:
        paths += read_path_list(listing)
    if not paths:
        raise UserError("give metrics files with --metrics and/or --metrics-list")
    runs = collect_runs(paths)
    write_table(runs, args.out)
    _provenance(args.out, args, n_runs=len(runs))
    return 0


def cmd_summary(args) -> int:
    from dnatok.stats.aggregate import summarise
    from dnatok.stats.collect import write_table

    table = summarise(_load_runs(args.runs), tokenizer=args.tokenizer)
    write_table(table, args.out)
    _provenance(args.out, args, n_rows=len(table))
    return 0


def cmd_significance(args) -> int:
    from dnatok.stats.collect import write_table
    from dnatok.stats.paired import significance

    table = significance(_load_runs(args.runs), args.a, args.b, metric=args.metric,
                         task_pair_limit=args.task_pair_limit or None, alpha=args.alpha,
                         keep_uncategorised=not args.drop_uncategorised,
                         n_boot=args.bootstrap, seed=args.seed, warn=_warn)
    write_table(table, args.out)
    _provenance(args.out, args, n_rows=len(table))
    return 0


def cmd_paired(args) -> int:
    from dnatok.stats.collect import load_table, write_table
    from dnatok.stats.paired import paired_table

    table = paired_table(load_table(args.input), args.a, args.b, metric=args.metric,
                         levels=list(dict.fromkeys(args.by)),
                         task_pair_limit=args.task_pair_limit or None, alpha=args.alpha,
                         keep_uncategorised=args.keep_uncategorised, n_boot=args.bootstrap,
                         seed=args.seed, warn=_warn)
    write_table(table, args.out)
    _provenance(args.out, args, n_rows=len(table))
    return 0


def cmd_means(args) -> int:
    from dnatok.stats.collect import write_table
    from dnatok.stats.means import detail_path, headline_means, load_inputs

    table, detail = headline_means(load_inputs(args.input), by=args.by, metric=args.metric,
                                   all_tasks=args.all_tasks, warn=_warn)
    write_table(table, args.out)
    if args.plot_dir:
        from dnatok.stats.figures import means_figure

        means_figure(table, args.plot_dir, f"{args.metric}_means_{args.by}", metric=args.metric)
    write_table(detail, detail_path(args.out))
    _provenance(args.out, args, n_rows=len(table), detail=detail_path(args.out).name)
    return 0


def cmd_select(args) -> int:
    from dnatok.stats.collect import load_table, write_table
    from dnatok.stats.select import select_best, select_runs

    table = load_table(args.input)
    if args.rule == "protocol":
        kept, cand = select_runs(table, metric=args.metric)
        if kept.empty:
            raise UserError(f"{args.input}: no group had an eligible grid point")
        write_table(kept, args.out)
        if args.candidates:
            write_table(cand, args.candidates)
        _provenance(args.out, args, n_rows=len(kept), n_groups=int(cand["selected"].sum()))
        return 0
    if args.candidates:
        raise UserError("--candidates is written by --rule protocol only")
    study_format = "raw_task" in table.columns  # read_study_csv marks the published format
    kept = select_best(table, rule=args.rule, metric=args.metric,
                       group_keys=["task", "model"] if study_format else None)
    if study_format:
        # Same columns as the published best_replicates_ss.csv (task names normalised).
        kept = kept.drop(columns=[c for c in STUDY_ADDED_COLUMNS if c in kept.columns])
    if kept.empty:
        raise UserError("no (task, model) had an eligible hyperparameter combination")
    write_table(kept, args.out)
    _provenance(args.out, args, n_rows=len(kept))
    return 0


def cmd_protocols(args) -> int:
    from dnatok.stats.collect import write_table
    from dnatok.stats.protocols import compare_protocols

    table = compare_protocols(_load_runs(args.runs), a=args.a, b=args.b, metric=args.metric)
    write_table(table, args.out)
    _provenance(args.out, args, n_rows=len(table))
    return 0


def cmd_figures(args) -> int:
    from dnatok.stats.figures import make_figures

    paths = make_figures(_load_runs(args.runs), args.out_dir, a=args.a, b=args.b, metric=args.metric)
    _provenance(Path(args.out_dir), args, files=[p.name for p in paths])
    for p in paths:
        print(p)
    return 0


def cmd_tables(args) -> int:
    from dnatok.stats.report import read_any
    from dnatok.stats.tables import write_tables

    if not args.out_md and not args.out_tex:
        raise UserError("give --out-md and/or --out-tex")
    # No provenance record: a rendering of a table that has its own (and the same stem
    # as its input would overwrite it).
    write_tables(read_any(args.significance), args.out_md, args.out_tex)
    return 0


def cmd_report(args) -> int:
    from dnatok.stats.report import write_report

    write_report(out_md=args.out_md, out_tex=args.out_tex, out_html=args.out,
                 significance=args.significance or [], summaries=args.summaries or [],
                 token_stats=args.token_stats or [], figures=args.figures or [], title=args.title,
                 tables=args.tables or [])
    _provenance(args.out_md or args.out_tex or args.out, args)
    return 0


# --------------------------------------------------------------------------- parser
def _test_options(p: argparse.ArgumentParser) -> None:
    from dnatok.stats.paired import ALPHA, BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, TASK_PAIR_LIMIT

    p.add_argument("--metric", default="mcc", help="test metric column (default: mcc)")
    p.add_argument("--task-pair-limit", type=int, default=TASK_PAIR_LIMIT,
                   help="pairs per task at the task level: the first N matched seeds "
                        f"(default {TASK_PAIR_LIMIT}, as in the study; 0 = all)")
    p.add_argument("--alpha", type=float, default=ALPHA, help="family-wise alpha (default 0.05)")
    p.add_argument("--bootstrap", type=int, default=BOOTSTRAP_SAMPLES,
                   help=f"bootstrap resamples for the CI (default {BOOTSTRAP_SAMPLES})")
    p.add_argument("--seed", type=int, default=BOOTSTRAP_SEED, help="bootstrap seed (default 0)")


def add_commands(subparsers) -> None:
    stats = subparsers.add_parser("stats", help="aggregate results, select hyperparameters, "
                                                "paired tests, figures, tables")
    sub = stats.add_subparsers(dest="stats_command", required=True)

    p = sub.add_parser("collect", help="metrics.json files -> long runs table (TSV)")
    p.add_argument("--metrics", nargs="+", metavar="FILE", help="metrics.json files")
    p.add_argument("--metrics-list", action="append", metavar="FILE",
                   help="file with one metrics.json path per line (repeatable)")
    p.add_argument("--out", required=True, type=Path, help="runs table (TSV)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("summary", help="n, mean, std per task x model x tokenizer")
    p.add_argument("--runs", required=True, nargs="+", type=Path,
                   help="runs table(s) or study CSV")
    p.add_argument("--tokenizer", help="only runs with this tokenizer")
    p.add_argument("--out", required=True, type=Path, help="summary table (TSV)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("significance", help="tokenizer A vs B for every model that has both "
                                            "(task, category and overall levels)")
    p.add_argument("--runs", required=True, nargs="+", type=Path,
                   help="runs table(s), e.g. one per tokenizer; one hyperparameter combination "
                        "per model/tokenizer/task (use `stats select` first after a sweep)")
    p.add_argument("--a", required=True, help="tokenizer A (e.g. char)")
    p.add_argument("--b", required=True, help="tokenizer B (e.g. bpe)")
    p.add_argument("--out", required=True, type=Path, help="significance table (TSV)")
    p.add_argument("--drop-uncategorised", action="store_true",
                   help="drop tasks without a category from every level (study behaviour); "
                        "by default they stay in the task level and overall row")
    _test_options(p)
    p.set_defaults(func=cmd_significance)

    p = sub.add_parser("paired", help="the study's paired t-test of two names (e.g. Mamba-char "
                                      "vs Mamba-bpe) by task, category or overall")
    p.add_argument("--input", required=True, type=Path, help="study CSV or runs table")
    p.add_argument("--a", required=True, help="name A (difference = A - B)")
    p.add_argument("--b", required=True, help="name B")
    p.add_argument("--by", nargs="+", choices=("task", "category", "all"), default=["category"],
                   help="level(s); several are stacked with a `level` column")
    p.add_argument("--out", required=True, type=Path, help="result table (TSV)")
    p.add_argument("--keep-uncategorised", action="store_true",
                   help="keep tasks without a study category at the task level and overall "
                        "(the study dropped them, e.g. phage_fragments)")
    _test_options(p)
    p.set_defaults(func=cmd_paired)

    p = sub.add_parser("means", help="the paper's headline table: mean test MCC per benchmark "
                                     "or category (rows) and name (columns)")
    p.add_argument("--input", required=True, nargs="+", type=Path,
                   help="published CSVs and/or runs tables, mixed; one hyperparameter "
                        "combination per task and name (use `stats select` first)")
    p.add_argument("--by", choices=("benchmark", "category"), default="benchmark",
                   help="rows: gue/gb/nt (default) or the 9 study categories; then 'overall'")
    p.add_argument("--metric", default="mcc", help="test metric column (default: mcc)")
    p.add_argument("--all-tasks", action="store_true",
                   help="keep tasks outside the paper's 44 (EMP, phage_fragments …); "
                        "by default they are dropped and named on stderr")
    p.add_argument("--plot-dir", type=Path, help="also draw the table as <metric>_means_<by>.png|pdf here")
    p.add_argument("--out", required=True, type=Path,
                   help="wide table (TSV); <stem>.detail.tsv gets mean, std, n_tasks, n_runs")
    p.set_defaults(func=cmd_means)

    p = sub.add_parser("select", help="keep the runs of the best hyperparameter combination")
    p.add_argument("--input", required=True, type=Path, help="study CSV or runs table")
    p.add_argument("--out", required=True, type=Path, help="kept rows (same format as input)")
    p.add_argument("--candidates", type=Path,
                   help="with --rule protocol: every grid point's replicates and mean scores, which "
                        "were eligible and which was selected (the reason for the choice)")
    p.add_argument("--rule", choices=("protocol", "study", "validation"), default="validation",
                   help="protocol: each run's protocol decides (corrected: validation, original: "
                        "study); validation: best mean validation metric (default, for new runs); "
                        "study: replay the paper, best mean TEST metric with its replicate rules")
    p.add_argument("--metric", default="mcc", help="selection metric (default: mcc)")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("protocols", help="each task's selected runs under two protocols side by side")
    p.add_argument("--runs", required=True, nargs="+", type=Path, help="selected runs table(s)")
    p.add_argument("--a", default="original", help="protocol A (diff = A - B; default original)")
    p.add_argument("--b", default="corrected", help="protocol B (default corrected)")
    p.add_argument("--metric", default="mcc")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_protocols)

    p = sub.add_parser("figures", help="per-task heatmap and A-vs-B scatter (PNG + PDF)")
    p.add_argument("--runs", required=True, nargs="+", type=Path,
                   help="runs table(s) or study CSV")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--a", default="char", help="tokenizer or name on the y axis (default char)")
    p.add_argument("--b", default="bpe", help="tokenizer or name on the x axis (default bpe)")
    p.add_argument("--metric", default="mcc")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("tables", help="Markdown and LaTeX versions of a significance table")
    p.add_argument("--significance", required=True, type=Path,
                   help="output of `stats significance` or `stats paired`")
    p.add_argument("--out-md", type=Path)
    p.add_argument("--out-tex", type=Path)
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("report", help="Markdown / LaTeX / self-contained HTML report of "
                                      "tables and figures")
    p.add_argument("--out-md", type=Path, help="Markdown report (figures linked)")
    p.add_argument("--out-tex", type=Path, help="LaTeX tables")
    p.add_argument("--out", type=Path, help="self-contained HTML (figures embedded)")
    p.add_argument("--significance", nargs="+", type=Path, help="significance tables")
    p.add_argument("--summaries", "--summary", nargs="+", type=Path, help="summary tables")
    p.add_argument("--token-stats", nargs="+", type=Path, help="tokenizer statistics TSVs")
    p.add_argument("--figures", nargs="+", type=Path, help="PNG files or folders of them")
    p.add_argument("--tables", nargs="+", type=Path, help="other tables, shown as they are (first)")
    p.add_argument("--title", default="dnatok results")
    p.set_defaults(func=cmd_report)
