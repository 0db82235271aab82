"""Released checkpoints through `dnatok finetune`: for every family a tiny random checkpoint
in the release's own on-disk layout (plus its tokenizer files) is loaded strictly and
fine-tuned for one epoch on a real GUE task; the run's outputs are the usual ones, its
head is reported as new, and its MCC equals sklearn's on the kept predictions. Also the
protocol split: `original` replays the study's Trainer recipe and DNABERT's --kmer -1 bug
on Genomic Benchmarks, `corrected` does neither."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import matthews_corrcoef

from dnatok import registry, released
from dnatok.errors import UserError
from dnatok.released.tokenizers import write_release_tokenizer
from dnatok.train.finetune import finetune

FAMILIES = ["dnabert2", "ntv2", "dnabert", "gpt_neo", "hyena", "caduceus_hub"]
ONE_EPOCH = {"epochs": 1, "batch_size": 32, "learning_rate": 1e-3, "schedule": "linear", "warmup_steps": 5,
             "weight_decay": 0.01, "eval_batch_size": 128, "progress": False, "add_special_tokens": True}


def tiny_checkpoint(arch: str, folder):
    fam = released.family(arch)
    fam.write_tiny_release(folder)
    write_release_tokenizer(fam.TOKENIZER, folder)
    return folder


@pytest.fixture(scope="module")
def mouse3(gue_dir, tmp_path_factory):
    """GUE mouse_3 (real rows, 101 bp): train 1,904, dev and test 239 each."""
    dst = tmp_path_factory.mktemp("gue") / "mouse_3"
    shutil.copytree(gue_dir / "mouse" / "3", dst)
    return dst


@pytest.mark.parametrize("arch", FAMILIES)
def test_released_checkpoint_finetunes_on_real_gue(arch, mouse3, tmp_path):
    ckpt = tiny_checkpoint(arch, tmp_path / "ckpt")
    m = finetune(mouse3, arch, "own", tmp_path / "run", seed=1, checkpoint=ckpt, settings=ONE_EPOCH,
                 task=registry.get_task("gue", "mouse_3"))
    assert m["released_checkpoint"] and m["tokenizer"] == "own" and m["task"] == "mouse_3"
    assert m["new_head_tensors"], "the classification head is new and must be listed"
    assert m["protocol"] == "corrected" and m["epochs_run"] == 1
    pred = pd.read_csv(tmp_path / "run" / "predictions.tsv", sep="\t")
    assert len(pred) == m["n_test"] == len(pd.read_csv(mouse3 / "test.csv"))
    assert m["test"]["mcc"] == pytest.approx(matthews_corrcoef(pred["label"], pred["pred"]), abs=1e-12)
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert prov["released_checkpoint"]["family"] == arch and prov["released_checkpoint"]["loaded"] > 0


def test_same_seed_same_numbers(mouse3, tmp_path):
    ckpt = tiny_checkpoint("dnabert2", tmp_path / "ckpt")
    runs = [finetune(mouse3, "dnabert2", "own", tmp_path / f"r{i}", seed=3, checkpoint=ckpt,
                     settings=ONE_EPOCH, task=registry.get_task("gue", "mouse_3")) for i in range(2)]
    assert runs[0]["test"] == runs[1]["test"] and runs[0]["history"] == runs[1]["history"]


def test_original_replays_the_trainer_recipe(mouse3, tmp_path):
    ckpt = tiny_checkpoint("dnabert2", tmp_path / "ckpt")
    settings = {**ONE_EPOCH, "max_tokens": {"mouse_*": 12, "*": 99}}
    o = finetune(mouse3, "dnabert2", "own", tmp_path / "o", seed=1, checkpoint=ckpt, settings=settings,
                 protocol="original", task=registry.get_task("gue", "mouse_3"))
    hp = o["hyperparameters"]
    assert o["protocol_recipe"] == "hf_trainer" and o["selection_metric"] == "loss"
    assert hp["padding_side"] == "right" and hp["padding_mask_to_model"] is True
    assert hp["max_tokens"] == 12 and o["validation_source"] == "dev.csv"
    assert o["truncated_sequences"]["test"] > 0          # the study's budget cuts sequences


def test_dnabert_kmer_bug_on_genomic_benchmarks_only_under_original(shared_dir, tmp_path):
    """The study's GB script fed DNABERT un-spaced DNA: every row becomes [CLS] [UNK] [SEP]
    (3 tokens); corrected cuts the same rows into overlapping 6-mers."""
    task = tmp_path / "gb_task"
    task.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("test", 32)):
        rows = ["sequence,label"] + [f"{''.join(rng.choice(list('ACGT'), 40))},{i % 2}" for i in range(n)]
        (task / f"{split}.csv").write_text("\n".join(rows) + "\n")
    info = {"name": "toy", "benchmark": "gb", "num_classes": 2, "max_len": 40, "study_len": 40, "category": None}
    ckpt = tiny_checkpoint("dnabert", tmp_path / "ckpt")
    o = finetune(task, "dnabert", "own", tmp_path / "o", seed=1, checkpoint=ckpt, protocol="original",
                 settings=ONE_EPOCH, task=info)
    c = finetune(task, "dnabert", "own", tmp_path / "c", seed=1, checkpoint=ckpt, protocol="corrected",
                 settings=ONE_EPOCH, task=info)
    assert o["hyperparameters"]["max_tokens"] == 3            # [CLS] [UNK] [SEP]
    assert c["hyperparameters"]["max_tokens"] == 40 - 6 + 1 + 2
    assert o["tokenizer_variant"] == "dnabert6-unspaced" and c["tokenizer_variant"] == "dnabert6"
    gue = dict(info, benchmark="gue")
    g = finetune(task, "dnabert", "own", tmp_path / "g", seed=1, checkpoint=ckpt, protocol="original",
                 settings=ONE_EPOCH, task=gue)
    assert g["hyperparameters"]["max_tokens"] == 37         # GUE's script k-mered the input


def test_released_checkpoint_errors(mouse3, tmp_path):
    ckpt = tiny_checkpoint("gpt_neo", tmp_path / "ckpt")
    task = registry.get_task("gue", "mouse_3")
    with pytest.raises(UserError, match="own tokenizer"):
        finetune(mouse3, "gpt_neo", "char", tmp_path / "a", seed=1, checkpoint=ckpt, settings=ONE_EPOCH, task=task)
    with pytest.raises(UserError, match="holds a gpt_neo checkpoint"):
        finetune(mouse3, "dnabert2", "own", tmp_path / "b", seed=1, checkpoint=ckpt, settings=ONE_EPOCH, task=task)
    with pytest.raises(UserError, match="hyperparameters"):
        finetune(mouse3, "gpt_neo", "own", tmp_path / "c", seed=1, checkpoint=ckpt, settings=ONE_EPOCH, task=task,
                 model_hparams={"d_model": 8})
    with pytest.raises(UserError, match="does not exist"):
        finetune(mouse3, "gpt_neo", "own", tmp_path / "d", seed=1, checkpoint=tmp_path / "nope", task=task)
    assert not any((tmp_path / x).exists() for x in "abcd")   # no partial run folders


def test_check_checkpoint_reports_a_missing_tensor(tmp_path):
    from safetensors.torch import load_file, save_file

    ckpt = tiny_checkpoint("hyena", tmp_path / "ckpt")
    report = released.check_checkpoint(ckpt, "hyena")
    assert report["family"] == "hyena" and report["loaded"] > 0
    sd = load_file(str(ckpt / "model.safetensors"))
    name = next(k for k in sd if "in_proj.weight" in k)
    del sd[name]
    save_file(sd, str(ckpt / "model.safetensors"))
    with pytest.raises(UserError, match="missing from the release"):
        released.check_checkpoint(ckpt, "hyena")
