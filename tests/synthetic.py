"""Small synthetic inputs that tests write for themselves, so the logic tests run in a
clone without ../shared. Everything is seeded: the same call writes the same bytes.

Only formats are imitated here (GUE CSV folders, FASTA plain/gzip/bgzip, Genomic
Benchmarks interval folders); no fact about the real data is. Tests of real-data facts
stay on ../shared (the ``shared_dir``/``gue_dir`` fixtures).
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

BASES = np.array(list("ACGT"))
COMPLEMENT = np.array([3, 2, 1, 0], dtype=np.int8)   # A<->T, C<->G in code space


def rng_of(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def random_dna(seed, n: int, alphabet: str = "ACGT") -> str:
    """``n`` bases drawn uniformly from ``alphabet``."""
    rng = rng_of(seed)
    return "".join(np.array(list(alphabet))[rng.integers(0, len(alphabet), n)])


def genome_like(seed, length: int, n_prefix: int = 0, n_gaps: int = 0, soft_mask: bool = False,
                n_families: int = 5, family_len: int = 200, repeat_fraction: float = 0.2) -> str:
    """A DNA string with structure for BPE to find: a GC-varying background, copies (with
    8% point mutations, either strand) of a few repeat families, some tandem repeats.

    ``n_prefix`` leading N (an assembly's telomere gap), ``n_gaps`` internal N runs of
    50–500 bp, and with ``soft_mask`` lower-case runs (repeat masking, as in UCSC FASTA).
    """
    rng = rng_of(seed)
    codes = np.empty(length, dtype=np.int8)
    pos = 0
    while pos < length:                   # 5–20 kb blocks of GC 0.35–0.60
        block = min(length - pos, int(rng.integers(5_000, 20_000)))
        gc = rng.uniform(0.35, 0.60)
        p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
        codes[pos:pos + block] = rng.choice(4, size=block, p=p)
        pos += block
    families = [rng.integers(0, 4, family_len).astype(np.int8) for _ in range(n_families)]
    for _ in range(int(length * repeat_fraction / family_len)):
        copy = families[int(rng.integers(n_families))].copy()
        hit = rng.random(family_len) < 0.08
        copy[hit] = (copy[hit] + rng.integers(1, 4, int(hit.sum()))) % 4
        if rng.random() < 0.5:
            copy = COMPLEMENT[copy[::-1]]
        at = int(rng.integers(0, max(1, length - family_len)))
        codes[at:at + family_len] = copy[: length - at]
    for _ in range(max(1, length // 50_000)):  # short tandem repeats
        unit = rng.integers(0, 4, int(rng.integers(1, 7))).astype(np.int8)
        n = int(rng.integers(20, 200))
        at = int(rng.integers(0, max(1, length - n)))
        codes[at:at + n] = np.resize(unit, n)[: length - at]
    chars = BASES[codes].astype("<U1")
    if soft_mask:
        for _ in range(max(1, length // 20_000)):
            at, n = int(rng.integers(0, length)), int(rng.integers(100, 2_000))
            chars[at:at + n] = np.char.lower(chars[at:at + n])
    for _ in range(n_gaps):
        at, n = int(rng.integers(n_prefix, length)), int(rng.integers(50, 500))
        chars[at:at + n] = "N"
    chars[:n_prefix] = "N"
    return "".join(chars)


# --------------------------------------------------------------------------- FASTA
def write_fasta(path, records: dict[str, str], width: int = 60, compress: str = "plain") -> Path:
    """Write ``{header: sequence}`` wrapped at ``width``; ``compress`` is ``plain``,
    ``gzip`` or ``bgzip`` (BGZF blocks, readable with an index by pyfaidx)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f">{name}\n" + "".join(seq[i:i + width] + "\n" for i in range(0, len(seq), width))
                   for name, seq in records.items())
    if compress == "plain":
        path.write_text(text)
    elif compress == "gzip":
        with gzip.open(path, "wt", compresslevel=1) as fh:
            fh.write(text)
    elif compress == "bgzip":
        from Bio import bgzf

        with bgzf.BgzfWriter(str(path), "wb") as fh:
            fh.write(text.encode())
    else:
        raise ValueError(f"compress must be plain, gzip or bgzip, not {compress!r}")
    return path


