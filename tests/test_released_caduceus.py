"""Released Caduceus (PH, PS) loaded without remote code: against a naive float64
reference written here from the raw released tensors, RC equivariance of both PS
orderings, padding, strict loading, save/load round trip, training step."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from dnatok.errors import UserError
from dnatok.released import caduceus as fam
from dnatok.released.base import load_strict, read_release_config, read_state_dict

COMP = torch.tensor([fam.RELEASE_COMPLEMENT.get(i, i) for i in range(16)])
PAD = 4
P = "caduceus.backbone."


def load(path, **fields):
    cfg = fam.config_from_release(read_release_config(path), num_labels=3, **fields)
    model = fam.Classifier(cfg).eval()
    torch.manual_seed(1)  # a non-trivial score head
    report = load_strict(model, read_state_dict(path), fam, str(path))
    with torch.no_grad():
        model.score.weight.normal_(0.0, 1.0)
    return model, report


def rand_ids(batch, length, seed=0):
    return torch.randint(7, 12, (batch, length), generator=torch.Generator().manual_seed(seed))


def rc_ids(ids, lengths=None):
    """Reverse complement per row (of its first n tokens; pads stay at the end)."""
    out = COMP[ids].flip(1)
    for r, n in enumerate(lengths or []):
        out[r] = ids[r]
        out[r, :n] = COMP[ids[r, :n]].flip(0)
    return out


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("caduceus")
    out = {}
    for name, kw in {"ph": dict(rcps=False), "ps": dict(rcps=True),
                     "ps_nonfused": dict(rcps=True, fused_add_norm=False),
                     "ph_mult": dict(rcps=False, bidirectional_strategy="ew_multiply", seed=3),
                     "ps_untied": dict(rcps=True, bidirectional_weight_tie=False, seed=4)}.items():
        out[name] = fam.write_tiny_release(root / name, **kw)
    return out


# --------------------------------------------------------------------------- naive reference

def ref_mamba(T, pre, proj_pre, h):
    """One Mamba-v1 mixer on one sequence h (L, d), step by step."""
    W_in, W_out = T[proj_pre + "in_proj.weight"], T[proj_pre + "out_proj.weight"]
    di = W_in.shape[0] // 2
    xz = h @ W_in.T
    x, z = xz[:, :di], xz[:, di:]
    w, b = T[pre + "conv1d.weight"][:, 0, :], T[pre + "conv1d.bias"]
    k, L = w.shape[1], x.shape[0]
    xc = torch.stack([b + sum(w[:, j] * x[t - (k - 1) + j] for j in range(k) if t - (k - 1) + j >= 0)
                      for t in range(L)])
    x = F.silu(xc)
    dbc = x @ T[pre + "x_proj.weight"].T
    r, n = T[pre + "dt_proj.weight"].shape[1], T[pre + "A_log"].shape[1]
    dt, B, C = dbc[:, :r], dbc[:, r:r + n], dbc[:, r + n:]
    delta = F.softplus(dt @ T[pre + "dt_proj.weight"].T + T[pre + "dt_proj.bias"])
    A = -torch.exp(T[pre + "A_log"])
    s, ys = torch.zeros(di, n, dtype=h.dtype), []
    for t in range(L):
        s = torch.exp(delta[t, :, None] * A) * s + delta[t, :, None] * B[t][None, :] * x[t][:, None]
        ys.append((s * C[t][None, :]).sum(-1) + T[pre + "D"] * x[t])
    return (torch.stack(ys) * F.silu(z)) @ W_out.T


def ref_bimamba(T, mix, h, strategy):
    fwd = ref_mamba(T, mix + "mamba_fwd.", mix + "mamba_fwd.", h)
    rev_proj = mix + ("mamba_rev." if mix + "mamba_rev.in_proj.weight" in T else "mamba_fwd.")
    rev = ref_mamba(T, mix + "mamba_rev.", rev_proj, h.flip(0)).flip(0)
    return fwd + rev if strategy == "add" else fwd * rev


def ref_rms(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rcx(t):  # RC of (L, C) hidden states
    return t.flip(0).flip(1)


def ref_forward(path, ids, fused=True):
    """Released Caduceus as described in checkpoints.md §6, per sequence, float64."""
    cfg = json.loads((path / "config.json").read_text())
    T = {k: v.double() for k, v in load_file(str(path / "model.safetensors")).items()}
    rcps, strategy, n_layer = cfg["rcps"], cfg["bidirectional_strategy"], cfg["n_layer"]
    sub, emb = (".submodule", ".embedding") if rcps else ("", "")
    nsub = ".submodule" if rcps and not cfg["fused_add_norm"] else ""
    E = T[P + "embeddings.word_embeddings" + emb + ".weight"]
    d = E.shape[1]
    outs = []
    for x in ids:
        h = E[x] if not rcps else torch.cat([E[x], rcx(E[COMP[x].flip(0)])], -1)
        res = None
        for i in range(n_layer + 1):
            last = i == n_layer
            w = T[P + (f"norm_f{nsub}.weight" if last else f"layers.{i}.norm{nsub}.weight")]
            res = h if res is None else h + res
            if not rcps:
                h = ref_rms(res, w)
            else:  # the "forward" call gets the second half in the fused ordering (not at norm_f)
                first, second = (res[:, d:], res[:, :d]) if fused and not last else (res[:, :d], res[:, d:])
                h = torch.cat([ref_rms(first, w), rcx(ref_rms(rcx(second), w))], -1)
                res = torch.cat([first, second], -1)
            if last:
                break
            mix = P + f"layers.{i}.mixer{sub}."
            if not rcps:
                h = ref_bimamba(T, mix, h, strategy)
            else:
                h = torch.cat([ref_bimamba(T, mix, h[:, :d], strategy),
                               rcx(ref_bimamba(T, mix, rcx(h[:, d:]), strategy))], -1)
        outs.append(h)
    return torch.stack(outs)


def ref_logits(hidden, score_w, rcps):
    d = score_w.shape[1]
    if not rcps:
        return hidden.mean(1) @ score_w.T
    stacked = [hidden[..., :d], hidden[..., d:].flip(1).flip(2)]  # per-channel heads, averaged
    return sum(s.mean(1) @ score_w.T for s in stacked) / 2


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("name,fused", [("ph", True), ("ph_mult", True), ("ps", True),
                                        ("ps", False), ("ps_nonfused", False), ("ps_untied", True)])
def test_matches_naive_reference(releases, name, fused):
    path = releases[name]
    model, report = load(path, fused_ordering=fused)
    assert report["initialised"] == ["score.weight"]
    ids = rand_ids(2, 9)
    ref = ref_forward(path, ids, fused=fused)
    with torch.no_grad():
        h32 = model.backbone(ids)
        logits32 = model(ids).logits
        model.double()
        h64 = model.backbone(ids)
        logits64 = model(ids).logits
    assert h64.shape == ref.shape
    torch.testing.assert_close(h64, ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(h32.double(), ref, atol=2e-5, rtol=1e-5)
    want = ref_logits(ref, model.score.weight.detach(), model.config.rcps)
    torch.testing.assert_close(logits64, want, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(logits32.double(), want, atol=2e-5, rtol=1e-5)


def test_ps_orderings_both_rc_equivariant_and_different(releases):
    ids = rand_ids(3, 11, seed=5)
    hidden, logits = {}, {}
    for fused in (True, False):
        model, _ = load(releases["ps"], fused_ordering=fused)
        assert model.backbone.output_dim == 16
        with torch.no_grad():
            h, h_rc = model.backbone(ids), model.backbone(rc_ids(ids))
            lo, lo_rc = model(ids).logits, model(rc_ids(ids)).logits
        torch.testing.assert_close(h_rc, h.flip(1).flip(2), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lo_rc, lo, atol=1e-5, rtol=1e-5)
        hidden[fused], logits[fused] = h, lo
    assert (hidden[True] - hidden[False]).abs().max() > 1e-2
    assert (logits[True] - logits[False]).abs().max() > 1e-4


def test_ps_fused_ordering_defaults_to_release_fused_add_norm(releases):
    assert load(releases["ps"])[0].config.fused_ordering is True
    assert load(releases["ps_nonfused"])[0].config.fused_ordering is False


def test_nonfused_ps_equals_own_caduceus(releases):
    """The non-fused ordering is our own RCPS Caduceus (g on x and on RC(x)) on the same weights."""
    from dnatok.models.caduceus import CaduceusConfig, CaduceusForSequenceClassification

    model, _ = load(releases["ps"], fused_ordering=False)
    own = CaduceusForSequenceClassification(CaduceusConfig(
        d_model=8, n_layer=2, d_state=4, expand=2, d_conv=4, dt_rank=1, vocab_size=16,
        complement_map=COMP.tolist(), rcps=True, norm_eps=1e-5, num_labels=3)).eval()
    T = read_state_dict(releases["ps"])
    sd = {"backbone.embedding.weight": T[P + "embeddings.word_embeddings.embedding.weight"],
          "backbone.norm_f.weight": T[P + "norm_f.weight"]}
    for i in range(2):
        mix, o = P + f"layers.{i}.mixer.submodule.", f"backbone.layers.{i}."
        sd[o + "norm.weight"] = T[P + f"layers.{i}.norm.weight"]
        sd[o + "mixer.in_proj.weight"] = T[mix + "mamba_fwd.in_proj.weight"]
        sd[o + "mixer.out_proj.weight"] = T[mix + "mamba_fwd.out_proj.weight"]
        for ours, theirs in (("core_fwd", "mamba_fwd"), ("core_rev", "mamba_rev")):
            src, dst = f"{mix}{theirs}.", f"{o}mixer.{ours}."
            sd[dst + "conv_weight"] = T[src + "conv1d.weight"][:, 0]
            sd[dst + "conv_bias"] = T[src + "conv1d.bias"]
            for k in ("x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D"):
                sd[dst + k] = T[src + k]
    own.load_state_dict(sd, strict=False)
    ids = rand_ids(2, 10, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(ids), own.backbone(ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["ph", "ps"])
def test_padded_rows_equal_unpadded(releases, name):
    model, _ = load(releases[name], pooling="mean")
    ids = rand_ids(2, 10, seed=7)
    mask = torch.ones_like(ids)
    ids[1, 6:], mask[1, 6:] = PAD, 0
    with torch.no_grad():
        h = model.backbone(ids, mask)
        alone = model.backbone(ids[1:, :6])
        torch.testing.assert_close(h[1:, :6], alone, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(ids, mask).logits[1:], model(ids[1:, :6]).logits,
                                   atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="right-padded"):
            model.backbone(ids.flip(1), mask.flip(1))


def test_config_validation():
    cfg = {"model_type": "caduceus", "d_model": 8, "n_layer": 1, "rcps": False}
    assert fam.matches(cfg) and not fam.matches({"model_type": "hyenadna"})
    with pytest.raises(UserError, match="rms_norm"):
        fam.config_from_release({**cfg, "rms_norm": False})
    with pytest.raises(UserError, match="bidirectional_strategy"):
        fam.config_from_release({**cfg, "bidirectional_strategy": "concat"})
    with pytest.raises(UserError, match="complement_map"):
        fam.config_from_release({**cfg, "rcps": True})
    with pytest.raises(UserError, match="complement_map"):
        fam.config_from_release({**cfg, "complement_map": {"7": 10}})  # not an involution
    with pytest.raises(UserError, match="Caduceus"):
        fam.config_from_release({"model_type": "gpt_neo"})
    c = fam.config_from_release({**cfg, "complement_map": {"7": 10, "10": 7}})
    assert c.padded_vocab_size == 16 and c.complement_map[7] == 10 and c.complement_map[15] == 15
    assert c.pooling == "mean_all" and c.dt_rank == 1 and c.d_inner == 16


def _rewrite(src, dst, edit):
    dst.mkdir()
    (dst / "config.json").write_text((src / "config.json").read_text())
    tensors = load_file(str(src / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    return dst


def test_strict_loading_errors(releases, tmp_path):
    src = releases["ps"]
    cfg = fam.config_from_release(read_release_config(src), num_labels=2)
    cases = {
        "missing": (lambda t: t.pop(P + "layers.1.mixer.submodule.mamba_rev.D"),
                    "backbone.layers.1.mixer.mamba_rev.D"),
        "unexpected": (lambda t: t.__setitem__(P + "extra.weight", torch.zeros(3)), P + "extra.weight"),
        "tied_copy": (lambda t: t.__setitem__(P + "layers.0.mixer.submodule.mamba_rev.in_proj.weight",
                                              t[P + "layers.0.mixer.submodule.mamba_fwd.in_proj.weight"].clone()),
                      "mamba_rev.in_proj.weight"),
        "shape": (lambda t: t.__setitem__(P + "norm_f.weight", torch.ones(9)), "norm_f.weight"),
    }
    for name, (edit, needle) in cases.items():
        path = _rewrite(src, tmp_path / name, edit)
        with pytest.raises(UserError, match=needle.replace(".", r"\.")):
            load_strict(fam.Classifier(cfg), read_state_dict(path), fam, str(path))
    report = load_strict(fam.Classifier(cfg), read_state_dict(src), fam, str(src))
    assert report["dropped"] == [P + "embeddings.word_embeddings.complement_map", "lm_head.complement_map"]


def test_round_trip_and_training_step(releases, tmp_path):
    model, _ = load(releases["ps"], conjoin=True, pooling="mean")
    ids = rand_ids(2, 8, seed=4)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    ids[0, 6:] = PAD
    model.save_pretrained(tmp_path / "saved")
    again = fam.Classifier.from_pretrained(tmp_path / "saved").eval()
    assert again.config.fused_ordering is True and again.config.complement_map == COMP.tolist()
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask).logits, model(ids, mask).logits, atol=0, rtol=0)
    model.train()
    out = model(ids, mask, labels=torch.tensor([0, 2]), rc_input_ids=rc_ids(ids, [6, 8]), rc_attention_mask=mask)
    out.loss.backward()
    for name in ("score.weight", "backbone.layers.0.mixer.mamba_fwd.A_log",
                 "backbone.layers.1.mixer.mamba_rev.dt_proj.bias", "backbone.embeddings.word_embeddings.weight"):
        g = model.get_parameter(name).grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name


@pytest.mark.parametrize("rcps", [False, True])
def test_layout_matches_model_and_release_sizes(rcps):
    """§6: 274 tensors and ~7.7M parameters for d_model 256 / 16 layers (482,560 per
    layer); our model's state dict is exactly the mapped layout (plus the new head)."""
    big = fam.release_layout(rcps, 16, 256, 16, 16, 4, 2, 16)
    assert len(big) == 274
    assert sum(torch.Size(s).numel() for s in big.values()) == 16 * 482_560 + 16 * 256 + 256
    small = fam.release_layout(rcps, 2, 32, 16, 4, 4, 2, 2)
    cfg = fam.Config(d_model=32, n_layer=2, rcps=rcps, complement_map=COMP.tolist(),
                     ssm_cfg={"d_state": 4}, num_labels=2)
    own = {k: tuple(v.shape) for k, v in fam.Classifier(cfg).state_dict().items()}
    mapped = {fam.map_key(k): tuple(s) for k, s in small.items()}
    assert mapped == {k: s for k, s in own.items() if not k.startswith("score.")}


def test_bf16_autocast_runs(releases):
    model, _ = load(releases["ps"])
    ids = rand_ids(2, 9)
    with torch.no_grad():
        want = model(ids).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(ids).logits
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), want, atol=0.05, rtol=0.05)
