"""Window extraction throughput: how fast `dnatok.data.genome.sample_windows` cuts random
windows out of a FASTA, for the bgzipped hg38 chr2 piece (as shipped) and for a plain
decompressed copy, plus the one-off index build and `extract_intervals`.

    PYTHONPATH=src .venv/bin/python bench/data/bench_windows.py [--n 2000] [--repeats 3] [--json out.json]

The genome is copied into a temporary folder first (pyfaidx writes .fai/.gzi beside the
file it indexes; ../shared stays untouched). Each figure is the best of ``--repeats``
runs with a fresh seed, to damp the noise of a shared machine; windows/s and Mbp/s count
the bases returned.
"""
from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pyfaidx

from dnatok.data.genome import extract_intervals, open_fasta, sample_window_coords, sample_windows

REPO = Path(__file__).resolve().parents[2]
GENOME = REPO.parent / "shared" / "data" / "genome" / "hg38_chr2_1-2333275.fa.gz"
LENGTHS = (1024, 8192, 32768)


def best_of(fn, repeats: int) -> float:
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="windows per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args()
    if not GENOME.is_file():
        raise SystemExit(f"{GENOME} not found (the shared data folder beside the repository)")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_windows.") as tmp:
        tmp = Path(tmp)
        bgz = tmp / "piece.fa.gz"
        shutil.copy(GENOME, bgz)
        plain = tmp / "piece.fa"
        with gzip.open(bgz, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)

        for label, path in (("bgzip", bgz), ("plain", plain)):
            t0 = time.perf_counter()
            fa = open_fasta(path)              # builds .fai (+ .gzi for bgzip)
            index_s = time.perf_counter() - t0
            rows.append({"fasta": label, "what": "index build + open", "seconds": round(index_s, 4)})
            for length in LENGTHS:
                secs = best_of(lambda r: sample_windows(fa, args.n, length, seed=r), args.repeats)
                rows.append({"fasta": label, "what": f"sample_windows n={args.n} L={length}",
                             "seconds": round(secs, 4), "windows_per_s": round(args.n / secs),
                             "mbp_per_s": round(args.n * length / secs / 1e6, 1)})
            # the same windows without dnatok's wrapper: pyfaidx's own slicing cost
            raw = pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=True)
            seq = raw["chr2"]
            starts = [s for _, s in sample_window_coords({"chr2": len(seq)}, args.n, 1024, seed=0)]
            secs = best_of(lambda r: [seq[s:s + 1024] for s in starts], args.repeats)
            rows.append({"fasta": label, "what": f"pyfaidx slicing only n={args.n} L=1024",
                         "seconds": round(secs, 4), "windows_per_s": round(args.n / secs),
                         "mbp_per_s": round(args.n * 1024 / secs / 1e6, 1)})

        # extract_intervals: 17 intervals of 131,072 bp (the Basenji BED's interval size)
        bed = tmp / "sequences.bed"
        step = 131_072
        bed.write_text("".join(f"chr2\t{s}\t{s + step}\ttrain\n" for s in range(10_000, 2_333_275 - step, step)))
        n_int = len(bed.read_text().splitlines())
        for label, path in (("bgzip", bgz), ("plain", plain)):
            secs = best_of(lambda r: extract_intervals(path, bed, "train", tmp / f"out_{label}_{r}.fa"), args.repeats)
            rows.append({"fasta": label, "what": f"extract_intervals {n_int} x {step} bp",
                         "seconds": round(secs, 4), "mbp_per_s": round(n_int * step / secs / 1e6, 1)})

    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"pyfaidx {pyfaidx.__version__}")
    print("| FASTA | measurement | seconds | windows/s | Mbp/s |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['fasta']} | {r['what']} | {r['seconds']} | {r.get('windows_per_s', '')} | {r.get('mbp_per_s', '')} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
