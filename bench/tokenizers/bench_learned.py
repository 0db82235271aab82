"""Learned tokenizers vq / hrq (VQDNA) on CPU: training time and encoding throughput,
beside BPE's encoding throughput on the same sequences.

Usage (from the repository root; ~5-8 minutes on 2 cores with the default specs)::

    PYTHONPATH=src .venv/bin/python bench/tokenizers/bench_learned.py [--threads 2] \
        [--encode-bp 1000000] [--out bench/tokenizers/learned_results.json]

What is measured:
- training: ``train_tokenizer({"kind": K}, dir, corpus)`` with the default spec, end to
  end (corpus read, training, joint vocabulary, held-out statistics, files written), on
  the hg38 chr2 fragment (2.33 Mbp as one FASTA record, as ``dnatok tokenizer train``
  reads it); wall and process CPU seconds; held-out reconstruction and codebook stats;
- BPE: ``train_tokenizer({"kind": "bpe", "vocab_size": 4096}, ...)`` on the same corpus;
- encoding: ``_encode_flat`` (what stats and training use) on ``--encode-bp`` bp of 1 kbp
  windows from common.build_corpus (held-out-agnostic: they come from the same fragment),
  Mbp/s over wall time, best of ``--repeats``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GENOME, REPO, build_corpus  # noqa: E402


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--encode-bp", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench/tokenizers/learned_results.json")
    args = ap.parse_args()
    import torch

    from dnatok.tokenization import train_tokenizer
    from dnatok.tokenization.corpus import read_corpus

    torch.set_num_threads(args.threads)
    seqs = build_corpus(args.encode_bp)
    results = {"threads": args.threads, "encode_bp": sum(map(len, seqs)), "tokenizers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in ({"kind": "bpe", "vocab_size": 4096}, {"kind": "vq"}, {"kind": "hrq"}):
            name = spec["kind"]
            tok, wall, cpu = timed(lambda: train_tokenizer(spec, Path(tmp) / name,
                                                          read_corpus([GENOME])))
            enc = []
            for _ in range(args.repeats):
                _, w, _ = timed(lambda: tok._encode_flat(seqs))
                enc.append(results["encode_bp"] / w / 1e6)
            row = {"train_wall_s": round(wall, 2), "train_cpu_s": round(cpu, 2),
                   "vocab_size": tok.vocab_size, "encode_mbp_s": round(max(enc), 4),
                   "encode_mbp_s_runs": [round(e, 4) for e in enc]}
            if name != "bpe":
                row["codebook"] = tok.meta["codebook"]
                row["final"] = tok.meta["training"]["final"]
            results["tokenizers"][name] = row
            print(name, json.dumps({k: v for k, v in row.items() if k not in ("codebook", "final")}),
                  flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
