"""The workflow configuration: checked once when the Snakefile is parsed, then resolved into
the exact settings of every job.

Checking (:func:`check_config`) runs the closed schema (``config/schema.yaml``: a
misspelt key anywhere is an error) and then the validators the stages themselves use —
fine-tuning and pretraining settings, model hyperparameters, tokenizer specs — plus the
cross-checks no schema can express (a tokenizer a model names must exist, ``rcps`` needs a
tokenizer with a complement map, ``compare`` names two tokenizers). Every problem is
reported with its key path, all at once, before any job starts.

Resolution (everything else here) is a pure function of the config and a run's wildcards,
so a rule's params are exactly what changes its outputs:

* fine-tuning settings of a run = ``finetune`` < ``benchmarks.<b>.finetune`` <
  ``models.<m>.finetune`` < matching ``models.<m>.overrides[].finetune`` (in order) <
  the grid point (learning_rate, batch_size, rc_aug);
* the grid of (benchmark, model, tokenizer) = ``models.<m>.grid`` with each key replaced
  by matching overrides; a key the grid does not name takes the resolved setting's value;
* pretraining settings of (model, tokenizer) = ``pretrain`` < ``models.<m>.pretrain`` <
  ``tokenizers.<t>.pretrain`` < matching tokenizer overrides of the model.

A grid point's id (the ``hp`` wildcard) is readable and parses back to its values:
``lr1e-4_bs128_rc1``.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

from dnatok.errors import UserError

PROTOCOL_NAMES = ("corrected", "original")
GRID_KEYS = ("learning_rate", "batch_size", "rc_aug")
_HP = re.compile(r"^lr(?P<lr>[0-9.]+e-?[0-9]+)_bs(?P<bs>[0-9]+)_rc(?P<rc>[01])$")


class ConfigError(UserError):
    """One or more problems in the workflow configuration, each with its key path."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {source} ({len(self.problems)} problem(s)):\n{lines}")


# ----------------------------------------------------------------------------- grid ids
def format_lr(lr: float) -> str:
    """Shortest scientific form: 1e-4, 6e-4, 1.5e-3, 8e-3."""
    mantissa, exponent = f"{float(lr):.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def hp_id(point: dict) -> str:
    """The readable id of a grid point: ``lr1e-4_bs128_rc1``."""
    return (f"lr{format_lr(point['learning_rate'])}_bs{int(point['batch_size'])}"
            f"_rc{int(bool(point['rc_aug']))}")


def parse_hp(hp: str) -> dict:
    m = _HP.match(hp)
    if not m:
        raise UserError(f"hyperparameter id {hp!r} is not of the form lr<float>_bs<int>_rc<0|1>")
    return {"learning_rate": float(m["lr"]), "batch_size": int(m["bs"]), "rc_aug": m["rc"] == "1"}


# ----------------------------------------------------------------------------- resolution
def protocols(config: dict) -> list[str]:
    value = config["protocol"]
    return [value] if isinstance(value, str) else list(value)


def is_released(config: dict, model: str) -> bool:
    """A model fine-tuned from a released checkpoint (``checkpoint:``), not pretrained here."""
    return "checkpoint" in config["models"][model]


def model_tokenizers(config: dict, model: str) -> list[str]:
    """A released model has one tokenizer: its own (the tokenizer axis value ``own``)."""
    if is_released(config, model):
        from dnatok.released import OWN_TOKENIZER

        return [OWN_TOKENIZER]
    return list(config["models"][model].get("tokenizers", list(config["tokenizers"])))


def model_label(config: dict, model: str) -> str | None:
    """The run name in the tables: ``label:``, else a released family's (``DNABERT2`` ...),
    else None (the tables then say model/tokenizer)."""
    conf = config["models"][model]
    if conf.get("label"):
        return conf["label"]
    if is_released(config, model):
        from dnatok.released import label_of

        return label_of(conf["arch"])
    return None


def model_hparams(config: dict, model: str) -> dict:
    return dict(config["models"][model].get("hparams") or {})


def run_label(config: dict, model: str, tokenizer: str) -> str | None:
    """A run's name in the tables: the model's label, with ``-<tokenizer>`` when the model
    runs with several tokenizers (``Mamba-char``, ``Mamba-bpe``: the published names)."""
    label = model_label(config, model)
    if label and len(model_tokenizers(config, model)) > 1:
        return f"{label}-{tokenizer}"
    return label


