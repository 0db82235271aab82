"""HyenaDNA: causality, padding, the FFT long convolution, strict loading of the released
-hf layout (checked against a naive forward written here from the raw tensors),
save/load round trips and a short pretraining run on real chr2 sequence."""
from __future__ import annotations

import gzip
import math

import pytest
import torch

from dnatok.architectures import hparam_problems
from dnatok.errors import UserError
from dnatok.models import build_classifier, build_pretraining_model, load_model
from dnatok.models.hyena import direct_causal_conv, fft_causal_conv
from dnatok.released import hyena as family
from dnatok.released.base import load_strict, read_release_config, read_state_dict

VOCAB, PAD = 8, 0
TINY = dict(d_model=16, n_layer=2, filter_order=8, max_seq_len=64, embed_dropout=0.0)
P = "hyena.backbone."


def rand_ids(b, length, seed):
    return torch.randint(3, VOCAB, (b, length), generator=torch.Generator().manual_seed(seed))


def padded(ids, lengths, total):
    out = torch.full((ids.shape[0], total), PAD, dtype=ids.dtype)
    mask = torch.zeros_like(out)
    for r, n in enumerate(lengths):
        out[r, :n], mask[r, :n] = ids[r, :n], 1
    return out, mask


def perturbed(model):
    """Every parameter and buffer moved off its initial value (so a loader that re-derives
    or re-initialises a tensor instead of loading it is caught)."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.add_(0.1 * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return model


# --------------------------------------------------------------------------- operator

@pytest.mark.parametrize("length", [1, 2, 7, 16, 33])
def test_fft_conv_equals_direct_conv(length):
    g = torch.Generator().manual_seed(length)
    u = torch.randn(2, 3, length, generator=g, dtype=torch.float64)
    k = torch.randn(3, length, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fft_causal_conv(u, k), direct_causal_conv(u, k), rtol=1e-12, atol=1e-12)
    # float32 input is computed (and returned) in float32
    assert fft_causal_conv(u.float(), k.float()).dtype == torch.float32


def test_causal():
    torch.manual_seed(0)
    model = build_pretraining_model("hyena", VOCAB, PAD, **TINY).double().eval()
    ids = rand_ids(2, 40, seed=1)
    t = 22
    other = ids.clone()
    other[:, t + 1:] = rand_ids(2, 40 - t - 1, seed=2)
    with torch.no_grad():
        a, b = model(ids).logits, model(other).logits
    torch.testing.assert_close(a[:, :t + 1], b[:, :t + 1], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:], atol=1e-6)


def test_right_padding_changes_nothing_real():
    """Causal: real positions never see right padding, so their outputs, and the mean over
    them, are those of the unpadded rows (the "mean_all" quirk does see the pads)."""
    torch.manual_seed(0)
    clf = build_classifier("hyena", 3, VOCAB, PAD, **TINY).double().eval()
    lengths = [14, 9, 14]
    ids, mask = padded(rand_ids(3, 14, seed=7), lengths, 14)
    more, more_mask = padded(ids, lengths, 25)
    with torch.no_grad():
        h, h_more = clf.backbone(ids, mask), clf.backbone(more, more_mask)
        for r, n in enumerate(lengths):
            alone = clf.backbone(ids[r:r + 1, :n])
            torch.testing.assert_close(h[r, :n], alone[0], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(h_more[r, :n], alone[0], rtol=1e-12, atol=1e-12)
        a, b = clf(ids, mask).logits, clf(more, more_mask).logits
        single = torch.cat([clf(ids[r:r + 1, :n]).logits for r, n in enumerate(lengths)])
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a, single, rtol=1e-12, atol=1e-12)
    quirk = build_classifier("hyena", 3, VOCAB, PAD, pooling="mean_all", **TINY).double().eval()
    quirk.load_state_dict(clf.state_dict())
    with torch.no_grad():
        assert not torch.allclose(quirk(ids, mask).logits, quirk(more, more_mask).logits, atol=1e-6)
    with pytest.raises(ValueError, match="right-padded"):
        clf(ids, mask.flip(1))


def test_config_checks():
    with pytest.raises(UserError, match="emb_dim"):
        build_pretraining_model("hyena", VOCAB, PAD, emb_dim=4)
    with pytest.raises(UserError, match="hyena_order"):
        build_pretraining_model("hyena", VOCAB, PAD, hyena_order=3)
    assert hparam_problems("hyena", {"emb_dim": 4, "hyena_order": 3, "d_inner": 0}) == [
        "d_inner must be a positive integer or null (4 x d_model), got 0",
        "emb_dim must be odd and >= 3, got 4", "hyena_order: only 2 is implemented, got 3"]
    assert hparam_problems("hyena", {"d_inner": None, "max_seq_len": 4098}) == []
    model = build_pretraining_model("hyena", VOCAB, PAD, **TINY)
    assert model.backbone.embedding.weight.shape == (8, 16)     # vocab rounded up to 8 rows
    assert model.lm_head.weight.shape == (VOCAB, 16)
    with pytest.raises(UserError, match="max_seq_len"):
        model(rand_ids(1, 65, seed=0))


# --------------------------------------------------------------------------- save / load

def test_save_load_roundtrip_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = perturbed(build_pretraining_model("hyena", VOCAB, PAD, **TINY)).eval()
    model.save_pretrained(tmp_path / "pre")
    loaded = load_model(tmp_path / "pre")
    assert type(loaded) is type(model)
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    f = loaded.backbone.layers[1].mixer.filter_fn.implicit_filter
    assert f[1].freq is f[3].freq is f[5].freq   # still one shared Sin module
    ids = rand_ids(2, 30, seed=3)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    # the classifier takes the whole backbone, strictly
    clf = build_classifier("hyena", 2, VOCAB, PAD, pretrained=tmp_path / "pre")
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(clf.backbone.state_dict()[k], v), k
    assert clf.config.max_seq_len == TINY["max_seq_len"]


def test_training_step_updates_shared_freq_once():
    torch.manual_seed(0)
    model = build_pretraining_model("hyena", VOCAB, PAD, **TINY)
    ids = rand_ids(3, 24, seed=4)
    out = model(ids, labels=ids)
    out.loss.backward()
    params = list(model.parameters())
    assert sum(p.numel() for p in params) == model.num_parameters()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    assert model.backbone.layers[0].mixer.filter_fn.implicit_filter[3].freq.grad.abs().sum() > 0


# --------------------------------------------------------------------------- the release

def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def naive_filter(g, f, length):
    """k (L, d) from the raw filter tensors under prefix f."""
    a = g(f + "pos_emb.z")[0, :length]
    freq = g(f + "implicit_filter.1.freq")
    j = 0
    while g(f + f"implicit_filter.{j + 2}.weight", None) is not None:
        lin = f + f"implicit_filter.{j}."
        a = torch.sin(freq * (a @ g(lin + "weight").T + g(lin + "bias")))
        j += 2
    a = a @ g(f + f"implicit_filter.{j}.weight").T
    t = g(f + "pos_emb.t")[0, :length]
    return a * (torch.exp(-t * g(f + "modulation.deltas")[0].abs()) + 0.05)


def naive_mixer(g, p, x):
    """One Hyena operator on x (B, L, d), with explicit loops for both convolutions."""
    _, length, d = x.shape
    u = x @ g(p + "in_proj.weight").T + g(p + "in_proj.bias")            # (B, L, 3d)
    w, ks = g(p + "short_filter.weight")[:, 0], g(p + "short_filter.weight").shape[-1]
    conv = g(p + "short_filter.bias").expand_as(u).clone()
    for t in range(length):
        for j in range(ks):                       # tap j reads position t - (ks - 1) + j
            s = t - (ks - 1) + j
            if s >= 0:
                conv[:, t] += w[:, j] * u[:, s]
    x0, x1, v = conv[..., :d], conv[..., d:2 * d], conv[..., 2 * d:]
    v = v * x1
    k = naive_filter(g, p + "filter_fn.", length)                         # (L, d)
    y = torch.zeros_like(v)
    for t in range(length):
        for s in range(t + 1):
            y[:, t] += k[s] * v[:, t - s]
    y = y + v * g(p + "filter_fn.bias")
    return (y * x0) @ g(p + "out_proj.weight").T + g(p + "out_proj.bias")


def naive_hyena(sd, ids, n_layer):
    def g(name, default=...):
        t = sd.get(P + name)
        if t is None and default is not ...:
            return default
        return t.double()

    h = g("embeddings.word_embeddings.weight")[ids]
    for i in range(n_layer):
        p = f"layers.{i}."
        h = h + naive_mixer(g, p + "mixer.", layer_norm(h, g(p + "norm1.weight"), g(p + "norm1.bias")))
        x = layer_norm(h, g(p + "norm2.weight"), g(p + "norm2.bias"))
        x = gelu_tanh(x @ g(p + "mlp.fc1.weight").T + g(p + "mlp.fc1.bias"))
        h = h + x @ g(p + "mlp.fc2.weight").T + g(p + "mlp.fc2.bias")
    return layer_norm(h, g("ln_f.weight"), g("ln_f.bias"))


def load_release(path, **fields):
    cfg = read_release_config(path)
    assert family.matches(cfg)
    model = family.Classifier(family.config_from_release(cfg, num_labels=2, **fields))
    return model, load_strict(model, read_state_dict(path), family, str(path))


@pytest.mark.parametrize("freq_keys,head", [("one", "lm_head"), ("all", "score")])
def test_release_loads_strictly_and_matches_naive_forward(tmp_path, freq_keys, head):
    family.write_tiny_release(tmp_path, seed=1, freq_keys=freq_keys, head=head)
    model, report = load_release(tmp_path)
    assert report["dropped"] == [f"{head}.weight"]
    assert report["initialised"] == ["classifier.bias", "classifier.weight"]
    tied = [f"backbone.layers.{i}.mixer.filter_fn.implicit_filter.{j}.freq" for i in (0, 1) for j in (3, 5)]
    assert report["tied"] == (tied if freq_keys == "one" else [])
    assert model.config.max_seq_len == 66 and model.config.pad_token_id == 4
    sd = read_state_dict(tmp_path)
    ids = torch.randint(7, 12, (2, 20), generator=torch.Generator().manual_seed(0))
    model = model.double().eval()
    with torch.no_grad():
        ours = model.backbone(ids)
    torch.testing.assert_close(ours, naive_hyena(sd, ids, 2), rtol=1e-10, atol=1e-10)


def test_release_strictness(tmp_path):
    family.write_tiny_release(tmp_path, seed=2)
    model = family.Classifier(family.config_from_release(read_release_config(tmp_path), num_labels=2))
    sd = read_state_dict(tmp_path)
    z = P + "layers.1.mixer.filter_fn.pos_emb.z"
    missing = r"missing from the release: backbone\.layers\.1\.mixer\.filter_fn\.pos_emb\.z"
    with pytest.raises(UserError, match=missing):
        load_strict(model, {k: v for k, v in sd.items() if k != z}, family, "x")
    freq = P + "layers.0.mixer.filter_fn.implicit_filter.1.freq"
    with pytest.raises(UserError, match=r"implicit_filter\.1\.freq"):
        load_strict(model, {k: v for k, v in sd.items() if k != freq}, family, "x")
    extra = P + "layers.0.mixer.extra.weight"
    with pytest.raises(UserError, match="no place for: " + extra.replace(".", r"\.")):
        load_strict(model, {**sd, extra: torch.zeros(3)}, family, "x")
    with pytest.raises(UserError, match="shape mismatch"):
        load_strict(model, {**sd, z: torch.zeros(1, 65, 5)}, family, "x")
    differ = freq.replace(".1.freq", ".3.freq")
    with pytest.raises(UserError, match="does not share"):
        load_strict(model, {**sd, differ: sd[freq] + 1}, family, "x")


def test_release_config_refusals(tmp_path):
    family.write_tiny_release(tmp_path)
    cfg = read_release_config(tmp_path)
    for key, value in (("hyena_order", 3), ("train_freq", False), ("use_bias", False)):
        with pytest.raises(UserError, match=key):
            family.config_from_release({**cfg, key: value}, num_labels=2)
    with pytest.raises(UserError, match="lacks d_model"):
        family.config_from_release({k: v for k, v in cfg.items() if k != "d_model"}, num_labels=2)
    with pytest.raises(UserError, match="emb_dim"):
        family.config_from_release({**cfg, "emb_dim": 4}, num_labels=2)
    assert not family.matches({"model_type": "bert"})


def test_loaded_release_saves_and_reloads(tmp_path):
    family.write_tiny_release(tmp_path / "rel", seed=3)
    model, _ = load_release(tmp_path / "rel", pooling="mean")
    model.save_pretrained(tmp_path / "ft")
    again = load_model(tmp_path / "ft")
    sd, sd2 = model.state_dict(), again.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)


# --------------------------------------------------------------------------- real sequence

def chr2_windows(path, n, length, seed):
    with gzip.open(path, "rt") as fh:
        seq = "".join(line.strip() for line in fh if not line.startswith(">")).upper()
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < n:
        start = int(torch.randint(0, len(seq) - length, (1,), generator=g))
        window = seq[start:start + length]
        if "N" not in window:
            out.append(window)
    return out


def test_pretraining_loss_falls_on_chr2(shared_dir, tmp_path):
    from dnatok.tokenization import train_tokenizer

    fasta = shared_dir / "data" / "genome" / "hg38_chr2_1-2333275.fa.gz"
    if not fasta.is_file():
        pytest.skip(f"{fasta} is absent")
    tok = train_tokenizer({"kind": "char"}, tmp_path / "tok")
    windows = chr2_windows(fasta, 80 * 8, 126, seed=0)
    torch.manual_seed(0)
    model = build_pretraining_model("hyena", tok.vocab_size, tok.pad_id, d_model=32, n_layer=2,
                                    filter_order=16, max_seq_len=128)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(80):
        ids, mask = tok.encode_batch(windows[step * 8:(step + 1) * 8], 128)
        ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
        loss = model(ids, mask, labels=ids.masked_fill(mask == 0, -100)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    print(f"loss {start:.3f} -> {end:.3f}")
    assert end < start - 0.5, (start, end)
    assert end < 1.5    # start: ~ln(10), a guess over the whole vocabulary; 4 bases: ~1.39
