"""BEND-style evaluation: per-base embeddings (one vector per base for every tokenizer, the
owning token's vector at each base), the cached embedding folder (reused only when nothing
changed), the CNN probe (learns a local rule from one-hot, deterministic per seed, BEND's
flattened MCC) and zero-shot variant scoring (cosine distance, causal left context)."""
from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch

from dnatok.bend import embeddings as E
from dnatok.bend.format import BendRecord, read_task, write_task
from dnatok.errors import UserError

CHROM_LEN = 12_000


def _genome(path, seed=0, edits=None):
    rng = np.random.default_rng(seed)
    seq = list("".join(rng.choice(list("ACGT"), CHROM_LEN)))
    for pos, base in (edits or {}).items():
        seq[pos] = base
    seq = "".join(seq)
    path.write_text(">chrS\n" + "\n".join(seq[i:i + 80] for i in range(0, len(seq), 80)) + "\n")
    return path, seq


def _rule(seq: str) -> np.ndarray:
    """A local, learnable 3-class label: 1 on G/C, 2 on an A followed by T, else 0."""
    s = np.frombuffer(seq.encode(), dtype=np.uint8)
    lab = np.zeros(len(s), dtype=np.int8)
    lab[(s == ord("G")) | (s == ord("C"))] = 1
    at = np.zeros(len(s), dtype=bool)
    at[:-1] = (s[:-1] == ord("A")) & (s[1:] == ord("T"))
    lab[at] = 2
    return lab


def _task(tmp_path, genome, seq, n=(12, 4, 4), length=(150, 400), seed=1, name="toy", shift=0):
    rng = np.random.default_rng(seed)
    records, labels = [], []
    for split, k in zip(("train", "valid", "test"), n):
        for j in range(k):
            L = int(rng.integers(*length))
            a = int(rng.integers(0, CHROM_LEN - L))
            records.append(BendRecord(f"{split}{j}", "chrS", a, a + L, "+", split))
            labels.append(_rule(seq[a:a + L]))
    labels[0] = (labels[0] + shift) % 3
    out = tmp_path / f"task_{name}_{shift}"
    write_task(out, name, "per_base", records, labels, 3, genome, class_names=["other", "GC", "AT"])
    return out


def _tiny(tok, folder, arch="mamba", seed=0, **hp):
    from dnatok.models import build_pretraining_model

    torch.manual_seed(seed)
    if arch == "mamba":
        hp = {"d_model": 16, "n_layer": 1, "d_state": 4, **hp}
    model = build_pretraining_model(arch, tok.vocab_size, tok.pad_id, **hp)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bend")
    genome, seq = _genome(tmp / "g.fa")
    return tmp, genome, seq, _task(tmp, genome, seq)


def _tokenizer(kind, folder, seq):
    from dnatok.tokenization import train_tokenizer

    spec = {"char": {"kind": "char"}, "bpe": {"kind": "bpe", "vocab_size": 64},
            "kmer6": {"kind": "kmer", "k": 6}, "kmer6s6": {"kind": "kmer", "k": 6, "stride": 6}}[kind]
    corpus = [seq[i:i + 1000] for i in range(0, len(seq), 1000)] if kind == "bpe" else None
    return train_tokenizer(spec, folder, corpus)


