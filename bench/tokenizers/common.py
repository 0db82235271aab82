"""Benchmark corpus shared by the tokenizer benchmarks (see RESULTS.md for the rationale).

The only real genome sequence on this machine is a 2.33 Mbp fragment of hg38 chr2
(2,323,275 bp after dropping its leading 10 kbp N run). A 20 Mbp corpus is built from it
deterministically: 1,000 bp windows of the forward strand and of the reverse complement,
each strand cut at several window phases (forward 0/200/400/600/800 bp, reverse
100/300/500/700 bp) until 20 Mbp are reached. The windows are therefore all distinct
strings (no trainer can shortcut by de-duplicating them), while the base composition and
k-mer statistics are those of real human sequence.
"""
from __future__ import annotations

from pathlib import Path

from dnatok.tokenization import reverse_complement
from dnatok.tokenization.corpus import read_sequences

REPO = Path(__file__).resolve().parents[2]
GENOME = REPO.parent / "shared" / "data" / "genome" / "hg38_chr2_1-2333275.fa.gz"
GUE = REPO.parent / "shared" / "data" / "gue"
WINDOW = 1000
PHASES = [("+", 0), ("-", 100), ("+", 200), ("-", 300), ("+", 400), ("-", 500), ("+", 600),
          ("-", 700), ("+", 800)]


def genome_acgt() -> str:
    seq = next(read_sequences(GENOME))
    return seq.replace("N", "")


def build_corpus(total_bp: int = 20_000_000, window: int = WINDOW) -> list[str]:
    fwd = genome_acgt()
    strands = {"+": fwd, "-": reverse_complement(fwd)}
    out, n = [], 0
    for strand, phase in PHASES:
        s = strands[strand]
        for i in range(phase, len(s) - window + 1, window):
            out.append(s[i:i + window])
            n += window
            if n >= total_bp:
                return out
    raise ValueError(f"cannot build {total_bp} bp from {len(PHASES)} phases")
