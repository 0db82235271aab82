"""Fine-tuning on tiny synthetic tasks: outputs, determinism, protocols, guards."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dnatok.errors import UserError
from dnatok.train.finetune import VOLATILE_KEYS, finetune

TINY_CNN = {"embed_dim": 8, "channels": [4, 4], "dense_dim": 16}
FAST = {"epochs": 3, "batch_size": 16, "learning_rate": 1e-2, "progress": False}


def _rand_seq(rng, n, gc=0.5):
    return "".join(rng.choice(list("ACGT"), n, p=[(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]))


def make_task(root: Path, n_train=160, n_dev=40, n_test=60, length=32, seed=0, dev=True,
              train_labels=None, name="motif"):
    """Class 1 sequences are GC-rich and carry a TATAAA motif, class 0 are not and do not."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)

    def rows(n, labels=None):
        out = []
        for i in range(n):
            y = int(labels[i]) if labels is not None else i % 2
            s = _rand_seq(rng, length, gc=0.8 if y == 1 else 0.3)
            if y == 1:
                p = rng.integers(0, length - 6)
                s = s[:p] + "TATAAA" + s[p + 6:]
            out.append(f"{s},{y}")
        return out

    splits = {"train": rows(n_train, train_labels), "test": rows(n_test)}
    if dev:
        splits["dev"] = rows(n_dev)
    for split, r in splits.items():
        (root / f"{split}.csv").write_text("sequence,label\n" + "\n".join(r) + "\n")
    (root / "task.json").write_text(json.dumps({"name": name, "benchmark": "demo", "num_classes": 2,
                                                "max_len": length, "study_len": length + 8,
                                                "category": None}))
    return root


def _stable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in VOLATILE_KEYS}


