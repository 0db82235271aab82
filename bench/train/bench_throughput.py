"""Fine-tuning throughput per architecture on this machine (sequences per second).

Times full training steps (forward + backward + AdamW step, exactly the fine-tuning
loop's work) and evaluation batches of the classifiers built by ``build_classifier``
with the study-size hyperparameters of config/config.yaml (d_model 256, 4 layers; the
CNN is the Genomic Benchmarks baseline), on random char-token batches.

    .venv/bin/python bench/train/bench_throughput.py [--length 101 300] [--batch 64] [--threads 1]

Prints a markdown table (for RESULTS.md) and writes bench/train/throughput.tsv.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dnatok.models import build_classifier  # noqa: E402
from dnatok.train.common import count_parameters  # noqa: E402

MODELS = {
    "cnn": {},
    "mamba": {"d_model": 256, "n_layer": 4},
    "caduceus": {"d_model": 256, "n_layer": 4, "bidirectional_strategy": "add",
                 "bidirectional_weight_tie": True, "rcps": False},
    "bert": {"d_model": 256, "n_layer": 4, "n_head": 8},
}
VOCAB = 10   # char tokenizer: 5 specials + ACGTN


def time_model(arch, hp, length, batch, steps, pooling="mean"):
    torch.manual_seed(0)
    model = build_classifier(arch, 2, VOCAB, 0, pooling=pooling, max_len=length, **hp)
    n_params, _ = count_parameters(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(5, 9, (batch, length)))
    mask = torch.ones(batch, length, dtype=torch.long)
    y = torch.from_numpy(rng.integers(0, 2, batch))
    model.train()

    def train_step():
        out = model(input_ids=ids, attention_mask=mask, labels=y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()

    train_step()   # warm-up (allocations, lazy init)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    train_s = (time.perf_counter() - t0) / steps
    model.eval()
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
        t0 = time.perf_counter()
        for _ in range(steps):
            model(input_ids=ids, attention_mask=mask)
        eval_s = (time.perf_counter() - t0) / steps
    return {"model": arch, "length": length, "batch": batch, "n_params": n_params,
            "train_seq_per_s": batch / train_s, "eval_seq_per_s": batch / eval_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, nargs="*", default=[101, 300])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--out", default=str(REPO / "bench" / "train" / "throughput.tsv"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for length in args.length:
        for arch in args.models:
            r = time_model(arch, MODELS[arch], length, args.batch, args.steps)
            r["threads"] = args.threads
            rows.append(r)
            print(f"{arch:9s} L={length:4d}: train {r['train_seq_per_s']:8.1f} seq/s, "
                  f"eval {r['eval_seq_per_s']:8.1f} seq/s ({r['n_params']} params)", flush=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.1f}" if isinstance(v, float) else v) for k, v in r.items()})
    print(f"\nCPU: {os.cpu_count()} cores visible, torch threads {args.threads}, torch {torch.__version__}")
    print("| model | params | tokens | batch | train seq/s | eval seq/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['n_params']:,} | {r['length']} | {r['batch']} | "
              f"{r['train_seq_per_s']:.1f} | {r['eval_seq_per_s']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
