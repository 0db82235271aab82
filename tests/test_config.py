"""The workflow config: the closed schema and the parse-time checks (each problem named by
its key path), grid ids, and how settings resolve per run."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dnatok import config as dc
from dnatok.train.finetune import DEFAULT_SETTINGS
from dnatok.train.pretrain import DEFAULT_PRETRAIN_SETTINGS

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
STUDY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())


def _problems(conf) -> list[str]:
    try:
        dc.check_config(conf, SCHEMA)
    except dc.ConfigError as err:
        return err.problems
    return []


def _with(conf, edit):
    conf = copy.deepcopy(conf)
    edit(conf)
    return conf


def test_shipped_configs_are_valid():
    assert _problems(STUDY) == [] and _problems(DEMO) == []
    real = yaml.safe_load((REPO / "tests/study/real_study.yaml").read_text())
    assert _problems(real) == []


@pytest.mark.parametrize("edit,where,words", [
    (lambda c: c["finetune"].update(lerning_rate=0.1), "finetune.lerning_rate", "unknown key"),
    (lambda c: c["models"]["mamba"].update(d_modle=8), "models.mamba.d_modle", "unknown key"),
    (lambda c: c["models"]["mamba"]["hparams"].update(d_modle=8), "models.mamba.hparams.d_modle",
     "unknown mamba hyperparameter"),
    (lambda c: c["pretrain"].update(stpes=3), "pretrain.stpes", "unknown key"),
    (lambda c: c["tokenizers"]["bpe"].update(vocab=8), "tokenizers.bpe.vocab", "unknown key"),
    (lambda c: c["benchmarks"]["gue"].update(finetune={"epoch": 3}), "benchmarks.gue.finetune.epoch", "unknown key"),
    (lambda c: c["resources"]["finetune"].update(gpus=1), "resources.finetune.gpus", "unknown key"),
    (lambda c: c["models"]["mamba"]["grid"].update(lr=[1e-3]), "models.mamba.grid.lr", "unknown key"),
    (lambda c: c["models"]["caduceus"]["hparams"].update(rcps=True) or c["models"]["caduceus"].update(
        tokenizers=["char", "bpe"]), "models.caduceus.hparams.rcps", "complement map"),
    (lambda c: c.update(compare=["char", "bpe4096"]), "compare", "'bpe4096' is not a tokenizer"),
    (lambda c: c["models"]["cnn"].update(tokenizers=["chars"]), "models.cnn.tokenizers", "'chars' is not a tokenizer"),
    (lambda c: c["models"]["mamba"]["overrides"][0].update(benchmark="gueh"), "models.mamba.overrides[0].benchmark",
     "not a benchmark"),
    (lambda c: c["models"]["cnn"].update(pretrain={"steps": 3}), "models.cnn.pretrain", "never pretrained"),
    (lambda c: c["models"]["mamba"]["hparams"].update(n_layer=0), "models.mamba.hparams", "positive integer"),
    (lambda c: c["tokenizers"]["bpe"].update(vocab_size=3), "tokenizers.bpe.vocab_size", "minimum"),
    (lambda c: c.update(protocol="orignal"), "protocol", ""),
    (lambda c: c["finetune"].update(select_metric="f1"), "finetune.select_metric", ""),
    (lambda c: c["models"]["mamba"]["grid"].update(learning_rate=["1e-3"]), "models.mamba.grid.learning_rate[0]",
     "decimal point"),
    (lambda c: c["models"]["dnabert2"].pop("checkpoint"), "models.dnabert2.checkpoint", "name its checkpoint"),
    (lambda c: c["models"]["dnabert2"].update(hparams={"d_model": 8}), "models.dnabert2.hparams", "own architecture"),
    (lambda c: c["models"]["gpt"].update(tokenizers=["bpe"]), "models.gpt.tokenizers", "its own tokenizer"),
    (lambda c: c["models"]["ntv2"].pop("revision"), "models.ntv2.revision", "pin the checkpoint"),
    (lambda c: c["models"]["mamba"].update(checkpoint="x/y", revision="main"), "models.mamba.arch",
     "takes no checkpoint"),
    # a per-task token budget that leaves a task out fails at parse time, naming the task
    (lambda c: c["models"]["gpt"]["overrides"][1]["finetune"]["max_tokens"].pop("covid"),
     "fine-tuning settings of gue/covid/gpt/own", "no pattern matches task 'covid'"),
])
def test_bad_config_names_the_key(edit, where, words):
    problems = _problems(_with(STUDY, edit))
    assert problems, "accepted a bad config"
    hit = [p for p in problems if p.startswith(where)]
    assert hit, problems
    assert words in hit[0], hit[0]


def test_every_settings_key_in_the_schema_is_a_real_setting():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(schema["definitions"]["finetune"]["properties"]) <= set(DEFAULT_SETTINGS)
    assert set(schema["definitions"]["pretrain"]["properties"]) <= set(DEFAULT_PRETRAIN_SETTINGS)
    from dnatok.bend.settings import DEFAULT_PROBE
    from dnatok.tokenization.learned_spec import COMMON, PER_KIND

    assert set(schema["definitions"]["bend_probe"]["properties"]) <= set(DEFAULT_PROBE)
    learned = set(COMMON) | {k for keys in PER_KIND.values() for k in keys}
    tokenizer_keys = set(schema["properties"]["tokenizers"]["additionalProperties"]["properties"])
    assert learned <= tokenizer_keys, learned - tokenizer_keys

    def walk(node, path):
        if isinstance(node, dict):
            if "properties" in node:
                for key, sub in node["properties"].items():
                    assert "description" in sub or "$ref" in sub, f"{path}.{key} has no description"
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
    walk(schema, "schema")


@pytest.mark.parametrize("lr,hp", [(1e-4, "lr1e-4"), (6e-4, "lr6e-4"), (0.008, "lr8e-3"), (1.5e-3, "lr1.5e-3"),
                                   (5e-05, "lr5e-5"), (0.01, "lr1e-2")])
def test_hp_ids_are_readable_and_parse_back(lr, hp):
    point = {"learning_rate": lr, "batch_size": 128, "rc_aug": True}
    assert dc.hp_id(point) == f"{hp}_bs128_rc1"
    assert dc.parse_hp(dc.hp_id(point)) == point


def test_study_grids_follow_the_published_sweeps():
    lrs = lambda b, m, t: sorted({p["learning_rate"] for p in dc.grid_points(STUDY, b, m, t)})  # noqa: E731
    assert lrs("gue", "mamba", "char") == [5e-5, 1e-4, 2e-4]
    assert lrs("nt", "mamba", "bpe") == [5e-5, 1e-4, 2e-4]
    assert len(dc.grid_points(STUDY, "gue", "mamba", "bpe")) == 7 * 2
    assert dc.grid_ids(STUDY, "gb", "cnn", "char") == ["lr1e-3_bs64_rc0"]
    caduceus = dc.grid_points(STUDY, "gb", "caduceus", "char")
    assert {p["rc_aug"] for p in caduceus} == {False, True} and len(caduceus) == 5 * 2 * 2


def test_settings_resolve_in_order_and_original_keeps_its_own_rules():
    conf = _with(STUDY, lambda c: c["models"]["mamba"]["overrides"].append(
        {"tokenizer": "bpe", "benchmark": "nt", "finetune": {"epochs": 7}}))
    hp = dc.grid_ids(conf, "nt", "mamba", "bpe")[0]
    s = dc.finetune_settings(conf, "corrected", "nt", "mamba", "bpe", hp)
    assert s["epochs"] == 7 and s["learning_rate"] == 5e-5 and s["batch_size"] == 128 and s["rc_aug"] is True
    assert s["model_name"] == "mamba" and s["patience"] == 3 and s["min_epochs"] == 3
    assert dc.finetune_settings(conf, "corrected", "nt", "mamba", "char", dc.grid_ids(conf, "nt", "mamba", "char")[0])["epochs"] == 20
    original = dc.finetune_settings(conf, "original", "nt", "mamba", "bpe", hp)
    assert {"patience", "select_metric", "min_epochs"}.isdisjoint(original)
    conf = _with(STUDY, lambda c: c["tokenizers"]["bpe"].update(pretrain={"steps": 5}))
    assert dc.pretrain_settings(conf, "mamba", "bpe")["steps"] == 5
    assert dc.pretrain_settings(conf, "mamba", "char")["steps"] == STUDY["pretrain"]["steps"]
    assert dc.tokenizer_spec(conf, "bpe") == {"kind": "bpe", "vocab_size": 4096, "max_corpus_bp": 200000000}


def test_released_models_resolve_the_study_recipe_per_task():
    """The attention models take their settings per benchmark and task (checkpoints.md §8);
    the token budget is the study's under original and the true length under corrected."""
    assert dc.model_tokenizers(STUDY, "dnabert2") == ["own"] and dc.is_released(STUDY, "dnabert2")
    assert not dc.is_pretrained(STUDY, "dnabert2") and dc.is_pretrained(STUDY, "hyena")
    assert dc.model_label(STUDY, "dnabert2") == "DNABERT2" and dc.model_label(STUDY, "gpt") == "GPT"
    assert dc.grid_ids(STUDY, "gue", "dnabert2", "own", "covid") == ["lr2e-5_bs32_rc0", "lr3e-5_bs32_rc0"]
    assert dc.grid_ids(STUDY, "gue", "dnabert2", "own", "tf_1") == ["lr2e-5_bs8_rc0", "lr3e-5_bs8_rc0"]

    def settings(protocol, task, model="dnabert2", bench="gue"):
        hp = dc.grid_ids(STUDY, bench, model, "own", task)[0]
        return dc.finetune_settings(STUDY, protocol, bench, model, "own", hp, task)

    covid = settings("original", "covid")
    assert covid["epochs"] == 8 and covid["max_tokens"]["covid"] == 256 and covid["label"] == "DNABERT2"
    assert covid["schedule"] == "linear" and covid["warmup_steps"] == 50 and covid["weight_decay"] == 0.01
    mouse = settings("original", "mouse_2")
    assert mouse["max_steps"] == 1000 and mouse["warmup_steps"] == 30 and mouse["epochs"] == 5
    assert settings("original", "prom_300_tata")["epochs"] == 10 and settings("original", "prom_300_all")["epochs"] == 4
    assert "max_tokens" not in settings("corrected", "covid")
    lora = settings("original", "H3K4me3", model="ntv2", bench="nt")["lora"]
    assert lora["r"] == 8 and lora["lora_alpha"] == 16 and set(lora["target_modules"]) == {"query", "key", "value", "dense"}


def _dry_run(tmp_path, overlay: dict):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           "--configfile", str(REPO / "config/demo.yaml"), str(path), "-n"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("overlay,key", [
    ({"finetune": {"epochs": 10, "learning_rate": 0.004, "batch_size": 32, "patiense": 4}}, "finetune.patiense"),
    ({"models": {"mamba": {"arch": "mamba", "hparams": {"d_model": 64}, "n_layers": 2}}}, "models.mamba.n_layers"),
    ({"models": {"cad": {"arch": "caduceus", "hparams": {"d_model": 16, "rcps": True}}}}, "models.cad.hparams.rcps"),
])
def test_a_bad_config_fails_the_dry_run_naming_the_key(tmp_path, overlay, key):
    proc = _dry_run(tmp_path, overlay)
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]
    assert not (tmp_path / "results").exists()
