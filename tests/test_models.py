"""Public interface of dnatok.models: build, forward/backward, save/load for every
architecture on tiny sizes, and the classifier-building rules."""
from __future__ import annotations

import json

import pytest
import torch

from dnatok.errors import UserError
from dnatok.models import (ARCHITECTURES, build_classifier, build_pretraining_model, load_model,
                           objective_of)

# toy vocabulary: 0 pad, 1 cls, 2 mask, 3 A, 4 C, 5 G, 6 T, 7 N
VOCAB, PAD = 8, 0
COMPLEMENT = [0, 1, 2, 6, 5, 4, 3, 7]

TINY = {
    "mamba": dict(d_model=16, n_layer=2, d_state=4),
    "caduceus": dict(d_model=16, n_layer=2, d_state=4),
    "bert": dict(d_model=16, n_layer=2, n_head=2, d_ff=32, dropout=0.0, attention_dropout=0.0),
    "hyena": dict(d_model=16, n_layer=2, filter_order=8, max_seq_len=64, embed_dropout=0.0),
}


def batch(seed=0, b=3, length=24, short=(0, 17)):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 7, (b, length), generator=g)
    mask = torch.ones_like(ids)
    row, n = short
    ids[row, n:] = PAD
    mask[row, n:] = 0
    return ids, mask


def reverse_complement(ids, mask):
    """RC of each row within its real length, right-padded again (what tokenizing the
    reverse-complemented raw sequence gives with a char tokenizer)."""
    out = torch.full_like(ids, PAD)
    for r in range(ids.shape[0]):
        n = int(mask[r].sum())
        out[r, :n] = torch.tensor([COMPLEMENT[int(t)] for t in reversed(ids[r, :n])])
    return out, mask.clone()


def test_objectives():
    assert ARCHITECTURES == ("mamba", "caduceus", "bert", "cnn", "hyena")
    assert [objective_of(a) for a in ARCHITECTURES] == ["clm", "mlm", "mlm", None, "clm"]
    with pytest.raises(UserError):
        objective_of("transformer")


@pytest.mark.parametrize("arch", ["mamba", "caduceus", "bert"])
def test_pretraining_forward_backward_save_load(arch, tmp_path):
    torch.manual_seed(0)
    model = build_pretraining_model(arch, VOCAB, PAD, complement_map=COMPLEMENT, **TINY[arch])
    ids, mask = batch()
    labels = ids.masked_fill(mask == 0, -100)
    if objective_of(arch) == "mlm":
        keep = torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.3
        labels = labels.masked_fill(~keep, -100)
    out = model(ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (3, 24, VOCAB)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    assert type(loaded) is type(model)
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids, mask).logits, loaded(ids, mask).logits)


