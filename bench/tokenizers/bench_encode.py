"""Encoding throughput of every tokenizer kind: dnatok's paths vs the saved HF fast tokenizer.

Usage (from the repository root, ~1 minute)::

    PYTHONPATH=src .venv/bin/python bench/tokenizers/bench_encode.py [--repeats 5] \
        [--out bench/tokenizers/encode_results.json]

Inputs: 10 Mbp of real sequence (the first 10 Mbp of common.build_corpus: 1 kbp windows
of hg38 chr2) encoded (a) as one batch of 10,000 sequences and (b) as one 10 Mbp string.
For each tokenizer (char, overlapping 6-mer, non-overlapping 6-mer, BPE 4096 trained on
the 20 Mbp benchmark corpus) it times:
- ``flat``: ``DnaTokenizer._encode_flat`` (ids of all sequences, no padding): the numpy
  lookup path for char/k-mer, the compiled encoder (bpe_encode, all cores) for BPE;
- ``batch``: ``encode_batch(seqs, max_len=1024)``: the same plus [CLS]/[SEP] and padding
  into a [B, L] int64 matrix;
- ``single``: ``encode(one 10 Mbp string)``;
- ``hf``: the saved HF fast tokenizer's ``encode_batch_fast`` on the same batch (what
  ``AutoTokenizer`` users get), and whether its ids equal dnatok's.
Every figure is Mbp/s over wall-clock time, median and best of ``--repeats``; the process
CPU time is recorded too (the box is shared, so wall time varies with its load).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_corpus  # noqa: E402

from dnatok.tokenization import train_tokenizer  # noqa: E402


def measure(fn, bp, repeats):
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {"mbp_s_median": round(bp / 1e6 / statistics.median(walls), 1),
            "mbp_s_best": round(bp / 1e6 / min(walls), 1),
            "mbp_per_cpu_s": round(bp / 1e6 / statistics.median(cpus), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bp", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("encode_results.json"))
    args = ap.parse_args()

    load_before = os.getloadavg()
    corpus = build_corpus(20_000_000)
    seqs = corpus[: args.bp // len(corpus[0])]
    bp = sum(map(len, seqs))
    single = "".join(seqs)
    tmp = Path(tempfile.mkdtemp())
    specs = {"char": {"kind": "char"}, "kmer6": {"kind": "kmer", "k": 6, "stride": 1},
             "kmer6s6": {"kind": "kmer", "k": 6, "stride": 6},
             "bpe4096": {"kind": "bpe", "vocab_size": 4096}}
    results = {}
    for name, spec in specs.items():
        tok = train_tokenizer(spec, tmp / name, corpus)
        texts = [tok.hf_text(s) for s in seqs]
        flat_ids, _ = tok._encode_flat(seqs)
        hf_ids = np.fromiter((i for e in tok._tk.encode_batch_fast(texts, add_special_tokens=False)
                              for i in e.ids), dtype=np.int64)
        row = {
            "flat": measure(lambda: tok._encode_flat(seqs), bp, args.repeats),
            "batch": measure(lambda: tok.encode_batch(seqs, max_len=1024), bp, args.repeats),
            "single": measure(lambda: tok.encode(single), bp, max(1, args.repeats // 2)),
            "hf": measure(lambda: tok._tk.encode_batch_fast(texts, add_special_tokens=False), bp,
                          max(1, args.repeats // 2)),
            "ids_equal_hf": bool(np.array_equal(flat_ids, hf_ids)),
            "tokens": int(flat_ids.size),
        }
        results[name] = row
        print(name, json.dumps(row), flush=True)
    out = {"bp": bp, "sequences": len(seqs), "results": results,
           "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                       "loadavg_after": os.getloadavg()}}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