def is_pretrained(config: dict, model: str) -> bool:
    """Pretrained here: not the CNN baseline (trained from scratch on each task, as in the
    study) and not a released checkpoint."""
    from dnatok.architectures import OBJECTIVE

    if is_released(config, model):
        return False
    return OBJECTIVE[config["models"][model]["arch"]] is not None


def _matching(config: dict, model: str, tokenizer: str | None, benchmark: str | None,
              task: str | None = None):
    """Override blocks of ``model`` that match, in order. A ``task`` match is a glob
    (``prom_core_*``) and never matches when no task is given."""
    import fnmatch

    for block in config["models"][model].get("overrides") or []:
        if "tokenizer" in block and block["tokenizer"] != tokenizer:
            continue
        if "benchmark" in block and block["benchmark"] != benchmark:
            continue
        if "task" in block and (task is None or not fnmatch.fnmatchcase(task, block["task"])):
            continue
        yield block


def finetune_base(config: dict, benchmark: str, model: str, tokenizer: str, task: str | None = None) -> dict:
    """Fine-tuning settings before the grid point is applied."""
    out = {**config["finetune"], **(config["benchmarks"][benchmark].get("finetune") or {}),
           **(config["models"][model].get("finetune") or {})}
    for block in _matching(config, model, tokenizer, benchmark, task):
        out.update(block.get("finetune") or {})
    return out


def grid_points(config: dict, benchmark: str, model: str, tokenizer: str, task: str | None = None) -> list[dict]:
    """Every grid point of (benchmark, task, model, tokenizer), in a fixed order."""
    grid = dict(config["models"][model].get("grid") or {})
    for block in _matching(config, model, tokenizer, benchmark, task):
        grid.update(block.get("grid") or {})
    from dnatok.train.finetune import DEFAULT_SETTINGS

    base = {**DEFAULT_SETTINGS, **finetune_base(config, benchmark, model, tokenizer, task)}
    axes = [grid.get(key, [base[key]]) for key in GRID_KEYS]
    return [dict(zip(GRID_KEYS, values)) for values in itertools.product(*axes)]


def grid_ids(config: dict, benchmark: str, model: str, tokenizer: str, task: str | None = None) -> list[str]:
    return [hp_id(p) for p in grid_points(config, benchmark, model, tokenizer, task)]


def pack_size(config: dict) -> int | None:
    """Grid points per fine-tuning job (each with every seed); None: all of them."""
    size = config.get("finetune_pack", "all")
    return None if size == "all" else int(size)


def packs(config: dict, benchmark: str, model: str, tokenizer: str, task: str) -> dict[str, list[str]]:
    """The fine-tuning jobs of (benchmark, task, model, tokenizer): pack id (``g0``, ``g1``
    ...) -> its grid points, in grid order, ``finetune_pack`` per job."""
    ids = grid_ids(config, benchmark, model, tokenizer, task)
    n = pack_size(config) or len(ids)
    return {f"g{k}": ids[k * n:(k + 1) * n] for k in range((len(ids) + n - 1) // n)}


def pack_settings(config: dict, protocol: str, benchmark: str, model: str, tokenizer: str, task: str) -> dict:
    """The settings every run of a pack shares: a run's settings without its grid point
    (``dnatok finetune --grid`` puts each run's back)."""
    hp = grid_ids(config, benchmark, model, tokenizer, task)[0]
    return {k: v for k, v in finetune_settings(config, protocol, benchmark, model, tokenizer, hp, task).items()
            if k not in GRID_KEYS}


def finetune_settings(config: dict, protocol: str, benchmark: str, model: str, tokenizer: str,
                      hp: str, task: str | None = None) -> dict:
    """The resolved settings of one run: its grid point applied, the settings the protocol
    fixes itself removed (dnatok.train.protocol.settings_for), the config key as the
    model's name in metrics.json and its table label."""
    from dnatok.train.protocol import settings_for

    merged = {**finetune_base(config, benchmark, model, tokenizer, task), **parse_hp(hp), "model_name": model,
              "label": run_label(config, model, tokenizer)}
    return settings_for(protocol, merged)


def pretrain_settings(config: dict, model: str, tokenizer: str) -> dict:
    out = {**config["pretrain"], **(config["models"][model].get("pretrain") or {}),
           **(config["tokenizers"][tokenizer].get("pretrain") or {})}
    for block in _matching(config, model, tokenizer, None):
        if "benchmark" not in block:
            out.update(block.get("pretrain") or {})
    return out


def tokenizer_spec(config: dict, tokenizer: str) -> dict:
    """The spec the tokenizer is trained from (its pretraining overrides are not part of it)."""
    return {k: v for k, v in config["tokenizers"][tokenizer].items() if k != "pretrain"}


# ----------------------------------------------------------------------------- checking
def load_schema(path) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text())


def _key_path(parts) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in parts).replace(".[", "[") or "(top level)"


