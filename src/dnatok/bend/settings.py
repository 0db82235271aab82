"""The ``bend:`` block of the workflow config: defaults, what it resolves to, and the
cross-checks the schema cannot express (run at parse time by ``dnatok.config``).

One BEND evaluation = (task, model, tokenizer, seed): the frozen model embeds the task's
sequences once per (task, model, tokenizer); a probe is trained per seed. The one-hot
baseline is the pseudo-model ``onehot`` with the pseudo-tokenizer ``none``.
"""
from __future__ import annotations

from pathlib import PurePosixPath

BASELINE_MODEL, BASELINE_TOKENIZER = "onehot", "none"
# BEND's probe recipe (its supervised-task configs): the 2-layer CNN of width 64, AdamW lr
# 3e-3, weight decay 0.01, best epoch on validation. 100 epochs upstream; patience is ours
# (off upstream). hidden/layers None = the arch's BEND default.
DEFAULT_PROBE = {"arch": "cnn", "epochs": 100, "learning_rate": 3e-3, "weight_decay": 0.01, "batch_size": 64,
                 "hidden": None, "layers": None, "patience": 10, "crop_bp": None, "class_weights": "none",
                 "rc_aug": False, "device": "auto"}
# BEND's supervised baseline on one-hot bases is not the probe but its dilated ResNet
# ("resnet-supervised": 30 blocks of width 256, kernel 9, dilations 1..32 cycling).
DEFAULT_BASELINE = {"arch": "resnet"}
DEFAULT_VARIANTS = {"deep_per_intron": 2, "min_intron_distance": 200, "context_bp": 256, "seed": 0}
DEFAULT_ANNOTATION_TASK = {"max_window_bp": 12000, "flank_bp": 1000}


def enabled(config: dict) -> bool:
    return bool(config.get("bend"))


def tasks(config: dict) -> list[str]:
    return list(config["bend"]["tasks"]) if enabled(config) else []


def task_conf(config: dict, task: str) -> dict:
    conf = dict(config["bend"]["tasks"][task])
    if conf["source"] == "annotation":
        conf = {**DEFAULT_ANNOTATION_TASK, **conf}
    return conf


def seeds(config: dict) -> list[int]:
    return list(config["bend"].get("seeds") or config["seeds"])


def probe_settings(config: dict, model: str | None = None) -> dict:
    """The probe's settings for a model's embeddings; the one-hot baseline adds BEND's
    supervised ResNet and the ``baseline`` block's own settings on top."""
    settings = {**DEFAULT_PROBE, **(config["bend"].get("probe") or {})}
    if model == BASELINE_MODEL:
        baseline = config["bend"].get("baseline", True)
        settings.update(DEFAULT_BASELINE, **(baseline if isinstance(baseline, dict) else {}))
    return settings


def variant_settings(config: dict) -> dict | None:
    """The variant-effect settings, None when no variants are configured."""
    block = config["bend"].get("variants") if enabled(config) else None
    return None if block is None else {**DEFAULT_VARIANTS, **block}


def _embeddable(config: dict, model: str) -> bool:
    from dnatok.config import is_pretrained, is_released

    return is_released(config, model) or is_pretrained(config, model)


def models(config: dict) -> list[str]:
    """Models whose frozen embeddings are probed: the ``models`` list, else every model
    that has weights of its own (pretrained here or released; not the CNN)."""
    listed = config["bend"].get("models")
    if listed is not None:
        return list(listed)
    return [m for m in config["models"] if _embeddable(config, m)]


def evaluations(config: dict, with_baseline: bool = True) -> list[tuple[str, str]]:
    """(model, tokenizer) pairs to embed and probe, the one-hot baseline first."""
    from dnatok.config import model_tokenizers

    pairs = [(m, t) for m in models(config) for t in model_tokenizers(config, m)]
    if with_baseline and config["bend"].get("baseline", True) is not False:
        pairs.insert(0, (BASELINE_MODEL, BASELINE_TOKENIZER))
    return pairs


def source_filename(source: dict, default: str) -> str:
    """The local name of a downloaded file: ``filename``, else the URL's last part."""
    if source.get("filename"):
        return source["filename"]
    url = source.get("url") or ""
    name = PurePosixPath(url.split("?")[0]).name
    return name or default


def task_files(config: dict, task: str) -> dict[str, tuple[str, dict]]:
    """{role: (file name under resources/bend/<task>/, source)} of a task's downloads."""
    conf = task_conf(config, task)
    if conf["source"] == "annotation":
        return {"annotation": (source_filename(conf["annotation"], "annotation"), conf["annotation"])}
    files = {"bed": (f"{task}.bed", conf["bed"])}
    if conf.get("hdf5"):
        files["hdf5"] = (f"{task}.hdf5", conf["hdf5"])
    return files


def problems(config: dict) -> list[str]:
    """Everything wrong with the ``bend`` block, each with its key path."""
    if not enabled(config):
        return []
    out = []
    if "bend" in config["benchmarks"]:
        out.append("benchmarks.bend: the name 'bend' is reserved for results/bend/ (rename the benchmark)")
    for name in config["bend"].get("models") or []:
        if name not in config["models"]:
            out.append(f"bend.models: {name!r} is not a model (known: {', '.join(config['models'])})")
        elif not _embeddable(config, name):
            out.append(f"bend.models: {name!r} has no weights of its own to embed with (never pretrained)")
    for task in tasks(config):
        out += _task_problems(config, task)
    variants = variant_settings(config)
    if variants is not None:
        task = variants["task"]
        if task not in tasks(config):
            out.append(f"bend.variants.task: {task!r} is not a bend task (known: {', '.join(tasks(config))})")
        elif task_conf(config, task)["source"] != "annotation":
            out.append(f"bend.variants.task: {task!r} has no gene models (source: release); "
                       "variants are placed from an annotation task")
    return out


def _task_problems(config: dict, task: str) -> list[str]:
    where = f"bend.tasks.{task}"
    conf = config["bend"]["tasks"][task]
    need = {"annotation": ("annotation", "annotation_format"), "release": ("bed", "kind", "num_classes")}
    allowed = {"annotation": {"source", "annotation", "annotation_format", "mirror", "max_window_bp",
                              "flank_bp", "splits", "split_chromosomes"},
               "release": {"source", "bed", "hdf5", "kind", "num_classes", "mirror"}}
    source = conf["source"]
    out = [f"{where}.{key}: required with source: {source}" for key in need[source] if key not in conf]
    out += [f"{where}.{key}: not used with source: {source}" for key in sorted(set(conf) - allowed[source])]
    if source == "release" and conf.get("kind") == "per_base" and "hdf5" not in conf:
        out.append(f"{where}.hdf5: a per_base task's labels come in an hdf5 file")
    return out
