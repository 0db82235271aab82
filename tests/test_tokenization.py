"""Tokenizers: interface, round trips, HF equivalence, reverse complement. The logic runs on
tokenizers trained on a synthetic genome-like corpus and on held-out windows of it; the
same checks, and the statistics of a real task, also run on real DNA from ../shared."""
from __future__ import annotations

import argparse
import csv

import numpy as np
import pytest

from dnatok.errors import UserError
from dnatok.tokenization import (DnaTokenizer, load_tokenizer, reverse_complement,
                                 train_tokenizer)

from synthetic import genome_like, write_rows_csv

SPECS = {
    "char": {"kind": "char"},
    "kmer6": {"kind": "kmer", "k": 6, "stride": 1},
    "kmer6s6": {"kind": "kmer", "k": 6, "stride": 6},
    "bpe256": {"kind": "bpe", "vocab_size": 256},
}

# A synthetic genome: its first 200 kbp train the tokenizers, windows of the rest are the
# held-out sequences.
_GENOME = genome_like(30, 400_000)


def _windows(n: int, length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    starts = rng.integers(200_000, len(_GENOME) - length, n)
    return [_GENOME[s:s + length] for s in starts]


def _gue_seqs(gue_dir, task="prom/prom_300_tata", split="dev", n=200):
    with open(gue_dir / task / f"{split}.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["sequence"] for r in rows[:n]]


def _train_all(root, corpus):
    return {name: train_tokenizer(spec, root / name, corpus) for name, spec in SPECS.items()}


@pytest.fixture(scope="module")
def corpus():
    """A small synthetic BPE corpus: 200 kbp in 1 kbp lines."""
    return [_GENOME[i:i + 1000] for i in range(0, 200_000, 1000)]


@pytest.fixture(scope="module")
def toks(tmp_path_factory, corpus):
    return _train_all(tmp_path_factory.mktemp("toks"), corpus)


@pytest.fixture(scope="module")
def real_toks(tmp_path_factory, shared_dir):
    """The same tokenizers trained on real DNA: the first non-N 200 kbp of the chr2 piece."""
    from dnatok.tokenization.corpus import read_sequences

    seq = next(read_sequences(shared_dir / "data" / "genome" / "hg38_chr2_1-2333275.fa.gz"))
    seq = seq.replace("N", "")[:200_000]
    return _train_all(tmp_path_factory.mktemp("real_toks"), [seq[i:i + 1000] for i in range(0, len(seq), 1000)])


def test_interface_attributes(toks):
    for name, tok in toks.items():
        assert isinstance(tok, DnaTokenizer)
        assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
        assert tok.special_ids == frozenset(range(5))
        assert tok.hf.convert_tokens_to_ids("[MASK]") == tok.mask_id
        assert tok.kind == SPECS[name]["kind"]
    assert toks["char"].vocab_size == 10
    assert toks["kmer6"].vocab_size == 5 + 4 ** 6
    assert toks["kmer6s6"].vocab_size == 5 + 4 ** 6 + 5
    assert toks["bpe256"].vocab_size == 256
    assert toks["char"].complement_map is not None
    assert all(toks[n].complement_map is None for n in ("kmer6", "kmer6s6", "bpe256"))


def _check_round_trip(toks, seqs):
    for name, tok in toks.items():
        for s in seqs:
            ids = tok.encode(s)
            assert ids.dtype == np.int64
            assert tok.decode(ids) == s, name


def _check_ids_identical_to_saved_hf(toks, seqs):
    from transformers import AutoTokenizer

    seqs = seqs + ["ACGTNNACGTRYacgtn", "AC", "N", "ACGTACGTACGTA"]
    for name, tok in toks.items():
        auto = AutoTokenizer.from_pretrained(str(tok.path))
        for s in seqs:
            expect = auto(tok.hf_text(s), add_special_tokens=False)["input_ids"]
            assert tok.encode(s).tolist() == expect, (name, s)
        # Batch path (concatenated buffer) == per-sequence path.
        x, m = tok.encode_batch(seqs, max_len=10_000, add_special_tokens=False)
        for row, s in enumerate(seqs):
            assert x[row, m[row] == 1].tolist() == tok.encode(s).tolist()


def test_round_trip(toks):
    _check_round_trip(toks, _windows(200, 300, 1) + _windows(200, 101, 2) + _windows(20, 7, 3))


def test_overlapping_kmer_count(toks):
    tok = toks["kmer6"]
    for s in _windows(50, 300, 5) + ["ACGTAC", "ACGTACG"]:
        assert len(tok.encode(s)) == len(s) - 6 + 1


def test_ids_identical_to_saved_hf_tokenizer(toks):
    _check_ids_identical_to_saved_hf(toks, _windows(100, 300, 6) + _windows(20, 1000, 7))


def test_real_dna_round_trip_and_ids_identical_to_hf(real_toks, gue_dir):
    """Tokenizers trained on real DNA, on real GUE sequences."""
    seqs = _gue_seqs(gue_dir) + _gue_seqs(gue_dir, "tf/0", "test")
    _check_round_trip(real_toks, seqs)
    _check_ids_identical_to_saved_hf(real_toks, _gue_seqs(gue_dir, n=100))


def test_encode_batch_shapes_padding_truncation(toks):
    tok = toks["char"]
    x, m = tok.encode_batch(["ACGT", "AC"], max_len=5)
    assert x.dtype == np.int64 and m.dtype == np.int64
    assert x.tolist() == [[2, 5, 6, 7, 3], [2, 5, 6, 3, 0]]
    assert m.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    x, m = tok.encode_batch(["ACGT", "AC"], max_len=8, padding_side="left", pad_to_max=True)
    assert x.tolist() == [[0, 0, 2, 5, 6, 7, 8, 3], [0, 0, 0, 0, 2, 5, 6, 3]]
    assert m.sum(axis=1).tolist() == [6, 4]
    x, m = tok.encode_batch(["ACGTACGT"], max_len=4, add_special_tokens=False)
    assert x.tolist() == [[5, 6, 7, 8]]
    with pytest.raises(UserError):
        tok.encode_batch(["ACGT"], max_len=2)
    with pytest.raises(UserError):
        tok.encode_batch(["AC GT"], max_len=20)


def test_reverse_complement():
    assert reverse_complement("AACGTN") == "NACGTT"
    assert reverse_complement("acgt") == "ACGT"


def test_reverse_complement_tokenization(toks):
    seqs = _windows(30, 300, 8) + ["GATTACA"]
    char = toks["char"]
    cmap = np.array(char.complement_map)
    x, m = char.encode_batch(seqs, max_len=400, add_special_tokens=False)
    rx, rm = char.encode_reverse_complement_batch(seqs, max_len=400, add_special_tokens=False)
    for row in range(len(seqs)):
        fwd = x[row, m[row] == 1]
        assert rx[row, rm[row] == 1].tolist() == cmap[fwd[::-1]].tolist()
    for name, tok in toks.items():
        rx, rm = tok.encode_reverse_complement_batch(seqs, max_len=400, add_special_tokens=False)
        for row, s in enumerate(seqs):
            assert tok.decode(rx[row, rm[row] == 1]) == reverse_complement(s), name


def test_load_round_trip(toks):
    again = load_tokenizer(toks["kmer6s6"].path)
    assert again.spec == toks["kmer6s6"].spec
    assert again.encode("ACGTACGTA").tolist() == toks["kmer6s6"].encode("ACGTACGTA").tolist()


def test_bad_specs(tmp_path):
    for spec in ({"kind": "word"}, {"kind": "kmer"}, {"kind": "kmer", "k": 6, "stride": 3},
                 {"kind": "bpe"}, {"kind": "bpe", "vocab_size": 4}):
        with pytest.raises(UserError):
            train_tokenizer(spec, tmp_path / "x", ["ACGT"])
    with pytest.raises(UserError):
        train_tokenizer({"kind": "bpe", "vocab_size": 64}, tmp_path / "y", None)
    assert not (tmp_path / "x").exists()


def _cli(argv):
    from dnatok.tokenization.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_train_and_stats(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(_windows(300, 101, 9)) + "\n")
    out = tmp_path / "bpe64"
    assert _cli(["tokenizer", "train", "--spec", '{"kind": "bpe", "vocab_size": 64}',
                 "--out", str(out), "--corpus", str(corpus)]) == 0
    assert load_tokenizer(out).vocab_size == 64
    assert (out / "provenance.json").is_file()
    _cli(["tokenizer", "train", "--spec", '{"kind": "char"}', "--out", str(tmp_path / "char")])
    tsv, png = tmp_path / "stats.tsv", tmp_path / "len.png"
    task = tmp_path / "prom" / "prom_300_tata"
    for split, n, seed in (("train", 40, 10), ("dev", 7, 11), ("test", 9, 12)):
        write_rows_csv(task / f"{split}.csv", [(s, i % 2) for i, s in enumerate(_windows(n, 300, seed))])
    assert _cli(["tokenizer", "stats", "--tokenizer", str(out), "--tokenizer", str(tmp_path / "char"),
                 "--task-dir", str(task), "--out", str(tsv), "--plot", str(png)]) == 0
    with open(tsv) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [(r["tokenizer"], r["task"]) for r in rows] == [("bpe64", "prom_300_tata"),
                                                            ("char", "prom_300_tata")]
    char = rows[1]
    assert float(char["bp_per_token"]) == 1.0 and char["splits"] == "train+dev+test"
    assert int(char["sequences"]) == 40 + 7 + 9 and int(char["bp"]) == 300 * 56
    assert float(rows[0]["bp_per_token"]) > 1.5
    assert png.stat().st_size > 0


def _check_stats_table(toks, task, n):
    """Stats of every tokenizer on a task of ``n`` sequences of 101 bp."""
    from dnatok.tokenization.stats import decode_hist, stats_table

    rows = stats_table(list(toks.items()), [task])
    assert [r["tokenizer"] for r in rows] == list(toks) and {r["task"] for r in rows} == {task.name}
    by = {r["tokenizer"]: r for r in rows}
    for r in rows:
        assert r["sequences"] == n and r["splits"] == "train+dev+test"
        hist = decode_hist(r["token_length_hist"])
        assert sum(hist.values()) == r["tokens"]
        assert r["tokens_per_seq_mean"] == pytest.approx(r["tokens"] / n, abs=1e-3)
        assert 0 < r["vocab_used_frac"] <= 1 and 0 <= r["unk_frac"] < 0.01
    bp = by["char"]["bp"]
    assert bp == 101 * n
    assert by["char"]["tokens"] == bp and by["char"]["vocab_used"] <= 5
    assert by["kmer6"]["tokens"] == bp - 5 * n  # L - k + 1 per sequence
    assert decode_hist(by["kmer6"]["token_length_hist"]) == {6: bp - 5 * n}
    assert by["kmer6s6"]["tokens"] == n * (101 // 6 + 101 % 6)
    assert by["bpe256"]["bp_per_token"] > 2
    return rows


def test_stats_table_for_every_tokenizer(toks, tmp_path):
    from dnatok.tokenization.stats import write_tsv

    task = tmp_path / "tf" / "2"
    for split, n, seed in (("train", 300, 13), ("dev", 50, 14), ("test", 50, 15)):
        write_rows_csv(task / f"{split}.csv", [(s, i % 2) for i, s in enumerate(_windows(n, 101, seed))])
    rows = _check_stats_table(toks, task, 400)
    write_tsv(rows, tmp_path / "s.tsv")
    assert len((tmp_path / "s.tsv").read_text().splitlines()) == 5


def test_stats_table_for_every_tokenizer_on_a_real_task(real_toks, gue_dir):
    _check_stats_table(real_toks, gue_dir / "tf" / "2", 21_000)  # 19,000 + 1,000 + 1,000 sequences of 101 bp


def test_equal_length_batches_match_hf(toks):
    """Equal-length batches take a reshaped fast path; with and without N they equal HF."""
    seqs = _windows(40, 101, 16)
    with_n = [s[:50] + "N" + s[51:] for s in seqs[:5]] + seqs[5:]
    for name, tok in toks.items():
        for batch in (seqs, with_n, seqs[:1]):
            x, m = tok.encode_batch(batch, max_len=4096, add_special_tokens=False)
            for row, s in enumerate(batch):
                expect = tok.hf(tok.hf_text(s), add_special_tokens=False)["input_ids"]
                assert x[row, m[row] == 1].tolist() == expect, (name, row)


def test_encode_batch_uniform_and_ragged_rows_agree(toks):
    tok = toks["kmer6s6"]
    seqs = ["ACGTACGTACGTAC", "GGGGCCCCAAAATT", "TTTTTTTTTTTTTT"]  # equal lengths
    for side in ("left", "right"):
        for max_len in (4, 6, 40):
            x, m = tok.encode_batch(seqs, max_len=max_len, padding_side=side, pad_to_max=True)
            x2, m2 = tok.encode_batch(seqs + ["A"], max_len=max_len, padding_side=side, pad_to_max=True)
            assert (x == x2[:3]).all() and (m == m2[:3]).all()
            assert x.shape == (3, max_len)
            edge = x[:, 0] == tok.cls_id if side == "right" else x[:, -1] == tok.sep_id
            assert edge.all()
