"""Reference sequences: opening FASTA files (plain, bgzip or gzip) with pyfaidx, resolving
region names across naming conventions, cutting the pretraining intervals, sampling windows.

Indexes (``.fai``/``.gzi``) and decompressed copies are written beside the FASTA when
that folder is writable, otherwise into ``index_dir`` (or a per-user cache), so read-only
inputs such as ``../shared`` are never written to. Every index is built under a temporary
name and renamed, so parallel jobs opening the same genome cannot see a half-written one.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dnatok.errors import DataError, UserError
from dnatok.io import atomic_path

log = logging.getLogger(__name__)

_COMPLEMENT = str.maketrans("ACGTNacgtnRYSWKMBDHVryswkmbdhv", "TGCANtgcanYRSWMKVHDByrswmkvhdb")
SPLITS = ("train", "valid", "test")


def reverse_complement(seq: str) -> str:
    """Reverse complement, IUPAC-aware (R<->Y, K<->M, B<->V, D<->H; S, W, N stay)."""
    return seq.translate(_COMPLEMENT)[::-1]


# --------------------------------------------------------------------------- opening
def compression(path) -> str:
    """'plain', 'gzip' or 'bgzip' from the file's first bytes (not its name)."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    # BGZF = gzip member with the FEXTRA flag and an extra subfield 'BC' (SAM spec, 4.1).
    if len(head) >= 18 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzip"
    return "gzip"


def _have_biopython() -> bool:
    # pyfaidx reads bgzip through Bio.bgzf; without it we fall back to a decompressed copy.
    try:
        from Bio import bgzf  # noqa: F401
    except ImportError:
        return False
    return True


def _writable_dir(path: Path) -> bool:
    # os.access alone says yes to root everywhere; a folder without any write bit
    # (like ../shared) is meant to be read-only, so respect the mode bits too.
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK) and bool(path.stat().st_mode & 0o222)


def _side_dir(path: Path, index_dir) -> Path:
    """Where derived files (index, decompressed copy) of ``path`` go."""
    if index_dir is not None:
        d = Path(index_dir)
    elif _writable_dir(path.parent):
        return path.parent
    else:
        base = Path(os.environ.get("DNATOK_CACHE", Path.home() / ".cache" / "dnatok"))
        # one folder per absolute source path, so two genomes of the same name never collide
        d = base / "fasta" / hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    d.mkdir(parents=True, exist_ok=True)
    return d


def _decompressed_copy(path: Path, side: Path) -> Path:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name + ".fa"
    out = side / name
    if out.exists() and out.stat().st_mtime >= path.stat().st_mtime:
        return out
    log.info("decompressing %s -> %s", path, out)
    try:
        with atomic_path(out) as tmp, gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, EOFError) as err:
        raise DataError(path, None, f"cannot decompress: {err}") from None
    return out


def _build_index(fasta: Path, fai: Path, gzi: Path | None) -> None:
    """Build the pyfaidx index under temporary names, then rename into place."""
    import pyfaidx

    tmpdir = Path(tempfile.mkdtemp(prefix=".faidx.", dir=fai.parent))
    try:
        tmp_fai = tmpdir / fai.name
        tmp_gzi = tmpdir / gzi.name if gzi is not None else None
        try:
            pyfaidx.Faidx(str(fasta), indexname=str(tmp_fai),
                          gzi_indexname=str(tmp_gzi) if tmp_gzi else None).close()
        except (pyfaidx.FastaIndexingError, ValueError, OSError) as err:
            raise DataError(fasta, None, f"cannot index FASTA: {err}") from None
        if tmp_gzi is not None and tmp_gzi.exists():
            os.replace(tmp_gzi, gzi)
        os.replace(tmp_fai, fai)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def open_fasta(path, index_dir=None):
    """Open a FASTA for random access; sequences come back upper-case as plain ``str``.

    * plain FASTA: indexed in place (or in ``index_dir`` when the folder is read-only);
    * bgzip FASTA: read directly (needs biopython) with ``.fai``/``.gzi`` beside it or in
      ``index_dir``; without biopython a decompressed copy is used instead;
    * plain gzip (e.g. Ensembl's ``*.fa.gz``): decompressed once into ``index_dir``/beside.
    """
    import pyfaidx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"FASTA file {path} does not exist")
    kind = compression(path)
    side = _side_dir(path, index_dir)
    if kind == "gzip" or (kind == "bgzip" and not _have_biopython()):
        if kind == "bgzip":
            log.warning("biopython is not installed: reading a decompressed copy of %s", path)
        path, kind = _decompressed_copy(path, side), "plain"
        side = path.parent
    fai = side / (path.name + ".fai")
    gzi = side / (path.name + ".gzi") if kind == "bgzip" else None
    stale = fai.exists() and fai.stat().st_mtime < path.stat().st_mtime
    if not fai.exists() or stale or (gzi is not None and not gzi.exists()):
        _build_index(path, fai, gzi)
    try:
        return pyfaidx.Fasta(str(path), indexname=str(fai), gzi_indexname=str(gzi) if gzi else None,
                             as_raw=True, sequence_always_upper=True, rebuild=False, build_index=False)
    except (pyfaidx.FastaIndexingError, ValueError) as err:
        raise DataError(path, None, f"cannot open FASTA: {err}") from None


