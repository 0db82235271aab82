"""Encoding throughput of trained vq / hrq tokenizers, and whether the ids match a
recorded reference (e.g. ids written by an older ``learned.py``).

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python bench/tokenizers/bench_learned_encode.py /tmp/vq /tmp/hrq \
        [--threads 1] [--bp 2000000] [--module OLD_learned.py] [--save-ids DIR | --check-ids DIR]

Sequences: ``--bp`` bp of the hg38 chr2 fragment from position 10,000 as 1 kbp windows
(``_encode_flat``, what stats / training call), then 60 pieces of random length 1-9000 bp
plus the first 30 kbp (leading N run): padding, several pieces per sequence. ``--module``
loads ``LearnedTokenizer`` from another copy of ``learned.py`` (the "before" of a change).
Mbp/s over wall time of one call each.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GENOME  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizers", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bp", type=int, default=2_000_000)
    ap.add_argument("--module", type=Path)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--save-ids", type=Path)
    g.add_argument("--check-ids", type=Path)
    args = ap.parse_args()
    import numpy as np
    import torch

    from dnatok.tokenization.corpus import read_sequences

    torch.set_num_threads(args.threads)
    if args.module:
        spec = importlib.util.spec_from_file_location("learned_under_test", args.module)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        from dnatok.tokenization import learned as mod
    seq = next(read_sequences(GENOME))
    windows = [seq[10_000 + i * 1000:11_000 + i * 1000] for i in range(args.bp // 1000)]
    rng = np.random.default_rng(5)
    mixed, pos = [], 100_000
    for n in rng.integers(1, 9000, 60).tolist():
        mixed.append(seq[pos:pos + n])
        pos += n
    mixed.append(seq[:30_000])
    ok = True
    for path in args.tokenizers:
        tok = mod.LearnedTokenizer(path, json.loads((path / "dnatok_tokenizer.json").read_text()))
        for name, seqs in (("windows", windows), ("mixed", mixed)):
            t = time.perf_counter()
            ids, _ = tok._encode_flat(seqs)
            t = time.perf_counter() - t
            bp = sum(map(len, seqs))
            line = (f"{path.name} {name} {bp} bp threads={args.threads} {bp / t / 1e6:.4f} Mbp/s "
                    f"sha256={hashlib.sha256(ids.tobytes()).hexdigest()[:16]}")
            f = f"{path.name}_{name}.npy"
            if args.save_ids:
                args.save_ids.mkdir(parents=True, exist_ok=True)
                np.save(args.save_ids / f, ids)
            if args.check_ids:
                ref = np.load(args.check_ids / f)
                same = np.array_equal(ref, ids)
                ok &= same
                line += " ids identical" if same else f" IDS DIFFER at {(ref != ids).sum()}"
            print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
