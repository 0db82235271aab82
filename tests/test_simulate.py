"""The demo's generated data must carry the signals the demo claims to measure."""
import numpy as np
import pandas as pd
import pytest

from dnatok.data.simulate import DONOR, simulate_genome, simulate_task
from dnatok.errors import UserError


def _read_fasta(path):
    seqs, name = {}, None
    for line in open(path):
        line = line.strip()
        if line.startswith(">"):
            name = line[1:]
            seqs[name] = []
        else:
            seqs[name].append(line)
    return {k: "".join(v) for k, v in seqs.items()}


def test_genome_and_bed_have_the_hg38_ml_format(tmp_path):
    fa, bed = tmp_path / "g.fa", tmp_path / "g.bed"
    simulate_genome(fa, bed, {"chr1": 120_000, "chr2": 80_000}, 8192, {"train": 0.8, "valid": 0.1, "test": 0.1}, seed=3)
    genome = _read_fasta(fa)
    assert {k: len(v) for k, v in genome.items()} == {"chr1": 120_000, "chr2": 80_000}
    rows = [line.split("\t") for line in bed.read_text().splitlines()]
    assert all(len(r) == 4 for r in rows)
    assert {r[3] for r in rows} == {"train", "valid", "test"}
    for chrom, start, end, _ in rows:
        assert 0 <= int(start) < int(end) <= len(genome[chrom])
    seq = "".join(genome.values()).replace("N", "")
    # CpG depletion, as in mammalian genomes: observed/expected CpG well below 1.
    c, g = seq.count("C") / len(seq), seq.count("G") / len(seq)
    cpg_oe = seq.count("CG") / (len(seq) * c * g)
    assert cpg_oe < 0.5
    # Interspersed repeats give BPE recurring words: some 12-mers occur far more often than
    # the <1 expected occurrence of a 12-mer in 200 kb of background.
    kmers = pd.Series([seq[i:i + 12] for i in range(len(seq) - 12)]).value_counts()
    assert kmers.iloc[0] >= 8


def test_same_seed_same_genome(tmp_path):
    args = ({"chr1": 50_000}, 4096, {"train": 0.8, "valid": 0.1, "test": 0.1})
    simulate_genome(tmp_path / "a.fa", tmp_path / "a.bed", *args, seed=1)
    simulate_genome(tmp_path / "b.fa", tmp_path / "b.bed", *args, seed=1)
    assert (tmp_path / "a.fa").read_bytes() == (tmp_path / "b.fa").read_bytes()
    assert (tmp_path / "a.bed").read_bytes() == (tmp_path / "b.bed").read_bytes()


def test_too_small_genome_is_refused_without_output(tmp_path):
    with pytest.raises(UserError, match="too small"):
        simulate_genome(tmp_path / "g.fa", tmp_path / "g.bed", {"chr1": 5000}, 4096,
                        {"train": 0.8, "valid": 0.1, "test": 0.1})
    assert not (tmp_path / "g.fa").exists() and not (tmp_path / "g.bed").exists()


def _matches(window: str, pattern: str) -> bool:
    iupac = {"A": "A", "C": "C", "G": "G", "T": "T", "M": "AC", "R": "AG"}
    return all(b in iupac[p] for b, p in zip(window, pattern))


def test_splice_task_label_is_one_nucleotide_at_a_fixed_position(tmp_path):
    simulate_task(tmp_path / "t", "splice", length=100, n_train=400, n_dev=50, n_test=50, seed=0)
    df = pd.read_csv(tmp_path / "t" / "train.csv")
    assert list(df.columns) == ["sequence", "label"] and df.label.mean() == 0.5
    start = 50 - len(DONOR) // 2

    def site(seq):
        """offset (-3..3) of the donor motif near the centre, or None"""
        for shift in range(-3, 4):
            if _matches(seq[start + shift:start + shift + len(DONOR)], DONOR):
                return shift
        return None

    assert df.sequence[df.label == 1].map(site).notna().all()
    # every negative is a donor site with exactly one substitution, inside the GT dinucleotide
    def broken_gt(seq):
        for shift in range(-3, 4):
            w = seq[start + shift:start + shift + len(DONOR)]
            bad = [i for i, (b, p) in enumerate(zip(w, DONOR)) if not _matches(b, p)]
            if len(bad) == 1 and bad[0] in (3, 4):
                return True
        return False

    negatives = df.sequence[df.label == 0]
    assert negatives.map(broken_gt).all()
    assert negatives.map(site).isna().mean() > 0.95
    # the degenerate positions really vary: several distinct motif instances among positives
    found = df.sequence[df.label == 1].map(lambda s: s[start + site(s):start + site(s) + len(DONOR)])
    assert found.nunique() >= 4


def test_composition_task_differs_only_in_gc(tmp_path):
    simulate_task(tmp_path / "t", "composition", length=100, n_train=600, n_dev=50, n_test=50, seed=0,
                  gc_low=0.40, gc_high=0.52)
    df = pd.read_csv(tmp_path / "t" / "train.csv")
    gc = df.sequence.map(lambda s: (s.count("G") + s.count("C")) / len(s))
    assert gc[df.label == 1].mean() - gc[df.label == 0].mean() > 0.07
    # no positional motif: per-position base frequencies do not separate the classes
    pos = np.array([list(s) for s in df.sequence])
    a_pos = (pos[df.label.values == 1] == "A").mean(0) - (pos[df.label.values == 0] == "A").mean(0)
    assert np.abs(a_pos).max() < 0.2


def test_label_noise_flips_labels_only(tmp_path):
    kw = dict(signal="composition", length=80, n_train=2000, n_dev=50, n_test=50, seed=4,
              gc_low=0.3, gc_high=0.6)
    simulate_task(tmp_path / "clean", **kw)
    simulate_task(tmp_path / "noisy", label_noise=0.2, **kw)
    clean = pd.read_csv(tmp_path / "clean" / "train.csv")
    noisy = pd.read_csv(tmp_path / "noisy" / "train.csv")
    assert clean.sequence.equals(noisy.sequence)  # same sequences, whatever the noise
    flipped = (clean.label != noisy.label).mean()
    assert 0.17 < flipped < 0.23
    # The flipped examples keep the composition of the class they were drawn from.
    gc = clean.sequence.map(lambda s: (s.count("G") + s.count("C")) / len(s))
    assert (gc[(clean.label == 1) & (noisy.label == 0)] > 0.45).mean() > 0.9
    with pytest.raises(UserError, match="label_noise"):
        simulate_task(tmp_path / "bad", label_noise=0.5, **kw)
    # The rule's command line passes the config's label_noise through.
    import json

    from dnatok.cli import main
    spec = {**kw, "label_noise": 0.2}
    assert main(["simulate", "task", "--spec", json.dumps(spec), "--out", str(tmp_path / "cli")]) == 0
    assert pd.read_csv(tmp_path / "cli" / "train.csv").equals(noisy)


def test_unknown_signal_is_refused(tmp_path):
    with pytest.raises(UserError, match="unknown simulated signal"):
        simulate_task(tmp_path / "t", "nonsense", 100, 2, 2, 2)
    assert not (tmp_path / "t").exists()
