"""DNABERT-2 (MosaicBERT) clean-room module: strict loading of a tiny release written in the
release's layout, an independent float64 reference forward from the raw released tensors,
ALiBi facts, padding invariance, classifier training step and save/load round trip."""
from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import SHARED
from dnatok.errors import UserError
from dnatok.released import dnabert2 as fam
from dnatok.released.base import load_strict, read_release_config, read_state_dict

RELEASE_DIR = SHARED / "checkpoints" / "dnabert2-117m"
SIZES = {"hidden": 32, "layers": 2, "heads": 4}
ODD_SIZES = {"hidden": 36, "layers": 3, "heads": 12, "intermediate": 20, "vocab": 50}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return fam.write_tiny_release(tmp_path_factory.mktemp("dnabert2"), seed=0, **SIZES)


def load(ckpt, **fields):
    model = fam.Classifier(fam.config_from_release(read_release_config(ckpt), num_labels=3, **fields))
    return model, load_strict(model, read_state_dict(ckpt), fam, str(ckpt))


def batch(vocab, lengths, length=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    length = length or max(lengths)
    ids = torch.randint(5, vocab, (len(lengths), length), generator=g)
    ids[:, 0] = 1  # [CLS]
    mask = (torch.arange(length)[None] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, 3), mask  # [PAD] = 3


# --------------------------------------------------------------------------- config

def test_matches_and_config():
    cfg = fam.release_config()
    assert fam.matches(cfg)
    assert not fam.matches({"model_type": "bert", "vocab_size": 4101})          # DNABERT-6
    assert not fam.matches({"model_type": "esm", "add_bias_fnn": False})
    c = fam.config_from_release(cfg, num_labels=2, pooling="mean", conjoin=True)
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (768, 12, 12, 3072)
    assert c.model_type == "dnatok_dnabert2" and c.pad_token_id == 0 and c.conjoin and c.num_labels == 2
    with pytest.raises(UserError, match="position_embedding_type"):
        fam.config_from_release({**cfg, "position_embedding_type": "relative_key"})
    with pytest.raises(UserError, match="num_attention_heads"):
        fam.config_from_release({**cfg, "num_attention_heads": 7})
    with pytest.raises(UserError, match="num_hidden_layers"):
        fam.config_from_release({**cfg, "num_hidden_layers": 0})


def test_real_release_config():
    if not (RELEASE_DIR / "config.json").is_file():
        pytest.skip(f"{RELEASE_DIR} is absent")
    real = json.loads((RELEASE_DIR / "config.json").read_text())
    assert fam.matches(real)
    assert set(fam.release_config()) == set(real)
    assert fam.release_config() == real
    c = fam.config_from_release(real, num_labels=2)
    assert (c.vocab_size, c.hidden_size, c.alibi_starting_size, c.hidden_dropout_prob) == (4096, 768, 512, 0.1)


# --------------------------------------------------------------------------- strict loading

def test_strict_load_report(release):
    model, report = load(release)
    sd = read_state_dict(release)
    assert report["initialised"] == ["classifier.bias", "classifier.weight", "pooler.dense.bias",
                                     "pooler.dense.weight"]
    assert report["dropped"] == sorted(k for k in sd if k.startswith("cls."))
    assert report["loaded"] == sum(k.startswith("bert.") for k in sd) == len(model.backbone.state_dict())
    own = model.state_dict()
    assert all(torch.equal(own[fam.map_key(k)], v) for k, v in sd.items() if k.startswith("bert."))


def test_strict_load_errors(release):
    sd = read_state_dict(release)
    model = fam.Classifier(fam.config_from_release(read_release_config(release)))
    missing = {k: v for k, v in sd.items() if k != "bert.encoder.layer.1.mlp.wo.bias"}
    with pytest.raises(UserError, match=r"missing.*backbone\.encoder\.layer\.1\.mlp\.wo\.bias"):
        load_strict(model, missing, fam, "tiny")
    for extra in ("bert.encoder.layer.0.attention.self.rotary.inv_freq", "bert.pooler.dense.weight",
                  "head.weight"):
        with pytest.raises(UserError, match="no place for: " + extra.replace(".", r"\.")):
            load_strict(model, {**sd, extra: torch.zeros(3)}, fam, "tiny")
    bad = {**sd, "bert.embeddings.word_embeddings.weight": torch.zeros(10, SIZES["hidden"])}
    with pytest.raises(UserError, match="shape mismatch: bert.embeddings.word_embeddings.weight"):
        load_strict(model, bad, fam, "tiny")


# --------------------------------------------------------------------------- ALiBi

def release_slopes(n):
    """The ALiBi rule as §1 states it: start = 2^(-2^-(log2 n - 3)), slopes start^(i+1); a
    non-power of two n takes the list of the lower power p, then every other slope of 2p."""
    def pow2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        return [start * start ** i for i in range(n)]
    p = 2 ** math.floor(math.log2(n))
    return pow2(n) if p == n else pow2(p) + pow2(2 * p)[0::2][: n - p]


def test_alibi_slopes():
    want = [2.0 ** -k for k in range(1, 9)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]
    assert torch.equal(fam.alibi_slopes(12), torch.tensor(want, dtype=torch.float32))
    for n in (1, 2, 4, 6, 8, 12, 16, 20, 24):
        assert torch.equal(fam.alibi_slopes(n), torch.tensor(release_slopes(n), dtype=torch.float32)), n


def test_alibi_table_equals_sliced_release_table():
    for length in (7, 512, 600):
        size = max(512, length)   # the release builds for max(alibi_starting_size, L), then slices
        rel = torch.tensor([[abs(j - i) for j in range(size)] for i in range(size)])
        table = (torch.tensor(release_slopes(12), dtype=torch.float32)[:, None, None] * -rel)[None]
        assert torch.equal(fam.alibi_bias(12, length), table[:, :, :length, :length])


# --------------------------------------------------------------------------- reference forward

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def reference_forward(sd, cfg, ids, mask):
    """MosaicBERT from the raw released tensors in float64: padded attention with the
    (1 - mask) * -10000 + ALiBi bias, explicit loop over heads; pad rows zeroed at the end."""
    sd = {k: v.double() for k, v in sd.items()}
    d, n_head, f, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"], cfg["layer_norm_eps"]
    hd, length = d // n_head, ids.shape[1]

    def ln(x, name):
        return layer_norm(x, sd[name + ".weight"], sd[name + ".bias"], eps)

    x = sd["bert.embeddings.word_embeddings.weight"][ids] + sd["bert.embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "bert.embeddings.LayerNorm")
    dist = torch.tensor([[abs(i - j) for j in range(length)] for i in range(length)], dtype=torch.float32)
    pad = (1.0 - mask.double())[:, None, :] * -10000.0                  # (B, 1, L) over keys
    slopes = torch.tensor(release_slopes(n_head), dtype=torch.float32)
    alibi = [(-slopes[h] * dist).double() for h in range(n_head)]      # built in float32, as released
    for n in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{n}."
        qkv = x @ sd[p + "attention.self.Wqkv.weight"].T + sd[p + "attention.self.Wqkv.bias"]
        ctx = torch.zeros_like(x)
        for h in range(n_head):
            cols = slice(h * hd, (h + 1) * hd)
            q, k, v = qkv[..., cols], qkv[..., d:][..., cols], qkv[..., 2 * d:][..., cols]
            scores = q @ k.transpose(1, 2) / math.sqrt(hd) + alibi[h] + pad
            ctx[..., cols] = torch.softmax(scores, -1) @ v
        attn = ctx @ sd[p + "attention.output.dense.weight"].T + sd[p + "attention.output.dense.bias"]
        x = ln(attn + x, p + "attention.output.LayerNorm")
        g = x @ sd[p + "mlp.gated_layers.weight"].T
        act = 0.5 * g[..., :f] * (1.0 + torch.erf(g[..., :f] / math.sqrt(2.0))) * g[..., f:]
        x = ln(act @ sd[p + "mlp.wo.weight"].T + sd[p + "mlp.wo.bias"] + x, p + "mlp.layernorm")
    return x * mask[..., None]


@pytest.mark.parametrize("sizes", [SIZES, ODD_SIZES], ids=["tiny", "odd-sizes"])
def test_matches_reference_forward(tmp_path, sizes):
    ckpt = fam.write_tiny_release(tmp_path, seed=3, **sizes)
    model, _ = load(ckpt)
    model.eval()
    cfg = read_release_config(ckpt)
    ids, mask = batch(cfg["vocab_size"], [9, 5, 1, 7])
    ref = reference_forward(read_state_dict(ckpt), cfg, ids, mask)
    with torch.no_grad():
        ours = model.backbone(ids, mask)
        ours64 = model.double().backbone(ids, mask)
    real = mask.bool()
    assert ours.dtype == torch.float32 and ours.shape == (4, 9, cfg["hidden_size"])
    assert (ours[real] - ref[real]).abs().max() < 1e-5
    assert (ours64[real] - ref[real]).abs().max() < 1e-10
    assert torch.equal(ours[~real], torch.zeros_like(ours[~real]))   # pad rows exactly zero


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_padding_invariance(release, dtype, tol):
    model, _ = load(release)
    model.to(dtype).eval()
    ids, mask = batch(4096, [6, 6, 6], length=6)
    with torch.no_grad():
        alone = model.backbone(ids, mask)
        for extra in (1, 5, 40):
            pids = torch.cat([ids, torch.full((3, extra), 3)], 1)
            pmask = torch.cat([mask, torch.zeros(3, extra, dtype=torch.long)], 1)
            padded = model.backbone(pids, pmask)
            assert (padded[:, :6] - alone).abs().max() < tol, extra
            assert not padded[:, 6:].any()
        assert torch.equal(model.backbone(ids), alone)   # no mask = all real


# --------------------------------------------------------------------------- classifier

def test_classifier_step_and_round_trip(release, tmp_path):
    model, _ = load(release, conjoin=True, pooling="mean")
    ids, mask = batch(4096, [8, 4, 6])
    labels = torch.tensor([0, 2, 1])
    model.train()
    out = model(ids, mask, labels=labels)
    assert out.logits.shape == (3, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    for name in ("classifier.weight", "pooler.dense.weight", "backbone.encoder.layer.0.attention.self.Wqkv.weight",
                 "backbone.embeddings.word_embeddings.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert model.get_input_embeddings() is model.backbone.embeddings.word_embeddings
    assert model.backbone.output_dim == SIZES["hidden"]
    model.eval()
    with torch.no_grad():
        conj = model(ids, mask, rc_input_ids=ids.flip(1), rc_attention_mask=mask.flip(1)).logits
    assert conj.shape == (3, 3)

    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "dnatok_dnabert2"
    loaded = fam.Classifier.from_pretrained(tmp_path)
    loaded.eval()
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    with torch.no_grad():
        assert torch.equal(model(ids, mask).logits, loaded(ids, mask).logits)


def test_load_classifier_entry_point(release):
    from dnatok import released

    model, report = released.load_classifier(release, 2, "dnabert2")
    assert isinstance(model, fam.Classifier) and report["family"] == "dnabert2"
    assert released.label_of("dnabert2") == "DNABERT2"
