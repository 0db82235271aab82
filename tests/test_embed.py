"""`dnatok embed`: per-token hidden states with each token's bases, for released checkpoints
(their own tokenizers) and models trained here; the owned spans tile every sequence
exactly once, batching does not change the numbers, and bad input is an error."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dnatok import released
from dnatok.embed import embed
from dnatok.errors import DataError, UserError
from dnatok.released.tokenizers import write_release_tokenizer

SEQS = ["ACGTACGTTAGCCGATNACGT", "GGGCCCAAATTT", "ACGTAC", "TTGACCATGCATGCAAACGTAGCTAGCTGATCGATCGTAGC"]


def _csv(path, seqs=SEQS):
    path.write_text("id,sequence\n" + "".join(f"s{i},{s}\n" for i, s in enumerate(seqs)))
    return path


def _checkpoint(arch, folder):
    fam = released.family(arch)
    fam.write_tiny_release(folder)
    write_release_tokenizer(fam.TOKENIZER, folder)
    return folder


def _check_layout(out, seqs):
    z = np.load(out)
    meta = json.loads(str(z["meta"]))
    off = z["offsets"]
    assert off[0] == 0 and off[-1] == len(z["token_ids"]) == len(z["hidden"]) == meta["tokens"]
    assert z["hidden"].shape[1] == meta["dim"] and z["hidden"].dtype == np.float32
    for i, seq in enumerate(seqs):
        s, e = z["own_start"][off[i]:off[i + 1]], z["own_end"][off[i]:off[i + 1]]
        covered = np.zeros(len(seq), dtype=int)
        for a, b in zip(s, e):
            covered[a:b] += 1
        assert (covered == 1).all(), f"sequence {i}: bases covered {covered}"
        ws, we = z["start"][off[i]:off[i + 1]], z["end"][off[i]:off[i + 1]]
        assert (ws <= s).all() and (e <= np.maximum(we, s)).all()
    return z, meta


@pytest.mark.parametrize("arch", ["dnabert2", "ntv2", "dnabert", "gpt_neo", "hyena", "caduceus_hub"])
def test_released_models_embed_with_spans_covering_each_sequence_once(arch, tmp_path):
    ckpt = _checkpoint(arch, tmp_path / "ckpt")
    seqs = SEQS if arch != "dnabert" else [s for s in SEQS if len(s) >= 6]
    embed(ckpt, _csv(tmp_path / "in.csv", seqs), tmp_path / "e.npz", batch_size=3)
    z, meta = _check_layout(tmp_path / "e.npz", seqs)
    assert meta["source"] == "released" and meta["family"] == arch and meta["special_tokens"] is True
    # batching and padding do not change a sequence's states: one sequence alone equals its rows
    embed(ckpt, _csv(tmp_path / "one.csv", seqs[:1]), tmp_path / "one.npz")
    one = np.load(tmp_path / "one.npz")
    np.testing.assert_allclose(one["hidden"], z["hidden"][:z["offsets"][1]], atol=1e-5)
    np.testing.assert_array_equal(one["token_ids"], z["token_ids"][:z["offsets"][1]])


def test_overlapping_kmers_own_one_base_each_but_the_last(tmp_path):
    ckpt = _checkpoint("dnabert", tmp_path / "ckpt")
    embed(ckpt, _csv(tmp_path / "in.csv", ["ACGTACGTAC"]), tmp_path / "e.npz")
    z = np.load(tmp_path / "e.npz")
    # [CLS] + 5 overlapping 6-mers + [SEP]; windows [i, i+6), owned [i, i+1) and [4, 10)
    assert list(z["end"] - z["start"]) == [0, 6, 6, 6, 6, 6, 0]
    assert list(z["own_end"] - z["own_start"]) == [0, 1, 1, 1, 1, 6, 0]


def test_a_model_trained_here_embeds_with_its_tokenizer(tmp_path):
    from dnatok.models import build_pretraining_model
    from dnatok.tokenization import train_tokenizer

    tok = train_tokenizer({"kind": "kmer", "k": 3, "stride": 3}, tmp_path / "tok")
    torch.manual_seed(0)
    model = build_pretraining_model("mamba", tok.vocab_size, tok.pad_id, d_model=16, n_layer=1, d_state=4)
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "e.npz"
    proc = subprocess.run([sys.executable, "-m", "dnatok", "embed", "--model", str(tmp_path / "model"),
                           "--tokenizer", str(tmp_path / "tok"), "--input", str(_csv(tmp_path / "in.csv")),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    z, meta = _check_layout(out, SEQS)
    assert meta["source"] == "dnatok" and meta["special_tokens"] is False
    with torch.no_grad():
        ids = torch.from_numpy(z["token_ids"][:z["offsets"][1]])[None]
        ref = model.backbone(ids, torch.ones_like(ids)).numpy()[0]
    np.testing.assert_allclose(z["hidden"][:z["offsets"][1]], ref, atol=1e-5)


def test_embed_errors_name_the_problem(tmp_path):
    ckpt = _checkpoint("dnabert", tmp_path / "ckpt")
    with pytest.raises(UserError, match="sequence 's0'"):        # shorter than one 6-mer: nothing covers it
        embed(ckpt, _csv(tmp_path / "short.csv", ["ACGT"]), tmp_path / "x.npz")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,sequence\na,ACGTACGT\nb,\n")
    with pytest.raises(DataError, match=r"bad.csv:3"):
        embed(ckpt, bad, tmp_path / "x.npz")
    with pytest.raises(UserError, match="--tokenizer"):
        from dnatok.models import build_pretraining_model

        build_pretraining_model("mamba", 12, 0, d_model=8, n_layer=1, d_state=4).save_pretrained(tmp_path / "m")
        embed(tmp_path / "m", _csv(tmp_path / "in.csv"), tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
