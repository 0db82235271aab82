"""The released checkpoints' tokenizers (dnatok.released.tokenizers) against independent
references built from the same files (tokenizers / transformers classes, a naive NT rule),
hand-computed ids from checkpoints.md §7, and DnaTokenizer.spans."""
from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest

from dnatok.data.genome import reverse_complement
from dnatok.errors import UserError
from dnatok.released.tokenizers import (KINDS, ReleasedTokenizer, load_release_tokenizer, load_saved,
                                        write_release_tokenizer)

UNLIMITED = 2**31 - 1
RNG = np.random.default_rng(7)


def _dna(n: int) -> str:
    return "".join(RNG.choice(list("ACGT"), size=n))


BASE13 = _dna(13)
HARD = ([_dna(n) for n in range(1, 14)]
        + [BASE13[:i] + "N" + BASE13[i + 1:] for i in range(7)]
        + ["", "N", "NNNNNNN", "ACGTNNACGTACGTAC", "AAAAAATTTTTTN", "GATTACAGATTACA"])
SEQS = HARD + [_dna(60), _dna(97) + "NN" + _dna(40)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("releases")
    return {k: write_release_tokenizer(k, root / k) for k in KINDS}


@pytest.fixture(scope="module")
def toks(files):
    return {k: load_release_tokenizer(k, files[k]) for k in KINDS}


def _rows(tok, seqs, **kw):
    ids, mask = tok.encode_batch(seqs, UNLIMITED, **kw)
    return [r[m.astype(bool)].tolist() for r, m in zip(ids, mask)]


# ----------------------------------------------------------------------------- references


def _naive_nt(seq: str) -> list[int]:
    """The NT-v2 rule in plain Python: 6-mers from the left of each ACGT run, else singles
    (ATCG order), a run of other characters one <unk>; <cls> first."""
    kmer = {"".join(p): 6 + i for i, p in enumerate(itertools.product("ATCG", repeat=6))}
    single = {c: 4102 + i for i, c in enumerate("ATCGN")}
    out, i = [3], 0
    while i < len(seq):
        if len(seq) - i >= 6 and all(c in "ACGT" for c in seq[i:i + 6]):
            out.append(kmer[seq[i:i + 6]])
            i += 6
        elif seq[i] in single:
            out.append(single[seq[i]])
            i += 1
        else:
            if out[-1] != 0 or i == 0 or seq[i - 1] in single:
                out.append(0)
            i += 1
    return out


def test_ntv2_matches_esm_tokenizer_and_naive_rule(files, toks):
    from transformers import EsmTokenizer

    ref = EsmTokenizer(str(files["ntv2"] / "vocab.txt"), eos_token=None)  # release: eos_token null
    seqs = SEQS + ["XY" + _dna(7), "AXYZACGTAC", "ACGTAXNYAAAAAA"]
    assert _rows(toks["ntv2"], seqs) == [ref(s)["input_ids"] for s in seqs]
    assert _rows(toks["ntv2"], seqs) == [_naive_nt(s) for s in seqs]


def test_dnabert6_matches_bert_tokenizer_on_spaced_kmers(files, toks):
    from transformers import BertTokenizer

    ref = BertTokenizer(str(files["dnabert6"] / "vocab.txt"), do_lower_case=False)
    tok = toks["dnabert6"]
    assert _rows(tok, SEQS) == [ref(tok.hf_text(s))["input_ids"] for s in SEQS]
    assert _rows(tok, ["ACGTA"]) == [[2, 3]]  # shorter than 6: no k-mer tokens, as BERT on ""


def test_dnabert6_unspaced_replays_the_kmer_minus_one_bug(files):
    from transformers import BertTokenizer

    ref = BertTokenizer(str(files["dnabert6"] / "vocab.txt"), do_lower_case=False)
    tok = load_release_tokenizer("dnabert6", files["dnabert6"], unspaced=True)
    seqs = SEQS + ["ACGTAC", "ACGTAN", "A" * 100, "A" * 101, _dna(500)]
    assert _rows(tok, seqs) == [ref(s)["input_ids"] for s in seqs]
    assert _rows(tok, [_dna(300)]) == [[2, 1, 3]]
    assert tok.name == "dnabert6-unspaced"
    with pytest.raises(UserError, match="dnabert6 only"):
        load_release_tokenizer("ntv2", files["ntv2"], unspaced=True)


def test_dnabert2_matches_pretrained_tokenizer_fast(files, toks):
    from transformers import PreTrainedTokenizerFast

    ref = PreTrainedTokenizerFast(tokenizer_file=str(files["dnabert2"] / "tokenizer.json"))
    seqs = SEQS + ["ACG-TAC"]
    assert _rows(toks["dnabert2"], seqs) == [ref(s)["input_ids"] for s in seqs]
    assert toks["dnabert2"].id_to_token[:9] == ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]",
                                                "A", "C", "G", "T"]


