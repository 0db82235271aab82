# dnatok: the study as one DAG.
#   data (download | simulate) -> pretraining intervals -> tokenizers -> pretraining
#   -> fine-tuning (protocol x benchmark x task x model x tokenizer x grid point x seed)
#   -> selection (one grid point per task, across seeds) -> tables, figures, report
#   and, with a `bend:` block, nucleotide-level probes on frozen embeddings (rules/bend.smk)
# The default config is the full study (config/config.yaml); the embedded demo is
#   snakemake --configfile config/demo.yaml --cores 2 all
# Rules are declarative and call `python -m dnatok ...`; all logic lives in src/dnatok/.

# Load the full study only when no config file was given on the command line: a
# `configfile:` directive would otherwise be merged *under* --configfile and leak the
# full study's benchmarks into the demo.
import os

if "study" not in config:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "rules/common.smk"


wildcard_constraints:
    benchmark="(?!bend/)[a-z0-9]+",  # results/bend/ and data/bend/ belong to rules/bend.smk
    task="[A-Za-z0-9_]+",
    model="[a-z0-9]+",
    tokenizer="[A-Za-z0-9]+",
    seed="[0-9]+",
    split="train|valid|test",
    protocol="original|corrected",
    pack="g[0-9]+",


include: "rules/data.smk"
include: "rules/tokenize.smk"
include: "rules/pretrain.smk"
include: "rules/finetune.smk"
include: "rules/aggregate.smk"
include: "rules/bend.smk"


rule all:
    input:
        all_targets(),
    default_target: True
