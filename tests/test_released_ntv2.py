"""NT-v2 clean-room module: strict loading of a tiny release written in the release's layout,
an independent float64 reference forward from the raw released tensors, rotary and attention
checked against transformers' own ESM modules, padding invariance, classifier training step
and save/load round trip."""
from __future__ import annotations

import json
import math

import pytest
import torch

from dnatok.errors import UserError
from dnatok.released import ntv2 as fam
from dnatok.released.base import load_strict, read_release_config, read_state_dict

SIZES = {"hidden": 32, "layers": 2, "heads": 4}
ODD_SIZES = {"hidden": 48, "layers": 3, "heads": 3, "intermediate": 40, "vocab": 60}
PAD, CLS = 1, 3


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return fam.write_tiny_release(tmp_path_factory.mktemp("ntv2"), seed=0, **SIZES)


def load(ckpt, **fields):
    model = fam.Classifier(fam.config_from_release(read_release_config(ckpt), num_labels=3, **fields))
    return model, load_strict(model, read_state_dict(ckpt), fam, str(ckpt))


def batch(vocab, lengths, length=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    length = length or max(lengths)
    ids = torch.randint(6, vocab, (len(lengths), length), generator=g)
    ids[:, 0] = CLS
    mask = (torch.arange(length)[None] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, PAD), mask


# --------------------------------------------------------------------------- config

def test_matches_and_config():
    cfg = fam.release_config()
    assert fam.matches(cfg)
    esm2_protein = {"model_type": "esm", "position_embedding_type": "rotary", "vocab_size": 33}
    nt_v1 = {"model_type": "esm", "position_embedding_type": "absolute", "token_dropout": True}
    assert not fam.matches(esm2_protein) and not fam.matches(nt_v1)
    assert not fam.matches({"model_type": "bert", "alibi_starting_size": 512})
    c = fam.config_from_release(cfg, num_labels=2, pooling="mean", conjoin=True)
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (1024, 29, 16, 4096)
    assert c.model_type == "dnatok_ntv2" and c.pad_token_id == 1 and c.conjoin and c.num_labels == 2
    for key, value in (("emb_layer_norm_before", True), ("token_dropout", True), ("add_bias_fnn", True),
                       ("position_embedding_type", "absolute"), ("is_folding_model", True)):
        with pytest.raises(UserError, match=key):
            fam.config_from_release({**cfg, key: value})
    with pytest.raises(UserError, match="num_attention_heads"):
        fam.config_from_release({**cfg, "num_attention_heads": 7})
    # absent / null flags mean ESM's defaults (off), an absent add_bias_fnn is not assumed false
    fam.config_from_release({k: v for k, v in cfg.items() if k not in ("emb_layer_norm_before", "token_dropout")})
    fam.config_from_release({**cfg, "emb_layer_norm_before": None})
    with pytest.raises(UserError, match="add_bias_fnn absent"):
        fam.config_from_release({k: v for k, v in cfg.items() if k != "add_bias_fnn"})


# --------------------------------------------------------------------------- strict loading

def test_strict_load_report(release):
    model, report = load(release)
    sd = read_state_dict(release)
    assert report["initialised"] == ["classifier.dense.bias", "classifier.dense.weight",
                                     "classifier.out_proj.bias", "classifier.out_proj.weight"]
    dropped = [k for k in sd if k.startswith(("lm_head.", "esm.contact_head.")) or "position_embeddings" in k
               or k.endswith("rotary_embeddings.inv_freq")]
    assert report["dropped"] == sorted(dropped) and any(k.startswith("lm_head.") for k in dropped)
    assert report["loaded"] == len(sd) - len(dropped) == len(model.backbone.state_dict())
    own = model.state_dict()
    assert all(torch.equal(own[fam.map_key(k)], v) for k, v in sd.items() if k not in dropped)
    # the optional extras may be absent
    lean = {k: v for k, v in sd.items() if not k.startswith(("esm.contact_head.", "esm.embeddings.position"))
            and "rotary" not in k}
    assert load_strict(model, lean, fam, "lean")["loaded"] == report["loaded"]


def test_strict_load_errors(release):
    sd = read_state_dict(release)
    model = fam.Classifier(fam.config_from_release(read_release_config(release)))
    missing = {k: v for k, v in sd.items() if k != "esm.encoder.layer.1.attention.self.key.bias"}
    with pytest.raises(UserError, match=r"missing.*backbone\.encoder\.layer\.1\.attention\.self\.key\.bias"):
        load_strict(model, missing, fam, "tiny")
    for extra in ("esm.encoder.layer.0.intermediate.dense.bias", "esm.pooler.dense.weight", "classifier.weight"):
        with pytest.raises(UserError, match="no place for: " + extra.replace(".", r"\.")):
            load_strict(model, {**sd, extra: torch.zeros(3)}, fam, "tiny")
    bad = {**sd, "esm.encoder.layer.0.output.dense.weight": torch.zeros(SIZES["hidden"], 7)}
    with pytest.raises(UserError, match="shape mismatch: esm.encoder.layer.0.output.dense.weight"):
        load_strict(model, bad, fam, "tiny")


# --------------------------------------------------------------------------- rotary / attention

def rotate_pairs(x, positions, base=10000.0):
    """Reference rotary, float64: pair (i, i + dim/2) turned by position / base^(2i/dim)."""
    half = x.shape[-1] // 2
    out = x.clone()
    for i in range(half):
        angle = positions * base ** (-2 * i / x.shape[-1])
        c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
        a, b = x[..., i : i + 1], x[..., half + i : half + i + 1]
        out[..., i : i + 1], out[..., half + i : half + i + 1] = a * c - b * s, b * c + a * s
    return out


def test_rotary_against_reference_and_transformers():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 11, 8, generator=g)             # (batch, heads, L, head_dim)
    cos, sin = fam.rotary_tables(11, 8)
    ours = fam.apply_rotary(x, cos, sin)
    ref = rotate_pairs(x.double(), torch.arange(11, dtype=torch.float64))
    assert (ours - ref).abs().max() < 1e-5
    me = pytest.importorskip("transformers.models.esm.modeling_esm")
    if not hasattr(me, "EsmRotaryEmbedding"):
        pytest.skip("transformers' ESM has no EsmRotaryEmbedding (API changed)")
    from transformers import EsmConfig

    rot = me.EsmRotaryEmbedding(EsmConfig(hidden_size=24, num_attention_heads=3, position_embedding_type="rotary"))
    tcos, tsin = rot(x, torch.arange(11)[None])
    assert torch.equal(tcos[0], cos) and torch.equal(tsin[0], sin)
    tq, _ = me.apply_rotary_pos_emb(x, x, tcos, tsin, unsqueeze_dim=1)
    assert torch.equal(tq, ours)