def test_outputs_and_determinism(tmp_path):
    task = make_task(tmp_path / "task")
    a = finetune(task, "cnn", "char", tmp_path / "a", seed=3, settings=FAST, model_hparams=TINY_CNN)
    b = finetune(task, "cnn", "char", tmp_path / "b", seed=3, settings=FAST, model_hparams=TINY_CNN)
    on_disk = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert _stable(on_disk) == _stable(json.loads((tmp_path / "b" / "metrics.json").read_text()))
    assert _stable(a) == _stable(b)
    assert (tmp_path / "a" / "predictions.tsv").read_text() == (tmp_path / "b" / "predictions.tsv").read_text()
    for key in ("benchmark", "task", "category", "model", "tokenizer", "seed", "protocol", "test", "validation",
                "hyperparameters", "collapsed", "collapse_note", "epochs_run", "best_epoch", "device", "n_params"):
        assert key in on_disk, key
    assert on_disk["task"] == "motif" and on_disk["protocol"] == "corrected" and on_disk["tokenizer"] == "char"
    for key in ("accuracy", "mcc", "f1_macro", "f1_binary", "precision", "recall", "auroc"):
        assert key in on_disk["test"]
    assert on_disk["hyperparameters"]["learning_rate"] == 1e-2 and on_disk["hyperparameters"]["max_tokens"] == 32
    assert on_disk["validation_source"] == "dev.csv" and on_disk["n_test"] == 60
    # the motif is learnable: the whole pipeline (encode, train, select, test) works
    assert on_disk["test"]["mcc"] > 0.5
    lines = (tmp_path / "a" / "predictions.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["id", "label", "pred", "prob_0", "prob_1"] and len(lines) == 61
    probs = np.array([[float(x) for x in ln.split("\t")[3:]] for ln in lines[1:]])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    prov = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert prov["seed"] == 3 and prov["settings"]["epochs"] == 3 and prov["device"] == "cpu"
    assert "wall_time_s" in prov and (tmp_path / "a" / "train.log").read_text().count("epoch") >= 3


def test_seeds_change_split_and_training(tmp_path):
    task = make_task(tmp_path / "task", dev=False)
    s1 = finetune(task, "cnn", "char", tmp_path / "s1", seed=1, settings={**FAST, "epochs": 1},
                  model_hparams=TINY_CNN)
    s2 = finetune(task, "cnn", "char", tmp_path / "s2", seed=2, settings={**FAST, "epochs": 1},
                  model_hparams=TINY_CNN)
    assert "stratified" in s1["validation_source"] and s1["n_validation"] == 16
    assert s1["training_seed"] == 1 and s2["training_seed"] == 2
    assert s1["validation"] != s2["validation"]
    # the original protocol keeps the study's fixed training seed; only the split moves
    o1 = finetune(task, "cnn", "char", tmp_path / "o1", seed=1, protocol="original",
                  settings={**FAST, "epochs": 1}, model_hparams=TINY_CNN)
    assert o1["training_seed"] == 2222 and o1["split_seed"] == 1 and "random" in o1["validation_source"]


def test_original_protocol_lengths_padding_and_quirk_metric(tmp_path):
    task = make_task(tmp_path / "task")
    o = finetune(task, "cnn", "char", tmp_path / "o", seed=1, protocol="original",
                 settings={**FAST, "epochs": 1}, model_hparams=TINY_CNN)
    hp = o["hyperparameters"]
    assert hp["max_tokens"] == 40 and hp["padding_side"] == "left" and hp["pooling"] == "mean_all"
    assert hp["padding_mask_to_model"] is False and o["validation_source"].startswith("random")
    assert "mcc_per_batch_mean" in o["test"] and o["selection_metric"] == "mcc"
    # a k-mer tokenizer under the corrected protocol: true length counted in tokens
    c = finetune(task, "cnn", "kmer3", tmp_path / "k", seed=1, settings={**FAST, "epochs": 1},
                 model_hparams=TINY_CNN)
    assert c["hyperparameters"]["max_tokens"] == 30 and c["tokenizer"] == "kmer3"


def test_collapse_guard_and_early_stopping(tmp_path):
    # train labels almost all 0 and no signal: the model predicts class 0 everywhere and
    # validation MCC stays 0. With the study's tie rule (first epoch kept) patience 2 stops
    # after epoch 3; the collapse is flagged.
    labels = np.r_[np.zeros(118, int), np.ones(2, int)]
    task = make_task(tmp_path / "task", n_train=120, train_labels=labels)
    m = finetune(task, "cnn", "char", tmp_path / "c", seed=0, protocol={"base": "corrected", "selection_tie_break": "first"},
                 settings={**FAST, "epochs": 8, "patience": 2, "min_epochs": 1}, model_hparams=TINY_CNN)
    assert m["collapsed"] is True and "single class" in m["collapse_note"]
    assert m["best_epoch"] == 1 and m["epochs_run"] == 3
    assert "COLLAPSED" in (tmp_path / "c" / "train.log").read_text()


def _fake_model():
    import torch

    return torch.nn.Linear(1, 1)


@pytest.mark.parametrize("tie_break,min_epochs,expect_best,expect_stop", [
    ("first", 1, 1, 3),   # MCC ties at 0 are no gain: stopped before the model takes off
    ("loss", 1, 4, None),  # the falling validation loss counts on a tie: it reaches epoch 5
    ("first", 6, 6, None),  # min_epochs keeps it training until it takes off
])
def test_early_stopping_cannot_stop_before_learning_starts(tie_break, min_epochs, expect_best, expect_stop):
    """A char model at validation MCC 0 for its first epochs, then learning (the demo's
    plateau): (epoch, mcc, loss)."""
    from dnatok.train.finetune import BestEpoch

    curve = [(1, 0.0, 0.69), (2, 0.0, 0.68), (3, 0.0, 0.66), (4, 0.0, 0.60), (5, 0.0, 0.61), (6, 0.7, 0.40)]
    best, stopped = BestEpoch("mcc", 2, min_epochs, tie_break), None
    for epoch, mcc, loss in curve:
        if best.update(epoch, mcc, loss, _fake_model()):
            stopped = epoch
            break
    assert stopped == expect_stop
    if stopped is None:
        assert best.epoch == 6 and best.value == 0.7
    else:
        assert best.epoch == expect_best


def test_packed_seeds_equal_single_runs_and_resume(tmp_path):
    from dnatok.train.finetune import VOLATILE_KEYS, finetune_seeds

    task = make_task(tmp_path / "task")
    settings = {**FAST, "epochs": 2}
    packed = finetune_seeds(task, "cnn", "char", tmp_path / "pack", [3, 1], settings=settings,
                            model_hparams=TINY_CNN)
    assert [m["seed"] for m in packed] == [3, 1]
    for seed in (1, 3):
        alone = finetune(task, "cnn", "char", tmp_path / f"alone{seed}", seed=seed, settings=settings,
                         model_hparams=TINY_CNN)
        on_disk = json.loads((tmp_path / "pack" / f"seed{seed}" / "metrics.json").read_text())
        assert _stable(on_disk) == _stable(alone)
        assert ((tmp_path / "pack" / f"seed{seed}" / "predictions.tsv").read_text()
                == (tmp_path / f"alone{seed}" / "predictions.tsv").read_text())
    # a restarted pack keeps complete run folders and runs only the missing ones
    stamp = (tmp_path / "pack" / "seed3" / "metrics.json").stat().st_mtime_ns
    shutil.rmtree(tmp_path / "pack" / "seed1")
    notes = []
    again = finetune_seeds(task, "cnn", "char", tmp_path / "pack", [3, 1], settings=settings,
                           model_hparams=TINY_CNN, log=notes.append)
    assert (tmp_path / "pack" / "seed3" / "metrics.json").stat().st_mtime_ns == stamp
    assert any(n.endswith("seed3: complete run kept") for n in notes)
    assert _stable(again[1]) == _stable(packed[1])
    assert not any(p.name.startswith(".") for p in (tmp_path / "pack").iterdir())
    assert set(VOLATILE_KEYS) == {"wall_time_s"}


def test_conjoin_rc_aug_and_bad_settings(tmp_path):
    task = make_task(tmp_path / "task")
    m = finetune(task, "cnn", "char", tmp_path / "cj", seed=0,
                 settings={**FAST, "epochs": 1, "conjoin": True, "rc_aug": True}, model_hparams=TINY_CNN)
    assert m["hyperparameters"]["conjoin"] is True and m["hyperparameters"]["rc_aug"] is False
    r = finetune(task, "cnn", "char", tmp_path / "rc", seed=0, settings={**FAST, "epochs": 1, "rc_aug": True},
                 model_hparams=TINY_CNN)
    assert r["hyperparameters"]["rc_aug"] is True
    with pytest.raises(UserError, match="unknown fine-tuning setting"):
        finetune(task, "cnn", "char", tmp_path / "x", seed=0, settings={"epoch": 1})
    with pytest.raises(UserError, match="BPE"):
        finetune(task, "cnn", "bpe4096", tmp_path / "x", seed=0, settings=FAST)


def test_lora_needs_peft(tmp_path):
    task = make_task(tmp_path / "task")
    try:
        import peft  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="peft"):
            finetune(task, "bert", "char", tmp_path / "l", seed=0, settings={**FAST, "lora": {"r": 2}},
                     model_hparams={"d_model": 16, "n_layer": 1, "n_head": 2, "d_ff": 32})
        return
    m = finetune(task, "bert", "char", tmp_path / "l", seed=0, settings={**FAST, "epochs": 1, "lora": {"r": 2}},
                 model_hparams={"d_model": 16, "n_layer": 1, "n_head": 2, "d_ff": 32})
    assert m["n_trainable_params"] < m["n_params"]


