"""BPE training: exactness against a naive reference, corpus isolation, determinism, specs."""
from __future__ import annotations

import random

import numpy as np
import pytest

from dnatok.errors import UserError
from dnatok.tokenization import canonical_spec, default_name, load_tokenizer, train_tokenizer
from dnatok.tokenization.bpe import acgt_chunks, train_bpe

from synthetic import genome_like


def _naive_bpe(seqs, vocab_size):
    """Textbook BPE: recount every pair, merge the most frequent (ties: smallest ids)."""
    strings = list("ACGT")
    ids = {s: i for i, s in enumerate(strings)}
    words = [[ids[c] for c in w] for w in acgt_chunks(seqs)]
    merges = []
    while len(strings) < vocab_size - 6:
        counts = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        a, b = min(counts, key=lambda p: (-counts[p], p))
        new = strings[a] + strings[b]
        if new not in ids:
            ids[new] = len(strings)
            strings.append(new)
        c = ids[new]
        merges.append((strings[a], strings[b]))
        for w in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(c)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            w[:] = out
    return merges


@pytest.mark.parametrize("seed", range(6))
def test_fast_trainer_equals_naive_bpe(seed, monkeypatch):
    rng = random.Random(seed)
    alphabet = ["ACGT", "AAAC", "AT", "ACGTN", "AAAAAAT", "ACGTRY"][seed]
    seqs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 250)))
            for _ in range(rng.randint(3, 25))]
    vocab_size = rng.randint(20, 90)
    expect = _naive_bpe(seqs, vocab_size)
    vocab, merges = train_bpe(seqs, vocab_size)
    assert merges == expect
    assert vocab[:5] == list("ACGTN") and len(set(vocab)) == len(vocab)


def test_scan_fallback_equals_naive_bpe():
    """The slower path used after a token-id reuse must give the same merges."""
    import dnatok.tokenization.bpe as bpe

    src = open(bpe.__file__).read().replace("    indexed = True\n", "    indexed = False\n")
    assert src.count("indexed = False") == 2
    ns = {"__name__": "scan_variant"}
    exec(compile(src, bpe.__file__, "exec"), ns)
    rng = random.Random(11)
    seqs = ["".join(rng.choice("AACGT") for _ in range(200)) for _ in range(10)]
    assert ns["train_bpe"](seqs, 60)[1] == _naive_bpe(seqs, 60)


def _check_trainers_agree(seq, tmp_path):
    corpus = [seq[20_000 + i:20_000 + i + 500] for i in range(0, 100_000, 500)]
    own = train_tokenizer({"kind": "bpe", "vocab_size": 300}, tmp_path / "own", corpus)
    hf = train_tokenizer({"kind": "bpe", "vocab_size": 300, "trainer": "hf"}, tmp_path / "hf", corpus)
    # Both are exact greedy BPE; only the tie-breaking between equally frequent pairs can
    # differ, so the vocabularies must overlap almost completely.
    a, b = set(own.id_to_token), set(hf.id_to_token)
    assert len(a & b) >= 0.95 * len(a)
    held_out = [seq[200_000 + i:200_000 + i + 500] for i in range(0, 50_000, 500)]
    n_own = sum(len(own.encode(s)) for s in held_out)
    n_hf = sum(len(hf.encode(s)) for s in held_out)
    assert abs(n_own - n_hf) <= 0.01 * n_hf


def test_hf_trainer_and_own_trainer_agree_on_genome_like_dna(tmp_path):
    _check_trainers_agree(genome_like(12, 260_000, n_prefix=5_000, n_gaps=3), tmp_path)


def test_hf_trainer_and_own_trainer_agree_on_real_dna(shared_dir, tmp_path):
    from dnatok.tokenization.corpus import read_sequences

    _check_trainers_agree(next(read_sequences(shared_dir / "data" / "genome" / "hg38_chr2_1-2333275.fa.gz")),
                          tmp_path)


def test_merges_come_only_from_the_training_corpus(tmp_path):
    rng = random.Random(5)
    rand = lambda n: "".join(rng.choice("ACGT") for _ in range(n))  # noqa: E731
    planted = "GATTACAGATTACACCGGTTAACCGGTTAAGCGCATATGC"  # 40 bp
    train = [rand(400) for _ in range(60)]
    test = [rand(100) + planted + rand(100) for _ in range(60)]
    spec = {"kind": "bpe", "vocab_size": 200}
    tok = train_tokenizer(spec, tmp_path / "train_only", train)
    longest = max(len(t) for t in tok.id_to_token[5:])
    assert not any(len(t) >= 12 and t in planted for t in tok.id_to_token)
    assert len(tok.encode(planted)) > 40 / longest - 1  # the repeat is cut into short pieces
    # Control: the same training that also sees the test corpus does learn the repeat.
    leaky = train_tokenizer(spec, tmp_path / "leaky", train + test)
    assert planted in leaky.id_to_token
    assert leaky.encode(planted).tolist() == [leaky.id_to_token.index(planted)]