def test_attention_block_against_transformers(release):
    me = pytest.importorskip("transformers.models.esm.modeling_esm")
    if not hasattr(me, "EsmRotaryEmbedding"):
        pytest.skip("transformers' ESM API changed")
    from transformers import EsmConfig

    model, _ = load(release)
    model.eval()
    ours = model.backbone.encoder.layer[0].attention
    cfg = EsmConfig(vocab_size=64, hidden_size=SIZES["hidden"], num_attention_heads=SIZES["heads"],
                    num_hidden_layers=1, intermediate_size=64, position_embedding_type="rotary",
                    layer_norm_eps=1e-12, attention_probs_dropout_prob=0.0, hidden_dropout_prob=0.0)
    cfg._attn_implementation = "eager"
    theirs = me.EsmAttention(cfg).eval()
    theirs.load_state_dict(ours.state_dict())
    g = torch.Generator().manual_seed(2)
    h = torch.randn(3, 10, SIZES["hidden"], generator=g)
    mask = (torch.arange(10)[None] < torch.tensor([10, 6, 3])[:, None]).long()
    ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    hd = SIZES["hidden"] // SIZES["heads"]
    with torch.no_grad():
        want = theirs(h, attention_mask=ext, position_embeddings=me.EsmRotaryEmbedding(cfg)(h, torch.arange(10)[None]))
        cos, sin = fam.rotary_tables(10, hd)
        got = ours(h, fam.key_padding_bias(mask, torch.float32), cos, sin)
    assert (got - want).abs().max() < 1e-5


