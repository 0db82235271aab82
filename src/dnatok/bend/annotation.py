"""Gene models for BEND-style labels: one transcript per gene, with exons and CDS.

Two sources:

* :func:`read_exon_models` — the SpliceAI annotation table (``grch38.txt`` layout:
  ``NAME CHROM STRAND TX_START TX_END EXON_START EXON_END``, comma lists with a trailing
  comma, 0-based half-open, chromosome without ``chr``). It has no CDS; use
  :func:`infer_cds`.
* :func:`read_gtf` — a GENCODE GTF (plain or gzip). One transcript per gene: the one tagged
  ``Ensembl_canonical``; else the ``basic`` one with the longest CDS; else the longest
  (spliced length). The CDS span is min/max over the ``CDS`` rows **and** ``stop_codon``
  rows, i.e. it includes the stop codon (GENCODE's CDS rows exclude it). That matches
  UCSC/MANE ``thickStart``/``thickEnd`` and the ORF inference below; BEND's own label code
  is not public, so whether BEND counted the stop codon as CDS is unknown.

Coordinates are 0-based half-open throughout. Chromosome names are matched to a genome's
names by :func:`normalize_chroms` (``'2'`` vs ``'chr2'``, via
:func:`dnatok.bend.format.resolve_chrom`).
"""
from __future__ import annotations

import dataclasses
import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from dnatok.bend.format import _open, resolve_chrom
from dnatok.errors import DataError, UserError

STOP_CODONS = ("TAA", "TAG", "TGA")


@dataclass
class Transcript:
    gene: str
    transcript_id: str
    chrom: str
    strand: str
    tx_start: int
    tx_end: int
    exons: list[tuple[int, int]]
    cds: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def introns(self) -> list[tuple[int, int]]:
        """Introns in genomic order (between consecutive exons), half-open."""
        return [(a[1], b[0]) for a, b in zip(self.exons, self.exons[1:])]

    @property
    def spliced_length(self) -> int:
        return sum(e - s for s, e in self.exons)


def _check_exons(path, line, exons, tx_start, tx_end, strand):
    if strand not in ("+", "-"):
        raise DataError(path, line, f"strand {strand!r} is not + or -")
    if not 0 <= tx_start < tx_end:
        raise DataError(path, line, f"transcript span {tx_start}-{tx_end} is empty or negative")
    if not exons:
        raise DataError(path, line, "no exons")
    for s, e in exons:
        if not s < e:
            raise DataError(path, line, f"exon {s}-{e} is empty")
        if s < tx_start or e > tx_end:
            raise DataError(path, line, f"exon {s}-{e} lies outside the transcript {tx_start}-{tx_end}")
    for (s1, e1), (s2, e2) in zip(exons, exons[1:]):
        if s2 < s1:
            raise DataError(path, line, f"exons are not sorted ({s1}-{e1} before {s2}-{e2})")
        if s2 <= e1:
            raise DataError(path, line, f"exons {s1}-{e1} and {s2}-{e2} overlap or touch")


def _int_list(path, line, text, what):
    try:
        return [int(x) for x in text.strip().rstrip(",").split(",") if x.strip() != ""]
    except ValueError:
        raise DataError(path, line, f"{what} {text!r} is not a comma list of integers") from None


def read_exon_models(path) -> list[Transcript]:
    """Transcripts of a SpliceAI-style exon-model table (header line optional, ``#``-prefixed)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"annotation file {path} does not exist")
    out, seen = [], {}
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\n\r")
            if not line.strip() or line.startswith("#") or (lineno == 1 and line.upper().startswith("NAME")):
                continue
            f = line.split("\t")
            if len(f) < 7:
                raise DataError(path, lineno, f"{len(f)} columns, expected 7 (NAME CHROM STRAND TX_START "
                                              "TX_END EXON_START EXON_END)")
            name, chrom, strand = f[0], f[1], f[2]
            try:
                tx_start, tx_end = int(f[3]), int(f[4])
            except ValueError:
                raise DataError(path, lineno, f"TX_START/TX_END {f[3]!r}, {f[4]!r} are not integers") from None
            starts = _int_list(path, lineno, f[5], "EXON_START")
            ends = _int_list(path, lineno, f[6], "EXON_END")
            if len(starts) != len(ends):
                raise DataError(path, lineno, f"{len(starts)} exon starts but {len(ends)} exon ends")
            exons = list(zip(starts, ends))
            _check_exons(path, lineno, exons, tx_start, tx_end, strand)
            if name in seen:
                raise DataError(path, lineno, f"gene {name} appears twice (also line {seen[name]})")
            seen[name] = lineno
            out.append(Transcript(gene=name, transcript_id=name, chrom=chrom, strand=strand,
                                  tx_start=tx_start, tx_end=tx_end, exons=exons, cds=None,
                                  meta={"source": str(path), "line": lineno}))
    return out


_ATTR = re.compile(r'\s*([^\s;]+)\s+(?:"([^"]*)"|([^;\s]+))\s*;?')


def _attributes(text: str) -> tuple[dict, list[str]]:
    attrs, tags = {}, []
    for m in _ATTR.finditer(text):
        key, val = m.group(1), m.group(2) if m.group(2) is not None else m.group(3)
        if key == "tag":
            tags.append(val)
        else:
            attrs.setdefault(key, val)
    return attrs, tags


_GTF_FEATURES = ("transcript", "exon", "CDS", "stop_codon")
_GTF_LISTS = {"exon": "exons", "CDS": "cds", "stop_codon": "stop"}  # feature -> list in a transcript's rows


def read_gtf(path, chroms: Iterable[str] | None = None) -> list[Transcript]:
    """One transcript per gene of a GENCODE GTF (see the module docstring for the choice).

    ``chroms`` restricts to those chromosomes (names compared with or without ``chr``).
    Transcripts without CDS rows keep ``cds=None``. Each transcript's ``meta`` has its tags,
    ``transcript_type``, ``gene_id`` and why it was chosen.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"GTF file {path} does not exist")
    tx = _gtf_transcript_rows(path, _chrom_spellings(chroms))
    by_gene: dict[str, list[Transcript]] = {}
    for tid, t in tx.items():
        if t["exons"]:
            by_gene.setdefault(t["gene_id"], []).append(_gtf_transcript(path, tid, t))
    names: dict[str, list[str]] = {}
    for gid, trs in by_gene.items():
        names.setdefault(trs[0].gene, []).append(gid)
    out = []
    for gid, trs in by_gene.items():
        best = _choose_transcript(trs)
        if len(names[best.gene]) > 1:  # the same gene name on two gene ids (e.g. PAR copies)
            best.gene = f"{best.gene}|{gid}"
        out.append(best)
    out.sort(key=lambda t: (t.chrom, t.tx_start, t.gene))
    return out


