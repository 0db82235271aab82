"""Frozen code embeddings (learned tokenizers, VQDNA's way): the code table is a buffer that
never trains, travels with save_pretrained, and must match the tokenizer it came from."""
import numpy as np
import pytest
import torch

from dnatok.errors import UserError
from dnatok.models import build_classifier, build_pretraining_model, load_model
from dnatok.models.heads import CodeEmbedding, code_vectors_of

VOCAB, CODE_DIM = 21, 8
ARCHS = {"mamba": {"d_model": 16, "n_layer": 1}, "caduceus": {"d_model": 16, "n_layer": 1},
         "bert": {"d_model": 16, "n_layer": 1, "n_head": 2}, "hyena": {"d_model": 16, "n_layer": 1}}


def _codes(seed=0):
    vec = np.random.default_rng(seed).normal(size=(VOCAB, CODE_DIM)).astype(np.float32)
    vec[:5] = 0  # special tokens have no code
    return vec


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_codes_stay_frozen_and_round_trip(arch, tmp_path):
    torch.manual_seed(0)
    codes = _codes()
    model = build_pretraining_model(arch, vocab_size=VOCAB, pad_token_id=0, code_vectors=codes, **ARCHS[arch])
    emb = model.backbone.embedding
    assert isinstance(emb, CodeEmbedding)
    assert all(p is not emb.codes for p in model.parameters())  # a buffer, not a parameter
    ids = torch.randint(0, VOCAB, (2, 24))
    before = emb.codes.clone()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(ids, labels=ids).loss.backward()
    proj_grad = emb.proj.weight.grad
    assert proj_grad is not None and proj_grad.abs().sum() > 0
    opt.step()
    assert torch.equal(emb.codes, before)
    # the effective table is what a tied head multiplies by: row i = the embedding of id i
    assert torch.allclose(emb.weight[ids], emb(ids), atol=1e-6)
    model.save_pretrained(tmp_path)
    loaded = code_vectors_of(load_model(tmp_path))  # hyena pads its rows to a multiple of 8
    assert torch.equal(loaded[:VOCAB], torch.from_numpy(codes)) and not loaded[VOCAB:].any()
    clf = build_classifier(arch, num_labels=2, vocab_size=VOCAB, pad_token_id=0, pretrained=tmp_path,
                           code_vectors=codes)
    assert torch.equal(code_vectors_of(clf)[:VOCAB], torch.from_numpy(codes))
    with pytest.raises(UserError, match="code vectors differ"):
        build_classifier(arch, num_labels=2, vocab_size=VOCAB, pad_token_id=0, pretrained=tmp_path,
                         code_vectors=_codes(seed=1))
    with pytest.raises(UserError, match="code_dim"):
        build_classifier(arch, num_labels=2, vocab_size=VOCAB, pad_token_id=0, pretrained=tmp_path)


def test_cnn_takes_codes_and_plain_models_have_none():
    codes = _codes()
    clf = build_classifier("cnn", num_labels=2, vocab_size=VOCAB, pad_token_id=0, max_len=120, code_vectors=codes)
    assert torch.equal(code_vectors_of(clf), torch.from_numpy(codes))
    assert clf(torch.randint(0, VOCAB, (3, 120))).logits.shape == (3, 2)
    plain = build_pretraining_model("mamba", vocab_size=VOCAB, pad_token_id=0, **ARCHS["mamba"])
    assert code_vectors_of(plain) is None and isinstance(plain.backbone.embedding, torch.nn.Embedding)


@pytest.mark.parametrize("embedding", ["frozen", "ids"])
def test_a_learned_vocabulary_pretrains_and_fine_tunes_both_ways(embedding, tmp_path):
    """Through the training code users run: pretraining reads the tokenizer's code vectors
    (frozen) or its ids only (a fresh embedding), fine-tuning keeps exactly that."""
    import numpy as np

    from dnatok.models import load_model
    from dnatok.tokenization import train_tokenizer
    from dnatok.train.finetune import finetune
    from dnatok.train.pretrain import pretrain
    from test_train_finetune import make_task
    from test_train_pretrain import TINY_MAMBA, _fasta, _settings

    train, valid = _fasta(tmp_path / "train.fa", 1), _fasta(tmp_path / "valid.fa", 2, n_records=1)
    rng = np.random.default_rng(0)
    corpus = ["".join(rng.choice(list("ACGT"), 400)) for _ in range(20)]
    spec = {"kind": "vq", "codebook_size": 8, "code_dim": 4, "width": 8, "depth": 1, "steps": 4,
            "batch_size": 8, "window": 32, "embedding": embedding}
    tok = train_tokenizer(spec, tmp_path / "vq", corpus)
    pretrain("mamba", tok.path, train, valid, tmp_path / "pre", _settings(steps=2, rc_aug=False), TINY_MAMBA)
    held = code_vectors_of(load_model(tmp_path / "pre"))
    if embedding == "frozen":
        assert torch.equal(held, torch.from_numpy(tok.code_vectors()))
    else:
        assert held is None and tok.code_vectors() is None
    task = make_task(tmp_path / "task", n_train=24, n_dev=8, n_test=8, length=24)
    m = finetune(task, "mamba", tok.path, tmp_path / "ft", seed=0, pretrained=tmp_path / "pre",
                 settings={"epochs": 1, "batch_size": 8, "progress": False})
    assert -1 <= m["test"]["mcc"] <= 1
