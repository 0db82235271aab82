"""Throughput of `dnatok bend embed` (per-base embedding extraction) on CPU.

Builds randomly initialised models of the pretrained-here architectures (weights do not
change the cost), writes a BEND-format per-base task of N windows of L bases cut from the
chr2 fragment in /work/shared (random sequence when it is absent), and times
dnatok.bend.embeddings.embed_task per model (the second, cached call is timed too).

    OMP_NUM_THREADS=2 .venv/bin/python bench/bend/bench_embed.py [--n 20] [--length 5000] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dnatok.bend.embeddings import embed_task
from dnatok.bend.format import BendRecord, write_task
from dnatok.models import build_pretraining_model
from dnatok.tokenization import train_tokenizer

CHR2 = Path("/work/shared/data/genome/hg38_chr2_1-2333275.fa.gz")


def _genome(tmp: Path, n: int, length: int, seed: int):
    """(fasta path, chrom name, window starts): chr2 windows with few N, else random DNA."""
    rng = np.random.default_rng(seed)
    if CHR2.is_file():
        from dnatok.data.genome import open_fasta

        fa = open_fasta(CHR2, index_dir=tmp)
        chrom = next(iter(fa.keys()))
        seq = str(fa[chrom][:]).upper()
        source = f"{CHR2.name}:{chrom}"
    else:
        seq = "".join(rng.choice(list("ACGT"), n * length * 4))
        chrom, source = "rand", "random"
    path = tmp / "genome.fa"
    path.write_text(f">{chrom}\n" + "\n".join(seq[i:i + 80] for i in range(0, len(seq), 80)) + "\n")
    starts = []
    while len(starts) < n:
        a = int(rng.integers(0, len(seq) - length))
        if seq[a:a + length].count("N") < length // 100:
            starts.append(a)
    return path, chrom, starts, seq, source


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--length", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--models", default="mamba_char,hyena_char,mamba_bpe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_bend_"))
    try:
        genome, chrom, starts, seq, source = _genome(tmp, args.n, args.length, 0)
        recs = [BendRecord(f"w{i}", chrom, a, a + args.length, "+", "test") for i, a in enumerate(starts)]
        # train/valid need rows too; the bench embeds only the test split
        recs += [BendRecord("tr", chrom, starts[0], starts[0] + 10, "+", "train"),
                 BendRecord("va", chrom, starts[0], starts[0] + 10, "+", "valid")]
        labels = [np.zeros(r.end - r.start, np.int8) for r in recs]
        write_task(tmp / "task", "bench", "per_base", recs, labels, 9, genome)
        char = train_tokenizer({"kind": "char"}, tmp / "tok_char")
        bpe = train_tokenizer({"kind": "bpe", "vocab_size": 4096}, tmp / "tok_bpe",
                              [seq[i:i + 10_000] for i in range(0, min(len(seq), 2_000_000), 10_000)])
        specs = {
            "mamba_char": ("mamba", char, tmp / "tok_char", dict(d_model=128, n_layer=4)),
            "hyena_char": ("hyena", char, tmp / "tok_char", dict(d_model=256, n_layer=4, max_seq_len=8192)),
            "mamba_bpe": ("mamba", bpe, tmp / "tok_bpe", dict(d_model=128, n_layer=4)),
        }
        results = []
        for name in args.models.split(","):
            arch, tok, tok_dir, hp = specs[name]
            torch.manual_seed(0)
            model = build_pretraining_model(arch, tok.vocab_size, tok.pad_id, **hp)
            params = sum(p.numel() for p in model.parameters())
            model.save_pretrained(tmp / name)
            t0 = time.perf_counter()
            meta = embed_task(tmp / name, tmp / "task", genome, tmp / f"emb_{name}", tokenizer=tok_dir,
                              splits=("test",), device="cpu", batch_size=args.batch_size)
            wall = time.perf_counter() - t0
            t1 = time.perf_counter()
            again = embed_task(tmp / name, tmp / "task", genome, tmp / f"emb_{name}", tokenizer=tok_dir,
                               splits=("test",), device="cpu", batch_size=args.batch_size)
            cached = time.perf_counter() - t1
            bases = meta["counts"]["test"]["bases"]
            row = {"model": name, "arch": arch, "hparams": hp, "params": params, "tokenizer": meta["tokenizer"],
                   "upsample": meta["upsample"], "chunk_bp": meta["chunk_bp"], "dim": meta["dim"],
                   "bases": bases, "wall_s": round(wall, 2), "bases_per_s": round(bases / wall),
                   "cached_call_s": round(cached, 2), "reused": again["reused"]}
            results.append(row)
            print(json.dumps(row), flush=True)
        print(json.dumps({"source": source, "n": args.n, "length": args.length, "threads": args.threads,
                          "nproc": os.cpu_count(), "load": os.getloadavg(), "torch": torch.__version__}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
