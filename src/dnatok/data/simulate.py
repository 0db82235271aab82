"""The embedded default's data: a small synthetic genome and GUE-format tasks.

Nothing here is random noise dressed up as biology. The genome is drawn from a
second-order Markov chain with CpG depletion and GC isochores, and carries copies
of a few interspersed repeat families (with point mutations), so BPE finds real
recurring words to merge, as it does on hg38. The tasks plant signals of the two
kinds the study contrasts:

* ``splice`` — the label depends on single-nucleotide detail at a fixed position:
  positives carry a donor site (``MAG|GTRAGT``, degenerate positions drawn per
  example) at the centre (±3 bp), negatives the same motif with the invariant ``GT``
  broken by one substitution. Character tokens see the change directly; BPE folds the
  decisive base into tokens that depend on the random neighbouring bases — where the
  paper found character tokenization better (splice sites, promoters).
* ``composition`` — the label depends only on base composition (GC content), no
  position or motif — where the paper found no tokenizer effect.
* ``motif`` — a TATA-box-like motif placed at a jittered position upstream of the
  centre, for a promoter-like task (optional in the demo config).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dnatok.errors import UserError
from dnatok.io import atomic_path

BASES = np.array(list("ACGT"))


def _markov_background(rng: np.random.Generator, length: int, gc: float) -> np.ndarray:
    """Second-order Markov sequence (as int codes 0..3) with target GC and CpG depletion."""
    at = (1.0 - gc) / 2.0
    base_p = np.array([at, gc / 2.0, gc / 2.0, at])
    # Transition table conditioned on the previous base: after C, G is depleted (CpG ~1/4 of
    # expectation, as in mammalian genomes); the freed mass goes to A/T.
    trans = np.tile(base_p, (4, 1))
    trans[1, 2] *= 0.25
    trans[1] /= trans[1].sum()
    cum = np.cumsum(trans, axis=1)
    u = rng.random(length)
    out = np.empty(length, dtype=np.int8)
    prev = rng.choice(4, p=base_p)
    # A Python loop over positions is slow; instead iterate "draw every base from the row of
    # its current predecessor" to a fixed point. A base can only change when its predecessor
    # did and its uniform falls where rows differ, so chains of changes are short and this
    # converges in a few vectorised passes to exactly the sequential draw.
    out[:] = np.searchsorted(cum[0], u, side="right")
    for _ in range(length + 1):
        prev_codes = np.concatenate(([prev], out[:-1]))
        new = np.empty_like(out)
        for row in range(4):
            sel = prev_codes == row
            new[sel] = np.searchsorted(cum[row], u[sel], side="right")
        if np.array_equal(new, out):
            break
        out = new
    return np.minimum(out, 3)


def _mutate(rng: np.random.Generator, codes: np.ndarray, rate: float) -> np.ndarray:
    codes = codes.copy()
    hit = rng.random(codes.size) < rate
    codes[hit] = (codes[hit] + rng.integers(1, 4, hit.sum())) % 4
    return codes


def _to_str(codes: np.ndarray) -> str:
    return "".join(BASES[codes])


def simulate_genome(fasta_out, bed_out, chromosomes: dict[str, int], interval_len: int,
                    split_fractions: dict[str, float], seed: int = 0,
                    n_repeat_families: int = 6, repeat_len: int = 300, repeat_fraction: float = 0.15,
                    line_width: int = 60) -> None:
    """Write a synthetic genome FASTA and a ``sequences_human.bed``-style interval file.

    The BED has four columns ``chrom start end split`` (tab separated, 0-based half-open)
    with ``split`` in train/valid/test, like Basenji's ``sequences_human.bed``. Intervals
    tile each chromosome; a chromosome's intervals all go to one split, drawn with the
    given fractions (as the original file keeps whole regions per fold).
    """
    if abs(sum(split_fractions.values()) - 1.0) > 1e-6:
        raise UserError(f"split fractions must sum to 1, got {split_fractions}")
    rng = np.random.default_rng(seed)
    families = [_markov_background(rng, repeat_len, 0.5) for _ in range(n_repeat_families)]
    names = sorted(split_fractions)
    probs = np.array([split_fractions[n] for n in names])
    bed_rows = []
    with atomic_path(fasta_out) as fa_tmp, atomic_path(bed_out) as bed_tmp:
        with open(fa_tmp, "w") as fa:
            for chrom, length in chromosomes.items():
                pieces, pos = [], 0
                while pos < length:
                    # GC isochores of 20–60 kb with GC between 0.35 and 0.55.
                    block = int(min(length - pos, rng.integers(20_000, 60_000)))
                    seq = _markov_background(rng, block, float(rng.uniform(0.35, 0.55)))
                    n_copies = int(block * repeat_fraction / repeat_len)
                    for _ in range(n_copies):
                        fam = families[rng.integers(len(families))]
                        copy = _mutate(rng, fam, 0.08)
                        if rng.random() < 0.5:
                            copy = 3 - copy[::-1]  # reverse complement in code space
                        at = int(rng.integers(0, max(1, block - repeat_len)))
                        seq[at:at + repeat_len] = copy[: block - at]
                    pieces.append(seq)
                    pos += block
                chrom_seq = _to_str(np.concatenate(pieces))
                # Telomere-like N run at the start, as real assemblies have.
                chrom_seq = "N" * 500 + chrom_seq[500:]
                fa.write(f">{chrom}\n")
                for i in range(0, len(chrom_seq), line_width):
                    fa.write(chrom_seq[i:i + line_width] + "\n")
                for start in range(0, length - interval_len + 1, interval_len):
                    bed_rows.append((chrom, start, start + interval_len))
        # Whole blocks of 4 consecutive intervals go to one split (neighbours stay together,
        # as in the original file); every split gets at least one block.
        n_blocks = (len(bed_rows) + 3) // 4
        if n_blocks < len(names):
            raise UserError(f"genome too small: {len(bed_rows)} intervals of {interval_len} bp cannot "
                            f"cover the splits {names}; use longer chromosomes or shorter intervals")
        order = rng.permutation(n_blocks)
        counts = {n: max(1, int(round(split_fractions[n] * n_blocks))) for n in names}
        largest = max(names, key=lambda n: split_fractions[n])
        counts[largest] = n_blocks - sum(c for n, c in counts.items() if n != largest)
        block_split = np.empty(n_blocks, dtype=object)
        at = 0
        for n in names:
            block_split[order[at:at + counts[n]]] = n
            at += counts[n]
        with open(bed_tmp, "w") as bed:
            for i, (chrom, start, end) in enumerate(bed_rows):
                bed.write(f"{chrom}\t{start}\t{end}\t{block_split[i // 4]}\n")


# 5' splice site (donor): exon ...MAG | GTRAGT... intron. The invariant GT is what the
# label hinges on; the degenerate positions (M = A/C, R = A/G) and the random flanks make
# the surrounding sequence vary from example to example, as real splice sites do.
DONOR = "MAGGTRAGT"
DONOR_GT = 3              # offset of the invariant G of GT inside DONOR
_IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "M": "AC", "R": "AG"}
TATA = "TATAAAAG"


def _donor_codes(rng) -> np.ndarray:
    return np.array(["ACGT".index(rng.choice(list(_IUPAC[b]))) for b in DONOR], dtype=np.int8)


def _splice_example(rng, length: int, positive: bool) -> str:
    seq = _markov_background(rng, length, 0.45)
    # The site sits near the centre, jittered by a few bases, as a window around an
    # annotated junction would put it.
    at = length // 2 - len(DONOR) // 2 + int(rng.integers(-3, 4))
    motif = _donor_codes(rng)
    if not positive:
        # One substitution in the invariant GT dinucleotide — a broken site. Everything
        # else is drawn from the same distribution as the positives.
        pos = DONOR_GT + int(rng.integers(0, 2))
        motif[pos] = (motif[pos] + rng.integers(1, 4)) % 4
    seq[at:at + len(motif)] = motif
    return _to_str(seq)


def _composition_example(rng, length: int, positive: bool, gc_low: float, gc_high: float) -> str:
    return _to_str(_markov_background(rng, length, gc_high if positive else gc_low))


def _motif_example(rng, length: int, positive: bool) -> str:
    seq = _markov_background(rng, length, 0.5)
    if positive:
        at = length // 2 - 30 + int(rng.integers(-5, 6))
        seq[at:at + len(TATA)] = [ "ACGT".index(b) for b in TATA]
    return _to_str(seq)


SIGNALS = ("splice", "composition", "motif")


def simulate_task(out_dir, signal: str, length: int, n_train: int, n_dev: int, n_test: int,
                  seed: int = 0, gc_low: float = 0.42, gc_high: float = 0.50,
                  label_noise: float = 0.0) -> None:
    """Write ``train.csv``, ``dev.csv`` and ``test.csv`` (header ``sequence,label``),
    balanced binary labels, shuffled, into ``out_dir`` (atomically).

    ``label_noise``: the fraction of examples (in every split) whose recorded label is
    flipped after the sequence was drawn, as an assay mislabels some elements; no model can
    then score above MCC ≈ 1 − 2 × label_noise on the test set.
    """
    if signal not in SIGNALS:
        raise UserError(f"unknown simulated signal {signal!r}; choose one of {', '.join(SIGNALS)}")
    if not 0.0 <= label_noise < 0.5:
        raise UserError(f"label_noise must be in [0, 0.5), got {label_noise}")
    rng = np.random.default_rng(seed)
    with atomic_path(out_dir, is_dir=True) as tmp:
        for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
            labels = np.arange(n) % 2
            rng.shuffle(labels)
            rows = []
            for y in labels:
                if signal == "splice":
                    s = _splice_example(rng, length, bool(y))
                elif signal == "composition":
                    s = _composition_example(rng, length, bool(y), gc_low, gc_high)
                else:
                    s = _motif_example(rng, length, bool(y))
                # Drawn for every example, so the sequences do not depend on label_noise.
                flip = rng.random() < label_noise
                rows.append(f"{s},{int(y) ^ int(flip)}")
            (tmp / f"{split}.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")


# ---------------------------------------------------------------- command line
def _cmd_genome(args) -> None:
    import json

    spec = json.loads(args.spec)
    try:
        simulate_genome(args.fasta, args.bed, chromosomes=spec["chromosomes"], interval_len=spec["interval_len"],
                        split_fractions=spec["split_fractions"], seed=spec.get("seed", 0))
    except KeyError as err:
        raise UserError(f"simulate genome: the spec lacks {err}") from None


def _cmd_task(args) -> None:
    import json

    spec = json.loads(args.spec)
    fields = {k: spec[k] for k in ("signal", "length", "n_train", "n_dev", "n_test") if k in spec}
    missing = {"signal", "length", "n_train", "n_dev", "n_test"} - set(fields)
    if missing:
        raise UserError(f"simulate task: the spec lacks {sorted(missing)}")
    extra = {k: spec[k] for k in ("gc_low", "gc_high", "label_noise") if k in spec}
    simulate_task(args.out, seed=spec.get("seed", 0), **fields, **extra)


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="generate the embedded demo's genome and tasks")
    sub = p.add_subparsers(dest="simulate_command", required=True)
    g = sub.add_parser("genome", help="synthetic genome FASTA + sequences_human.bed-style intervals")
    g.add_argument("--spec", required=True, help="JSON: chromosomes, interval_len, split_fractions, seed")
    g.add_argument("--fasta", required=True)
    g.add_argument("--bed", required=True)
    g.set_defaults(func=_cmd_genome)
    t = sub.add_parser("task", help="a GUE-format task folder with a planted signal")
    t.add_argument("--spec", required=True, help="JSON: signal, length, n_train, n_dev, n_test, seed")
    t.add_argument("--out", required=True)
    t.set_defaults(func=_cmd_task)