# --------------------------------------------------------------------------- upsampling
@pytest.mark.parametrize("kind", ["char", "bpe", "kmer6", "kmer6s6"])
def test_upsampled_embeddings_give_each_base_its_owning_tokens_vector(kind, world, tmp_path):
    from dnatok.embed import embed

    _, genome, seq, task_dir = world
    tok = _tokenizer(kind, tmp_path / "tok", seq)
    model = _tiny(tok, tmp_path / "model")
    assert E.upsample_mode(tok) == ("none" if kind == "char" else "repeat")
    meta = E.embed_task(model, task_dir, genome, tmp_path / "emb", tokenizer=tmp_path / "tok",
                        splits=("test",), dtype="float32", batch_size=3)
    assert meta["upsample"] == E.upsample_mode(tok) and meta["chunk_bp"] is None and meta["dim"] == 16
    task = read_task(task_dir)
    vecs, ids = E.load_embeddings(tmp_path / "emb", "test")
    rows = task.split("test")
    assert ids == [task.records[r].id for r in rows]
    seqs = task.sequences(genome, rows)
    assert [v.shape for v in vecs] == [(len(s), 16) for s in seqs]
    # independent reference: dnatok embed's per-token states and owned spans
    (tmp_path / "in.csv").write_text("id,sequence\n" + "".join(f"{i},{s}\n" for i, s in zip(ids, seqs)))
    embed(model, tmp_path / "in.csv", tmp_path / "ref.npz", tokenizer=tmp_path / "tok")
    z = np.load(tmp_path / "ref.npz")
    off = z["offsets"]
    for i, v in enumerate(vecs):
        h, s, e = (z[k][off[i]:off[i + 1]] for k in ("hidden", "own_start", "own_end"))
        if kind == "char":
            assert (e - s == 1).all()
        for t in range(len(h)):
            np.testing.assert_allclose(v[s[t]:e[t]], np.broadcast_to(h[t], (e[t] - s[t], 16)), atol=1e-5)


