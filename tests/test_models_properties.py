"""Structural properties: reverse-complement equivariance / invariance, padding
invariance of pooled outputs, bidirectionality, tied weights across save/load."""
from __future__ import annotations

import pytest
import torch

from dnatok.models import build_classifier, build_pretraining_model, load_model

VOCAB, PAD = 8, 0
COMPLEMENT = [0, 1, 2, 6, 5, 4, 3, 7]  # 3 A <-> 6 T, 4 C <-> 5 G; specials/N fixed
TINY_SSM = dict(d_model=8, n_layer=2, d_state=4)
TINY = {
    "mamba": TINY_SSM,
    "caduceus": TINY_SSM,
    "bert": dict(d_model=8, n_layer=2, n_head=2, d_ff=16, dropout=0.0, attention_dropout=0.0),
}


def rand_ids(b, length, seed):
    return torch.randint(3, 8, (b, length), generator=torch.Generator().manual_seed(seed))


def reverse_complement(ids, lengths):
    """Per row: complement and reverse the first n tokens, keep pads at the end."""
    out = torch.full_like(ids, PAD)
    for r, n in enumerate(lengths):
        out[r, :n] = torch.tensor([COMPLEMENT[int(t)] for t in reversed(ids[r, :n])])
    return out


def padded(ids, lengths, total):
    """Right-pad each row to `total` after its first n tokens; returns ids, mask."""
    out = torch.full((ids.shape[0], total), PAD, dtype=ids.dtype)
    mask = torch.zeros_like(out)
    for r, n in enumerate(lengths):
        out[r, :n] = ids[r, :n]
        mask[r, :n] = 1
    return out, mask


@pytest.mark.parametrize("strategy", ["add", "ew_multiply"])
@pytest.mark.parametrize("tie", [True, False])
def test_caduceus_ps_lm_is_rc_equivariant(strategy, tie):
    torch.manual_seed(0)
    model = build_pretraining_model("caduceus", VOCAB, PAD, complement_map=COMPLEMENT, rcps=True,
                                    bidirectional_strategy=strategy, bidirectional_weight_tie=tie,
                                    **TINY_SSM).double().eval()
    ids = rand_ids(2, 19, seed=1)
    rc = reverse_complement(ids, [19, 19])
    with torch.no_grad():
        lo, lo_rc = model(ids).logits, model(rc).logits
    # logits(RC x)[t, v] == logits(x)[L-1-t, comp(v)]
    expected = lo.flip(1)[:, :, COMPLEMENT]
    torch.testing.assert_close(lo_rc, expected, rtol=1e-12, atol=1e-12)
    # ... and the property is not trivially true for plain Caduceus
    plain = build_pretraining_model("caduceus", VOCAB, PAD, **TINY_SSM).double().eval()
    with torch.no_grad():
        p, p_rc = plain(ids).logits, plain(rc).logits
    assert not torch.allclose(p_rc, p.flip(1)[:, :, COMPLEMENT], atol=1e-6)


def test_caduceus_ps_equivariance_with_padding():
    torch.manual_seed(0)
    model = build_pretraining_model("caduceus", VOCAB, PAD, complement_map=COMPLEMENT, rcps=True,
                                    **TINY_SSM).double().eval()
    lengths = [13, 20, 7]
    ids, mask = padded(rand_ids(3, 20, seed=2), lengths, 20)
    rc = reverse_complement(ids, lengths)
    with torch.no_grad():
        lo, lo_rc = model(ids, mask).logits, model(rc, mask).logits
    for r, n in enumerate(lengths):
        torch.testing.assert_close(lo_rc[r, :n], lo[r, :n].flip(0)[:, COMPLEMENT], rtol=1e-12, atol=1e-12)