def _chrom_spellings(chroms: Iterable[str] | None) -> set[str] | None:
    """Every chromosome name of ``chroms`` with and without ``chr`` (None: no restriction)."""
    if chroms is None:
        return None
    want = set()
    for c in chroms:
        want |= {c, c[3:] if c.startswith("chr") else "chr" + c}
    return want


def _gtf_transcript_rows(path: Path, want: set[str] | None) -> dict[str, dict]:
    """{transcript id: its chromosome, strand, gene, type, tags, span and the intervals of its
    exon, CDS and stop_codon rows} of the GTF's rows on the chromosomes ``want`` (None: all)."""
    tx: dict[str, dict] = {}
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(path, "rt") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if raw.startswith("#") or not raw.strip():
                continue
            row = _gtf_row(path, lineno, raw, want)
            if row is not None:
                _add_gtf_row(path, lineno, tx, *row)
    return tx


def _gtf_row(path: Path, lineno: int, raw: str, want: set[str] | None):
    """(feature, chromosome, start, end, strand, attributes, tags) of one GTF line, 0-based
    half-open; None for features not read here or chromosomes not wanted."""
    f = raw.rstrip("\n\r").split("\t")
    if len(f) != 9:
        raise DataError(path, lineno, f"{len(f)} columns, a GTF line has 9")
    chrom, feature = f[0], f[2]
    if feature not in _GTF_FEATURES:
        return None
    if want is not None and chrom not in want:
        return None
    try:
        start, end = int(f[3]) - 1, int(f[4])
    except ValueError:
        raise DataError(path, lineno, f"start/end {f[3]!r}, {f[4]!r} are not integers") from None
    if not 0 <= start < end:
        raise DataError(path, lineno, f"bad interval {f[3]}-{f[4]}")
    strand = f[6]
    if strand not in ("+", "-"):
        raise DataError(path, lineno, f"strand {strand!r} is not + or -")
    attrs, tags = _attributes(f[8])
    return feature, chrom, start, end, strand, attrs, tags


def _add_gtf_row(path: Path, lineno: int, tx: dict[str, dict], feature, chrom, start, end, strand,
                 attrs, tags) -> None:
    """Record one GTF row in its transcript's entry of ``tx`` (created on first sight)."""
    tid = attrs.get("transcript_id")
    if tid is None:
        raise DataError(path, lineno, f"{feature} row without transcript_id")
    t = tx.setdefault(tid, {"chrom": chrom, "strand": strand, "gene_id": attrs.get("gene_id", tid),
                            "gene": attrs.get("gene_name") or attrs.get("gene_id") or tid,
                            "type": attrs.get("transcript_type") or attrs.get("transcript_biotype"),
                            "tags": set(), "span": None, "exons": [], "cds": [], "stop": [],
                            "line": lineno})
    if (t["chrom"], t["strand"]) != (chrom, strand):
        raise DataError(path, lineno, f"transcript {tid} changes chromosome/strand "
                                      f"(first seen line {t['line']})")
    t["tags"].update(tags)
    if feature == "transcript":
        t["span"] = (start, end)
    else:
        t[_GTF_LISTS[feature]].append((start, end))