@pytest.mark.parametrize("kind", ["dnabert2", "ntv2", "dnabert6", "gpt2", "char"])
def test_released_tokenizers_upsample_to_one_vector_per_base(kind, tmp_path):
    """Every released tokenizer's tokens (with their specials) own each base exactly once,
    so repeat-upsampling gives one vector per base: BPE pieces, 6-mers with single-base
    leftovers (NT-v2), overlapping 6-mers whose edge bases the first/last window owns
    (DNABERT-6), N runs and lengths that are not multiples of k."""
    from dnatok.embed import owned_spans
    from dnatok.released.tokenizers import load_release_tokenizer, write_release_tokenizer

    tok = load_release_tokenizer(kind, write_release_tokenizer(kind, tmp_path / kind))
    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (6, 7, 13, 50, 101)]
    seqs += ["ACGTNNNNACGTAC", "NNNNNNNNNN" + "ACGTTG" * 3]
    mode = E.upsample_mode(tok)
    assert mode == ("none" if kind == "char" else "repeat")
    for i, seq in enumerate(seqs):
        ids, start, end = tok.spans(seq, add_special_tokens=True)
        own_s, own_e = owned_spans(np.asarray(start), np.asarray(end), len(seq), f"sequence {i}")
        hidden = np.arange(len(ids), dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
        out = E.upsample(hidden, own_s, own_e, len(seq), mode, f"sequence {i}")
        assert out.shape == (len(seq), 3)
        owner = np.repeat(np.arange(len(ids)), own_e - own_s)
        np.testing.assert_array_equal(out[:, 0], owner)   # each base carries its owner's vector


def test_upsample_checks_spans_and_names_the_sequence():
    h = np.arange(6, dtype=np.float32).reshape(3, 2)
    out = E.upsample(h, [0, 2, 3], [2, 3, 6], 6, "repeat", "sequence 'x'")
    np.testing.assert_array_equal(out, h[[0, 0, 1, 2, 2, 2]])
    with pytest.raises(UserError, match="sequence 'r7'.*tile"):
        E.upsample(h, [0, 2, 3], [2, 3, 6], 7, "repeat", "sequence 'r7'")
    with pytest.raises(UserError, match="sequence 'gap'"):
        E.upsample(h, [0, 3, 4], [2, 4, 6], 6, "repeat", "sequence 'gap'")
    with pytest.raises(UserError, match="sequence 'bpe'.*one token per base"):
        E.upsample(h, [0, 2, 3], [2, 3, 6], 6, "none", "sequence 'bpe'")
    # zero-width specials are dropped in both modes
    out = E.upsample(np.ones((4, 2)), [0, 0, 1, 2], [0, 1, 2, 2], 2, "none", "s")
    assert out.shape == (2, 2)


def test_load_embeddings_rejects_a_length_mismatch_naming_the_id(world, tmp_path):
    _, genome, _, task_dir = world
    E.embed_task("onehot", task_dir, genome, tmp_path / "emb", splits=("test",))
    task = read_task(task_dir)
    r = task.split("test")[1]
    task.records[r] = dataclasses.replace(task.records[r], end=task.records[r].end + 3)
    with pytest.raises(UserError, match=f"'{task.records[r].id}'"):
        E.load_embeddings(tmp_path / "emb", "test", task)


def test_onehot_uses_bends_alphabet_order():
    np.testing.assert_array_equal(E.onehot("ACGNTR").argmax(1), [0, 1, 2, 3, 4, 3])


# --------------------------------------------------------------------------- chunking and cache
def test_chunks_are_embedded_independently_and_the_limit_sets_the_default(world, tmp_path):
    _, genome, seq, task_dir = world
    tok = _tokenizer("char", tmp_path / "tok", seq)
    model = _tiny(tok, tmp_path / "m")
    E.embed_task(model, task_dir, genome, tmp_path / "c", tokenizer=tmp_path / "tok", chunk_bp=100,
                 splits=("valid",), dtype="float32")
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    assert meta["chunk_bp"] == 100 and meta["counts"]["valid"]["chunks"] > meta["counts"]["valid"]["records"]
    vecs, ids = E.load_embeddings(tmp_path / "c", "valid")
    emb = E.Embedder(model, tmp_path / "tok", "cpu")
    s = read_task(task_dir).sequences(genome, read_task(task_dir).split("valid"))[0]
    parts = emb.embed([s[a:a + 100] for a in range(0, len(s), 100)], ["p"] * len(range(0, len(s), 100)))
    np.testing.assert_allclose(vecs[0], np.concatenate(parts), atol=1e-5)
    hy = _tiny(tok, tmp_path / "hy", "hyena", d_model=8, n_layer=1, max_seq_len=64)
    assert E.Embedder(hy, tmp_path / "tok", "cpu").default_chunk_bp() == 64


def test_cache_is_reused_only_when_every_input_matches(world, tmp_path):
    tmp, genome, seq, task_dir = world
    tok = _tokenizer("kmer6s6", tmp_path / "tok", seq)
    model = _tiny(tok, tmp_path / "m")
    kw = dict(tokenizer=tmp_path / "tok", splits=("valid",))
    out = tmp_path / "emb"
    assert E.embed_task(model, task_dir, genome, out, **kw)["reused"] is False
    assert E.embed_task(model, task_dir, genome, out, **kw)["reused"] is True
    assert E.embed_task(model, task_dir, genome, out, chunk_bp=50, **kw)["reused"] is False
    assert E.embed_task(model, task_dir, genome, out, chunk_bp=50, **kw)["reused"] is True
    _tiny(tok, model, seed=1)                                    # model weights changed
    assert E.embed_task(model, task_dir, genome, out, chunk_bp=50, **kw)["reused"] is False
    other = _task(tmp_path, genome, seq, shift=1)                # same records, other labels
    assert E.embed_task(model, other, genome, out, chunk_bp=50, **kw)["reused"] is False
    g2, _ = _genome(tmp_path / "g2.fa", edits={i: "N" for i in range(0, CHROM_LEN, 7)})
    assert E.embed_task(model, other, g2, out, chunk_bp=50, **kw)["reused"] is False   # sequences changed
    assert E.embed_task(model, other, g2, out, chunk_bp=50, **kw)["reused"] is True


# --------------------------------------------------------------------------- probe
@pytest.fixture(scope="module")
def onehot_emb(world):
    tmp, genome, _, task_dir = world
    E.embed_task("onehot", task_dir, genome, tmp / "onehot")
    return tmp / "onehot"


def test_probe_learns_a_local_rule_deterministically_and_mcc_is_sklearns(world, onehot_emb, tmp_path):
    from sklearn.metrics import matthews_corrcoef

    from dnatok.bend.probe import train_probe
    from dnatok.stats.collect import read_metrics_json

    _, _, _, task_dir = world
    kw = dict(seed=3, epochs=15, batch_size=4, hidden=16, device="cpu")
    m1 = train_probe(task_dir, onehot_emb, tmp_path / "a", **kw)
    m2 = train_probe(task_dir, onehot_emb, tmp_path / "b", **kw)
    assert m1["test"] == m2["test"] and m1["best_epoch"] == m2["best_epoch"]
    assert m1["test_mcc"] == m1["mcc"] == m1["test"]["mcc"] > 0.5
    assert m1["upsample"] == "none" and m1["embedder"] == "onehot" and m1["benchmark"] == "bend"
    z = np.load(tmp_path / "a" / "predictions.npz")
    assert z["pred"].size == m1["n_bases"]["test"]
    assert m1["test"]["mcc"] == pytest.approx(matthews_corrcoef(z["labels"], z["pred"]), abs=1e-12)
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["test"] == m1["test"] and (tmp_path / "a" / "provenance.json").is_file()
    lines = (tmp_path / "a" / "losses.tsv").read_text().splitlines()
    assert lines[0] == "epoch\ttrain_loss\tvalid_metric" and len(lines) == 1 + m1["epochs_run"]
    row = read_metrics_json(tmp_path / "a" / "metrics.json")          # the stats tables read it
    assert row["mcc"] == m1["mcc"] and row["protocol"] == "bend_probe" and row["best_epoch"] == m1["best_epoch"]
    pc = m1["test"]["per_class"]
    assert len(pc["precision"]) == len(pc["recall"]) == 3 and pc["class"] == ["other", "GC", "AT"]


def test_probe_crops_and_stops_early(world, onehot_emb, tmp_path):
    from dnatok.bend.probe import ProbeCNN, train_probe

    _, _, _, task_dir = world
    m = train_probe(task_dir, onehot_emb, tmp_path / "p", seed=0, epochs=30, batch_size=8, hidden=8,
                    patience=2, crop_bp=64, device="cpu", learning_rate=1e-6)
    assert m["epochs_run"] < 30 and m["hyperparameters"]["crop_bp"] == 64
    # pooling: one output per sequence; padding does not leak into a sequence's outputs
    net = ProbeCNN(5, 4, hidden=8, pool=True)
    x = torch.randn(2, 10, 5)
    mask = torch.ones(2, 10)
    mask[1, 6:] = 0
    assert net(x, mask).shape == (2, 4)
    per = ProbeCNN(5, 3, hidden=8, pool=False)
    full = per(x, mask)[1, :6]
    alone = per(x[1:, :6], mask[1:, :6])[0]
    torch.testing.assert_close(full, alone)


def test_resnet_masks_padding_between_blocks_and_dilates_like_bend():
    from dnatok.bend.probe import ProbeResNet, build_probe, dilation_schedule

    assert dilation_schedule(8) == [1, 2, 4, 8, 16, 32, 1, 2]
    assert len(build_probe("resnet", 5, 9).blocks) == 30 and build_probe("resnet", 5, 9).out.in_features == 256
    with pytest.raises(UserError, match="2 layers"):
        build_probe("cnn", 5, 9, layers=6)
    torch.manual_seed(0)
    net = ProbeResNet(5, 3, hidden=8, layers=7).eval()          # receptive field 1 + 8*65 bp >> padding
    x = torch.randn(3, 120, 5)
    mask = torch.ones(3, 120)
    mask[1, 50:] = 0
    mask[2, 90:] = 0
    full = net(x, mask)
    torch.testing.assert_close(full[1, :50], net(x[1:2, :50], mask[1:2, :50])[0])
    torch.testing.assert_close(full[2, :90], net(x[2:3, :90] * 1, None)[0])
    x2 = x.clone()
    x2[1, 50:] = 1e3                                             # garbage in the padding changes nothing
    torch.testing.assert_close(net(x2, mask)[1, :50], full[1, :50])
    pooled = ProbeResNet(5, 4, hidden=8, layers=3, pool=True)
    assert pooled(x, mask).shape == (3, 4)


def test_resnet_probe_trains_and_records_its_arch(world, onehot_emb, tmp_path):
    from dnatok.bend.probe import train_probe

    _, _, _, task_dir = world
    m = train_probe(task_dir, onehot_emb, tmp_path / "r", seed=0, epochs=8, batch_size=4, hidden=16, device="cpu",
                    arch="resnet", layers=2)
    assert m["test"]["mcc"] > 0.5
    hp = json.loads((tmp_path / "r" / "metrics.json").read_text())["hyperparameters"]
    assert hp["arch"] == "resnet" and hp["layers"] == 2 and hp["hidden"] == 16 and hp["class_weights"] == "none"
    cnn = train_probe(task_dir, onehot_emb, tmp_path / "c", seed=0, epochs=1, batch_size=8, device="cpu")
    assert cnn["hyperparameters"]["arch"] == "cnn" and cnn["hyperparameters"]["layers"] == 2
    assert cnn["hyperparameters"]["hidden"] == 64 and cnn["hyperparameters"]["rc_aug"] is False
    with pytest.raises(UserError, match="rc_aug needs stranded"):       # toy classes carry no strand
        train_probe(task_dir, onehot_emb, tmp_path / "x", epochs=1, device="cpu", rc_aug=True)
    with pytest.raises(UserError, match="arch"):
        train_probe(task_dir, onehot_emb, tmp_path / "x", epochs=1, device="cpu", arch="lstm")


def test_class_weights_and_reverse_complement_augmentation():
    from dnatok.bend.probe import _rc_augment, inverse_frequency_weights, strand_label_permutation

    w = inverse_frequency_weights([np.array([0, 0, 0, 1]), np.array([0, 1])], 3)
    assert w == pytest.approx([6 / (2 * 4), 6 / (2 * 2), 0.0])
    names = ["CDS+", "donor+", "CDS-", "donor-", "non-coding"]
    perm = strand_label_permutation(names)
    assert perm == [2, 3, 0, 1, 4]
    with pytest.raises(UserError, match="'donor-'"):
        strand_label_permutation(["CDS+", "donor+", "CDS-"])
    x = torch.from_numpy(E.onehot("AACGT").astype(np.float32))[None].repeat(2, 1, 1)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.float32)
    x[1, 3:] = 0
    y = torch.tensor([[0, 1, 4, 2, 3], [0, 1, 4, -100, -100]])
    rx, _, ry = _rc_augment(x, mask, y, perm, np.random.default_rng(0), p=1.0)
    assert rx[0].argmax(1).tolist() == E.onehot("ACGTT").argmax(1).tolist()     # revcomp of AACGT
    assert rx[1, :3].argmax(1).tolist() == E.onehot("GTT").argmax(1).tolist() and rx[1, 3:].abs().sum() == 0
    assert ry.tolist() == [[1, 0, 4, 3, 2], [4, 3, 2, -100, -100]]


