"""Learned tokenizers vq / hrq (VQDNA): training health, the tokenizer contract, determinism,
resuming, specs and the CLI. Tiny networks and few steps keep the file fast on one thread;
each tokenizer is trained once per module (fixtures)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dnatok.errors import UserError
from dnatok.tokenization import canonical_spec, default_name, load_tokenizer, train_tokenizer
from dnatok.tokenization.learned import EmaCodebook, LearnedTokenizer, intrinsic_stats
from dnatok.tokenization.learned_train import Interrupted, train_learned, train_step
from dnatok.tokenization.vocab import CLS_ID, PAD_ID, SEP_ID

from synthetic import genome_like

GENOME = Path("data/genome/hg38_chr2_1-2333275.fa.gz")
TINY = {"code_dim": 16, "width": 32, "window": 64, "batch_size": 32, "steps": 120,
        "checkpoint_every": 1000}
VQ = {"kind": "vq", "depth": 2, **TINY}
HRQ = {"kind": "hrq", "levels": [8, 16, 32], "depth": 3, **TINY}


@pytest.fixture(scope="module")
def chr2_slice(shared_dir) -> list[str]:
    from dnatok.tokenization.corpus import read_sequences

    seq = next(read_sequences(shared_dir / GENOME))
    return [seq[10_000:250_000]]  # past the leading 10 kb of N


@pytest.fixture(scope="module")
def vq_tok(chr2_slice, tmp_path_factory) -> LearnedTokenizer:
    return train_tokenizer(VQ, tmp_path_factory.mktemp("vq") / "tok", chr2_slice)


@pytest.fixture(scope="module")
def hrq_tok(chr2_slice, tmp_path_factory) -> LearnedTokenizer:
    return train_tokenizer(HRQ, tmp_path_factory.mktemp("hrq") / "tok", chr2_slice)


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


# ----------------------------------------------------------------------------- health (real data)


@pytest.mark.parametrize("name", ["vq_tok", "hrq_tok"])
def test_heldout_reconstruction_and_no_collapse(name, request):
    tok = request.getfixturevalue(name)
    cb = tok.meta["codebook"]
    assert cb["heldout_windows"] > 100
    assert cb["recon_acc"] >= 0.95
    for lv, k in enumerate(tok.net.levels):
        assert cb[f"l{lv}_usage"] >= 0.25, cb
        assert cb[f"l{lv}_perplexity"] > min(8, 0.5 * k), cb
    if tok.kind == "vq":
        assert cb["l0_perplexity"] > 8
    else:
        assert cb["recon_acc_joint_ids"] >= 0.95
    reloaded = load_tokenizer(tok.path)
    assert isinstance(reloaded, LearnedTokenizer) and reloaded.vocab_size == tok.vocab_size
    for f in ("dnatok_tokenizer.json", "model.safetensors", "training_curve.tsv", "codebook_stats.tsv"):
        assert (tok.path / f).is_file()


def test_hrq_residual_error_does_not_rise(hrq_tok):
    cb = hrq_tok.meta["codebook"]
    errs = [cb[f"l{lv}_residual_error"] for lv in range(3)]
    assert all(b <= a for a, b in zip(errs, errs[1:])), errs
    curve = (hrq_tok.path / "training_curve.tsv").read_text().splitlines()
    head = curve[0].split("\t")
    first, last = (dict(zip(head, map(float, r.split("\t")))) for r in (curve[1], curve[-1]))
    for lv in range(3):  # per-level commitment falls over training
        assert last[f"commit_l{lv}"] < first[f"commit_l{lv}"]


def test_intrinsic_stats(vq_tok, hrq_tok, chr2_slice):
    probe = [chr2_slice[0][-20_000:]]
    for tok in (vq_tok, hrq_tok):
        st = intrinsic_stats(tok, probe)
        assert st["cond_entropy_base_bits"] > 0.5  # codes carry context beyond the base
        assert st["entropy_bits"] > st["cond_entropy_base_bits"]
        assert st["recon_acc"] >= 0.95 and 0 < st["usage"] <= 1 and st["perplexity"] > 8
        assert math.isnan(st["context_bp"]) or st["context_bp"] in range(1, 16, 2)
        assert all(isinstance(v, (int, float)) for v in st.values())
    assert "usage_l2" in intrinsic_stats(hrq_tok, probe)


# ----------------------------------------------------------------------------- tokenizer contract


def test_one_token_per_base_spans_and_chunking(hrq_tok, chr2_slice):
    tok = hrq_tok
    seq = chr2_slice[0][:30_000]
    ids = tok.encode(seq)
    assert ids.dtype == np.int64 and ids.size == len(seq)
    assert ids.min() >= 5 and ids.max() < tok.vocab_size
    levels = tok.encode_levels([seq, seq[:7]])
    assert levels[0].shape == (len(seq), 3) and levels[1].shape == (7, 3)
    # chunked encoding (pieces with margins) equals one pass over the whole sequence
    whole = LearnedTokenizer(tok.path, tok.meta)
    whole.chunk, whole.batch_bp = 10**6, 10**7
    assert np.array_equal(whole.encode_levels([seq])[0], levels[0])
    small = LearnedTokenizer(tok.path, tok.meta)
    small.chunk, small.batch_bp = 97, 500
    assert np.array_equal(small.encode(seq), ids)
    # a sequence batched with others of other lengths encodes as alone
    flat, offsets = tok._encode_flat([seq[:50], seq, "ACGTN"])
    assert np.array_equal(flat[offsets[1]:offsets[2]], ids)
    ids2, starts, ends = tok.spans(seq[:100])
    assert ids2[0] == CLS_ID and ids2[-1] == SEP_ID
    assert list(starts[1:-1]) == list(range(100)) and list(ends[1:-1] - starts[1:-1]) == [1] * 100
    assert (starts[0], ends[0], starts[-1], ends[-1]) == (0, 0, 100, 100)
    assert tok.embed([seq[:100]])[0].shape == (100, tok.spec["code_dim"])
    emb = tok.embed([seq])[0][:100]
    assert emb.dtype == np.float32
    table = tok.code_vectors()
    assert table.shape == (tok.vocab_size, tok.spec["code_dim"]) and not table[:5].any()
    exact = np.isin(tok.joint.key(levels[0][:100]), tok.joint._sorted)
    np.testing.assert_allclose(table[ids[:100]][exact], emb[exact], rtol=1e-5, atol=1e-6)
    assert tok.decode(ids[:2000]).count("N") <= 100
    match = np.mean([a == b for a, b in zip(tok.decode(ids[:2000]), seq[:2000])])
    assert match >= 0.95
    assert tok.tokens(ids[:2])[0].startswith("h")


def test_encode_batch_matches_char_layout(vq_tok, tmp_path, chr2_slice):
    char = train_tokenizer({"kind": "char"}, tmp_path / "char")
    seqs = [chr2_slice[0][i:i + n] for i, n in ((0, 40), (500, 13), (900, 70), (50, 1))]
    for kw in ({}, {"padding_side": "left"}, {"add_special_tokens": False}, {"pad_to_max": True}):
        a_ids, a_mask = vq_tok.encode_batch(seqs, 50, **kw)
        b_ids, b_mask = char.encode_batch(seqs, 50, **kw)
        assert a_ids.dtype == np.int64 and a_ids.shape == b_ids.shape
        assert np.array_equal(a_mask, b_mask)
        for special in (PAD_ID, CLS_ID, SEP_ID):
            assert np.array_equal(a_ids == special, b_ids == special)
    rc_ids, _ = vq_tok.encode_reverse_complement_batch(seqs[:1], 100)
    from dnatok.tokenization import reverse_complement
    assert np.array_equal(rc_ids[0, 1:-1], vq_tok.encode(reverse_complement(seqs[0])))
    assert vq_tok.encode("acgtn").tolist() == vq_tok.encode("ACGTN").tolist()
    assert vq_tok.encode("ACRYN").size == 5  # IUPAC -> channel N
    with pytest.raises(UserError, match="whitespace"):
        vq_tok.encode("ACG T")
    with pytest.raises(UserError):
        vq_tok.encode_batch("ACGT", 10)
    assert vq_tok.vocab_size == 5 + 64 and vq_tok.id_to_token[5] == "v0"
    assert vq_tok.complement_map is None and vq_tok.special_ids == frozenset(range(5))


def test_hrq_joint_ids_map_unseen_tuples(hrq_tok):
    joint = hrq_tok.joint
    assert joint.codes.shape[0] == hrq_tok.vocab_size - 5 <= 1024
    assert np.array_equal(joint.ids(joint.codes), np.arange(joint.codes.shape[0]))
    radix = joint.radix
    rng = np.random.default_rng(3)
    tuples = np.stack([rng.integers(0, r, 4000) for r in radix], 1)
    unseen = tuples[~np.isin(joint.key(tuples), joint._sorted)][:50]
    assert unseen.shape[0] > 0
    a, b = joint.ids(unseen), joint.ids(unseen[::-1].copy())[::-1]
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() < joint.codes.shape[0]
    vec = np.mean([v[unseen[:, i]] for i, v in enumerate(joint.level_vectors)], axis=0)
    d = ((vec[:, None, :] - joint.vectors[None]) ** 2).sum(-1)
    assert np.array_equal(a, d.argmin(1))


def test_ids_embedding_mode_has_no_table(vq_tok):
    meta = dict(vq_tok.meta, spec={**vq_tok.spec, "embedding": "ids"})
    assert LearnedTokenizer(vq_tok.path, meta).code_vectors() is None


# ----------------------------------------------------------------------------- synthetic (no shared data)


@pytest.fixture(scope="module")
def synthetic_corpus() -> list[str]:
    return [genome_like(11, 30_000, n_prefix=500, n_gaps=2, soft_mask=True), genome_like(12, 8_000)]


SMALL = {"kind": "vq", "codebook_size": 16, "code_dim": 8, "width": 16, "depth": 1,
         "window": 32, "batch_size": 16, "steps": 30, "checkpoint_every": 7}


def test_ema_updates_codes_without_gradient():
    torch.manual_seed(0)
    from dnatok.tokenization.learned import VQDNANet
    spec = canonical_spec(SMALL)
    net = VQDNANet(spec)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randint(0, 4, (8, 32))
    train_step(net, opt, spec, x, 0)
    quant = net.quant[0]
    assert isinstance(quant, EmaCodebook) and not quant.embed.requires_grad
    assert all(id(p) != id(quant.embed) for p in net.parameters())
    before = quant.embed.clone()
    train_step(net, opt, spec, torch.randint(0, 4, (8, 32)), 1)
    assert quant.embed.grad is None
    assert not torch.equal(before, quant.embed)


def test_same_seed_same_bytes_other_seed_differs(synthetic_corpus, tmp_path):
    a = train_tokenizer(SMALL, tmp_path / "a", synthetic_corpus)
    b = train_tokenizer(SMALL, tmp_path / "b", iter(synthetic_corpus))
    c = train_tokenizer({**SMALL, "seed": 1}, tmp_path / "c", synthetic_corpus)
    fa, fb, fc = _files(a.path), _files(b.path), _files(c.path)
    assert fa == fb
    assert fa["model.safetensors"] != fc["model.safetensors"]
    assert a.meta["corpus"]["bp"] == 38_000 and not (tmp_path / "a.ckpt").exists()
    assert len(a.encode(synthetic_corpus[1][:500])) == 500


def test_resume_equals_uninterrupted(synthetic_corpus, tmp_path):
    full = train_learned(SMALL, tmp_path / "full", synthetic_corpus)
    with pytest.raises(Interrupted):
        train_learned(SMALL, tmp_path / "part", synthetic_corpus, stop_after=16)
    assert (tmp_path / "part.ckpt" / "state.pt").is_file() and not (tmp_path / "part").exists()
    resumed = train_learned(SMALL, tmp_path / "part", synthetic_corpus)
    assert _files(full.path) == _files(resumed.path)
    assert not (tmp_path / "part.ckpt").exists()


def test_hrq_synthetic_tiny(synthetic_corpus, tmp_path):
    spec = {**SMALL, "kind": "hrq", "levels": [4, 8], "depth": 2, "max_joint_codes": 20}
    spec.pop("codebook_size")
    tok = train_tokenizer(spec, tmp_path / "h", synthetic_corpus)
    assert tok.vocab_size == 25 and len(tok.encode("ACGTACGTNN")) == 10
    assert (tok.path / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- specs and CLI


def test_spec_defaults_and_errors():
    vq = canonical_spec({"kind": "vq"})
    assert vq["codebook_size"] == 64 and vq["embedding"] == "frozen" and "levels" not in vq
    assert canonical_spec(vq) == vq and default_name(vq) == "vq"
    hrq = canonical_spec({"kind": "hrq"})
    assert hrq["levels"] == [16, 32, 64] and default_name(hrq) == "hrq"
    assert default_name({"kind": "vq", "codebook_size": 128}) == "vq128"
    bad = [({"kind": "vq", "levels": [4]}, "levels"), ({"kind": "vq", "colour": 1}, "colour"),
           ({"kind": "vq", "codebook_size": 1}, "codebook_size"),
           ({"kind": "vq", "embedding": "x"}, "embedding"), ({"kind": "vq", "beta": "a"}, "beta"),
           ({"kind": "hrq", "levels": [8, 8, 8, 8], "depth": 3}, "depth"),
           ({"kind": "hrq", "levels": []}, "levels"), ({"kind": "vq", "ema_decay": 1.0}, "ema_decay"),
           ({"kind": "vq", "steps": 1.5}, "steps")]
    for spec, key in bad:
        with pytest.raises(UserError, match=key):
            canonical_spec(spec)
    with pytest.raises(UserError, match="corpus"):
        train_tokenizer({"kind": "vq"}, "/nonexistent/x")


def test_cli_train(synthetic_corpus, tmp_path):
    import json

    from dnatok.cli import main
    from synthetic import write_fasta

    fasta = write_fasta(tmp_path / "c.fa.gz", {"a": synthetic_corpus[0]}, compress="gzip")
    spec = json.dumps({**SMALL, "steps": 10})
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", "--spec", spec, "--corpus", str(fasta), "--out", str(out)]) == 0
    tok = load_tokenizer(out)
    assert tok.kind == "vq" and (out / "provenance.json").is_file()
    assert main(["tokenizer", "train", "--spec", '{"kind": "vq"}', "--out", str(tmp_path / "x")]) == 2


# ----------------------------------------------------------------------------- speed-ups keep the codes


def _reference_levels(tok: LearnedTokenizer, seq: str) -> np.ndarray:
    """The encoder as first written (one-hot via F.one_hot, mask always applied, nearest
    code by ||h||^2 - 2h.e + ||e||^2 with h doubled), one pass over the whole sequence."""
    import torch.nn.functional as F

    from dnatok.tokenization.learned import N_CHANNELS, base_codes

    net = tok.net
    codes, _ = base_codes([seq])
    x = F.one_hot(torch.from_numpy(codes.astype(np.int64))[None], N_CHANNELS + 1)[..., :N_CHANNELS].float()
    mask = torch.ones(1, x.shape[1], 1)
    with torch.inference_mode():
        x = net.stem(x.transpose(1, 2)).transpose(1, 2)
        x = F.gelu(net.stem_norm(x))
        first, out, resid = net.depth - len(net.levels), [], None
        for i, block in enumerate(net.encoder):
            y = block.dw((x * mask).transpose(1, 2)).transpose(1, 2)
            x = x + block.fc2(F.gelu(block.fc1(block.norm(y))))
            if i < first:
                continue
            h = net.proj[i - first](x)
            h = h if resid is None else h + resid
            flat, e = h.reshape(-1, h.shape[-1]), net.quant[i - first].embed
            d = (flat * flat).sum(1, keepdim=True) - 2 * flat @ e.t() + (e * e).sum(1)[None, :]
            idx = d.argmin(1)
            resid = h - e[idx].reshape(h.shape)
            out.append(idx)
    return torch.stack(out, -1).numpy()


@pytest.mark.parametrize("name", ["vq_tok", "hrq_tok"])
def test_fast_encoding_equals_reference_forward(name, request, chr2_slice):
    tok = request.getfixturevalue(name)
    seq = chr2_slice[0]
    seqs = [seq[1000:31_000], seq[50_000:50_037], seq[60_000:69_001], "ACGTNNNNACGT"]
    windows = [seq[100_000 + i * 1000:101_000 + i * 1000] for i in range(40)]
    ref = [_reference_levels(tok, s) for s in seqs + windows]
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):  # 2: batches in a thread pool
            torch.set_num_threads(threads)
            # mixed lengths: padded batches (mask), pieces with margins; windows: no mask
            got = tok.encode_levels(seqs) + tok.encode_levels(windows)
            assert all(np.array_equal(g, r) for g, r in zip(got, ref))
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- device


def test_device_env_and_spec(vq_tok, monkeypatch, chr2_slice):
    from dnatok.tokenization.learned import DEVICE_ENV, tokenizer_device

    seq = chr2_slice[0][:5000]
    ids = vq_tok.encode(seq)
    assert vq_tok.device == torch.device("cpu")  # load_tokenizer: CPU by default
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    tok = load_tokenizer(vq_tok.path)
    assert tok.device.type == "cpu" and np.array_equal(tok.encode(seq), ids)
    assert tok.decode(ids[:300]) == vq_tok.decode(ids[:300])
    monkeypatch.setenv(DEVICE_ENV, "auto")
    assert load_tokenizer(vq_tok.path).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv(DEVICE_ENV, "gpu")
    with pytest.raises(UserError, match=DEVICE_ENV):
        load_tokenizer(vq_tok.path)
    if not torch.cuda.is_available():
        monkeypatch.setenv(DEVICE_ENV, "cuda:0")
        with pytest.raises(UserError, match="CUDA"):
            load_tokenizer(vq_tok.path)
        with pytest.raises(UserError, match="CUDA"):
            train_tokenizer({**SMALL, "device": "cuda"}, "/nonexistent/x", ["ACGT" * 100])
    assert tokenizer_device("cpu") == torch.device("cpu")
    assert canonical_spec({"kind": "vq"})["device"] == "auto"
    assert canonical_spec({"kind": "hrq", "device": "cuda:1"})["device"] == "cuda:1"
    for bad in ("gpu", "cuda:", 0, "CPU"):
        with pytest.raises(UserError, match="device"):
            canonical_spec({"kind": "vq", "device": bad})


def test_device_key_changes_no_byte_on_cpu(synthetic_corpus, tmp_path):
    a = train_tokenizer({**SMALL, "steps": 12}, tmp_path / "a", synthetic_corpus)
    b = train_tokenizer({**SMALL, "steps": 12, "device": "cpu"}, tmp_path / "b", synthetic_corpus)
    if not torch.cuda.is_available():
        c = train_tokenizer({**SMALL, "steps": 12, "device": "auto"}, tmp_path / "c", synthetic_corpus)
        assert _files(a.path) == _files(c.path)
    assert _files(a.path) == _files(b.path)
    assert "device" not in a.meta["spec"] and "device" not in a.meta["training"]
    from dnatok.tokenization.learned_train import _signature
    spec = canonical_spec(SMALL)
    assert _signature(spec, {}) == _signature({**spec, "device": "cuda"}, {})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_and_encoding(synthetic_corpus, tmp_path, monkeypatch):
    from dnatok.tokenization.learned import DEVICE_ENV

    tok = train_tokenizer({**SMALL, "device": "cuda"}, tmp_path / "g", synthetic_corpus)
    assert tok.meta["training"]["device"].startswith("cuda") and "device" not in tok.meta["spec"]
    seqs = [synthetic_corpus[1][:3000], synthetic_corpus[0][:777]]
    cpu_ids = tok.encode_batch(seqs, 4000)[0]  # loaded on the CPU
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    gpu = load_tokenizer(tok.path)
    assert gpu.device.type == "cuda" and next(gpu.net.parameters()).is_cuda
    gpu_ids, _ = gpu.encode_batch(seqs, 4000)
    assert gpu_ids.shape == cpu_ids.shape and (gpu_ids == cpu_ids).mean() > 0.99  # near-ties may flip
    assert len(gpu.decode(gpu_ids[0])) == 3000
