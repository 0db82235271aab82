"""Zero-shot variant sets in the spirit of BEND's variant-effect tasks, built from gene models.

Real variant-effect labels (eQTL, ClinVar) are not available offline, so the positives are
SNVs that break an annotated splice dinucleotide (label 1: one base of the donor GT or the
acceptor AG, on the transcript strand) and the negatives deep-intronic SNVs (label 0: at
least ``min_intron_distance`` bases from every exon of every transcript). A model's score is
then e.g. the cosine distance between ref and alt embeddings at the variant (BEND's
mechanism), and AUROC separates the two kinds.

Determinism: the base changed in each dinucleotide and the deep positions come from
``numpy.random.default_rng(seed)``; the alt base is the fixed transversion A->C, C->A,
G->T, T->G of the + strand reference base (so a donor G never becomes the GC of a
non-canonical donor).

File: BED-like TSV with header ``chromosome start end ref alt label id gene kind``
(start = pos, end = pos + 1, + strand bases).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnatok.bend.format import _open, resolve_chrom
from dnatok.data.genome import reverse_complement
from dnatok.errors import DataError, UserError
from dnatok.io import atomic_path

HEADER = ("chromosome", "start", "end", "ref", "alt", "label", "id", "gene", "kind")
ALT = {"A": "C", "C": "A", "G": "T", "T": "G"}


@dataclass
class Variant:
    id: str
    chrom: str
    pos: int
    ref: str
    alt: str
    label: int
    gene: str
    kind: str


def _transcripts(annotation, genome, fmt):
    if isinstance(annotation, (str, Path)):
        from dnatok.bend.gene_finding import load_transcripts

        ts, _, _ = load_transcripts(annotation, genome, fmt)
        return ts
    from dnatok.bend.annotation import normalize_chroms

    fa = _open(genome)
    lengths = {k: len(fa[k]) for k in fa.keys()}
    return normalize_chroms(list(annotation), lengths, lengths)[0]


def splice_variants(annotation, genome, n_deep_per_intron: int = 2, min_intron_distance: int = 200,
                    seed: int = 0, fmt: str = "exon_models") -> list[Variant]:
    """Splice-breaking (label 1) and deep-intronic (label 0) SNVs of every intron.

    ``annotation`` is a path (read as ``fmt``) or a list of Transcripts. Splice sites whose
    dinucleotide is not GT (donor) / AG (acceptor) on the transcript strand are skipped;
    deep positions on N bases are skipped. Sorted by chromosome and position.
    """
    if n_deep_per_intron < 0 or min_intron_distance < 1:
        raise UserError("n_deep_per_intron must be >= 0 and min_intron_distance >= 1")
    fa = _open(genome)
    transcripts = _transcripts(annotation, fa, fmt)
    rng = np.random.default_rng(seed)
    exon_distance = _exon_distance(transcripts)
    out: list[Variant] = []
    for t in sorted(transcripts, key=lambda t: (t.chrom, t.tx_start, t.gene)):
        seq = fa[t.chrom]
        introns = t.introns
        n = len(introns)
        for gi, (a, b) in enumerate(introns):
            num = gi + 1 if t.strand == "+" else n - gi  # intron number in transcript orientation
            out += _splice_site_variants(t, seq, a, b, num, rng)
            out += _deep_variants(t, seq, a, b, num, rng, n_deep_per_intron, min_intron_distance, exon_distance)
    out.sort(key=lambda v: (v.chrom, v.pos, v.id))
    return out


def _exon_distance(transcripts):
    """``exon_distance(chrom, p)``: bases from p to the nearest exon base of any of
    ``transcripts`` (0 inside an exon)."""
    exons_by_chrom: dict[str, list[tuple[int, int]]] = {}
    for t in transcripts:
        exons_by_chrom.setdefault(t.chrom, []).extend(t.exons)
    exon_arrays = {c: (np.array([s for s, _ in ex]), np.array([e for _, e in ex]))
                   for c, ex in exons_by_chrom.items()}

    def exon_distance(chrom, p):
        s, e = exon_arrays[chrom]
        return int(np.maximum(np.maximum(s - p, p - e + 1), 0).min())

    return exon_distance


def _splice_site_variants(t, seq, a: int, b: int, num: int, rng) -> list[Variant]:
    """Label-1 SNVs of intron ``num`` ([a, b)) of ``t``: one base of its donor GT and of its
    acceptor AG (``seq``: the chromosome), skipping a site without its dinucleotide."""
    if t.strand == "+":
        sites = (("donor", a, "GT"), ("acceptor", b - 2, "AG"))
    else:
        sites = (("donor", b - 2, "GT"), ("acceptor", a, "AG"))
    out = []
    for kind, p, motif in sites:
        plus = str(seq[p:p + 2]).upper()
        tx = plus if t.strand == "+" else reverse_complement(plus)
        if tx != motif:
            continue
        q = p + int(rng.integers(2))
        ref = plus[q - p]
        out.append(Variant(id=f"{t.gene}:{kind}:{num}", chrom=t.chrom, pos=q, ref=ref, alt=ALT[ref],
                           label=1, gene=t.gene, kind=kind))
    return out


def _deep_variants(t, seq, a: int, b: int, num: int, rng, n_deep: int, min_distance: int,
                   exon_distance) -> list[Variant]:
    """Up to ``n_deep`` label-0 SNVs of intron ``num`` ([a, b)) of ``t``, at least
    ``min_distance`` bases from every exon, on A/C/G/T bases of ``seq`` (the chromosome)."""
    lo, hi = a + min_distance - 1, b - min_distance + 1  # candidates [lo, hi)
    if n_deep == 0 or hi <= lo:
        return []
    picks = rng.choice(hi - lo, size=min(n_deep * 4, hi - lo), replace=False) + lo
    out = []
    for p in sorted(int(x) for x in picks):
        if len(out) == n_deep:
            break
        ref = str(seq[p:p + 1]).upper()
        if ref not in ALT or exon_distance(t.chrom, p) < min_distance:
            continue
        out.append(Variant(id=f"{t.gene}:deep:{num}:{len(out)}", chrom=t.chrom, pos=p, ref=ref, alt=ALT[ref],
                           label=0, gene=t.gene, kind="deep_intronic"))
    return out


def write_variants(path, variants) -> None:
    """Write the TSV atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write("\t".join(HEADER) + "\n")
        for v in variants:
            fh.write("\t".join([v.chrom, str(v.pos), str(v.pos + 1), v.ref, v.alt, str(int(v.label)),
                                v.id, v.gene, v.kind]) + "\n")