def test_gpt2_matches_gpt2_tokenizer_fast(files, toks):
    from transformers import GPT2TokenizerFast

    ref = GPT2TokenizerFast.from_pretrained(str(files["gpt2"]))  # reads vocab.json + merges.txt
    assert not (files["gpt2"] / "tokenizer.json").exists()
    tok = toks["gpt2"]
    assert _rows(tok, SEQS) == [ref(s)["input_ids"] for s in SEQS]
    assert tok.pad_id == tok.vocab_size - 1 == ref.convert_tokens_to_ids("<|endoftext|>")
    assert tok.special_ids == {tok.pad_id}


def test_gpt2_reads_tokenizer_json_when_present(files, toks, tmp_path):
    toks["gpt2"].hf_tokenizer().save(str(tmp_path / "tokenizer.json"))
    alt = load_release_tokenizer("gpt2", tmp_path)
    assert _rows(alt, SEQS) == _rows(toks["gpt2"], SEQS)


def test_char_ids_and_complement_map(toks):
    tok = toks["char"]
    lut = dict(zip("ACGTN", range(7, 12)))
    assert _rows(tok, SEQS + ["AXG"]) == [[lut.get(c, 6) for c in s] + [1] for s in SEQS + ["AXG"]]
    # HyenaDNA #77: AGCTACATTGGCC -> 7 9 8 10 ... 8 1
    assert _rows(tok, ["AGCTACATTGGCC"])[0] == [7, 9, 8, 10, 7, 8, 7, 10, 10, 9, 9, 8, 8, 1]
    assert tok.complement_map == [0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11]
    assert (tok.vocab_size, tok.pad_id, tok.default_padding_side) == (12, 4, "left")


def test_hand_computed_ids_from_the_checkpoint_notes(toks):
    nt, d6 = toks["ntv2"], toks["dnabert6"]
    for i, kmer in enumerate(["AAAAAA", "AAAAAT", "AAAAAC", "AAAAAG", "AAAATA"]):
        assert nt.encode(kmer).tolist() == [6 + i]
        assert d6.encode(kmer).tolist() == [5 + i]
    assert nt.encode("GGGGGG").tolist() == [4101] and d6.encode("GGGGGG").tolist() == [4100]
    assert nt.encode("ATCGN").tolist() == [4102, 4103, 4104, 4105, 4106]
    assert nt.encode("AAANAAAAAAC").tolist() == [4102] * 3 + [4106, 6, 4104]
    assert d6.encode("AAAAAAN").tolist() == [5, 1]
    assert (nt.vocab_size, nt.pad_id, d6.vocab_size, d6.pad_id) == (4107, 1, 4101, 0)


def test_lower_case_is_normalised_where_the_hf_release_gives_unk(files, toks):
    from transformers import BertTokenizer, EsmTokenizer

    for tok in toks.values():
        assert tok.encode("acgtnacgtacgt").tolist() == tok.encode("ACGTNACGTACGT").tolist()
    # what the released HF tokenizers do with lower case (why the wrapper upper-cases)
    assert EsmTokenizer(str(files["ntv2"] / "vocab.txt"), eos_token=None)("acgtac")["input_ids"] == [3, 0]
    bert = BertTokenizer(str(files["dnabert6"] / "vocab.txt"), do_lower_case=False)
    assert bert("acgtac")["input_ids"] == [2, 1, 3]


# ----------------------------------------------------------------------------- real DNABERT-2


def _gue_sequences(gue_dir, per_file: int = 4) -> list[str]:
    out = []
    for path in sorted(gue_dir.glob("*/*/test.csv"))[:8]:
        with open(path, newline="") as fh:
            out += [row["sequence"] for row, _ in zip(csv.DictReader(fh), range(per_file))]
    return out


def test_real_dnabert2_tokenizer_json(shared_dir, gue_dir):
    from transformers import PreTrainedTokenizerFast

    ckpt = shared_dir / "checkpoints" / "dnabert2-117m"
    if not (ckpt / "tokenizer.json").is_file():
        pytest.skip(f"{ckpt} has no tokenizer.json")
    tok = load_release_tokenizer("dnabert2", ckpt)
    ref = PreTrainedTokenizerFast(tokenizer_file=str(ckpt / "tokenizer.json"))
    seqs = _gue_sequences(gue_dir) + SEQS
    assert len(seqs) > len(SEQS) + 8
    assert _rows(tok, seqs) == [ref(s)["input_ids"] for s in seqs]
    assert (tok.vocab_size, tok.pad_id, tok.special_ids) == (4096, 3, frozenset(range(5)))
    ids, starts, ends = tok.spans(seqs[0])
    assert "".join(seqs[0][s:e] for s, e in zip(starts, ends)) == seqs[0]


