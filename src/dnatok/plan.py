"""``dnatok plan``: the job matrix of a configuration and the GPU time it asks for.

A Snakemake dry run (through Snakemake's Python API, in this process) lists every job
that would run, each with its evaluated resources. We collect those jobs from the dry
run's own job records (the ``JOB_INFO`` log events that ``snakemake -n`` prints), so the
counts are exactly Snakemake's, and add up per rule:

* jobs, and jobs asking for a GPU (resource ``gpu`` > 0),
* GPU-hours  = sum over jobs of ``runtime`` (minutes) / 60 x ``gpu``,
* core-hours = sum over jobs of ``runtime`` / 60 x ``cpus_per_task`` (or threads).

These are the *requested* wall-time limits (what a SLURM allocation is charged against
in the worst case), not a prediction of the actual run time. Rules are grouped into
stages by the workflow file defining them (``rules/data.smk`` -> stage ``data``), in the
order the Snakefile includes them.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from dnatok.errors import UserError

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RuleTotals:
    stage: str
    rule: str
    jobs: int = 0
    gpu_jobs: int = 0
    gpu_hours: float = 0.0
    core_hours: float = 0.0
    # jobs whose runtime is unknown (not set, or not evaluable in a dry run): their
    # hours are missing from the sums, and the report says so.
    no_runtime: int = 0


def rule_stages(snakefile: Path) -> dict[str, str]:
    """Map each rule name to its stage: the stem of the file that defines it.

    Reads the Snakefile and the files it includes (``include: "rules/x.smk"``) as text;
    rules defined in the Snakefile itself belong to the stage ``target``.
    """
    stages: dict[str, str] = {}
    rule_re = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
    include_re = re.compile(r"^include:\s*[\"'](.+?)[\"']", re.M)
    text = snakefile.read_text()
    for include in include_re.findall(text):
        path = snakefile.parent / include
        if path.is_file():
            for name in rule_re.findall(path.read_text()):
                stages[name] = path.stem
    for name in rule_re.findall(text):
        stages.setdefault(name, "target")
    return stages


class _JobCollector(logging.Handler):
    """Keeps the job records of a dry run; passes warnings and errors to stderr."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.jobs: list[dict] = []
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if event is not None and str(getattr(event, "value", event)) == "job_info":
            self.jobs.append({
                "rule": record.rule_name,
                "wildcards": dict(record.wildcards or {}),
                "resources": dict(record.resources.items()) if record.resources else {},
                "threads": record.threads,
            })
        elif record.levelno >= logging.WARNING:
            message = record.getMessage().strip()
            if message:
                self.messages.append(message)


def dry_run_jobs(snakefile: Path, configfiles: list[Path], targets: list[str], forceall: bool,
                 workdir: Path) -> list[dict]:
    """Every job a dry run of ``snakefile`` would schedule: rule, resources, threads."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings,
    )

    collector = _JobCollector()
    cwd = os.getcwd()  # the API changes into workdir; callers get their cwd back below
    output = OutputSettings(dryrun=True, quiet={Quietness.ALL}, enable_file_logging=False)
    sm_logger = logging.getLogger("snakemake.logging")
    try:
        with SnakemakeApi(output) as api:
            # The API installed its own console handler; we want the job records
            # instead of a 4 MB listing, so ours replaces it for this run.
            for handler in list(sm_logger.handlers):
                sm_logger.removeHandler(handler)
            sm_logger.addHandler(collector)
            workflow = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(configfiles=configfiles),
                snakefile=snakefile,
                workdir=workdir,
            )
            dag = workflow.dag(dag_settings=DAGSettings(targets=frozenset(targets), forceall=forceall))
            dag.execute_workflow(executor="dryrun")
    except Exception as err:  # Snakemake reports bad configs/targets as exceptions
        detail = "; ".join(collector.messages[-3:])
        raise UserError(f"snakemake dry run failed: {err}" + (f" ({detail})" if detail else "")) from None
    finally:
        sm_logger.removeHandler(collector)
        os.chdir(cwd)
    return collector.jobs


def _number(value) -> float | None:
    """A resource as a number; None when absent or not numeric (e.g. '<TBD>')."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def summarize(jobs: list[dict], stages: dict[str, str], by: str | None = None) -> list[RuleTotals]:
    """Per-rule totals, ordered by stage (in include order), then by rule name.

    With ``by`` (a wildcard name such as ``benchmark``), rules having that wildcard are
    split into one row per value, shown as ``rule[value]``.
    """
    totals: dict[str, RuleTotals] = {}
    for job in jobs:
        rule = job["rule"]
        stage = stages.get(rule, "other")
        if by and by in job.get("wildcards", {}):
            rule = f"{rule}[{job['wildcards'][by]}]"
        row = totals.setdefault(rule, RuleTotals(stage=stage, rule=rule))
        res = job["resources"]
        row.jobs += 1
        gpus = _number(res.get("gpu")) or 0.0
        cpus = _number(res.get("cpus_per_task")) or _number(job.get("threads")) or 1.0
        runtime = _number(res.get("runtime"))
        if gpus > 0:
            row.gpu_jobs += 1
        if runtime is None:
            row.no_runtime += 1
            continue
        row.gpu_hours += runtime / 60.0 * gpus
        row.core_hours += runtime / 60.0 * cpus
    order = list(OrderedDict.fromkeys(list(stages.values()) + ["other"]))
    return sorted(totals.values(), key=lambda r: (order.index(r.stage), r.rule))


