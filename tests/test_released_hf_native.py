"""GPT-Neo and DNABERT-6 releases loaded into transformers' own backbones: logits equal
transformers' SeqCls models on the same weights, strict loading, save/load round trip."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from dnatok.errors import UserError
from dnatok.released import dnabert, gpt_neo
from dnatok.released.base import load_strict, read_release_config, read_state_dict


def load(fam, path, **fields):
    cfg = fam.config_from_release(read_release_config(path), num_labels=3, **fields)
    model = fam.Classifier(cfg).eval()
    return model, load_strict(model, read_state_dict(path), fam, str(path))


@pytest.fixture(scope="module")
def neo(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt_neo")
    return {"new": gpt_neo.write_tiny_release(root / "new"),
            "legacy": gpt_neo.write_tiny_release(root / "legacy", legacy_bin=True)}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    root = tmp_path_factory.mktemp("dnabert")
    return {"pretraining": dnabert.write_tiny_release(root / "pt", head="pretraining"),
            "mlm": dnabert.write_tiny_release(root / "mlm", head="mlm")}


def padded_batch(low, high, eos_pad, lengths=(12, 7, 3), total=12, seed=0):
    """Right-padded ids (real tokens in [low, high)) and their mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), total), eos_pad)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(lengths):
        ids[r, :n] = torch.randint(low, high, (n,), generator=g)
        mask[r, :n] = 1
    return ids, mask


# --------------------------------------------------------------------------- GPT-Neo

def test_gpt_neo_matches_transformers(neo):
    from transformers import GPTNeoForSequenceClassification

    eos = 50256
    ours, report = load(gpt_neo, neo["new"])
    assert report["initialised"] == ["score.weight"] and report["dropped"] == []
    assert ours.config.pad_token_id == eos and gpt_neo.matches(read_release_config(neo["new"]))
    theirs = GPTNeoForSequenceClassification.from_pretrained(neo["new"], num_labels=3, pad_token_id=eos).eval()
    with torch.no_grad():
        theirs.score.weight.copy_(ours.score.weight)
        ids, mask = padded_batch(0, eos, eos, total=300, lengths=(300, 7, 260))
        got = ours(ids, mask).logits
        want = theirs(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        # no mask: the last position
        torch.testing.assert_close(ours(ids[:1]).logits, theirs(input_ids=ids[:1]).logits, atol=1e-5, rtol=1e-5)
    assert ours.backbone.output_dim == 16 and ours.backbone(ids, mask).shape == (3, 300, 16)


def test_gpt_neo_legacy_bin_drops_buffers_and_lm_head(neo):
    new, _ = load(gpt_neo, neo["new"])
    old, report = load(gpt_neo, neo["legacy"])
    assert "lm_head.weight" in report["dropped"]
    assert "transformer.h.1.attn.attention.masked_bias" in report["dropped"]
    assert "transformer.h.0.attn.attention.bias" in report["dropped"]
    for k, v in new.backbone.state_dict().items():
        torch.testing.assert_close(old.backbone.state_dict()[k], v, atol=0, rtol=0)


def _rewrite(src, dst, edit, weights="model.safetensors"):
    dst.mkdir()
    (dst / "config.json").write_text((src / "config.json").read_text())
    if weights.endswith(".safetensors"):
        tensors = load_file(str(src / weights))
        edit(tensors)
        save_file(tensors, str(dst / weights))
    else:
        tensors = torch.load(src / weights, weights_only=True)
        edit(tensors)
        torch.save(tensors, dst / weights)
    return dst


def test_gpt_neo_strict_errors(neo, tmp_path):
    cfg = gpt_neo.config_from_release(read_release_config(neo["new"]), num_labels=2)
    cases = {"missing": (lambda t: t.pop("transformer.h.0.ln_1.weight"), "backbone.h.0.ln_1.weight"),
             "unexpected": (lambda t: t.__setitem__("transformer.h.0.extra", torch.zeros(2)), "transformer.h.0.extra"),
             "shape": (lambda t: t.__setitem__("transformer.ln_f.bias", torch.zeros(5)), "transformer.ln_f.bias")}
    for name, (edit, needle) in cases.items():
        path = _rewrite(neo["new"], tmp_path / name, edit)
        with pytest.raises(UserError, match=needle.replace(".", r"\.")):
            load_strict(gpt_neo.Classifier(cfg), read_state_dict(path), gpt_neo, str(path))
    with pytest.raises(UserError, match="GPT-Neo"):
        gpt_neo.config_from_release({"model_type": "bert"})
    with pytest.raises(UserError, match="pooling"):
        gpt_neo.config_from_release(read_release_config(neo["new"]), pooling="max")


def test_gpt_neo_round_trip(neo, tmp_path):
    ours, _ = load(gpt_neo, neo["new"], pooling="mean_all", conjoin=True)
    ours.save_pretrained(tmp_path)
    again = gpt_neo.Classifier.from_pretrained(tmp_path).eval()
    assert again.config.conjoin is True and again.config.pooling == "mean_all"
    ids, mask = padded_batch(0, 50256, 50256)
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask).logits, ours(ids, mask).logits, atol=0, rtol=0)