@pytest.mark.parametrize("arch,hp", [
    ("mamba", {"d_model": 16, "n_layer": 1}),
    ("caduceus", {"d_model": 16, "n_layer": 1}),
    ("bert", {"d_model": 16, "n_layer": 1, "n_head": 2, "d_ff": 32}),
])
@pytest.mark.parametrize("protocol", ["original", "corrected"])
def test_every_architecture_runs_under_both_protocols(tmp_path, arch, hp, protocol):
    task = make_task(tmp_path / "task", n_train=48, n_dev=16, n_test=16, length=24)
    m = finetune(task, arch, "char", tmp_path / "o", seed=0, protocol=protocol,
                 settings={**FAST, "epochs": 1}, model_hparams=hp)
    assert m["model"] == arch and 0.0 <= m["test"]["accuracy"] <= 1.0


def test_real_gue_rows_under_original_protocol(gue_dir, tmp_path):
    """A few hundred real rows in a folder named like GUE's: the registry supplies the
    study's padded length (300 for the 70-bp core promoters) without a task.json."""
    src = gue_dir / "prom" / "prom_core_tata"
    dst = tmp_path / "prom" / "prom_core_tata"
    dst.mkdir(parents=True)
    for split, n in (("train", 300), ("dev", 80), ("test", 80)):
        lines = (src / f"{split}.csv").read_text().splitlines()
        (dst / f"{split}.csv").write_text("\n".join(lines[:n + 1]) + "\n")
    o = finetune(dst, "cnn", "char", tmp_path / "o", seed=1, protocol="original",
                 settings={**FAST, "epochs": 1}, model_hparams=TINY_CNN)
    c = finetune(dst, "cnn", "char", tmp_path / "c", seed=1, protocol="corrected",
                 settings={**FAST, "epochs": 1}, model_hparams=TINY_CNN)
    assert o["task"] == "prom_core_tata" and o["category"] == "promoters" and o["benchmark"] == "gue"
    assert o["hyperparameters"]["max_tokens"] == 300 and c["hyperparameters"]["max_tokens"] == 70
    assert o["n_validation"] == 30 and c["n_validation"] == 80


