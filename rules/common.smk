# Config checking, wildcard helpers and per-rule resources. Everything the rules need to
# compute paths and params lives here (or, as plain functions, in dnatok.config), so each
# stage file stays a list of declarative rules.
#
# Params rule: a rule's params carry everything that changes its outputs and nothing that
# does not (threads, log paths): Snakemake reruns a job when its params change, so a
# config edit reruns exactly the jobs it affects.
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import min_version

from dnatok import config as dnaconf
from dnatok import registry
from dnatok.bend import settings as bendconf
from dnatok.tokenization.learned_spec import LEARNED_KINDS

min_version("9.0")

# A bad config fails here, when the Snakefile is parsed, naming every bad key at once.
dnaconf.check_config(config, os.path.join(workflow.basedir, "config", "schema.yaml"))

# Rules call the `dnatok` command line. Without conda deployment it comes from the
# environment of the interpreter running Snakemake, so an un-activated venv (`.venv/bin/snakemake ...`) works
# and SLURM jobs on a shared filesystem use the same install; with `--sdm conda` the
# rule's environment provides `dnatok` on PATH.
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    shell.prefix(f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; ")

ENV = "../envs/dnatok.yaml"
GPU_ENV = "../envs/dnatok-gpu.yaml"
PROTOCOLS = dnaconf.protocols(config)


def as_json(obj):
    """Quote a value for the shell as one JSON argument."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def opt(flag, value):
    """``--flag 'value'`` shell-quoted, or nothing when the value is empty: every config
    value that reaches a shell command goes through here or as_json."""
    return f"{flag} {shlex.quote(str(value))}" if value else ""


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
    return dnaconf.model_tokenizers(config, model)


def checkpoint_dir(model):
    return f"resources/checkpoints/{model}"


def pretrained_model(wildcards):
    """What a fine-tuning job starts from: the model pretrained here, a released checkpoint
    folder, or nothing (the CNN)."""
    if dnaconf.is_released(config, wildcards.model):
        return checkpoint_dir(wildcards.model)
    if not dnaconf.is_pretrained(config, wildcards.model):
        return []
    return f"results/pretrain/{wildcards.model}/{wildcards.tokenizer}/config.json"


def finetune_tokenizer(wildcards):
    """A trained tokenizer folder; none for a released model (its own is in the checkpoint)."""
    if dnaconf.is_released(config, wildcards.model):
        return []
    return f"results/tokenizers/{wildcards.tokenizer}"


def model_source_arg(wildcards, input):
    if dnaconf.is_released(config, wildcards.model):
        return opt("--checkpoint", input.pretrained)
    return opt("--pretrained", os.path.dirname(input.pretrained) if input.pretrained else "")


def tokenizer_arg(wildcards, input):
    return shlex.quote(input.tokenizer) if input.tokenizer else wildcards.tokenizer


def pack_grid(wildcards):
    """The grid points of one fine-tuning job (a pack)."""
    return dnaconf.packs(config, wildcards.benchmark, wildcards.model, wildcards.tokenizer,
                         wildcards.task)[wildcards.pack]


def finetune_params(wildcards):
    """The settings every run of a pack shares (each run adds its grid point)."""
    return as_json(dnaconf.pack_settings(config, wildcards.protocol, wildcards.benchmark,
                                         wildcards.model, wildcards.tokenizer, wildcards.task))


def pretrain_params(wildcards):
    return as_json(dnaconf.pretrain_settings(config, wildcards.model, wildcards.tokenizer))


def hparams_arg(wildcards):
    return as_json(dnaconf.model_hparams(config, wildcards.model))


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


# LEARNED_KINDS (vq, hrq): tokenizers that are networks (rule train_learned_tokenizer)


def tokenizer_corpus(wildcards):
    """BPE learns from the pretraining train split; char and k-mers need no corpus."""
    if config["tokenizers"][wildcards.tokenizer]["kind"] == "bpe":
        return "data/pretrain/train.fa"
    return []


def tokenizer_names(learned):
    """Wildcard pattern of the tokenizers one of the two training rules builds (a pattern
    that matches nothing when there are none)."""
    names = [n for n, spec in config["tokenizers"].items() if (spec["kind"] in LEARNED_KINDS) == learned]
    return "|".join(names) if names else "(?!)"


# ---------------------------------------------------------------- bend (nucleotide level)
BEND_EMB = "results/bend/embeddings/{task}/{model}/{tokenizer}"
BEND_PROBE = "results/bend/probe/{task}/{model}/{tokenizer}/seed{seed}"
BEND_SCORES = "results/bend/variants/{model}/{tokenizer}/scores.tsv"


def bend_genome():
    """The reference of the BEND tasks: its own download, else the pretraining genome."""
    conf = config.get("bend", {}).get("genome")
    if conf:
        return f"resources/bend/genome/{bendconf.source_filename(conf['source'], 'genome.fa.gz')}"
    return pretrain_sources(None)["fasta"]


def bend_task_inputs(wildcards):
    files = bendconf.task_files(config, wildcards.task)
    inputs = {role: f"resources/bend/{wildcards.task}/{name}" for role, (name, _) in files.items()}
    inputs["genome"] = bend_genome()
    return inputs


def bend_download(wildcards):
    """(source, mirror) of one BEND download, found by its file name."""
    if wildcards.task == "genome":
        conf = config["bend"]["genome"]
        return conf["source"], conf.get("mirror")
    for name, source in bendconf.task_files(config, wildcards.task).values():
        if name == wildcards.filename:
            return source, bendconf.task_conf(config, wildcards.task).get("mirror")
    raise ValueError(f"bend task {wildcards.task} downloads no file named {wildcards.filename}")


def bend_task_args(wildcards, input):
    """The command building (annotation) or importing (release) a BEND task folder."""
    conf = bendconf.task_conf(config, wildcards.task)
    if conf["source"] == "annotation":
        splits = " ".join([*(opt("--split", f"{g}={s}") for g, s in (conf.get("splits") or {}).items()),
                           *(opt("--split-chrom", f"{c}={s}")
                             for c, s in (conf.get("split_chromosomes") or {}).items())])
        return (f"task gene-finding --annotation {shlex.quote(input.annotation)}"
                f" --format {conf['annotation_format']} --max-window-bp {conf['max_window_bp']}"
                f" --flank-bp {conf['flank_bp']} {splits}")
    hdf5 = opt("--hdf5", input.hdf5) if "hdf5" in input.keys() else ""
    return (f"import --name {wildcards.task} --bed {shlex.quote(input.bed)} {hdf5}"
            f" --kind {conf['kind']} --num-classes {conf['num_classes']}")


def bend_model_inputs(wildcards):
    """What one embedding job reads: the model and tokenizer folders (none for one-hot)."""
    if wildcards.model == bendconf.BASELINE_MODEL:
        return {}
    inputs = {"model": pretrained_model(wildcards)}
    tokenizer = finetune_tokenizer(wildcards)
    if tokenizer:
        inputs["tokenizer"] = tokenizer
    return inputs


def bend_model_args(wildcards, input):
    if wildcards.model == bendconf.BASELINE_MODEL:
        return f"--model {bendconf.BASELINE_MODEL}"
    model = input.model if dnaconf.is_released(config, wildcards.model) else os.path.dirname(input.model)
    return f"--model {shlex.quote(model)} {opt('--tokenizer', input.get('tokenizer'))}"


def bend_probe_args(wildcards):
    """The probe's training settings as command-line options."""
    flags = {"arch": "--arch", "epochs": "--epochs", "learning_rate": "--learning-rate",
             "weight_decay": "--weight-decay", "batch_size": "--batch-size", "hidden": "--hidden",
             "layers": "--layers", "patience": "--patience", "crop_bp": "--crop-bp",
             "class_weights": "--class-weights", "device": "--device"}
    settings = bendconf.probe_settings(config, wildcards.model)
    args = [f"{flag} {shlex.quote(str(settings[key]))}" for key, flag in flags.items()
            if settings[key] is not None]
    return " ".join(args + (["--rc-aug"] if settings["rc_aug"] else []))


def bend_probe_dirs():
    return [BEND_PROBE.format(task=t, model=m, tokenizer=k, seed=s)
            for t in bendconf.tasks(config) for m, k in bendconf.evaluations(config)
            for s in bendconf.seeds(config)]


def bend_variant_scores():
    if bendconf.variant_settings(config) is None:
        return []
    return [BEND_SCORES.format(model=m, tokenizer=k) for m, k in bendconf.evaluations(config, with_baseline=False)]


def bend_targets():
    if not bendconf.enabled(config):
        return []
    targets = ["results/bend/probe_summary.tsv"]
    if bend_compares():
        targets.append("results/bend/probe_significance.tsv")
    if bend_variant_scores():
        targets.append("results/bend/variant_effects.tsv")
    return targets


def bend_compares():
    """True when some probed model has both tokenizers of ``compare``."""
    pairs = set(bendconf.evaluations(config, with_baseline=False))
    a, b = config["compare"]
    return any((m, a) in pairs and (m, b) in pairs for m in bendconf.models(config))


# ---------------------------------------------------------------- resources
# The rules the SLURM profile sends to the GPU partition with a GPU model: they ask for one
# GPU unless their resources say otherwise (a GPU model with 0 GPUs is no valid request).
GPU_RULES = ("pretrain", "finetune", "train_learned_tokenizer", "bend_embed", "bend_probe")


def resource(rule, key, benchmark=None):
    """Per-rule resource from the config; a benchmark override wins over the rule, the rule over the default."""
    layers = [config["resources"]["default"], config["resources"].get(rule, {})]
    if benchmark is not None:
        layers.append(benchmark_conf(benchmark).get("resources", {}).get(rule, {}))
    value = None
    for layer in layers:
        value = layer.get(key, value)
    if value is None and key == "gpu":
        return 1 if rule in GPU_RULES else 0
    return value


def res(rule, key):
    """A resource as a function of the job's wildcards (for benchmark overrides)."""

    def get(wildcards):
        return resource(rule, key, getattr(wildcards, "benchmark", None))

    return get


def finetune_runtime(wildcards):
    """A fine-tuning job trains every run of its pack: the configured per-run runtime times
    its runs (grid points x seeds), capped at max_runtime (a pack that reaches the cap is
    requeued and continues with the runs it had not finished)."""
    runs = len(pack_grid(wildcards)) * len(config["seeds"])
    want = resource("finetune", "runtime", wildcards.benchmark) * runs
    cap = resource("finetune", "max_runtime", wildcards.benchmark)
    return min(want, cap) if cap else want


# ---------------------------------------------------------------- targets
PACK_ROOT = "results/finetune/{protocol}/{benchmark}/{task}/{model}/{tokenizer}"
PACK = f"{PACK_ROOT}/pack-{{pack}}.tsv"


def packs_of(benchmark, tokenizer=None):
    """(protocol, task, model, tokenizer, pack) of every fine-tuning job of a benchmark."""
    return [
        dict(protocol=p, benchmark=benchmark, task=task, model=model, tokenizer=tok, pack=pack)
        for p in PROTOCOLS
        for task in tasks_of(benchmark)
        for model in config["models"]
        for tok in tokenizers_for(model)
        if tokenizer is None or tok == tokenizer
        for pack in dnaconf.packs(config, benchmark, model, tok, task)
    ]


def pack_manifests(benchmark, tokenizer=None):
    """The manifests of a benchmark's packs: each lists its runs' metrics.json."""
    return [PACK.format(**job) for job in packs_of(benchmark, tokenizer)]


def used_tokenizers():
    """Tokenizers at least one model uses (only those have runs to aggregate); ``own`` (the
    released checkpoints' own tokenizers) last when a released model is configured."""
    names = [*config["tokenizers"], "own"]
    return [t for t in names if any(t in tokenizers_for(m) for m in config["models"])]


def trained_tokenizers():
    """Used tokenizers trained here (those have tokenizer statistics)."""
    return [t for t in used_tokenizers() if t in config["tokenizers"]]


def released_models():
    return [m for m in config["models"] if dnaconf.is_released(config, m)]


def selected_tables(benchmarks=None, tokenizers=None):
    return [f"results/{b}/{t}/selected.tsv" for b in (benchmarks or list(config["benchmarks"]))
            for t in (tokenizers or used_tokenizers())]


def all_targets():
    targets = []
    for benchmark in config["benchmarks"]:
        for tok in used_tokenizers():
            targets.append(f"results/{benchmark}/{tok}/summary.tsv")
        for tok in trained_tokenizers():
            targets.append(f"results/tokenizer_stats/{benchmark}/{tok}.tsv")
        targets += [
            f"results/{benchmark}/significance.tsv",
            f"results/{benchmark}/figures",
            f"results/{benchmark}/leakage.tsv",
        ]
    targets += study_targets()
    targets += bend_targets()
    targets.append("results/report/index.md")
    return targets


def study_targets():
    out = ["results/study/significance.tsv", "results/study/means_benchmark.tsv",
           "results/study/means_category.tsv", "results/study/figures/mcc_means_benchmark.png",
           "results/study/figures/mcc_means_category.png"]
    if len(PROTOCOLS) > 1:
        out.append("results/study/protocols.tsv")
    return out
