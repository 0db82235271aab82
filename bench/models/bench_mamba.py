"""CPU training-step speed of dnatok's Mamba against two other CPU implementations.

One fwd+bwd step (next-token loss, d_model 128, 4 layers, d_state 16, expand 2, d_conv 4)
is timed for:
  * dnatok's Mamba (pure-PyTorch chunked selective scan, hand-written backward);
  * transformers' MambaForCausalLM on its default CPU path, at batch 8 x 256 (it is far
    too slow at 1024);
  * the `mambapy` package (pure-PyTorch parallel scan), at batch 8 x 1024.
The models being compared are timed in alternation (A B A B ...), so load from other
processes on a shared machine hits both sides alike; the ratio of median step times is
the figure to read. Each thread count given by --threads is a separate run: with two
threads on a 2-core box that other processes also use, every multi-threaded op waits for
a descheduled worker, so those figures measure the scheduler as much as the code.

Usage:  python bench/models/bench_mamba.py [--reps 5] [--hf-reps 2] [--threads 1,2] [--out result.json]
Needs the `bench` extra (mambapy) for the second comparison; --skip-mambapy / --skip-hf
leave a comparison out.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from dnatok.models import build_pretraining_model  # noqa: E402

VOCAB = 16
SIZE = dict(d_model=128, n_layer=4, d_state=16, expand=2, d_conv=4)


def ours():
    return build_pretraining_model("mamba", VOCAB, 0, **SIZE)


def hf_mamba():
    from transformers import MambaConfig, MambaForCausalLM
    cfg = MambaConfig(vocab_size=VOCAB, hidden_size=SIZE["d_model"], num_hidden_layers=SIZE["n_layer"],
                      state_size=SIZE["d_state"], expand=SIZE["expand"], conv_kernel=SIZE["d_conv"])
    return MambaForCausalLM(cfg)


def mambapy_lm():
    """mambapy's Mamba stack with the same embedding / final norm / tied head as ours.
    (mambapy.lm.LM would do the same but imports einops for its Mamba-2 code.)"""
    from mambapy.mamba import Mamba, MambaConfig, RMSNorm

    class MambapyLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            cfg = MambaConfig(d_model=SIZE["d_model"], n_layers=SIZE["n_layer"], d_state=SIZE["d_state"],
                              expand_factor=SIZE["expand"], d_conv=SIZE["d_conv"], pscan=True)
            self.embedding = torch.nn.Embedding(VOCAB, SIZE["d_model"])
            self.mamba = Mamba(cfg)
            self.norm_f = RMSNorm(SIZE["d_model"])

        def forward(self, ids):
            return F.linear(self.norm_f(self.mamba(self.embedding(ids))), self.embedding.weight)

    return MambapyLM()


def step_seconds(model, ids, kind: str) -> float:
    """Time one forward + backward of the next-token loss."""
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    if kind == "mambapy":
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    else:
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return time.perf_counter() - t0


def compare(name_a, model_a, kind_a, name_b, model_b, kind_b, batch, length, reps_a, reps_b, warmup_b=True):
    ids = torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(0))
    times = {name_a: [], name_b: []}
    step_seconds(model_a, ids, kind_a)  # warm-up (allocator, thread pool)
    if warmup_b:
        step_seconds(model_b, ids, kind_b)
    for r in range(max(reps_a, reps_b)):
        if r < reps_a:
            times[name_a].append(step_seconds(model_a, ids, kind_a))
        if r < reps_b:
            times[name_b].append(step_seconds(model_b, ids, kind_b))
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items() if len(v) > r),
              flush=True)
    tokens = batch * length
    rows = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        rows[name] = dict(median_s=med, min_s=min(ts), steps=len(ts), tokens_per_s=tokens / med)
    # speed-up from the rounds in which both ran (the same load conditions)
    paired = min(len(times[name_a]), len(times[name_b]))
    ratio = statistics.median(times[name_b][:paired]) / statistics.median(times[name_a][:paired])
    return dict(batch=batch, length=length, models=rows, speedup=ratio, paired_rounds=paired,
                times=times)


def run(threads: int, args) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    res = {"threads": threads, "comparisons": {}}
    model = ours().train()
    res["params"] = {"dnatok": model.num_parameters()}
    if not args.skip_hf:
        hf = hf_mamba().train()
        res["params"]["transformers"] = hf.num_parameters()
        print(f"[{threads} thread(s)] dnatok vs transformers MambaForCausalLM, batch 8 x 256", flush=True)
        # no warm-up step for the slow model: one step takes minutes and its cost is compute
        res["comparisons"]["transformers"] = compare(
            "dnatok", model, "ours", "transformers", hf, "hf", 8, 256, args.reps, args.hf_reps, warmup_b=False)
        del hf
    if not args.skip_mambapy:
        mp = mambapy_lm().train()
        res["params"]["mambapy"] = sum(p.numel() for p in mp.parameters())
        print(f"[{threads} thread(s)] dnatok vs mambapy, batch 8 x 1024", flush=True)
        res["comparisons"]["mambapy"] = compare(
            "dnatok", model, "ours", "mambapy", mp, "mambapy", 8, 1024, args.reps, args.reps)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=5, help="timed steps per model (dnatok, mambapy)")
    p.add_argument("--hf-reps", type=int, default=2, help="timed steps of transformers' Mamba (slow)")
    p.add_argument("--threads", default="1,2",
                   help="comma-separated torch intra-op thread counts to run (default 1,2)")
    p.add_argument("--skip-hf", action="store_true")
    p.add_argument("--skip-mambapy", action="store_true")
    p.add_argument("--out", type=Path, help="write the figures (+ provenance) as JSON here")
    args = p.parse_args(argv)

    results = {"size": SIZE, "vocab": VOCAB, "runs": []}
    for threads in (int(t) for t in args.threads.split(",")):
        results["runs"].append(run(threads, args))

    print()
    print("| threads | comparison | batch x length | model | median s/step | tokens/s | speed-up of dnatok |")
    print("|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        for other, c in r["comparisons"].items():
            for name, row in c["models"].items():
                sp = f"{c['speedup']:.1f}x" if name == "dnatok" else ""
                print(f"| {r['threads']} | vs {other} | {c['batch']} x {c['length']} | {name} "
                      f"| {row['median_s']:.3f} | {row['tokens_per_s']:.0f} | {sp} |")
    print("params:", results["runs"][0]["params"])
    if args.out:
        from dnatok.io import provenance, write_json
        results["provenance"] = provenance(benchmark="bench_mamba")
        write_json(args.out, results)


if __name__ == "__main__":
    main()