# ----------------------------------------------------------------------------- encode_batch


@pytest.mark.parametrize("kind", KINDS)
def test_encode_batch_padding_truncation_specials_and_mask(toks, kind):
    tok = toks[kind]
    pre, suf = {"dnabert2": ([1], [2]), "ntv2": ([3], []), "dnabert6": ([2], [3]),
                "gpt2": ([], []), "char": ([], [1])}[kind]
    seqs = [_dna(40), _dna(7), "", _dna(25) + "N" + _dna(10)]
    max_len = 8
    for side, pad_to_max in itertools.product(("right", "left"), (False, True)):
        ids, mask = tok.encode_batch(seqs, max_len, padding_side=side, pad_to_max=pad_to_max)
        want = [pre + tok.encode(s).tolist()[:max_len - len(pre) - len(suf)] + suf for s in seqs]
        width = max_len if pad_to_max else max(map(len, want))
        assert ids.shape == mask.shape == (len(seqs), width) and ids.dtype == mask.dtype == np.int64
        for row, m, w in zip(ids, mask, want):
            pad = [tok.pad_id] * (width - len(w))
            assert row.tolist() == (w + pad if side == "right" else pad + w)
            ones, zeros = [1] * len(w), [0] * len(pad)
            assert m.tolist() == (ones + zeros if side == "right" else zeros + ones)
    ids, mask = tok.encode_batch(seqs, max_len, add_special_tokens=False)
    assert ids[0].tolist() == tok.encode(seqs[0]).tolist()[:max_len]
    rc_ids, rc_mask = tok.encode_reverse_complement_batch(seqs, max_len)
    ref_ids, ref_mask = tok.encode_batch([reverse_complement(s) for s in seqs], max_len)
    assert np.array_equal(rc_ids, ref_ids) and np.array_equal(rc_mask, ref_mask)
    with pytest.raises(UserError):
        tok.encode_batch(seqs, len(pre) + len(suf))
    with pytest.raises(UserError):
        tok.encode_batch("ACGT", 10)
    with pytest.raises(UserError, match="whitespace"):
        tok.encode_batch(["ACGT ACGT"], 10)


# ----------------------------------------------------------------------------- spans


def _check_tiling(seq, ids, starts, ends, special_ids):
    """Non-special spans tile ``seq`` in order; specials are zero-width at 0 or len(seq)."""
    special = np.isin(ids, sorted(special_ids)) & (starts == ends)
    assert set(starts[special].tolist()) <= {0, len(seq)}
    s, e = starts[~special], ends[~special]
    assert "".join(seq[a:b] for a, b in zip(s, e)) == seq
    assert (e > s).all() and (s[1:] == e[:-1]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_spans_reconstruct_the_sequence(toks, kind):
    tok = toks[kind]
    for seq in SEQS + ["acgTTGcaNXYa"]:
        ids, starts, ends = tok.spans(seq)
        assert ids.tolist() == _rows(tok, [seq])[0]
        assert ids.dtype == starts.dtype == ends.dtype == np.int64
        bare, s0, e0 = tok.spans(seq, add_special_tokens=False)
        assert bare.tolist() == tok.encode(seq).tolist()
        if kind == "dnabert6":
            n = max(len(seq) - 5, 0)
            assert s0.tolist() == list(range(n)) and (e0 - s0 == 6).all()
            assert [tok.id_to_token[i] if i != 1 else None for i in bare] == [
                w if set(w) <= set("ACGT") else None for w in (seq.upper()[a:b] for a, b in zip(s0, e0))]
            assert starts[0] == ends[0] == 0 and starts[-1] == ends[-1] == len(seq)
        else:
            _check_tiling(seq, ids, starts, ends, tok.special_ids)
            if kind in ("ntv2", "dnabert2", "char"):  # token strings are the bases themselves
                known = bare != tok.unk_id
                assert [tok.id_to_token[i] for i in bare[known]] == [
                    seq.upper()[a:b] for a, b in zip(s0[known], e0[known])]


def test_unspaced_spans_cover_the_whole_sequence(files):
    tok = load_release_tokenizer("dnabert6", files["dnabert6"], unspaced=True)
    ids, starts, ends = tok.spans("ACGTACGT")
    assert (ids.tolist(), starts.tolist(), ends.tolist()) == ([2, 1, 3], [0, 0, 8], [0, 8, 8])
    assert tok.spans("")[0].tolist() == [2, 3]


# ----------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("kind", KINDS + ("dnabert6-unspaced",))
def test_save_autotokenizer_round_trip(files, toks, tmp_path, kind):
    from transformers import AutoTokenizer

    tok = (load_release_tokenizer("dnabert6", files["dnabert6"], unspaced=True)
           if kind == "dnabert6-unspaced" else toks[kind])
    out = tok.save(tmp_path / "tok")
    meta = json.loads((out / "dnatok_tokenizer.json").read_text())
    assert meta["kind"] == "released" and meta["release"] == tok.kind
    assert (meta["vocab_size"], meta["pad_id"]) == (tok.vocab_size, tok.pad_id)
    hf = AutoTokenizer.from_pretrained(str(out))
    seqs = SEQS + ["acgtnNacGT"]
    side = tok.default_padding_side
    ids, mask = tok.encode_batch(seqs, UNLIMITED, padding_side=side)
    enc = hf([tok.hf_text(s) for s in seqs], padding=True)
    assert np.array_equal(np.asarray(enc["input_ids"]), ids)
    assert np.array_equal(np.asarray(enc["attention_mask"]), mask)
    again = load_saved(out)
    assert (again.kind, again.unspaced, again.vocab_size) == (tok.kind, tok.unspaced, tok.vocab_size)
    assert np.array_equal(again.encode_batch(seqs, UNLIMITED)[0], tok.encode_batch(seqs, UNLIMITED)[0])


def test_write_is_deterministic(tmp_path):
    for kind in ("dnabert2", "gpt2"):
        a = write_release_tokenizer(kind, tmp_path / "a" / kind)
        b = write_release_tokenizer(kind, tmp_path / "b" / kind)
        assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}
    c = write_release_tokenizer("dnabert2", tmp_path / "c", seed=1)
    first = tmp_path / "a" / "dnabert2" / "tokenizer.json"
    assert (c / "tokenizer.json").read_bytes() != first.read_bytes()