# --------------------------------------------------------------------------- region names
_MITO = ("chrM", "chrMT", "MT", "M", "mitochondrion_genome", "MtDNA")


class RegionResolver:
    """Maps an interval's region name onto a FASTA record name.

    Interval lists and references disagree on naming: Genomic Benchmarks writes ``chr2``
    while Ensembl's FASTA says ``2`` (UCSC's says ``chr2``), mitochondria are ``chrM``,
    ``MT`` or ``chrMT``, and transcript lists drop the version (``ENST00000217185`` vs
    ``ENST00000217185.6``). Every candidate is tried against the FASTA index, so either
    kind of reference works; a region none of them matches is reported by the caller.
    """

    def __init__(self, fasta):
        self.fasta = fasta
        self.keys = set(fasta.keys())
        self.lengths = {k: len(fasta[k]) for k in self.keys}
        self._unversioned = None
        self._cache: dict[str, str | None] = {}

    def candidates(self, region: str) -> list[str]:
        cands = [region]
        if region.startswith("chr"):
            cands.append(region[3:])
        else:
            cands.append("chr" + region)
        if region in _MITO:
            cands += [m for m in _MITO if m not in cands]
        return cands

    def resolve(self, region: str) -> str | None:
        if region in self._cache:
            return self._cache[region]
        found = next((c for c in self.candidates(region) if c in self.keys), None)
        if found is None:
            if self._unversioned is None:
                # 'ENST00000217185.6' -> 'ENST00000217185', only where unambiguous
                groups: dict[str, list[str]] = {}
                for k in self.keys:
                    stem, dot, ver = k.rpartition(".")
                    if dot and stem and ver.isdigit():
                        groups.setdefault(stem, []).append(k)
                self._unversioned = {s: ks[0] for s, ks in groups.items() if len(ks) == 1}
            found = self._unversioned.get(region)
        self._cache[region] = found
        return found

    def fetch(self, key: str, start: int, end: int) -> str:
        return self.fasta[key][start:end]


# --------------------------------------------------------------------------- pretraining corpus
def read_bed(bed) -> list[tuple[int, str, int, int, str]]:
    """Rows ``(line, chrom, start, end, split)`` of a 4-column BED (``sequences_human.bed``)."""
    bed = Path(bed)
    if not bed.is_file():
        raise UserError(f"BED file {bed} does not exist")
    rows = []
    opener = gzip.open if compression(bed) != "plain" else open
    with opener(bed, "rt") as fh:
        for line_no, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            f = line.split("\t") if "\t" in line else line.split()
            if len(f) < 4:
                raise DataError(bed, line_no, f"expected 4 columns (chrom, start, end, split), found {len(f)}")
            try:
                start, end = int(f[1]), int(f[2])
            except ValueError:
                raise DataError(bed, line_no, f"start/end are not integers: {f[1]!r}, {f[2]!r}") from None
            if start < 0 or end <= start:
                raise DataError(bed, line_no, f"invalid interval {f[0]}:{start}-{end} (need 0 <= start < end)")
            rows.append((line_no, f[0], start, end, f[3]))
    return rows