def test_multi_label_metrics_skip_one_class_labels():
    from sklearn.metrics import roc_auc_score

    from dnatok.bend.probe import multi_label_metrics

    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    p = np.array([[.9, .1, .5], [.2, .3, .5], [.6, .2, .4], [.7, .1, .3]])
    m = multi_label_metrics(y, p)
    assert m["labels_skipped_one_class"] == 2 and m["auroc"] == roc_auc_score(y[:, 0], p[:, 0])


# --------------------------------------------------------------------------- variant scoring
def _variants(path, seq, positions, labels):
    flip = {"A": "C", "C": "G", "G": "T", "T": "A"}
    rows = ["chromosome\tstart\tend\tref\talt\tlabel\tid\tgene\tkind"]
    for i, (p, lab) in enumerate(zip(positions, labels)):
        rows.append(f"chrS\t{p}\t{p + 1}\t{seq[p]}\t{flip[seq[p]]}\t{lab}\tv{i}\tG\tsnv")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_variant_scores_are_cosine_distances_and_causal_models_see_only_the_left(world, tmp_path):
    from dnatok.bend.variant_scoring import cosine_distance, score_variants

    _, genome, seq, _ = world
    tok = _tokenizer("char", tmp_path / "tok", seq)
    model = _tiny(tok, tmp_path / "m")
    positions = list(range(600, 11_000, 700))
    tsv = _variants(tmp_path / "v.tsv", seq, positions, [i % 2 for i in range(len(positions))])
    s = score_variants(model, tsv, genome, tmp_path / "s.tsv", tokenizer=tmp_path / "tok", context_bp=32)
    assert s["causal"] is True and 0 <= s["auroc"] <= 1 and s["n_pos"] + s["n_neg"] == len(positions)
    assert json.loads((tmp_path / "s.json").read_text())["auroc"] == s["auroc"]
    scores = [float(line.split("\t")[-1]) for line in (tmp_path / "s.tsv").read_text().splitlines()[1:]]
    assert len(scores) == len(positions) and all(x > 0 for x in scores)
    v = np.random.default_rng(0).normal(size=16)
    assert cosine_distance(v, v) == pytest.approx(0, abs=1e-12)
    # a bidirectional model (BERT) sees bases right of the variant, unless the window is causal
    bert = _tiny(tok, tmp_path / "bert", "bert", d_model=16, n_layer=1, n_head=2, d_ff=32)
    g2, _ = _genome(tmp_path / "g2.fa", edits={p + d: "N" for p in positions for d in (1, 5, 20)})

    def run(g, name, causal):
        out = score_variants(bert, tsv, g, tmp_path / name, tokenizer=tmp_path / "tok", context_bp=32,
                             causal=causal)
        return out, [float(x.split("\t")[-1]) for x in (tmp_path / name).read_text().splitlines()[1:]]

    auto, b1 = run(genome, "b1.tsv", None)
    assert auto["causal"] is False and "bidirectional" in auto["context_rule"]
    assert run(g2, "b2.tsv", None)[1] != b1
    c1 = run(genome, "c1.tsv", True)[1]
    assert run(g2, "c2.tsv", True)[1] == c1 and c1 != b1
    with pytest.raises(UserError, match="one-hot"):
        score_variants("onehot", tsv, genome, tmp_path / "x.tsv")