def test_same_corpus_same_config_byte_identical(tmp_path):
    rng = random.Random(9)
    corpus = ["".join(rng.choice("ACGT") for _ in range(300)) for _ in range(40)] + ["ACGTNNNACGT"]
    for spec in ({"kind": "bpe", "vocab_size": 128}, {"kind": "kmer", "k": 3, "stride": 3}):
        first = train_tokenizer(spec, tmp_path / "a", iter(corpus)).path
        second = train_tokenizer(dict(spec), tmp_path / "b", list(corpus)).path
        files = sorted(p.name for p in first.iterdir())
        assert files == sorted(p.name for p in second.iterdir())
        assert {"tokenizer.json", "tokenizer_config.json", "dnatok_tokenizer.json"} <= set(files)
        for name in files:
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
        other = train_tokenizer(spec, tmp_path / "c", corpus[1:])
        if spec["kind"] == "bpe":
            assert (other.path / "tokenizer.json").read_bytes() != (first / "tokenizer.json").read_bytes()
        for d in ("a", "b", "c"):
            __import__("shutil").rmtree(tmp_path / d)


def test_bpe_sweep_specs():
    names = []
    for e in range(8, 16):
        spec = canonical_spec({"kind": "bpe", "vocab_size": 2 ** e})
        assert spec == {"kind": "bpe", "vocab_size": 2 ** e, "trainer": "dnatok"}
        names.append(default_name(spec))
    assert names[0] == "bpe256" and names[-1] == "bpe32768" and len(set(names)) == 8
    assert default_name({"kind": "kmer", "k": 6}) == "kmer6"
    assert default_name({"kind": "kmer", "k": 6, "stride": 6}) == "kmer6s6"
    extra = canonical_spec({"kind": "bpe", "vocab_size": 512, "max_corpus_bp": 1000, "note": "x"})
    assert extra["note"] == "x" and extra["max_corpus_bp"] == 1000


def test_max_corpus_bp_caps_training(tmp_path):
    corpus = ["ACGT" * 50, "GGGGCCCC" * 50]
    tok = train_tokenizer({"kind": "bpe", "vocab_size": 40, "max_corpus_bp": 120}, tmp_path / "t", corpus)
    assert tok.meta["corpus"]["bp"] == 120 and tok.meta["corpus"]["sequences"] == 1
    assert "GG" not in tok.id_to_token


def test_bpe_never_merges_n_and_handles_unknown(tmp_path):
    tok = train_tokenizer({"kind": "bpe", "vocab_size": 64}, tmp_path / "t", ["NNNNNNNNNNACGTACGT" * 20])
    assert not any("N" in t and len(t) > 1 for t in tok.id_to_token[5:])
    ids = tok.encode("ACGTRNNacgt")
    assert tok.unk_id in ids.tolist()
    assert tok.decode(ids) == "ACGTNNACGT"  # [UNK] is dropped by decode


def test_bpe_corpus_required_and_nonempty(tmp_path):
    with pytest.raises(UserError):
        train_tokenizer({"kind": "bpe", "vocab_size": 64}, tmp_path / "t", ["", "  "])
    assert not (tmp_path / "t").exists()


def test_corpus_reader_fasta_and_text(tmp_path):
    import gzip

    from dnatok.errors import DataError
    from dnatok.tokenization.corpus import read_corpus

    fa = tmp_path / "x.fa.gz"
    with gzip.open(fa, "wt") as fh:
        fh.write(">a\nacgt\nACNN\n>b\nGG\n")
    txt = tmp_path / "x.txt"
    txt.write_text("ttga\n\nCCA\n")
    assert list(read_corpus([fa, txt])) == ["ACGTACNN", "GG", "TTGA", "CCA"]
    bad = tmp_path / "bad.txt"
    bad.write_text("ACGT\n>header\n")
    with pytest.raises(DataError) as err:
        list(read_corpus([bad]))
    assert ":2:" in str(err.value)


def test_encode_throughput_path_matches_hf_on_long_input(tmp_path):
    """The numpy paths on one long sequence with N runs and odd characters equal HF."""
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGT"), 5000)) + "NNNNN" + "".join(rng.choice(list("ACGTN"), 997)) + "RYK"
    for spec in ({"kind": "char"}, {"kind": "kmer", "k": 5, "stride": 1}, {"kind": "kmer", "k": 5, "stride": 5}):
        tok = train_tokenizer(spec, tmp_path / str(len(list(tmp_path.iterdir()))))
        hf = tok.hf(tok.hf_text(seq), add_special_tokens=False)["input_ids"]
        assert tok.encode(seq).tolist() == hf
        again = load_tokenizer(tok.path)
        assert again.encode(seq.lower()).tolist() == hf


