"""CPU fine-tuning throughput of the nine-models additions, at the released sizes.

For each model a random checkpoint with the release's sizes is written in the release's
on-disk layout and loaded through the same code as a real one (`dnatok.released`; HyenaDNA's
module is the same one the architecture pretrained here uses, at the study's d_model 256, 4 layers).
Inputs are the first sequences of GUE mouse_3 (101 bp, real, from ../shared) encoded by
each model's own tokenizer (DNABERT-2: the released tokenizer.json; NT-v2, DNABERT-6,
HyenaDNA/Caduceus: rule-built vocabularies with the released ids; GPT-2: a small byte-level
BPE written by the tests' helper, NOT GPT-2's real merges, so its token count is not
GPT-Neo's real one). One training step = forward + cross-entropy + backward + AdamW at
batch 8; the median over --reps steps after one warm-up step is reported, with sequences/s
and tokens/s (non-pad tokens).

Usage: PYTHONPATH=src python bench/models/bench_released.py [--reps 5] [--threads 2]
       [--models dnabert2,ntv2_500m,...] [--out bench/models/released_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from dnatok import released  # noqa: E402
from dnatok.io import provenance  # noqa: E402
from dnatok.released.tokenizers import write_release_tokenizer  # noqa: E402

SHARED = REPO.parent / "shared"
BATCH = 8
# (model, family, write_tiny_release sizes = the release's)
MODELS = {
    "dnabert2": ("dnabert2", dict(hidden=768, layers=12, heads=12, intermediate=3072)),
    "ntv2_100m": ("ntv2", dict(hidden=512, layers=22, heads=16, intermediate=2048)),
    "ntv2_500m": ("ntv2", dict(hidden=1024, layers=29, heads=16, intermediate=4096)),
    "dnabert6": ("dnabert", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                 intermediate_size=3072)),
    "gpt_neo_125m": ("gpt_neo", dict(hidden_size=768, num_layers=12, num_heads=12, window_size=256)),
    "hyena_hf_d256_l4": ("hyena", dict(d_model=256, n_layer=4, max_seq_len=1026, filter_order=64)),
    "caduceus_ps_d256_l4": ("caduceus_hub", dict(rcps=True, d_model=256, n_layer=4, d_state=16)),
}


def sequences(n: int) -> list[str]:
    path = SHARED / "data/gue/mouse/3/train.csv"
    rows = path.read_text().splitlines()[1:n + 1]
    return [r.split(",")[0] for r in rows]


def checkpoint(name: str, folder: Path) -> Path:
    arch, sizes = MODELS[name]
    fam = released.family(arch)
    fam.write_tiny_release(folder, **sizes)
    if arch == "dnabert2" and (SHARED / "checkpoints/dnabert2-117m/tokenizer.json").is_file():
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (folder / f).write_bytes((SHARED / "checkpoints/dnabert2-117m" / f).read_bytes())
    else:
        write_release_tokenizer(fam.TOKENIZER, folder)
    return folder


def time_steps(model, ids, mask, reps: int) -> list[float]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.01)
    labels = torch.arange(ids.shape[0]) % 2
    model.train()
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times[1:]


def bench_one(name: str, reps: int, work: Path) -> dict:
    ckpt = checkpoint(name, work / name)
    t0 = time.perf_counter()
    model, report = released.load_classifier(ckpt, num_labels=2)
    load_s = time.perf_counter() - t0
    tok = released.load_tokenizer(ckpt)
    ids, mask = tok.encode_batch(sequences(BATCH), 2**31 - 1, add_special_tokens=True)
    ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
    times = time_steps(model, ids, mask, reps)
    med = statistics.median(times)
    return {"model": name, "family": report["family"], "parameters": sum(p.numel() for p in model.parameters()),
            "batch": BATCH, "padded_tokens": int(ids.shape[1]), "real_tokens": int(mask.sum()),
            "load_s": round(load_s, 2), "step_s_median": round(med, 4), "step_s_all": [round(t, 4) for t in times],
            "sequences_per_s": round(BATCH / med, 2), "tokens_per_s": round(int(mask.sum()) / med, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default=str(REPO / "bench/models/released_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            row = bench_one(name, args.reps, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(Path(tmp) / name, ignore_errors=True)   # the 500m checkpoint is 2 GB
    out = {"rows": rows, "threads": args.threads, "reps": args.reps,
           "provenance": provenance(stage="bench_released", command=" ".join(sys.argv))}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
