# Config loading, schema validation, wildcard helpers and per-rule resources.
# Everything the rules need to compute paths lives here, so each stage file stays a
# list of declarative rules.
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import min_version, validate

from dnatok import registry

min_version("9.0")

validate(config, "../config/schema.yaml")

# Rules call the `dnatok` command line. Without conda deployment it comes from the
# environment of the interpreter running Snakemake, so an un-activated venv (`.venv/bin/snakemake ...`) works
# and SLURM jobs on a shared filesystem use the same install; with `--sdm conda` the
# rule's environment provides `dnatok` on PATH.
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    shell.prefix(f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; ")

ENV = "../envs/dnatok.yaml"
GPU_ENV = "../envs/dnatok-gpu.yaml"


def as_json(obj):
    """Quote a value for the shell as one JSON argument."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


# ---------------------------------------------------------------- tasks
def benchmark_conf(benchmark):
    return config["benchmarks"][benchmark]


def tasks_of(benchmark):
    declared = benchmark_conf(benchmark)["tasks"]
    if declared == "all":
        return sorted(registry.TASKS[benchmark])
    return sorted(declared)


def task_info(benchmark, task):
    """Registry fields of a task; the demo's simulated tasks declare their own."""
    conf = benchmark_conf(benchmark)
    if conf["format"] == "simulate":
        spec = conf["tasks"][task]
        return {"name": task, "benchmark": benchmark, "source": f"simulated:{spec['signal']}",
                "num_classes": 2, "max_len": spec["length"], "study_len": spec["length"],
                "metric": "mcc", "category": spec["category"]}
    return registry.get_task(benchmark, task).to_dict()


# ---------------------------------------------------------------- models and tokenizers
def tokenizers_for(model):
    return config["models"][model].get("tokenizers", list(config["tokenizers"]))


def model_args(model):
    return {k: v for k, v in config["models"][model].items() if k not in ("arch", "tokenizers")}


def is_pretrained(model):
    # The CNN baseline is trained from scratch on each task, as in the study.
    return config["models"][model]["arch"] != "cnn"


def pretrained_model(wildcards):
    if not is_pretrained(wildcards.model):
        return []
    return f"results/pretrain/{wildcards.model}/{wildcards.tokenizer}/config.json"


def finetune_settings(benchmark):
    settings = {**config["finetune"], **benchmark_conf(benchmark).get("finetune", {})}
    if config["protocol"] == "original":
        # The original protocol fixes checkpoint selection (validation accuracy for GB,
        # MCC otherwise) and trains every epoch; the config's choices would override it.
        for key in ("select_metric", "patience"):
            settings.pop(key, None)
    return settings


# ---------------------------------------------------------------- inputs by source
def pretrain_sources(wildcards):
    if config["pretrain_data"]["source"] == "simulate":
        return {"fasta": "resources/pretrain/simulated/genome.fa", "bed": "resources/pretrain/simulated/sequences_human.bed"}
    return {"fasta": "resources/pretrain/hg38/hg38.ml.fa.gz", "bed": "resources/pretrain/hg38/sequences_human.bed"}


def benchmark_source(wildcards):
    """The raw input(s) of prepare_task: the source archive/folder, and for Genomic
    Benchmarks the reference genomes its intervals are cut from."""
    conf = benchmark_conf(wildcards.benchmark)
    if conf["format"] == "simulate":
        return {"source": f"resources/{wildcards.benchmark}/raw/{wildcards.task}"}
    if conf["source"]["kind"] == "hf":
        return {"source": f"resources/{wildcards.benchmark}/hub"}
    sources = {"source": f"resources/{wildcards.benchmark}/{conf['source']['filename']}"}
    if conf["format"] == "genomic_benchmarks":
        sources["references"] = f"resources/{wildcards.benchmark}/references"
    return sources


PREPARE_FORMAT = {"simulate": "csv", "gue": "gue", "genomic_benchmarks": "gb", "nucleotide_transformer": "nt"}


def mirror_arg(conf):
    return f"--mirror {conf['mirror']}" if conf.get("mirror") else ""


def tokenizer_corpus(wildcards):
    if config["tokenizers"][wildcards.tokenizer]["kind"] == "bpe":
        return "data/pretrain/train.fa"
    return []


# ---------------------------------------------------------------- resources
def resource(rule, key, benchmark=None):
    """Per-rule resource from the config; a benchmark override wins over the rule, the rule over the default."""
    layers = [config["resources"]["default"], config["resources"].get(rule, {})]
    if benchmark is not None:
        layers.append(benchmark_conf(benchmark).get("resources", {}).get(rule, {}))
    value = None
    for layer in layers:
        value = layer.get(key, value)
    if value is None and key == "gpu":
        return 0
    return value


def res(rule, key):
    """A resource as a function of the job's wildcards (for benchmark overrides)."""

    def get(wildcards):
        return resource(rule, key, getattr(wildcards, "benchmark", None))

    return get


# ---------------------------------------------------------------- targets
def metrics_files(benchmark, tokenizer=None):
    return [
        f"results/finetune/{benchmark}/{task}/{model}/{tok}/seed{seed}/metrics.json"
        for task in tasks_of(benchmark)
        for model in config["models"]
        for tok in tokenizers_for(model)
        if tokenizer is None or tok == tokenizer
        for seed in config["seeds"]
    ]


def all_targets():
    targets = []
    for benchmark in config["benchmarks"]:
        for tok in config["tokenizers"]:
            targets.append(f"results/{benchmark}/{tok}/summary.tsv")
            targets.append(f"results/tokenizer_stats/{benchmark}/{tok}.tsv")
        targets += [
            f"results/{benchmark}/significance.tsv",
            f"results/{benchmark}/figures",
            f"results/{benchmark}/leakage.tsv",
        ]
    targets.append("results/report/index.md")
    return targets