# --------------------------------------------------------------------------- CLI
def test_cli_commands_parse_and_run(world, onehot_emb, tmp_path):
    from dnatok.bend.run_cli import add_commands

    _, genome, _, task_dir = world
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["embed", "--model", "onehot", "--task", str(task_dir), "--genome", str(genome),
                              "--out", str(tmp_path / "e"), "--dtype", "float32", "--splits", "valid"])
    assert args.func(args) == 0 and (tmp_path / "e" / "valid.emb.npy").is_file()
    args = parser.parse_args(["probe", "--task", str(task_dir), "--embeddings", str(onehot_emb), "--out",
                              str(tmp_path / "p"), "--seed", "1", "--epochs", "2", "--hidden", "8",
                              "--batch-size", "8", "--device", "cpu"])
    assert args.func(args) == 0 and (tmp_path / "p" / "metrics.json").is_file()
    args = parser.parse_args(["probe", "--task", str(task_dir), "--embeddings", str(onehot_emb), "--out",
                              str(tmp_path / "r"), "--seed", "1", "--epochs", "1", "--hidden", "8", "--arch",
                              "resnet", "--layers", "3", "--class-weights", "inverse-frequency", "--device", "cpu"])
    assert args.func(args) == 0
    hp = json.loads((tmp_path / "r" / "metrics.json").read_text())["hyperparameters"]
    assert (hp["arch"], hp["layers"], hp["hidden"], hp["class_weights"]) == ("resnet", 3, 8, "inverse-frequency")
    args = parser.parse_args(["score-variants", "--model", "m", "--variants", "v.tsv", "--genome", "g",
                              "--out", "o.tsv", "--causal", "no", "--context-bp", "100"])
    assert args.causal == "no" and args.context_bp == 100
