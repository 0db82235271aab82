"""BEND's 9-class per-base gene-finding labels (``labels_simple_direction_DA``).

Classes: 0 CDS+, 1 donor+, 2 intron+, 3 acceptor+, 4 CDS-, 5 donor-, 6 intron-,
7 acceptor-, 8 non-coding (UTR exon bases, intergenic). The strand in the class name is the
transcript's strand; positions are on the + strand (BEND embeds gene finding on + only).

* CDS = exon bases inside the transcript's CDS span (which includes the stop codon, see
  :mod:`dnatok.bend.annotation`); other exon bases (UTRs) are 8.
* Intron = every base between two consecutive exons, **also in the UTR region** (before
  the CDS start / after its end): BEND counts introns as introns regardless; donor and
  acceptor are labelled there as everywhere else.
* Donor = the first intron base in transcript orientation, acceptor = the last. On the
  + strand class 1 is the G of GT at p (GT at p..p+1) and class 3 the G of AG at p (AG at
  p-1..p); on the - strand class 5 sits at p with the reverse-complement GT ("AC" on +) at
  p-1..p and class 7 at p with the reverse-complement AG ("CT" on +) at p..p+1.
* A transcript without a CDS (non-coding) gets 8 on its exons and intron classes between them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dnatok.errors import UserError

CLASS_NAMES = ("CDS+", "donor+", "intron+", "acceptor+", "CDS-", "donor-", "intron-", "acceptor-",
               "non-coding")
NUM_CLASSES = len(CLASS_NAMES)
NONCODING = 8
_OFFSET = {"+": 0, "-": 4}
CDS, DONOR, INTRON, ACCEPTOR = 0, 1, 2, 3


def _fill(arr, start, end, a, b, value):
    a, b = max(a, start), min(b, end)
    if a < b:
        arr[a - start:b - start] = value


def base_labels(transcript, start: int, end: int) -> np.ndarray:
    """int8 labels of the window ``[start, end)`` from one transcript (8 outside it)."""
    if not start < end:
        raise UserError(f"empty window {start}-{end}")
    off = _OFFSET[transcript.strand]
    arr = np.full(end - start, NONCODING, np.int8)
    cds = transcript.cds
    if cds is not None:
        for s, e in transcript.exons:
            _fill(arr, start, end, max(s, cds[0]), min(e, cds[1]), off + CDS)
    for a, b in transcript.introns:
        _fill(arr, start, end, a, b, off + INTRON)
        first, last = (a, b - 1) if transcript.strand == "+" else (b - 1, a)
        for p, cls in ((last, ACCEPTOR), (first, DONOR)):  # a 1-base intron ends up donor
            if start <= p < end:
                arr[p - start] = off + cls
    return arr


def window_labels(transcripts: Sequence, start: int, end: int, chrom: str | None = None) -> np.ndarray:
    """Labels of ``[start, end)`` from every transcript overlapping it (of ``chrom`` when given).

    Applied in a fixed order (by tx_start, then gene); a transcript only fills bases that
    are still 8. Two transcripts claiming one base with different non-8 classes is an
    error naming both.
    """
    arr = np.full(end - start, NONCODING, np.int8)
    owner = np.full(end - start, -1, np.int32)
    hits = [t for t in transcripts if t.tx_start < end and t.tx_end > start and (chrom is None or t.chrom == chrom)]
    hits.sort(key=lambda t: (t.tx_start, t.gene))
    for k, t in enumerate(hits):
        lab = base_labels(t, start, end)
        mine = lab != NONCODING
        clash = mine & (arr != NONCODING) & (arr != lab)
        if clash.any():
            i = int(np.flatnonzero(clash)[0])
            other = hits[owner[i]]
            raise UserError(f"{t.gene} and {other.gene} give base {t.chrom}:{start + i} different classes "
                            f"({CLASS_NAMES[lab[i]]} vs {CLASS_NAMES[arr[i]]}); overlapping genes are not "
                            "supported")
        take = mine & (arr == NONCODING)
        arr[take] = lab[take]
        owner[take] = k
    return arr
