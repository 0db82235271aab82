"""GPU check of the nine-models additions, prepared for a session that is lent a GPU.

For each released family at its released size (random weights in the release layout,
loaded through `dnatok.released`) and HyenaDNA / Caduceus at the study's sizes:

1. agreement: fp32 last hidden states on CUDA (SDPA attention; mamba-ssm / causal-conv1d
   kernels when installed) against the same model on CPU (pure PyTorch), max |diff| on
   real positions of a right-padded batch of real GUE mouse_3 rows;
2. for the state-space families also CUDA kernels against CUDA pure path
   (DNATOK_FORCE_PURE_SCAN toggled in-process via dnatok.models.scan);
3. throughput: training steps (bf16 autocast, AdamW) at batch 32, tokens/s and sequences/s,
   median of --reps after 2 warm-up steps, with peak memory.

Usage (one call, ~5 min on an H200):
    PYTHONPATH=src python bench/models/gpu_check_released.py --out $OUT/gpu_released.json
Writes one JSON with a row per model and the environment (GPU name, torch, CUDA, kernels).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench" / "models"))

from bench_released import MODELS, checkpoint, sequences  # noqa: E402

from dnatok import released  # noqa: E402
from dnatok.io import provenance  # noqa: E402
from dnatok.models import scan  # noqa: E402

SSM = ("hyena", "caduceus_hub")


def _batch(tok, n: int):
    ids, mask = tok.encode_batch(sequences(n), 2**31 - 1, add_special_tokens=True)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def _hidden(model, ids, mask, device):
    model.to(device).eval()
    with torch.no_grad():
        return model.backbone(ids.to(device), mask.to(device)).float().cpu()


def agreement(model, ids, mask, family: str) -> dict:
    real = mask.bool()
    cpu = _hidden(model, ids, mask, "cpu")
    out = {"cuda_vs_cpu_max_abs": float((_hidden(model, ids, mask, "cuda") - cpu)[real].abs().max())}
    if family in SSM:
        kernel = _hidden(model, ids, mask, "cuda")
        import os

        os.environ[scan.FORCE_PURE_ENV] = "1"
        try:
            pure = _hidden(model, ids, mask, "cuda")
        finally:
            os.environ.pop(scan.FORCE_PURE_ENV)
        out["kernel_vs_pure_cuda_max_abs"] = float((kernel - pure)[real].abs().max())
        out["scan_backend"] = scan.scan_backend("cuda")
    return out


def throughput(model, ids, mask, reps: int) -> dict:
    model.to("cuda").train()
    ids, mask = ids.cuda(), mask.cuda()
    labels = (torch.arange(ids.shape[0], device="cuda") % 2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(reps + 2):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times[2:])
    return {"step_s": round(med, 5), "sequences_per_s": round(ids.shape[0] / med, 1),
            "tokens_per_s": round(int(mask.sum()) / med, 1),
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs CUDA")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            torch.manual_seed(0)
            ckpt = checkpoint(name, Path(tmp) / name)
            model, report = released.load_classifier(ckpt, num_labels=2)
            tok = released.load_tokenizer(ckpt)
            ids, mask = _batch(tok, 16)
            row = {"model": name, "family": report["family"],
                   "parameters": sum(p.numel() for p in model.parameters()), **agreement(model, ids, mask,
                                                                                          report["family"])}
            ids, mask = _batch(tok, args.batch)
            row.update(throughput(model, ids, mask, args.reps))
            rows.append(row)
            print(json.dumps(row), flush=True)
    env = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
           "kernels": {k: v is not None for k, v in scan.kernels()._asdict().items()}}
    Path(args.out).write_text(json.dumps({"rows": rows, "env": env, "provenance": provenance(
        stage="gpu_check_released", command=" ".join(sys.argv))}, indent=2) + "\n")


if __name__ == "__main__":
    main()
