"""Real-data check of the fine-tuning stage: the Genomic Benchmarks CNN trained from
scratch on every GUE task in ../shared that has a train split, under the study's
CNN recipe (10 epochs, lr 1e-3, batch 64; embedding 100, conv 16/8/4 kernel 8,
max-pool 2, dense 512), under both protocols, compared with the study's published
CNN mean MCC (best_replicates_ss.csv, model CNN).

    nice -n 19 .venv/bin/python bench/train/bench_cnn_gue.py [--seed 1] [--tasks prom_core_tata ...]

Runs go to results/bench_train/cnn_gue/{protocol}/{task}/seed{seed}/ (already finished
runs are reused, so the script can be restarted); the table is written to
bench/train/cnn_gue_results.tsv and printed as markdown for RESULTS.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "src"))

from dnatok.registry import get_task  # noqa: E402
from dnatok.train.finetune import finetune  # noqa: E402

# smallest first, so a partial run already says something
TASKS = ["prom_core_tata", "prom_300_tata", "mouse_0", "mouse_2", "mouse_3", "mouse_4",
         "tf_0", "tf_1", "tf_2", "tf_3", "tf_4", "prom_core_notata", "prom_core_all"]
# The study's CNN recipe (slurm_scripts/run_gue_cnn.sh: LR 1e-3, batch 64, 10 epochs);
# the CNN architecture is build_classifier("cnn")'s default.
SETTINGS = {"epochs": 10, "learning_rate": 1e-3, "batch_size": 64, "progress": False, "log_every": 10**9}
PROTOCOLS = ("original", "corrected")


def published_cnn() -> dict[str, tuple[float, float, int]]:
    path = SHARED / "published" / "lindsey2025" / "best_replicates_ss.csv"
    acc: dict[str, list[float]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["model"] == "CNN":
                acc.setdefault(row["task"], []).append(float(row["mcc"]))
    out = {}
    for task, values in acc.items():
        mean = sum(values) / len(values)
        sd = (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5
        out[task] = (mean, sd, len(values))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest for this small CNN on a shared 2-core box)")
    ap.add_argument("--tasks", nargs="*", default=TASKS)
    ap.add_argument("--out", default=str(REPO / "results" / "bench_train" / "cnn_gue"))
    ap.add_argument("--table", default=str(REPO / "bench" / "train" / "cnn_gue_results.tsv"))
    args = ap.parse_args()
    pub = published_cnn()
    rows = []
    for name in args.tasks:
        task = get_task("gue", name)
        task_dir = SHARED / "data" / "gue" / task.source
        row = {"task": name, "published_cnn_mcc": pub[name][0], "published_sd": pub[name][1],
               "published_n": pub[name][2]}
        for protocol in PROTOCOLS:
            out = Path(args.out) / protocol / name / f"seed{args.seed}"
            if (out / "metrics.json").is_file():
                m = json.loads((out / "metrics.json").read_text())
            else:
                t0 = time.time()
                m = finetune(task_dir, "cnn", "char", out, args.seed, protocol=protocol,
                             settings={**SETTINGS, "threads": args.threads}, task=task)
                print(f"{name} {protocol}: mcc {m['test']['mcc']:.4f} in {time.time() - t0:.0f}s", flush=True)
            row[f"{protocol}_mcc"] = m["test"]["mcc"]
            row[f"{protocol}_best_epoch"] = m["best_epoch"]
            row[f"{protocol}_epochs_run"] = m["epochs_run"]
            row[f"{protocol}_wall_s"] = m["wall_time_s"]
            row[f"{protocol}_tokens"] = m["hyperparameters"]["max_tokens"]
            if protocol == "original":
                row["original_mcc_per_batch_mean"] = m["test"].get("mcc_per_batch_mean")
        row["n_train"] = m["n_train"]
        row["original_pass"] = row["original_mcc"] >= row["published_cnn_mcc"] - 0.05
        rows.append(row)
        _write(rows, Path(args.table))
    _print_markdown(rows, args.seed)
    return 0 if all(r["original_pass"] for r in rows) else 1


def _write(rows, path: Path) -> None:
    cols = list(rows[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, cols, delimiter="\t", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})


def _print_markdown(rows, seed) -> None:
    print(f"\n| task | train rows | published CNN MCC (mean ± sd, n) | original (seed {seed}) | pass (≥ pub − 0.05) "
          f"| corrected (seed {seed}) | tokens orig/corr | wall s orig/corr |")
    print("|---|---:|---:|---:|:-:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['task']} | {r['n_train']} | {r['published_cnn_mcc']:.3f} ± {r['published_sd']:.3f} "
              f"({r['published_n']}) | {r['original_mcc']:.3f} | {'yes' if r['original_pass'] else 'NO'} | "
              f"{r['corrected_mcc']:.3f} | {r['original_tokens']}/{r['corrected_tokens']} | "
              f"{r['original_wall_s']:.0f}/{r['corrected_wall_s']:.0f} |")


if __name__ == "__main__":
    raise SystemExit(main())