def test_caduceus_ps_classifier_is_rc_invariant():
    torch.manual_seed(0)
    clf = build_classifier("caduceus", 3, VOCAB, PAD, complement_map=COMPLEMENT, rcps=True,
                           **TINY_SSM).double().eval()
    lengths = [16, 11]
    ids, mask = padded(rand_ids(2, 16, seed=3), lengths, 16)
    rc = reverse_complement(ids, lengths)
    with torch.no_grad():
        torch.testing.assert_close(clf(rc, mask).logits, clf(ids, mask).logits, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("arch", ["mamba", "caduceus", "bert", "cnn"])
def test_conjoined_classifier_is_rc_invariant(arch):
    """With conjoin, predicting x (rc = RC x) and RC x (rc = x) gives the same logits."""
    torch.manual_seed(0)
    clf = build_classifier(arch, 2, VOCAB, PAD, conjoin=True, max_len=64, **TINY.get(arch, {})).double().eval()
    lengths = [18, 12]
    ids, mask = padded(rand_ids(2, 18, seed=4), lengths, 18)
    rc = reverse_complement(ids, lengths)
    with torch.no_grad():
        a = clf(ids, mask, rc_input_ids=rc, rc_attention_mask=mask).logits
        b = clf(rc, mask, rc_input_ids=ids, rc_attention_mask=mask).logits
        single = clf(ids, mask).logits
        single_rc = clf(rc, mask).logits
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a, (single + single_rc) / 2, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(single, single_rc, atol=1e-6)  # the unconjoined model is not invariant


def test_conjoin_with_different_token_counts():
    """BPE-style: the RC can tokenize to a different length; it is run as its own pass."""
    torch.manual_seed(0)
    clf = build_classifier("mamba", 2, VOCAB, PAD, conjoin=True, **TINY_SSM).double().eval()
    ids = rand_ids(2, 10, seed=5)
    rc = rand_ids(2, 12, seed=6)
    ones = torch.ones_like
    with torch.no_grad():
        both = clf(ids, ones(ids), rc_input_ids=rc, rc_attention_mask=ones(rc)).logits
        expected = (clf(ids, ones(ids)).logits + clf(rc, ones(rc)).logits) / 2
    torch.testing.assert_close(both, expected)


@pytest.mark.parametrize("arch,extra", [("mamba", {}), ("caduceus", {}),
                                        ("caduceus", dict(rcps=True, complement_map=COMPLEMENT)),
                                        ("caduceus", dict(bidirectional_strategy="ew_multiply",
                                                          bidirectional_weight_tie=False)),
                                        ("bert", {})])
def test_padding_does_not_change_mean_pooled_outputs(arch, extra):
    torch.manual_seed(0)
    clf = build_classifier(arch, 3, VOCAB, PAD, **TINY[arch], **extra).double().eval()
    lengths = [14, 9, 14]
    ids, mask = padded(rand_ids(3, 14, seed=7), lengths, 14)
    more, more_mask = padded(ids, lengths, 25)
    with torch.no_grad():
        a = clf(ids, mask).logits
        b = clf(more, more_mask).logits
        # each row alone, unpadded
        single = torch.cat([clf(ids[r:r + 1, :n], mask[r:r + 1, :n]).logits for r, n in enumerate(lengths)])
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a, single, rtol=1e-12, atol=1e-12)
    # the study's "mean_all" quirk averages over pads, so it does depend on padding
    quirk = build_classifier(arch, 3, VOCAB, PAD, pooling="mean_all", **TINY[arch], **extra).double().eval()
    quirk.load_state_dict(clf.state_dict())
    with torch.no_grad():
        assert not torch.allclose(quirk(ids, mask).logits, quirk(more, more_mask).logits, atol=1e-6)


def test_left_padding_is_rejected():
    clf = build_classifier("caduceus", 2, VOCAB, PAD, **TINY_SSM)
    ids = rand_ids(1, 6, seed=8)
    with pytest.raises(ValueError, match="right-padded"):
        clf(ids, torch.tensor([[0, 0, 1, 1, 1, 1]]))