# --------------------------------------------------------------------------- GUE-format tasks
def labelled_rows(seed, n: int, length: int | tuple[int, int], num_classes: int = 2) -> list[tuple[str, int]]:
    """``n`` rows ``(sequence, label)``: upper-case A/C/G/T, every class present when
    ``n >= num_classes`` (labels cycle, then are shuffled). ``length``: fixed or (lo, hi)."""
    rng = rng_of(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    rows = []
    for lab in labels:
        L = length if isinstance(length, int) else int(rng.integers(length[0], length[1] + 1))
        rows.append((random_dna(rng, L), int(lab)))
    return rows


def write_rows_csv(path, rows, header=("sequence", "label")) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def write_csv_task(folder, splits: dict[str, int] | None = None, length: int | tuple[int, int] = 70,
                   num_classes: int = 2, seed=0) -> Path:
    """A GUE-format task folder: ``{split}.csv`` with header ``sequence,label``;
    ``splits`` = rows per split (default train 40, dev 10, test 10)."""
    folder = Path(folder)
    rng = rng_of(seed)
    for split, n in (splits or {"train": 40, "dev": 10, "test": 10}).items():
        write_rows_csv(folder / f"{split}.csv", labelled_rows(rng, n, length, num_classes))
    return folder


def write_gue_root(root, tasks: dict[str, dict[str, int]], seed=0) -> Path:
    """A GUE root (``<group>/<task>/{split}.csv``) holding registry tasks, e.g.
    ``{"prom/prom_core_tata": {"train": 60, "dev": 10, "test": 10}}``; each task's rows
    have its registry length (``max_len``) and class count."""
    from dnatok.registry import TASKS

    root = Path(root)
    rng = rng_of(seed)
    for rel, splits in tasks.items():
        task = next(t for t in TASKS["gue"].values() if t.source == rel)
        write_csv_task(root / rel, splits, task.max_len, task.num_classes, rng)
    return root


# --------------------------------------------------------------------------- Genomic Benchmarks
ENSEMBL = "http://ftp.ensembl.org/pub/release-{release}/fasta/{species}/dna/{base}"
HUMAN_97 = ENSEMBL.format(release=97, species="homo_sapiens", base="Homo_sapiens.GRCh38.dna.toplevel.fa.gz")
HUMAN_100 = ENSEMBL.format(release=100, species="homo_sapiens",
                           base="Homo_sapiens.GRCh38.dna.toplevel.fa.gz").replace("http://", "ftp://")
WORM_104 = ENSEMBL.format(release=104, species="caenorhabditis_elegans",
                          base="Caenorhabditis_elegans.WBcel235.dna.toplevel.fa.gz")


def intervals(seed, n: int, region: str, lo: int, hi: int, length: int | tuple[int, int],
              strands: str = "+-", prefix: str = "r") -> list[tuple]:
    """``n`` interval rows ``(id, region, start, end, strand)`` with start >= lo and
    end <= hi (0-based, half-open); strands drawn from ``strands`` ('' = empty field)."""
    rng = rng_of(seed)
    rows = []
    for i in range(n):
        L = length if isinstance(length, int) else int(rng.integers(length[0], length[1] + 1))
        start = int(rng.integers(lo, hi - L + 1))
        strand = "" if strands == "" else strands[int(rng.integers(len(strands)))]
        rows.append((f"{prefix}{i}", region, start, start + L, strand))
    return rows


def write_gb_dataset(folder, urls: dict[str, str], rows: dict[str, dict[str, list[tuple]]]) -> Path:
    """A Genomic Benchmarks dataset folder: ``metadata.yaml`` (class -> reference URL) and
    ``{split}/{class}.csv.gz`` with header ``id,region,start,end,strand``."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"classes": {c: {"type": "fa.gz", "url": u} for c, u in sorted(urls.items())}, "version": 0}
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=True))
    for split, by_class in rows.items():
        (folder / split).mkdir(exist_ok=True)
        for cls, rs in by_class.items():
            # mtime=0: the same rows always give the same bytes
            with open(folder / split / f"{cls}.csv.gz", "wb") as raw, \
                    gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(("id,region,start,end,strand\n" + "".join(",".join(map(str, r)) + "\n" for r in rs))
                         .encode())
    return folder