def test_left_padding_with_mask_refused_for_recurrent_models(tmp_path):
    task = make_task(tmp_path / "task", n_train=32, n_dev=8, n_test=8, length=24)
    with pytest.raises(UserError, match="right padding"):
        finetune(task, "mamba", "char", tmp_path / "m", seed=0, protocol={"base": "corrected", "padding_side": "left"},
                 settings=FAST, model_hparams={"d_model": 8, "n_layer": 1})


def test_multiclass_task(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "three"
    root.mkdir()
    for split, n in (("train", 90), ("dev", 30), ("test", 30)):
        rows = [f"{_rand_seq(rng, 32, gc=(0.2, 0.5, 0.8)[i % 3])},{i % 3}" for i in range(n)]
        (root / f"{split}.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    m = finetune(root, "cnn", "char", tmp_path / "o", seed=0, settings=FAST, model_hparams=TINY_CNN)
    assert m["test"]["n"] == 30 and "auroc" not in m["test"] and m["task"] == "three"
    header = (tmp_path / "o" / "predictions.tsv").read_text().splitlines()[0].split("\t")
    assert header[-3:] == ["prob_0", "prob_1", "prob_2"]


@pytest.fixture(scope="module")
def small_bpe(tmp_path_factory):
    """A BPE trained on random GC-rich and AT-rich DNA: forward and reverse-complement
    tokenizations of the same sequence differ in length."""
    from dnatok.tokenization import train_tokenizer

    rng = np.random.default_rng(4)
    corpus = [_rand_seq(rng, 400, gc=g) for g in (0.2, 0.5, 0.8) for _ in range(40)]
    return train_tokenizer({"kind": "bpe", "vocab_size": 64}, tmp_path_factory.mktemp("bpe") / "bpe64", corpus)


def test_both_strands_fit_the_budget_from_the_same_bases(small_bpe):
    from dnatok.tokenization import reverse_complement
    from dnatok.train.finetune import fit_both_strands, token_lengths

    rng = np.random.default_rng(1)
    seqs = [_rand_seq(rng, 60, gc=g) + "A" * k for g in (0.2, 0.8) for k in (0, 7, 13)]
    fwd = token_lengths(small_bpe, seqs, False)
    rev = token_lengths(small_bpe, seqs, False, reverse=True)
    assert (fwd != rev).any(), "test data should tokenize differently on the two strands"
    budget = int(np.median(np.maximum(fwd, rev)))
    fitted, cut = fit_both_strands(small_bpe, seqs, budget, False)
    assert cut == int(((fwd > budget) | (rev > budget)).sum()) > 0
    for orig, part in zip(seqs, fitted):
        assert orig.startswith(part)                      # the 5' prefix survives, on both strands
        n_f = token_lengths(small_bpe, [part], False)[0]
        n_r = token_lengths(small_bpe, [part], False, reverse=True)[0]
        assert n_f <= budget and n_r <= budget
        if part != orig:                                  # and it is the longest such prefix
            longer = orig[:len(part) + 1]
            assert max(token_lengths(small_bpe, [longer], False)[0],
                       token_lengths(small_bpe, [longer], False, reverse=True)[0]) > budget
        # the two views decode to the same bases
        ids, _ = small_bpe.encode_batch([part], budget, add_special_tokens=False)
        rids, _ = small_bpe.encode_reverse_complement_batch([part], budget, add_special_tokens=False)
        assert reverse_complement(small_bpe.decode(rids[0])) == small_bpe.decode(ids[0]) == part


def test_bpe_conjoin_run_end_to_end(tmp_path, small_bpe):
    task = make_task(tmp_path / "task", length=48)
    m = finetune(task, "mamba", small_bpe, tmp_path / "cj", seed=0,
                 settings={**FAST, "epochs": 1, "conjoin": True}, model_hparams={"d_model": 8, "n_layer": 1})
    # true-length rule with both strands fed: the budget covers the longer strand, nothing is cut
    assert m["hyperparameters"]["length_rule"].endswith("both strands")
    assert sum(m["truncated_sequences"].values()) == 0
    short = finetune(task, "mamba", small_bpe, tmp_path / "cut", seed=0,
                     settings={**FAST, "epochs": 1, "conjoin": True, "max_tokens": 8},
                     model_hparams={"d_model": 8, "n_layer": 1})
    assert short["truncated_sequences"]["test"] == 60 and short["hyperparameters"]["max_tokens"] == 8