def test_caduceus_is_bidirectional_and_mamba_causal():
    torch.manual_seed(0)
    ids = rand_ids(1, 12, seed=9)
    later = ids.clone()
    later[0, 8] = 3 + (later[0, 8] - 2) % 5
    cad = build_pretraining_model("caduceus", VOCAB, PAD, **TINY_SSM).eval()
    mam = build_pretraining_model("mamba", VOCAB, PAD, **TINY_SSM).eval()
    with torch.no_grad():
        assert not torch.allclose(cad(ids).logits[0, :8], cad(later).logits[0, :8])
        assert torch.equal(mam(ids).logits[0, :8], mam(later).logits[0, :8])


def test_bert_alibi_extrapolates_to_longer_inputs():
    """No position table: a model runs on lengths never seen, and shifting a motif keeps
    its local representation close (relative, not absolute, positions)."""
    torch.manual_seed(0)
    model = build_pretraining_model("bert", VOCAB, PAD, **TINY["bert"]).eval()
    with torch.no_grad():
        out = model(rand_ids(1, 700, seed=10)).logits
    assert out.shape == (1, 700, VOCAB) and torch.isfinite(out).all()


@pytest.mark.parametrize("arch,extra", [("mamba", {}), ("caduceus", {}),
                                        ("caduceus", dict(rcps=True, complement_map=COMPLEMENT)),
                                        ("caduceus", dict(bidirectional_weight_tie=False)), ("bert", {})])
def test_tied_weights_survive_save_load(arch, extra, tmp_path):
    torch.manual_seed(0)
    model = build_pretraining_model(arch, VOCAB, PAD, **TINY[arch], **extra)
    # train a step so the tied tensors differ from any initialisation
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ids = rand_ids(2, 10, seed=11)
    model(ids, labels=ids).loss.backward()
    opt.step()
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    for k in sd:
        assert torch.equal(sd[k], sd2[k]), k
    # the LM head has no weight of its own: it is the embedding, before and after loading
    assert not any("lm_head.weight" in k or "decoder.weight" in k for k in sd2)
    loaded.eval()
    with torch.no_grad():
        before = loaded(ids).logits
        loaded.backbone.embedding.weight[5] += 1.0  # changes both the input and the output side
        after = loaded(ids).logits
    assert not torch.allclose(before[..., 5], after[..., 5])
    if arch == "caduceus":
        mixer = loaded.backbone.layers[0].mixer
        assert hasattr(mixer, "in_proj_rev") == (not loaded.config.bidirectional_weight_tie)
        n_proj = sum(1 for k in sd2 if k.startswith("backbone.layers.0.mixer.in_proj"))
        assert n_proj == (1 if loaded.config.bidirectional_weight_tie else 2)


def test_parameter_counts_at_study_size():
    """d_model 256, 4 layers (the study's size); counts derived by hand per layer:
    in_proj 256*1024, conv 512*4+512, x_proj 512*(16+32), dt_proj 16*512+512, A 512*16,
    D 512, out_proj 512*256, norm 256 = 438,016."""
    per_mamba = 256 * 1024 + 512 * 5 + 512 * 48 + 16 * 512 + 512 + 512 * 16 + 512 + 512 * 256 + 256
    assert per_mamba == 438_016
    core = 512 * 5 + 512 * 48 + 16 * 512 + 512 + 512 * 16 + 512  # one scan direction
    vocab = 12
    mamba = build_pretraining_model("mamba", vocab, PAD, d_model=256, n_layer=4)
    assert mamba.num_parameters() == 4 * per_mamba + vocab * 256 + 256
    assert round(mamba.num_parameters() / 1e6, 1) == 1.8  # the paper's Mamba-char ~1.8M
    cad = build_pretraining_model("caduceus", vocab, PAD, d_model=256, n_layer=4)
    assert cad.num_parameters() == 4 * (per_mamba + core) + vocab * 256 + 256
    ps = build_pretraining_model("caduceus", vocab, PAD, d_model=256, n_layer=4, rcps=True,
                                 complement_map=list(range(vocab)))
    assert ps.num_parameters() == cad.num_parameters()  # RC parameter sharing: no extra weights
