"""Thin entry point of rule `collect_runs`.

The runs are listed by the packs' manifests; the list grows as tasks x models x seeds x
grid points and can outgrow a shell command line, so this rule reads them here instead of
taking them through argv. The logic is `dnatok.stats.collect`; nothing else happens here.
"""
import sys

from dnatok.io import provenance, write_json
from dnatok.stats.collect import collect_runs, write_table
from dnatok.train.pack import read_manifest

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive

with open(snakemake.log[0], "w") as log:
    sys.stderr = sys.stdout = log
    # each input is a pack's manifest, listing the metrics.json of its runs
    metrics = [path for manifest in snakemake.input for path in read_manifest(manifest)]
    runs = collect_runs(metrics)
    write_table(runs, snakemake.output.runs)
    write_json(snakemake.output.provenance, provenance(n_runs=len(runs), packs=len(snakemake.input)))
    print(f"collected {len(runs)} runs into {snakemake.output.runs}")