def schema_problems(config: dict, schema: dict) -> list[str]:
    """Closed-schema violations, one line each, naming the key path."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = _key_path(err.absolute_path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            known = ", ".join(sorted(err.schema.get("properties", {})))
            for key in extra:
                path = f"{where}.{key}" if err.absolute_path else key
                problems.append(f"{path}: unknown key (known here: {known})")
        elif err.validator in ("oneOf", "anyOf") and err.context:
            best = min(err.context, key=lambda e: len(list(e.absolute_path)))
            problems.append(f"{where}: {best.message}")
        else:
            problems.append(f"{where}: {err.message}{_yaml_number_hint(err)}")
    return problems


def _yaml_number_hint(err) -> str:
    """YAML 1.1 (PyYAML, Snakemake) reads 1e-3 as a string: say so where a number was meant."""
    if err.validator != "type" or not isinstance(err.instance, str):
        return ""
    try:
        float(err.instance)
    except ValueError:
        return ""
    return f" (YAML reads {err.instance} as text; write it with a decimal point, e.g. 1.0e-3)"


def semantic_problems(config: dict) -> list[str]:
    """What the schema cannot say: names that must exist, settings the stages would refuse,
    model/tokenizer combinations that cannot work."""
    problems = []
    toks = config["tokenizers"]
    for name in config["compare"]:
        if name not in toks:
            problems.append(f"compare: {name!r} is not a tokenizer (known: {', '.join(toks)})")
    if len(set(config["compare"])) != 2:
        problems.append("compare: needs two different tokenizers")
    for name, spec in toks.items():
        problems += _tokenizer_problems(name, tokenizer_spec(config, name))
    for model, conf in config["models"].items():
        problems += _model_problems(config, model, conf)
    from dnatok.bend.settings import problems as bend_problems

    problems += bend_problems(config)
    return problems


def _tokenizer_problems(name: str, spec: dict) -> list[str]:
    from dnatok.tokenization.vocab import canonical_spec

    try:
        canonical_spec(spec)
    except UserError as err:
        return [f"tokenizers.{name}: {err}"]
    return []


def _model_problems(config: dict, model: str, conf: dict) -> list[str]:
    from dnatok.architectures import HPARAMS, hparam_problems

    where = f"models.{model}"
    arch = conf["arch"]
    if is_released(config, model) or arch not in _own_archs():
        problems = _released_problems(config, model, conf)
        return problems + (_settings_problems(config, model, model_tokenizers(config, model))
                           if not problems else [])
    problems = []
    hparams = model_hparams(config, model)
    unknown = sorted(set(hparams) - set(HPARAMS[arch]))
    for key in unknown:
        problems.append(f"{where}.hparams.{key}: unknown {arch} hyperparameter "
                        f"(known: {', '.join(HPARAMS[arch])})")
    problems += [f"{where}.hparams: {p}" for p in hparam_problems(arch, hparams)]
    tokenizers = model_tokenizers(config, model)
    for tok in tokenizers:
        if tok not in config["tokenizers"]:
            problems.append(f"{where}.tokenizers: {tok!r} is not a tokenizer (known: {', '.join(config['tokenizers'])})")
    for i, block in enumerate(conf.get("overrides") or []):
        if block.get("tokenizer") not in (None, *tokenizers):
            problems.append(f"{where}.overrides[{i}].tokenizer: {block['tokenizer']!r} is not one of this "
                            f"model's tokenizers ({', '.join(tokenizers)})")
        if block.get("benchmark") not in (None, *config["benchmarks"]):
            problems.append(f"{where}.overrides[{i}].benchmark: {block['benchmark']!r} is not a benchmark")
        if "pretrain" in block and "benchmark" in block:
            problems.append(f"{where}.overrides[{i}].pretrain: pretraining does not depend on the "
                            "benchmark; give a tokenizer match only")
    if hparams.get("rcps"):
        for tok in tokenizers:
            if tok in config["tokenizers"] and config["tokenizers"][tok]["kind"] != "char":
                problems.append(f"{where}.hparams.rcps: true needs a token-level complement map, and tokenizer "
                                f"{tok!r} ({config['tokenizers'][tok]['kind']}) has none; restrict the model "
                                "with tokenizers: [char]")
    valid_toks = [t for t in tokenizers if t in config["tokenizers"]]
    problems += _settings_problems(config, model, valid_toks)
    return problems


def _own_archs() -> tuple:
    from dnatok.architectures import ARCHITECTURES

    return ARCHITECTURES


def _released_problems(config: dict, model: str, conf: dict) -> list[str]:
    """A released model names a checkpoint of a family dnatok implements, and nothing that
    only a model pretrained here has (hyperparameters, tokenizers, pretraining)."""
    from dnatok.released import FAMILY_MODULES, OWN_TOKENIZER

    where, arch = f"models.{model}", conf["arch"]
    if arch not in FAMILY_MODULES:
        return [f"{where}.arch: {arch} is pretrained here and takes no checkpoint (released "
                f"architectures: {', '.join(FAMILY_MODULES)})"]
    problems = []
    if "checkpoint" not in conf:
        problems.append(f"{where}.checkpoint: {arch} is a released architecture: name its checkpoint "
                        "(hub id) and revision")
    for key in ("hparams", "pretrain"):
        if conf.get(key):
            problems.append(f"{where}.{key}: a released checkpoint brings its own architecture and weights")
    if conf.get("tokenizers") not in (None, [OWN_TOKENIZER]):
        problems.append(f"{where}.tokenizers: a released model uses its own tokenizer ({OWN_TOKENIZER!r})")
    for i, block in enumerate(conf.get("overrides") or []):
        if block.get("tokenizer") not in (None, OWN_TOKENIZER):
            problems.append(f"{where}.overrides[{i}].tokenizer: only {OWN_TOKENIZER!r} applies to a released model")
        if "pretrain" in block:
            problems.append(f"{where}.overrides[{i}].pretrain: a released model is not pretrained here")
    if conf.get("mirror") is None and not conf.get("revision"):
        problems.append(f"{where}.revision: pin the checkpoint's commit (hub repositories change)")
    return problems


def _settings_problems(config: dict, model: str, tokenizers: list[str]) -> list[str]:
    from dnatok.train.finetune import resolve_settings
    from dnatok.train.pretrain import resolve_pretrain_settings

    problems = []
    for tok in tokenizers:
        if is_pretrained(config, model):
            try:
                resolve_pretrain_settings(pretrain_settings(config, model, tok))
            except UserError as err:
                problems.append(f"pretrain settings of {model}/{tok}: {err}")
        elif config["models"][model].get("pretrain") or any(
                "pretrain" in b for b in config["models"][model].get("overrides") or []):
            problems.append(f"models.{model}.pretrain: {config['models'][model]['arch']} is never pretrained")
        for bench in config["benchmarks"]:
            problems += _run_settings_problems(config, bench, model, tok)
    return problems


def _benchmark_tasks(config: dict, benchmark: str) -> list[str]:
    from dnatok import registry

    tasks = config["benchmarks"][benchmark]["tasks"]
    if tasks == "all":
        return sorted(registry.TASKS.get(benchmark, {}))
    return sorted(tasks)


def _run_settings_problems(config: dict, bench: str, model: str, tok: str) -> list[str]:
    """Every task's resolved settings under both protocols (a config switched to the other
    protocol must not fail only at run time), as the runs will see them (the first
    problem of each task is enough)."""
    from dnatok.train.finetune import resolve_settings, task_max_tokens

    problems = []
    for task in _benchmark_tasks(config, bench):
        try:
            for protocol in PROTOCOL_NAMES:
                for hp in grid_ids(config, bench, model, tok, task):
                    settings = resolve_settings(finetune_settings(config, protocol, bench, model, tok, hp, task))
                    task_max_tokens(settings["max_tokens"], task)
        except UserError as err:
            problems.append(f"fine-tuning settings of {bench}/{task}/{model}/{tok}: {err}")
    return problems


def check_config(config: dict, schema_path, source: str = "config") -> None:
    """Raise :class:`ConfigError` listing every problem (schema first: the semantic checks
    assume its shape)."""
    problems = schema_problems(config, load_schema(schema_path))
    if not problems:
        problems = semantic_problems(config)
    if problems:
        raise ConfigError(problems, source)
