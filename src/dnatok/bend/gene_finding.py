"""The offline ``gene_finding`` task: BEND's per-base 9-class task, built from real gene models.

Windows per gene: the whole gene +- ``flank_bp`` (clipped to the chromosome) when it fits in
``max_window_bp``; otherwise that region is cut into the fewest equal tiles of at most
``max_window_bp`` and only tiles with at least one exon base are kept (ids ``GENE:k``, k the
0-based tile number within the gene's region). With ``window_bp`` every gene is instead cut
into tiles of exactly ``window_bp`` (the last one shifted back to end at the region's end;
a region shorter than ``window_bp`` is one shorter window).

No base lies in windows of two splits (:func:`separate_splits`): wherever a window of one
split overlaps a window of another split on the same chromosome, both are cut at the
midpoint of their overlap so that they abut (the earlier-starting window ends there, the
other starts there; cuts are computed on the untrimmed windows, a window keeps its tightest
cut on each side, and one left empty is dropped). Windows of the same split may still overlap
(they are kept as they are, not merged). Cutting may take a gene's exon bases out of its own
window only while they stay inside another window of the gene's split; otherwise the genes
overlap too much to be split apart and the build fails naming both (put them in one split).
``meta['source']['split_trims']`` lists every cut pair with the bases each side lost,
``trimmed_bases`` the total and ``shared_bases`` (0) the bases left in two splits. Labels
are computed on the final windows from every gene overlapping them
(:func:`dnatok.bend.labels.window_labels`), so a flank reaching into a neighbouring gene of
the same split carries that gene's labels too.

Splits are by gene, with both strands in each split. The default fits the chr2 piece
(``../shared/data/genome``): test = TMEM18 (-) + TPO (+), valid = FAM110C (-) + ACP1 (+),
train = the rest. Sequences are read on the + strand (``read_strand`` false), as BEND does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dnatok.bend.annotation import infer_cds, normalize_chroms, read_exon_models, read_gtf
from dnatok.bend.format import SPLITS, BendRecord, _open, file_sha256, write_task
from dnatok.bend.labels import CLASS_NAMES, NUM_CLASSES, window_labels
from dnatok.errors import UserError

DEFAULT_SPLITS = {"TMEM18": "test", "TPO": "test", "FAM110C": "valid", "ACP1": "valid"}
FORMATS = ("exon_models", "gtf")


def load_transcripts(annotation_path, genome, fmt: str = "exon_models"):
    """(transcripts with a CDS on the genome's chromosome names, dropped gene names, info).

    Exon models get their CDS by :func:`infer_cds`; GTF transcripts without CDS rows are
    inferred the same way. Genes not on the genome (or past its end) are dropped.
    """
    if fmt not in FORMATS:
        raise UserError(f"annotation format {fmt!r}: expected one of {', '.join(FORMATS)}")
    fa = _open(genome)
    lengths = {k: len(fa[k]) for k in fa.keys()}
    raw = read_exon_models(annotation_path) if fmt == "exon_models" else read_gtf(annotation_path)
    kept, dropped = normalize_chroms(raw, lengths, lengths)
    out = []
    for t in kept:
        t = infer_cds(t, fa)
        if t.cds is None:
            dropped.append(t.gene)
            continue
        out.append(t)
    return out, dropped, lengths


def gene_windows(t, chrom_len: int, flank_bp: int, max_window_bp: int, window_bp: int | None = None
                 ) -> list[tuple[str, int, int]]:
    """[(id, start, end)] of one gene (see the module docstring)."""
    lo, hi = max(0, t.tx_start - flank_bp), min(chrom_len, t.tx_end + flank_bp)
    n = hi - lo
    if window_bp is not None:
        if n <= window_bp:
            tiles = [(lo, hi)]
        else:
            starts = list(range(lo, hi - window_bp, window_bp)) + [hi - window_bp]
            tiles = [(s, s + window_bp) for s in starts]
    elif n <= max_window_bp:
        return [(t.gene, lo, hi)]
    else:
        k = math.ceil(n / max_window_bp)
        edges = [lo + (i * n) // k for i in range(k + 1)]
        tiles = list(zip(edges, edges[1:]))
    if len(tiles) == 1:
        return [(t.gene, *tiles[0])]
    return [(f"{t.gene}:{i}", a, b) for i, (a, b) in enumerate(tiles)
            if any(s < b and e > a for s, e in t.exons)]


@dataclass
class Window:
    """One window of a gene, before and after :func:`separate_splits`."""
    id: str
    gene: str
    chrom: str
    start: int
    end: int
    strand: str
    split: str


def _uncovered(exons, spans):
    """The first exon base not inside the union of ``spans`` [(start, end)], or None."""
    spans = sorted(spans)
    for s, e in exons:
        p = s
        for a, b in spans:
            if b <= p:
                continue
            if a > p:
                break
            p = b
            if p >= e:
                break
        if p < e:
            return p
    return None


def separate_splits(windows: list[Window], exons: dict[str, list[tuple[int, int]]]
                    ) -> tuple[list[Window], list[dict]]:
    """(windows trimmed so that no base lies in two splits, the cuts made); see the module
    docstring. ``exons`` is {gene: exons} (genomic, half-open) for the genes of ``windows``;
    windows left empty are dropped. Raises :class:`UserError` naming both genes when a cut
    would leave an exon base of a gene outside every window of the gene's split."""
    cut = [[w.start, w.end] for w in windows]
    trims, hits = [], {i: [] for i in range(len(windows))}  # hits[i]: (removed lo, hi, partner)
    order = sorted(range(len(windows)), key=lambda i: (windows[i].chrom, windows[i].start, windows[i].end, i))
    for p, i in enumerate(order):
        L = windows[i]
        for j in order[p + 1:]:
            R = windows[j]
            if R.chrom != L.chrom or R.start >= L.end:
                break
            if R.split == L.split:
                continue
            lo, hi = R.start, min(L.end, R.end)
            m = (lo + hi) // 2
            cut[i][1] = min(cut[i][1], m)
            cut[j][0] = max(cut[j][0], m)
            hits[i].append((m, L.end, j))
            hits[j].append((R.start, m, i))
            trims.append({"windows": [L.id, R.id], "genes": [L.gene, R.gene], "splits": [L.split, R.split],
                          "chrom": L.chrom, "overlap": [lo, hi], "cut_at": m,
                          "trimmed_bp": [L.end - m, m - R.start], "bases": (L.end - m) + (m - R.start)})
    out = [Window(w.id, w.gene, w.chrom, a, b, w.strand, w.split)
           for w, (a, b) in zip(windows, cut) if a < b]
    spans: dict[tuple[str, str], list] = {}
    for w in out:
        spans.setdefault((w.chrom, w.split), []).append((w.start, w.end))
    seen = set()
    for w in windows:
        if w.gene in seen:
            continue
        seen.add(w.gene)
        p = _uncovered(exons[w.gene], spans.get((w.chrom, w.split), []))
        if p is None:
            continue
        own = [i for i, v in enumerate(windows) if v.gene == w.gene and v.start <= p < v.end]
        partner = next((windows[k] for i in own for a, b, k in hits[i] if a <= p < b), None)
        other = f"{partner.gene} ({partner.split}, window {partner.id})" if partner else "a gene of another split"
        raise UserError(f"windows of genes {w.gene} ({w.split}) and {other} overlap on {w.chrom} and cutting "
                        f"them apart at the midpoint would leave exon base {w.chrom}:{p} of {w.gene} outside "
                        f"every {w.split} window; put the two genes in the same split (splits / --split "
                        f"GENE=SPLIT) or use a smaller flank_bp")
    return out, trims


def _shared_bases(windows: list[Window]) -> int:
    shared = 0
    for i, a in enumerate(windows):
        for b in windows[i + 1:]:
            if a.chrom == b.chrom and a.split != b.split:
                shared += max(0, min(a.end, b.end) - max(a.start, b.start))
    return shared


def assign_splits(transcripts, splits: dict[str, str] | None,
                  chrom_splits: dict[str, str] | None = None) -> dict[str, str]:
    """{gene: split}: a gene named in ``splits`` goes there, else a gene on a chromosome of
    ``chrom_splits`` goes to that chromosome's split (the way to split a whole-genome
    annotation), else to train. Without either, the chr2-piece default. Errors name missing
    genes and splits without both strands."""
    chosen = DEFAULT_SPLITS if splits is None and not chrom_splits else dict(splits or {})
    genes = {t.gene: t for t in transcripts}
    by_chrom = _chrom_assignment(transcripts, chrom_splits or {})
    chosen = {**{g: by_chrom[genes[g].chrom] for g in genes if genes[g].chrom in by_chrom}, **chosen}
    bad = {g: s for g, s in chosen.items() if s not in SPLITS}
    if bad:
        raise UserError(f"unknown split for {', '.join(f'{g}={s}' for g, s in bad.items())}: "
                        f"expected {', '.join(SPLITS)}")
    missing = sorted(g for g in chosen if g not in genes)
    if missing:
        raise UserError(f"genes of the split assignment not in the annotation (on this genome): "
                        f"{', '.join(missing)}" + ("; the default is for the chr2 piece, pass splits"
                                                   if splits is None else ""))
    out = {g: chosen.get(g, "train") for g in genes}
    for s in SPLITS:
        strands = {genes[g].strand for g, sp in out.items() if sp == s}
        if strands != {"+", "-"}:
            have = ", ".join(f"{g}({genes[g].strand})" for g, sp in out.items() if sp == s) or "no genes"
            raise UserError(f"split {s} needs genes on both strands; it has {have}")
    return out


def _chrom_assignment(transcripts, chrom_splits: dict[str, str]) -> dict[str, str]:
    """{transcript chromosome name: split} for the chromosomes named in ``chrom_splits``
    ('8' and 'chr8' both match); a name no transcript lies on is an error."""
    from dnatok.bend.format import resolve_chrom

    names = {t.chrom for t in transcripts}
    out, unknown = {}, []
    for chrom, split in chrom_splits.items():
        found = resolve_chrom(chrom, names)
        if found is None:
            unknown.append(chrom)
        else:
            out[found] = split
    if unknown:
        raise UserError(f"chromosomes of the split assignment with no gene of the annotation: {', '.join(unknown)}")
    return out


def build_gene_finding(annotation_path, genome_fasta, out_dir, window_bp: int | None = None,
                       flank_bp: int = 1000, max_window_bp: int = 12000, splits: dict[str, str] | None = None,
                       fmt: str = "exon_models", name: str = "gene_finding",
                       chrom_splits: dict[str, str] | None = None) -> dict:
    """Build the task folder ``out_dir`` (atomically); returns its ``task.json`` content."""
    if flank_bp < 0 or max_window_bp < 1 or (window_bp is not None and window_bp < 1):
        raise UserError("flank_bp must be >= 0, max_window_bp and window_bp >= 1")
    fa = _open(genome_fasta)
    transcripts, dropped, lengths = load_transcripts(annotation_path, fa, fmt)
    if not transcripts:
        raise UserError(f"{annotation_path}: no protein-coding transcript lies on the genome {genome_fasta}")
    gene_split = assign_splits(transcripts, splits, chrom_splits)
    ordered = sorted(transcripts, key=lambda t: (t.chrom, t.tx_start, t.gene))
    windows = [Window(wid, t.gene, t.chrom, a, b, t.strand, gene_split[t.gene]) for t in ordered
               for wid, a, b in gene_windows(t, lengths[t.chrom], flank_bp, max_window_bp, window_bp)]
    n_before = sum(w.end - w.start for w in windows)
    kept, trims = separate_splits(windows, {t.gene: t.exons for t in transcripts})
    shared = _shared_bases(kept)
    if shared:  # separate_splits guarantees this; a failure here is a bug, not bad input
        raise AssertionError(f"{shared} bases still lie in windows of two splits")
    kept_ids = {w.id for w in kept}
    records, labels, genes_meta = [], [], {}
    for t in ordered:
        split = gene_split[t.gene]
        wins = [w for w in kept if w.gene == t.gene]
        for w in wins:
            records.append(BendRecord(id=w.id, chrom=w.chrom, start=w.start, end=w.end, strand=w.strand,
                                      split=split))
            labels.append(window_labels(transcripts, w.start, w.end, chrom=w.chrom))
        genes_meta[t.gene] = {"split": split, "strand": t.strand, "chrom": t.chrom,
                              "tx": [t.tx_start, t.tx_end], "cds": list(t.cds), "exons": len(t.exons),
                              "cds_inferred": bool(t.meta.get("cds_inferred")),
                              "orf_aa": t.meta.get("orf_aa"), "transcript_id": t.transcript_id,
                              "windows": len(wins), "bases": sum(w.end - w.start for w in wins)}
    from dnatok.io import provenance

    extra = {
        "metric": "mcc",
        "read_strand": False,
        "source": {"annotation": {"path": str(Path(annotation_path).resolve()),
                                  "sha256": file_sha256(annotation_path), "format": fmt},
                   "builder": "dnatok.bend.gene_finding", "flank_bp": flank_bp, "max_window_bp": max_window_bp,
                   "window_bp": window_bp, "genes": genes_meta, "dropped_genes": dropped,
                   "shared_bases": shared, "split_trims": trims,
                   "trimmed_bases": n_before - sum(w.end - w.start for w in kept),
                   "dropped_windows": [w.id for w in windows if w.id not in kept_ids],
                   "cds": "inferred (longest ATG ORF, stop codon included)" if fmt == "exon_models"
                          else "GTF CDS + stop_codon rows (inferred where absent)"},
        "provenance": provenance(),
    }
    return write_task(out_dir, name, "per_base", records, labels, NUM_CLASSES,
                      genome_fasta if isinstance(genome_fasta, (str, Path)) else None,
                      class_names=CLASS_NAMES, extra_meta=extra)