def _gtf_transcript(path: Path, tid: str, t: dict) -> Transcript:
    """The checked Transcript of a transcript's GTF rows (``t``: an entry of
    :func:`_gtf_transcript_rows`, with exons); the CDS span includes the stop codon."""
    exons = sorted(set(t["exons"]))
    span = t["span"] or (exons[0][0], exons[-1][1])
    _check_exons(path, t["line"], exons, span[0], span[1], t["strand"])
    coding = t["cds"] + t["stop"]
    cds = (min(s for s, _ in coding), max(e for _, e in coding)) if t["cds"] else None
    cds_bases = sum(e - s for s, e in coding) if t["cds"] else 0
    return Transcript(gene=t["gene"], transcript_id=tid, chrom=t["chrom"], strand=t["strand"],
                      tx_start=span[0], tx_end=span[1], exons=exons, cds=cds,
                      meta={"source": str(path), "line": t["line"], "gene_id": t["gene_id"],
                            "transcript_type": t["type"], "tags": sorted(t["tags"]),
                            "cds_bases": cds_bases, "cds_includes_stop": bool(t["stop"])})


def _choose_transcript(trs: list[Transcript]) -> Transcript:
    """A gene's transcript (see the module docstring), with ``meta['chosen_because']`` set."""
    canon = [t for t in trs if "Ensembl_canonical" in t.meta["tags"]]
    basic = [t for t in trs if "basic" in t.meta["tags"] and t.cds is not None]
    if canon:
        pool, why = canon, "Ensembl_canonical"
        key = lambda t: (-t.spliced_length, t.transcript_id)  # noqa: E731
    elif basic:
        pool, why = basic, "basic, longest CDS"
        key = lambda t: (-t.meta["cds_bases"], -t.spliced_length, t.transcript_id)  # noqa: E731
    else:
        pool, why = trs, "longest transcript"
        key = lambda t: (-t.spliced_length, t.transcript_id)  # noqa: E731
    best = sorted(pool, key=key)[0]
    best.meta["chosen_because"] = why
    return best


def normalize_chroms(transcripts: list[Transcript], names: Iterable[str], lengths: dict[str, int] | None = None
                     ) -> tuple[list[Transcript], list[str]]:
    """Rename each transcript's chromosome to the genome's spelling; returns (kept, dropped
    gene names) — dropped: chromosome not in the genome, or (with ``lengths``) the transcript
    runs past the chromosome's end (e.g. a whole-genome table against a genome piece)."""
    names = set(names)
    kept, dropped = [], []
    for t in transcripts:
        key = resolve_chrom(t.chrom, names)
        if key is None or (lengths is not None and t.tx_end > lengths[key]):
            dropped.append(t.gene)
            continue
        kept.append(t if key == t.chrom else dataclasses.replace(t, chrom=key, meta=dict(t.meta)))
    return kept, dropped


def spliced_sequence(transcript: Transcript, genome) -> tuple[str, list[int]]:
    """(mRNA sequence in transcript orientation, genomic position of each of its bases)."""
    from dnatok.data.genome import reverse_complement

    fa = _open(genome)
    key = resolve_chrom(transcript.chrom, set(fa.keys()))
    if key is None:
        raise UserError(f"{transcript.gene}: chromosome {transcript.chrom!r} is not in the genome")
    seq = "".join(str(fa[key][s:e]).upper() for s, e in transcript.exons)
    pos = [p for s, e in transcript.exons for p in range(s, e)]
    if len(seq) != len(pos):
        raise UserError(f"{transcript.gene}: exons run past the end of {key}")
    if transcript.strand == "-":
        seq, pos = reverse_complement(seq), pos[::-1]
    return seq, pos


def longest_orf(seq: str) -> tuple[int, int] | None:
    """(start, end) in ``seq`` of the longest ATG...stop ORF, stop codon included; ties go
    to the most 5' one; ORFs without a stop codon are not counted."""
    best = None
    for frame in range(3):
        first_atg = None
        for i in range(frame, len(seq) - 2, 3):
            codon = seq[i:i + 3]
            if first_atg is None and codon == "ATG":
                first_atg = i
            elif codon in STOP_CODONS:
                if first_atg is not None:
                    cand = (first_atg, i + 3)
                    if best is None or (cand[1] - cand[0], -cand[0]) > (best[1] - best[0], -best[0]):
                        best = cand
                first_atg = None
    return best


def infer_cds(transcript: Transcript, genome) -> Transcript:
    """The transcript with ``cds`` set to the genomic span (stop codon included) of the longest
    ATG...stop ORF of its spliced mRNA, when it has none; ``meta['cds_inferred']`` and
    ``meta['orf_aa']`` (protein length) record it. Transcripts with a CDS come back as they are."""
    if transcript.cds is not None:
        return transcript
    seq, pos = spliced_sequence(transcript, genome)
    orf = longest_orf(seq)
    meta = dict(transcript.meta, cds_inferred=True)
    if orf is None:
        meta["orf_aa"] = 0
        return dataclasses.replace(transcript, meta=meta)
    a, b = pos[orf[0]], pos[orf[1] - 1]
    meta["orf_aa"] = (orf[1] - orf[0]) // 3 - 1
    meta["orf_mrna"] = list(orf)
    return dataclasses.replace(transcript, cds=(min(a, b), max(a, b) + 1), meta=meta)
