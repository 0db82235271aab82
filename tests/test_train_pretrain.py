"""Pre-training: objectives, window sampling, exact resume, loadable final model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dnatok.errors import DataError, UserError
from dnatok.train.pretrain import WindowSampler, make_batch, mask_for_mlm, pretrain

TINY_BERT = {"d_model": 16, "n_layer": 1, "n_head": 2, "d_ff": 32, "dropout": 0.1}
TINY_MAMBA = {"d_model": 16, "n_layer": 1}


@pytest.fixture(scope="module")
def char_tok(tmp_path_factory):
    from dnatok.tokenization import train_tokenizer

    return train_tokenizer({"kind": "char"}, tmp_path_factory.mktemp("tok") / "char")


def _fasta(path: Path, seed: int, n_records=3, length=600, n_run=200):
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for r in range(n_records):
            seq = "".join(rng.choice(list("ACGT"), length))
            if r == 0:   # a long run of N, as at chromosome ends
                seq = "N" * n_run + seq[n_run:]
            fh.write(f">chr{r}:0-{length}\n")
            for i in range(0, length, 60):
                fh.write(seq[i:i + 60] + "\n")
    return path


def _settings(**kw):
    base = {"seed": 5, "steps": 6, "seq_len": 32, "batch_size": 4, "micro_batch_size": 2,
            "checkpoint_every": 2, "eval_every": 3, "log_every": 1, "valid_windows": 4,
            "learning_rate": 1e-3, "progress": False, "rc_aug": True}
    return {**base, **kw}


def _weights(folder: Path) -> dict:
    from safetensors.numpy import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no weights in {folder}"
    out = {}
    for f in files:
        out.update(load_file(f))
    return out


def test_resume_gives_identical_weights(tmp_path, char_tok):
    train = _fasta(tmp_path / "train.fa", 1)
    valid = _fasta(tmp_path / "valid.fa", 2, n_records=1)
    whole = pretrain("bert", char_tok.path, train, valid, tmp_path / "whole", _settings(), TINY_BERT)
    assert whole["finished"] and whole["step"] == 6
    # the same run, interrupted after 3 steps (between two checkpoints) and restarted
    part = pretrain("bert", char_tok.path, train, valid, tmp_path / "part",
                    _settings(max_steps_this_run=3), TINY_BERT)
    assert not part["finished"] and part["step"] == 3
    assert not (tmp_path / "part" / "config.json").exists()
    assert (tmp_path / "part" / "checkpoints" / "step3.pt").is_file()
    done = pretrain("bert", char_tok.path, train, valid, tmp_path / "part", _settings(), TINY_BERT)
    assert done["finished"] and done["step"] == 6
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (tmp_path / "whole" / "train_log.tsv").read_text() == (tmp_path / "part" / "train_log.tsv").read_text()
    log = (tmp_path / "whole" / "train_log.tsv").read_text().splitlines()
    assert log[0] == "step\tloss\tlr\tvalid_loss" and len(log) == 7
    assert log[3].split("\t")[3] != "" and log[1].split("\t")[3] == ""   # valid loss every 3 steps
    assert len(list((tmp_path / "whole" / "checkpoints").glob("*.pt"))) == 2      # keep_checkpoints
    assert (tmp_path / "whole" / "provenance.json").is_file()


@pytest.mark.parametrize("change", ["learning_rate", "warmup_steps", "rc_aug", "tokenizer", "train_data"])
def test_resume_only_under_the_same_identity(tmp_path, char_tok, change):
    """A checkpoint of a run with other settings, another tokenizer content or other data
    is moved aside and training starts at step 0; the result equals a fresh run."""
    import json

    from dnatok.tokenization import train_tokenizer

    train = _fasta(tmp_path / "train.fa", 1)
    valid = _fasta(tmp_path / "valid.fa", 2, n_records=1)
    out = tmp_path / "run"
    pretrain("bert", char_tok.path, train, valid, out, _settings(max_steps_this_run=4), TINY_BERT)
    tok_dir, settings = char_tok.path, _settings()
    if change == "learning_rate":
        settings["learning_rate"] = 2e-3
    elif change == "warmup_steps":
        settings["warmup_steps"] = 2
    elif change == "rc_aug":
        settings["rc_aug"] = False
    elif change == "tokenizer":   # same kind and size, different content
        tok_dir = train_tokenizer({"kind": "char"}, tmp_path / "tok2").path
        meta = Path(tok_dir) / "dnatok_tokenizer.json"
        meta.write_text(meta.read_text().rstrip() + " \n")
    else:
        train = _fasta(tmp_path / "train.fa", 9)
    # run-time settings are not part of the identity: these alone would resume
    settings.update(threads=1, log_every=2)
    result = pretrain("bert", tok_dir, train, valid, out, settings, TINY_BERT)
    log = (out / "pretrain.log").read_text()
    assert "written by a different run" in log and "resumed from" not in log
    assert result["step"] == 6 and result["finished"]
    stale = list(out.glob("stale-*/checkpoints/step4.pt"))
    assert len(stale) == 1
    fresh = pretrain("bert", tok_dir, train, valid, tmp_path / "fresh", settings, TINY_BERT)
    assert fresh["finished"]
    a, b = _weights(out), _weights(tmp_path / "fresh")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ident = json.loads((out / "provenance.json").read_text())["identity"]
    assert "threads" not in ident["settings"] and len(ident["tokenizer_sha256"]) == 64


def test_runtime_settings_still_resume(tmp_path, char_tok):
    train = _fasta(tmp_path / "train.fa", 1)
    valid = _fasta(tmp_path / "valid.fa", 2, n_records=1)
    out = tmp_path / "run"
    pretrain("bert", char_tok.path, train, valid, out, _settings(max_steps_this_run=4), TINY_BERT)
    pretrain("bert", char_tok.path, train, valid, out, _settings(threads=1, checkpoint_every=3), TINY_BERT)
    log = (out / "pretrain.log").read_text()
    assert "resumed from" in log and "different run" not in log


def test_pretrained_model_feeds_finetuning(tmp_path, char_tok):
    from dnatok.models import build_classifier
    from dnatok.train.finetune import finetune
    from test_train_finetune import make_task

    train = _fasta(tmp_path / "train.fa", 1)
    valid = _fasta(tmp_path / "valid.fa", 2, n_records=1)
    out = tmp_path / "mamba"
    s = pretrain("mamba", char_tok.path, train, valid, out,
                 _settings(steps=2, checkpoint_every=10, rc_aug=False), TINY_MAMBA)
    assert s["objective"] == "clm" and s["finished"]
    model = build_classifier("mamba", 2, char_tok.vocab_size, char_tok.pad_id, pretrained=out)
    assert model.config.d_model == 16
    task = make_task(tmp_path / "task", n_train=32, n_dev=8, n_test=8, length=24)
    m = finetune(task, "mamba", char_tok.path, tmp_path / "ft", seed=0, pretrained=out,
                 settings={"epochs": 1, "batch_size": 8, "progress": False})
    assert m["pretrained"] == str(out)
    with pytest.raises(UserError, match="never pretrained|no pre-training objective"):
        pretrain("cnn", char_tok.path, train, valid, tmp_path / "cnn", _settings(), {})


def test_mlm_masking_never_targets_padding_or_specials(char_tok):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in rng.integers(50, 200, 64)]
    ids, attn = char_tok.encode_batch(seqs, 200, add_special_tokens=True, pad_to_max=True)
    masked, labels = mask_for_mlm(ids, attn, char_tok, np.random.default_rng(1), 0.15)
    target = labels != -100
    assert not target[attn == 0].any()
    assert not np.isin(ids[target], sorted(char_tok.special_ids)).any()
    real = (attn == 1) & ~np.isin(ids, sorted(char_tok.special_ids))
    assert target.sum() / real.sum() == pytest.approx(0.15, abs=0.02)
    np.testing.assert_array_equal(labels[target], ids[target])
    share_masked = (masked[target] == char_tok.mask_id).mean()
    share_kept = (masked[target] == ids[target]).mean()
    assert share_masked == pytest.approx(0.8, abs=0.04)
    assert 0.05 < share_kept < 0.17          # 10% kept + random tokens that hit the same base
    np.testing.assert_array_equal(masked[~target], ids[~target])


def test_next_token_labels_ignore_padding(char_tok):
    settings = {"seq_len": 40, "add_special_tokens": False, "rc_aug": False, "mlm_probability": 0.15}
    ids, attn, labels = make_batch(["ACGT" * 5, "ACGTACGTAC"], char_tok, "clm", settings,
                                   np.random.default_rng(0))
    assert ids.shape == (2, 40)
    np.testing.assert_array_equal(labels[attn == 1], ids[attn == 1])
    assert (labels[attn == 0] == -100).all() and (attn[1, 10:] == 0).all()


def test_window_sampler_skips_n_runs(tmp_path):
    fa = _fasta(tmp_path / "g.fa", 0, n_records=1, length=400, n_run=300)
    sampler = WindowSampler(fa, 50, max_n_fraction=0.5)
    windows = sampler.draw(np.random.default_rng(0), 200)
    assert all(len(w) == 50 and w.count("N") <= 25 for w in windows)
    assert windows == sampler.draw(np.random.default_rng(0), 200)      # seeded
    with pytest.raises(DataError, match="as long as a window"):
        WindowSampler(fa, 1000, 0.5)
    only_n = tmp_path / "n.fa"
    only_n.write_text(">x\n" + "N" * 100 + "\n")
    with pytest.raises(DataError, match="mostly N"):
        WindowSampler(only_n, 20, 0.1).draw(np.random.default_rng(0), 1)


def test_reads_bgzip_genome(shared_dir):
    fa = shared_dir / "data" / "genome" / "hg38_chr2_1-2333275.fa.gz"
    sampler = WindowSampler(fa, 1000, 0.1)
    assert sum(sampler.lengths.values()) == 2333275
    assert all(w.count("N") <= 100 for w in sampler.draw(np.random.default_rng(0), 20))


def test_bpe_windows_cover_the_token_budget(tmp_path):
    from dnatok.tokenization import train_tokenizer

    fa = _fasta(tmp_path / "g.fa", 3, n_records=2, length=3000, n_run=100)
    corpus = [line.strip() for line in fa.read_text().splitlines() if not line.startswith(">")]
    tok = train_tokenizer({"kind": "bpe", "vocab_size": 40}, tmp_path / "bpe", corpus=corpus)
    s = pretrain("bert", tok.path, fa, fa, tmp_path / "pre", _settings(steps=1, seq_len=24, rc_aug=False),
                 TINY_BERT)
    assert s["bases_per_token"] > 1.2
    assert s["window_bp"] >= 24 * s["bases_per_token"]      # enough bases for 24 tokens