def test_causal_lm_loss_is_shifted():
    """Mamba's loss = cross-entropy of logits[t] against labels[t+1] (HF convention)."""
    torch.manual_seed(0)
    model = build_pretraining_model("mamba", VOCAB, PAD, **TINY["mamba"])
    ids, _ = batch(short=(0, 24))
    out = model(ids, labels=ids)
    manual = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, manual, atol=1e-6)
    # causality: changing the last token leaves every earlier logit unchanged
    ids2 = ids.clone()
    ids2[:, -1] = 3 + (ids2[:, -1] - 2) % 4
    with torch.no_grad():
        a, b = model(ids).logits, model(ids2).logits
    assert torch.equal(a[:, :-1], b[:, :-1])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_classifier_forward_backward_roundtrip(arch, tmp_path):
    torch.manual_seed(0)
    hp = TINY.get(arch, {})
    clf = build_classifier(arch, 3, VOCAB, PAD, complement_map=COMPLEMENT, conjoin=True, max_len=64, **hp)
    ids, mask = batch()
    rc, rc_mask = reverse_complement(ids, mask)
    out = clf(ids, mask, labels=torch.tensor([0, 1, 2]), rc_input_ids=rc, rc_attention_mask=rc_mask)
    assert out.logits.shape == (3, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    clf.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    clf.eval()
    with torch.no_grad():
        assert torch.equal(clf(ids, mask).logits, loaded(ids, mask).logits)


@pytest.mark.parametrize("arch", ["mamba", "caduceus", "bert"])
def test_classifier_loads_pretrained_backbone(arch, tmp_path):
    torch.manual_seed(0)
    pre = build_pretraining_model(arch, VOCAB, PAD, **TINY[arch])
    pre.save_pretrained(tmp_path)
    clf = build_classifier(arch, 2, VOCAB, PAD, pretrained=tmp_path)
    for k, v in pre.backbone.state_dict().items():
        assert torch.equal(clf.backbone.state_dict()[k], v), k
    assert clf.config.d_model == TINY[arch]["d_model"]
    # a random classifier differs
    other = build_classifier(arch, 2, VOCAB, PAD, **TINY[arch])
    assert not torch.equal(other.backbone.embedding.weight, pre.backbone.embedding.weight)


def test_classifier_rejects_mismatches(tmp_path):
    pre = build_pretraining_model("mamba", VOCAB, PAD, **TINY["mamba"])
    pre.save_pretrained(tmp_path)
    with pytest.raises(UserError, match="vocab_size"):
        build_classifier("mamba", 2, VOCAB + 1, PAD, pretrained=tmp_path)
    with pytest.raises(UserError, match="d_model"):
        build_classifier("mamba", 2, VOCAB, PAD, pretrained=tmp_path, d_model=32)
    with pytest.raises(UserError, match="not caduceus|dnatok_mamba"):
        build_classifier("caduceus", 2, VOCAB, PAD, pretrained=tmp_path)
    with pytest.raises(UserError, match="config.json"):
        build_classifier("mamba", 2, VOCAB, PAD, pretrained=tmp_path / "nowhere")
    with pytest.raises(UserError, match="unknown hyperparameter"):
        build_pretraining_model("mamba", VOCAB, PAD, d_modle=8)
    with pytest.raises(UserError, match="never pretrained"):
        build_pretraining_model("cnn", VOCAB, PAD)
    with pytest.raises(UserError, match="max_len"):
        build_classifier("cnn", 2, VOCAB, PAD)
    with pytest.raises(UserError, match="complement_map"):
        build_pretraining_model("caduceus", VOCAB, PAD, rcps=True, **TINY["caduceus"])
    with pytest.raises(UserError, match="involution"):
        build_pretraining_model("caduceus", VOCAB, PAD, complement_map=[0, 1, 2, 4, 5, 6, 3, 7], rcps=True)
    with pytest.raises(UserError, match="pooling"):
        build_classifier("mamba", 2, VOCAB, PAD, pooling="max")
    with pytest.raises(UserError, match="num_labels"):
        build_classifier("mamba", 1, VOCAB, PAD)


def test_rc_ids_without_conjoin_is_an_error():
    clf = build_classifier("mamba", 2, VOCAB, PAD, **TINY["mamba"])
    ids, mask = batch()
    with pytest.raises(ValueError, match="conjoin"):
        clf(ids, mask, rc_input_ids=ids, rc_attention_mask=mask)


def test_cnn_pads_to_max_len_and_rejects_longer():
    torch.manual_seed(0)
    clf = build_classifier("cnn", 2, VOCAB, PAD, max_len=64).eval()
    ids, mask = batch(short=(0, 24))
    padded = torch.nn.functional.pad(ids, (0, 40), value=PAD)
    with torch.no_grad():
        assert torch.equal(clf(ids, mask).logits, clf(padded, torch.ones_like(padded)).logits)
    with pytest.raises(ValueError, match="max_len"):
        clf(torch.full((1, 65), 3), torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(UserError, match="too short"):
        build_classifier("cnn", 2, VOCAB, PAD, max_len=40)
    # the study's layout: embedding 100, convs 16/8/4 kernel 8, dense 512
    cfg = clf.config
    assert (cfg.embed_dim, cfg.channels, cfg.kernel_size, cfg.dense_dim) == (100, [16, 8, 4], 8, 512)


def test_saved_config_is_plain_json(tmp_path):
    model = build_pretraining_model("caduceus", VOCAB, PAD, complement_map=COMPLEMENT, rcps=True,
                                    **TINY["caduceus"])
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "dnatok_caduceus"
    assert cfg["complement_map"] == COMPLEMENT and cfg["rcps"] is True