def extract_intervals(genome_fasta, bed, split: str, out_fasta, index_dir=None, line_width: int = 80) -> dict:
    """Write the sequences of the BED intervals of one ``split`` (train/valid/test) to a FASTA.

    Records are named ``chrom:start-end`` (0-based, half-open, as in the BED) and wrapped at
    ``line_width``; the output is written atomically and indexed (``.fai``) for
    :func:`sample_windows`. Returns a summary (intervals, bp, N fraction).
    """
    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    rows = read_bed(bed)
    wanted = [r for r in rows if r[4] == split]
    if not wanted:
        found = sorted({r[4] for r in rows})
        raise UserError(f"{bed}: no intervals with split {split!r} (splits present: {', '.join(found) or 'none'})")
    fasta = open_fasta(genome_fasta, index_dir)
    resolver = RegionResolver(fasta)
    out_fasta = Path(out_fasta)
    total = n_count = 0
    with atomic_path(out_fasta) as tmp, open(tmp, "w") as out:
        for line_no, chrom, start, end, _ in wanted:
            key = resolver.resolve(chrom)
            if key is None:
                raise DataError(bed, line_no, f"chromosome {chrom!r} is not in {genome_fasta}")
            if end > resolver.lengths[key]:
                raise DataError(bed, line_no, f"interval {chrom}:{start}-{end} extends past the end of "
                                f"{key} (length {resolver.lengths[key]}): wrong genome build?")
            seq = resolver.fetch(key, start, end)
            total += len(seq)
            n_count += seq.count("N")
            out.write(f">{chrom}:{start}-{end}\n")
            for i in range(0, len(seq), line_width):
                out.write(seq[i:i + line_width] + "\n")
    _build_index(out_fasta, out_fasta.with_name(out_fasta.name + ".fai"), None)
    summary = {"split": split, "intervals": len(wanted), "bp": total,
               "n_fraction": round(n_count / total, 6) if total else 0.0, "out": str(out_fasta)}
    log.info("extracted %(intervals)d %(split)s intervals, %(bp)d bp -> %(out)s", summary)
    return summary


def sample_window_coords(lengths: dict[str, int], n: int, length: int, seed: int) -> list[tuple[str, int]]:
    """``n`` random ``(record, start)`` pairs for windows of ``length`` bp.

    Every possible window is equally likely: a record is drawn with probability
    proportional to its number of window positions, then a uniform start in it.
    """
    names = sorted(k for k, L in lengths.items() if L >= length)
    if not names:
        raise UserError(f"no FASTA record is at least {length} bp long")
    positions = np.array([lengths[k] - length + 1 for k in names], dtype=np.float64)
    rng = np.random.default_rng(seed)
    rec = rng.choice(len(names), size=n, p=positions / positions.sum())
    starts = (rng.random(n) * positions[rec]).astype(np.int64)
    return [(names[r], int(s)) for r, s in zip(rec, starts)]


def sample_windows(fasta, n: int, length: int, seed: int, max_n_frac: float = 1.0, index_dir=None) -> list[str]:
    """``n`` random upper-case windows of ``length`` bp from ``fasta`` (path or open Fasta).

    Deterministic for a seed. ``max_n_frac`` < 1 redraws windows with a larger fraction of
    N (assembly gaps), at most 100 rounds, so a mostly-N genome fails loudly instead of
    looping forever.
    """
    fa = open_fasta(fasta, index_dir) if isinstance(fasta, (str, os.PathLike)) else fasta
    lengths = {k: len(fa[k]) for k in fa.keys()}
    out: list[str] = []
    round_seed = seed
    for _ in range(100):
        for name, start in sample_window_coords(lengths, n - len(out), length, round_seed):
            seq = fa[name][start:start + length]
            if max_n_frac >= 1.0 or seq.count("N") <= max_n_frac * length:
                out.append(seq)
        if len(out) == n:
            return out
        # a new, still deterministic stream for the redraws
        round_seed = int(np.random.default_rng(round_seed).integers(2**31))
    raise UserError(f"could not draw {n} windows of {length} bp with at most {max_n_frac:.0%} N "
                    f"(got {len(out)}): the FASTA is mostly gaps")