# --------------------------------------------------------------------------- reference forward

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def reference_forward(sd, cfg, ids, mask):
    """NT-v2 from the raw released tensors in float64: masked embeddings, pre-LN layers with
    q scaled before rotary, HF's finfo.min key mask, explicit loop over heads, SwiGLU FFN."""
    sd = {k: v.double() for k, v in sd.items()}
    d, n_head, f, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"], cfg["layer_norm_eps"]
    hd, length = d // n_head, ids.shape[1]
    positions = torch.arange(length, dtype=torch.float64)

    def lin(x, name, bias=True):
        return x @ sd[name + ".weight"].T + (sd[name + ".bias"] if bias else 0.0)

    def ln(x, name):
        return layer_norm(x, sd[name + ".weight"], sd[name + ".bias"], eps)

    x = sd["esm.embeddings.word_embeddings.weight"][ids] * mask[..., None]
    key_bias = (1.0 - mask.double())[:, None, :] * torch.finfo(torch.float32).min
    for n in range(cfg["num_hidden_layers"]):
        p = f"esm.encoder.layer.{n}."
        a = ln(x, p + "attention.LayerNorm")
        q, k, v = (lin(a, p + f"attention.self.{m}") for m in ("query", "key", "value"))
        ctx = torch.zeros_like(x)
        for h in range(n_head):
            cols = slice(h * hd, (h + 1) * hd)
            qh = rotate_pairs(q[..., cols] / math.sqrt(hd), positions)
            kh = rotate_pairs(k[..., cols], positions)
            ctx[..., cols] = torch.softmax(qh @ kh.transpose(1, 2) + key_bias, -1) @ v[..., cols]
        x = x + lin(ctx, p + "attention.output.dense")
        g = lin(ln(x, p + "LayerNorm"), p + "intermediate.dense", bias=False)
        swiglu = g[..., :f] * torch.sigmoid(g[..., :f]) * g[..., f:]
        x = x + lin(swiglu, p + "output.dense", bias=False)
    return ln(x, "esm.encoder.emb_layer_norm_after")


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
    assert (ours64[real] - ref[real]).abs().max() < 1e-5   # rotary tables are float32 by design


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_padding_invariance(release, dtype, tol):
    model, _ = load(release)
    model.to(dtype).eval()
    ids, mask = batch(4107, [6, 6, 6], length=6)
    with torch.no_grad():
        alone = model.backbone(ids, mask)
        for extra in (1, 5, 40):
            pids = torch.cat([ids, torch.full((3, extra), PAD)], 1)
            pmask = torch.cat([mask, torch.zeros(3, extra, dtype=torch.long)], 1)
            assert (model.backbone(pids, pmask)[:, :6] - alone).abs().max() < tol, extra
        assert torch.equal(model.backbone(ids), alone)   # no mask = all real


# --------------------------------------------------------------------------- classifier

def test_classifier_step_and_round_trip(release, tmp_path):
    model, _ = load(release, conjoin=True, pooling="mean")
    ids, mask = batch(4107, [8, 4, 6])
    labels = torch.tensor([0, 2, 1])
    model.train()
    out = model(ids, mask, labels=labels)
    assert out.logits.shape == (3, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    for name in ("classifier.out_proj.weight", "classifier.dense.weight",
                 "backbone.encoder.layer.0.attention.self.query.weight",
                 "backbone.encoder.layer.1.intermediate.dense.weight", "backbone.embeddings.word_embeddings.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert model.get_input_embeddings() is model.backbone.embeddings.word_embeddings
    assert model.backbone.output_dim == SIZES["hidden"]
    lora_hits = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()
                 if n.endswith((".query", ".key", ".value", ".dense"))}
    assert lora_hits == {"query", "key", "value", "dense"}

    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "dnatok_ntv2"
    loaded = fam.Classifier.from_pretrained(tmp_path)
    model.eval()
    loaded.eval()
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    with torch.no_grad():
        assert torch.equal(model(ids, mask).logits, loaded(ids, mask).logits)


def test_load_classifier_entry_point(release):
    from dnatok import released

    model, report = released.load_classifier(release, 2, "ntv2")
    assert isinstance(model, fam.Classifier) and report["family"] == "ntv2"
    assert released.label_of("ntv2") == "NTv2"