# --------------------------------------------------------------------------- DNABERT

def test_dnabert_matches_transformers(bert):
    from transformers import BertForSequenceClassification

    rc = read_release_config(bert["pretraining"])
    assert dnabert.matches(rc) and rc["rnn"] == "lstm" and "auto_map" in rc
    assert not dnabert.matches({**rc, "alibi_starting_size": 512})
    assert not dnabert.matches({**rc, "vocab_size": 4096})
    ours, report = load(dnabert, bert["pretraining"])
    assert report["initialised"] == ["classifier.bias", "classifier.weight"]
    assert "cls.predictions.decoder.weight" in report["dropped"]
    theirs = BertForSequenceClassification.from_pretrained(bert["pretraining"], num_labels=3).eval()
    with torch.no_grad():
        theirs.classifier.load_state_dict(ours.classifier.state_dict())
        ids, mask = padded_batch(5, 4101, 0)
        ids[:, 0] = 2  # [CLS]
        got = ours(ids, mask).logits
        want = theirs(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_dnabert_without_pooler_initialises_it(bert):
    _, report = load(dnabert, bert["mlm"])
    assert report["initialised"] == ["backbone.pooler.dense.bias", "backbone.pooler.dense.weight",
                                     "classifier.bias", "classifier.weight"]


def test_dnabert_rejects_long_inputs(bert):
    ours, _ = load(dnabert, bert["pretraining"])
    with torch.no_grad():
        assert ours(torch.full((1, 512), 7)).logits.shape == (1, 3)
        with pytest.raises(UserError, match="513 tokens"):
            ours(torch.full((1, 513), 7))


def test_dnabert_strict_errors_and_round_trip(bert, tmp_path):
    src = bert["pretraining"]
    cfg = dnabert.config_from_release(read_release_config(src), num_labels=2)
    cases = {"missing": (lambda t: t.pop("bert.encoder.layer.1.output.dense.bias"),
                         "backbone.encoder.layer.1.output.dense.bias"),
             "unexpected": (lambda t: t.__setitem__("rnn.weight", torch.zeros(2)), "rnn.weight")}
    for name, (edit, needle) in cases.items():
        path = _rewrite(src, tmp_path / name, edit, weights="pytorch_model.bin")
        with pytest.raises(UserError, match=needle.replace(".", r"\.")):
            load_strict(dnabert.Classifier(cfg), read_state_dict(path), dnabert, str(path))
    old = _rewrite(src, tmp_path / "old", lambda t: t.__setitem__(
        "bert.embeddings.position_ids", torch.arange(512)[None]), weights="pytorch_model.bin")
    assert "bert.embeddings.position_ids" in load(dnabert, old)[1]["dropped"]
    ours, _ = load(dnabert, src, conjoin=True)
    ours.save_pretrained(tmp_path / "saved")
    again = dnabert.Classifier.from_pretrained(tmp_path / "saved").eval()
    ids, mask = padded_batch(5, 4101, 0, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask).logits, ours(ids, mask).logits, atol=0, rtol=0)
    rc_ids, _ = padded_batch(5, 4101, 0, seed=4)
    out = ours.train()(ids, mask, labels=torch.tensor([0, 1, 2]), rc_input_ids=rc_ids, rc_attention_mask=mask)
    out.loss.backward()
    assert ours.classifier.weight.grad.abs().sum() > 0
