"""Thin entry point of rule `collect_runs`.

The list of metrics.json files grows as tasks x models x seeds (x a hyperparameter grid)
and can outgrow a shell command line, so this rule hands it over through the `snakemake`
object instead of argv. The logic is `dnatok.stats.collect`; nothing else happens here.
"""
import sys

from dnatok.io import provenance, write_json
from dnatok.stats.collect import collect_runs, write_table

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive

with open(snakemake.log[0], "w") as log:
    sys.stderr = sys.stdout = log
    runs = collect_runs(list(snakemake.input))
    write_table(runs, snakemake.output.runs)
    write_json(snakemake.output.provenance, provenance(n_runs=len(runs), inputs=len(snakemake.input)))
    print(f"collected {len(runs)} runs into {snakemake.output.runs}")
