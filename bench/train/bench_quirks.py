"""One quirk at a time: the CNN on GUE prom_core_tata under the original protocol with
single fields switched to their corrected value (and the reverse), several seeds each.

    nice -n 19 .venv/bin/python bench/train/bench_quirks.py [--seeds 1 2 3] [--task prom_core_tata]

Runs go to results/bench_train/quirks/{variant}/seed{seed}/ (finished runs are reused);
the table goes to bench/train/quirks_results.tsv and stdout (markdown).
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "src"))

from dnatok.registry import get_task  # noqa: E402
from dnatok.train.finetune import finetune  # noqa: E402

SETTINGS = {"epochs": 10, "learning_rate": 1e-3, "batch_size": 64, "progress": False, "log_every": 10**9}

# (label, protocol spec): the base protocol plus the fields changed
VARIANTS = [
    ("original", {"base": "original"}),
    ("original, true length (70 tokens)", {"base": "original", "length_rule": "true"}),
    ("original, right padding", {"base": "original", "padding_side": "right"}),
    ("original, dev.csv as validation", {"base": "original", "validation_from_train": False}),
    ("original, seed drives training", {"base": "original", "fixed_training_seed": None}),
    ("original, early stopping (patience 3)", {"base": "original", "early_stopping_patience": 3}),
    ("corrected", {"base": "corrected"}),
    ("corrected, study length (300, right pad)", {"base": "corrected", "length_rule": "study"}),
    ("corrected, study length (300, left pad, no mask)",
     {"base": "corrected", "length_rule": "study", "padding_side": "left", "model_sees_padding_mask": False}),
]


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--task", default="prom_core_tata")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "results" / "bench_train" / "quirks"))
    ap.add_argument("--table", default=str(REPO / "bench" / "train" / "quirks_results.tsv"))
    args = ap.parse_args()
    task = get_task("gue", args.task)
    task_dir = SHARED / "data" / "gue" / task.source
    rows = []
    for label, spec in VARIANTS:
        mccs, walls, tokens = [], [], None
        for seed in args.seeds:
            out = Path(args.out) / args.task / slug(label) / f"seed{seed}"
            if (out / "metrics.json").is_file():
                m = json.loads((out / "metrics.json").read_text())
            else:
                m = finetune(task_dir, "cnn", "char", out, seed, protocol=spec,
                             settings={**SETTINGS, "threads": args.threads}, task=task)
                print(f"{label} seed {seed}: mcc {m['test']['mcc']:.4f}", flush=True)
            mccs.append(m["test"]["mcc"])
            walls.append(m["wall_time_s"])
            tokens = m["hyperparameters"]["max_tokens"]
        rows.append({"variant": label, "protocol": m["protocol"], "tokens": tokens,
                     "mcc_mean": statistics.mean(mccs),
                     "mcc_sd": statistics.stdev(mccs) if len(mccs) > 1 else 0.0,
                     "mcc_per_seed": " ".join(f"{v:.3f}" for v in mccs),
                     "wall_s_mean": statistics.mean(walls)})
    with open(args.table, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    print(f"\n| variant ({args.task}, CNN, seeds {' '.join(map(str, args.seeds))}) | tokens | test MCC mean ± sd "
          "| per seed |")
    print("|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['tokens']} | {r['mcc_mean']:.3f} ± {r['mcc_sd']:.3f} | {r['mcc_per_seed']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