# ------------------------------------------------------------ compiled BPE encoder


def _adversarial_seqs(rng):
    """Runs and tandem repeats (overlapping merges), N/unknown characters, edge lengths."""
    rand = lambda n, alphabet="ACGT": "".join(rng.choice(list(alphabet), n))  # noqa: E731
    seqs = ["", "A", "AA", "AAA", "A" * 41, "AT" * 33 + "A", "AAT" * 20, "GGGGCGGGGC" * 7,
            "NNNN", "ANA", "AAAANAAAA", "ACGT?ACGTXACGT-acgtn", "acgtacgtAAAA", "é" + "A" * 9]
    seqs += [rand(int(n)) for n in rng.integers(1, 400, 60)]
    seqs += [rand(int(n), "AAAAACGTN") for n in rng.integers(1, 400, 30)]
    # Copies of a repeat with point mutations: the merges BPE learned from the corpus.
    unit = rand(50)
    seqs += ["".join(c if rng.random() > 0.05 else rand(1) for c in unit * 4) for _ in range(20)]
    return seqs


@pytest.fixture(scope="module")
def trained_bpe(tmp_path_factory):
    rng = np.random.default_rng(3)
    unit = "".join(rng.choice(list("ACGT"), 40))
    corpus = ["".join(rng.choice(list("ACGT"), 3000)) for _ in range(20)]
    corpus += ["A" * 200, "AT" * 100, unit * 30, "GGGGCGGGGC" * 30]
    return train_tokenizer({"kind": "bpe", "vocab_size": 600}, tmp_path_factory.mktemp("bpe") / "t", corpus)


def _check_compiled_encoder_equals_hf(tok, seqs):
    from transformers import AutoTokenizer

    from dnatok.tokenization import bpe_encode

    if not bpe_encode.available():
        pytest.skip("numba not installed: DnaTokenizer uses the HF encoder")
    assert tok._bpe_table is not None  # the compiled path is the one under test
    auto = AutoTokenizer.from_pretrained(str(tok.path))
    for s in seqs:
        assert tok.encode(s).tolist() == auto(s.upper(), add_special_tokens=False)["input_ids"], s
    # One batch (one kernel call, groups of sequences) == sequence by sequence.
    ids, offsets = tok._encode_flat(seqs)
    for row, s in enumerate(seqs):
        assert ids[offsets[row]:offsets[row + 1]].tolist() == tok.encode(s).tolist()


def test_compiled_encoder_equals_hf(trained_bpe):
    rng = np.random.default_rng(5)
    genome = genome_like(rng, 30_000)
    windows = [genome[s:s + int(n)] for s, n in zip(rng.integers(0, 29_000, 100), rng.integers(1, 1000, 100))]
    _check_compiled_encoder_equals_hf(trained_bpe, _adversarial_seqs(rng) + windows)


def test_compiled_encoder_equals_hf_on_real_gue(trained_bpe, gue_dir):
    gue = gue_dir / "prom" / "prom_300_tata" / "dev.csv"
    _check_compiled_encoder_equals_hf(trained_bpe, [line.split(",")[0] for line in gue.read_text().splitlines()[1:300]])


def test_compiled_encoder_chunks_and_groups_do_not_change_ids(trained_bpe, monkeypatch):
    from dnatok.tokenization import bpe_encode, fastpath

    if not bpe_encode.available():
        pytest.skip("numba not installed")
    seqs = _adversarial_seqs(np.random.default_rng(8)) * 3
    buf, lengths = fastpath.to_buffer([s.upper() for s in seqs])
    one = bpe_encode.encode(buf, lengths, trained_bpe._bpe_table, threads=1)
    monkeypatch.setattr(bpe_encode, "MIN_CHUNK_BP", 500)  # force several threads
    monkeypatch.setattr(bpe_encode, "GROUP_BP", 64)        # and many small groups per kernel call
    assert len(bpe_encode._chunks(lengths, 3)) == 3
    many = bpe_encode.encode(buf, lengths, trained_bpe._bpe_table, threads=3)
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])


def test_non_monotone_merges_fall_back_to_hf(trained_bpe):
    from dnatok.tokenization.bpe_encode import BpeMergeTable, byte_lut

    vocab = trained_bpe._tk.get_vocab()
    merges = [tuple(m) for m in __import__("json").loads(
        (trained_bpe.path / "tokenizer.json").read_text())["model"]["merges"]]
    assert BpeMergeTable(vocab, merges, byte_lut(vocab)).is_monotone()
    # Move a merge that uses a merged token before the merge that creates that token.
    late = next(r for r, (a, b) in enumerate(merges) if len(a) > 1)
    swapped = [merges[late]] + merges[:late] + merges[late + 1:]
    assert not BpeMergeTable(vocab, swapped, byte_lut(vocab)).is_monotone()