def read_variants(path, genome=None) -> list[Variant]:
    """Read and check a variant TSV; with ``genome`` each ref must equal the genome's base."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"variant file {path} does not exist")
    fa = _open(genome) if genome is not None else None
    names = set(fa.keys()) if fa is not None else None
    out = []
    with open(path) as fh:
        header = fh.readline().rstrip("\n\r").lstrip("#").split("\t")
        if tuple(header) != HEADER:
            raise DataError(path, 1, f"header {' '.join(header)!r}: expected {' '.join(HEADER)!r} (tab-separated)")
        for lineno, raw in enumerate(fh, start=2):
            line = raw.rstrip("\n\r")
            if not line.strip():
                continue
            f = line.split("\t")
            if len(f) != len(HEADER):
                raise DataError(path, lineno, f"{len(f)} columns, expected {len(HEADER)}")
            chrom, s, e, ref, alt, label, vid, gene, kind = f
            try:
                start, end, lab = int(s), int(e), int(label)
            except ValueError:
                raise DataError(path, lineno, f"start/end/label {s!r}, {e!r}, {label!r} are not integers") from None
            if start < 0 or end != start + 1:
                raise DataError(path, lineno, f"an SNV needs end = start + 1 (got {start}-{end})")
            ref, alt = ref.upper(), alt.upper()
            if ref not in ALT or alt not in ALT or ref == alt:
                raise DataError(path, lineno, f"ref/alt {ref!r}/{alt!r} must be two different bases of ACGT")
            if lab not in (0, 1):
                raise DataError(path, lineno, f"label {label!r} is not 0 or 1")
            if fa is not None:
                key = resolve_chrom(chrom, names)
                if key is None:
                    raise DataError(path, lineno, f"chromosome {chrom!r} is not in the genome {genome}")
                base = str(fa[key][start:end]).upper()
                if base != ref:
                    raise DataError(path, lineno, f"ref {ref} but the genome has {base or 'nothing'} at "
                                                  f"{key}:{start}")
            out.append(Variant(id=vid, chrom=chrom, pos=start, ref=ref, alt=alt, label=lab, gene=gene, kind=kind))
    return out