def test_missing_files_and_wrong_vocabulary_are_user_errors(files, tmp_path):
    for kind, name in (("ntv2", "vocab.txt"), ("dnabert6", "vocab.txt"), ("dnabert2", "tokenizer.json"),
                       ("gpt2", "vocab.json")):
        with pytest.raises(UserError, match=str(tmp_path / name)):
            load_release_tokenizer(kind, tmp_path)
    assert load_release_tokenizer("char", None).vocab_size == 12
    lines = (files["ntv2"] / "vocab.txt").read_text().split("\n")
    lines[7], lines[8] = lines[8], lines[7]
    (tmp_path / "vocab.txt").write_text("\n".join(lines))
    with pytest.raises(UserError, match="line 8 is 'AAAAAC'"):
        load_release_tokenizer("ntv2", tmp_path)
    lines[7], lines[8] = lines[8], lines[7]
    (tmp_path / "vocab.txt").write_text("\n".join(lines[:100]))
    with pytest.raises(UserError, match=r"line 101 is missing"):
        load_release_tokenizer("ntv2", tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(lines[:-1] + ["X"]))
    with pytest.raises(UserError, match=r"line 4108 is 'X', .* only 4107 lines"):
        load_release_tokenizer("ntv2", tmp_path)
    with pytest.raises(UserError, match="unknown release tokenizer"):
        load_release_tokenizer("dnabert3", tmp_path)
    with pytest.raises(UserError, match="not a saved tokenizer"):
        load_saved(tmp_path)
    with pytest.raises(UserError):
        ReleasedTokenizer("dnabert2")


# ----------------------------------------------------------------------------- DnaTokenizer.spans


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    from dnatok.tokenization import train_tokenizer

    root = tmp_path_factory.mktemp("ours")
    corpus = [_dna(300) for _ in range(20)]
    specs = {"char": {"kind": "char"}, "kmer3": {"kind": "kmer", "k": 3},
             "kmer3s3": {"kind": "kmer", "k": 3, "stride": 3}, "bpe": {"kind": "bpe", "vocab_size": 40}}
    return {n: train_tokenizer(s, root / n, corpus) for n, s in specs.items()}


@pytest.mark.parametrize("name", ["char", "kmer3", "kmer3s3", "bpe"])
def test_dna_tokenizer_spans(ours, name):
    tok = ours[name]
    for seq in SEQS + ["acgXTNaa"]:
        ids, starts, ends = tok.spans(seq)
        row, mask = tok.encode_batch([seq], UNLIMITED)
        assert ids.tolist() == row[0][mask[0].astype(bool)].tolist()
        assert (ids[0], starts[0], ends[0]) == (2, 0, 0)
        assert (ids[-1], starts[-1], ends[-1]) == (3, len(seq), len(seq))
        bare, s0, e0 = tok.spans(seq, add_special_tokens=False)
        assert bare.tolist() == tok.encode(seq).tolist()
        if name == "kmer3":
            assert s0.tolist() == list(range(max(len(seq) - 2, 0))) and (e0 - s0 == 3).all()
        else:
            _check_tiling(seq, ids, starts, ends, tok.special_ids)
        known = bare != tok.unk_id
        assert tok.tokens(bare[known]) == [seq.upper()[a:b] for a, b in zip(s0[known], e0[known])]