def format_table(rows: list[RuleTotals], title: str) -> str:
    header = ("stage", "rule", "jobs", "GPU jobs", "GPU-hours", "core-hours")
    lines = [[r.stage, r.rule, str(r.jobs), str(r.gpu_jobs), f"{r.gpu_hours:.1f}", f"{r.core_hours:.1f}"]
             for r in rows]
    # one subtotal line per stage, then the grand total
    by_stage: dict[str, list[RuleTotals]] = OrderedDict()
    for r in rows:
        by_stage.setdefault(r.stage, []).append(r)
    stage_lines = [[stage, "(stage total)", str(sum(r.jobs for r in rs)), str(sum(r.gpu_jobs for r in rs)),
                    f"{sum(r.gpu_hours for r in rs):.1f}", f"{sum(r.core_hours for r in rs):.1f}"]
                   for stage, rs in by_stage.items()]
    total = ["total", "", str(sum(r.jobs for r in rows)), str(sum(r.gpu_jobs for r in rows)),
             f"{sum(r.gpu_hours for r in rows):.1f}", f"{sum(r.core_hours for r in rows):.1f}"]
    table = [list(header)] + lines + [None] + stage_lines + [None] + [total]
    widths = [max(len(row[i]) for row in table if row) for i in range(len(header))]

    def fmt(row):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[i].rjust(widths[i]) for i in range(2, len(header))]
        return "  ".join(cells).rstrip()

    rule_line = "  ".join("-" * w for w in widths)
    out = [title, fmt(table[0]), rule_line]
    out += [fmt(row) if row else rule_line for row in table[1:]]
    missing = [f"{r.rule} ({r.no_runtime})" for r in rows if r.no_runtime]
    if missing:
        out.append(f"note: no numeric runtime, hours not counted: {', '.join(missing)}")
    out.append("GPU-hours and core-hours are requested wall-time limits (runtime x gpu, runtime x cpus), "
               "an upper bound for the allocation, not a prediction.")
    return "\n".join(out)


def plan(snakefile: Path, configfiles: list[Path], targets: list[str] = (), forceall: bool = False,
         workdir: Path | None = None, by: str | None = None) -> list[RuleTotals]:
    """Per-rule totals of the jobs a dry run of ``snakefile`` (run in ``workdir``) lists."""
    snakefile = Path(snakefile).resolve()
    if not snakefile.is_file():
        raise UserError(f"{snakefile}: Snakefile not found")
    for f in configfiles:
        if not Path(f).is_file():
            raise UserError(f"{f}: config file not found")
    jobs = dry_run_jobs(snakefile, [Path(f).resolve() for f in configfiles], list(targets), forceall,
                        Path(workdir or Path.cwd()).resolve())
    return summarize(jobs, rule_stages(snakefile), by=by)


def _default_snakefile() -> Path:
    here = Path("Snakefile")
    return here if here.is_file() else REPO / "Snakefile"


def cmd_plan(args) -> int:
    snakefile = Path(args.snakefile) if args.snakefile else _default_snakefile()
    rows = plan(snakefile, args.configfile or [], args.targets, forceall=args.forceall, by=args.by)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    configs = ", ".join(map(str, args.configfile)) if args.configfile else "the Snakefile's default config"
    scope = "every job (--forceall)" if args.forceall else "jobs a run would start now"
    title = f"dnatok plan: {snakefile} with {configs}; {scope}"
    print(format_table(rows, title))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "plan",
        help="job matrix per stage and requested GPU-hours, from a Snakemake dry run",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("targets", nargs="*", help="Snakemake targets (default: the workflow's default target)")
    p.add_argument("--configfile", action="append", type=Path, metavar="FILE",
                   help="config file; repeat for overlays, later ones win (default: what the Snakefile loads)")
    p.add_argument("--snakefile", type=Path, help="Snakefile (default: ./Snakefile, else the repository's)")
    p.add_argument("--forceall", action="store_true",
                   help="count every job of the DAG, also those whose outputs already exist")
    p.add_argument("--by", metavar="WILDCARD",
                   help="split rules having this wildcard into one row per value (e.g. --by benchmark)")
    p.add_argument("--json", action="store_true", help="print the per-rule totals as JSON")
    p.set_defaults(func=cmd_plan)
