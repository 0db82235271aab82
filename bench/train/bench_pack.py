"""A pack of 10 seeds in one process vs the same 10 runs as separate processes (CPU).

On a real task (GUE mouse_3 from ../shared: 1,904 train, 239 dev, 239 test rows of 101 bp),
for each model, side by side in one run:
  * pack: one `dnatok finetune --seeds 1 ... 10 --out-root A` process;
  * separate: ten `dnatok finetune --seed N --out B/N` processes, one after another.
Recorded per mode: wall time, CPU seconds (user + system of the child processes), and the
fixed overhead = wall time minus the runs' own time (`wall_time_s` in each metrics.json:
from a run's start to its outputs), i.e. interpreter start, imports, reading and tokenizing
the task. The metrics of the two modes must be identical (checked).

Usage: PYTHONPATH=src python bench/train/bench_pack.py [--models cnn,mamba] [--seeds 10]
       [--threads 1] [--out bench/train/pack_results.json]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from dnatok.io import provenance  # noqa: E402
from dnatok.train.finetune import VOLATILE_KEYS  # noqa: E402

TASK = REPO.parent / "shared" / "data/gue/mouse/3"
MODELS = {"cnn": {"embed_dim": 16, "dense_dim": 64}, "mamba": {"d_model": 64, "n_layer": 2, "d_state": 8}}
SETTINGS = {"epochs": 1, "batch_size": 64, "learning_rate": 0.002, "progress": False}


def _cmd(model: str, threads: int, *extra) -> list[str]:
    return [sys.executable, "-m", "dnatok", "finetune", "--data", str(TASK), "--model", model, "--tokenizer", "char",
            "--settings", json.dumps(SETTINGS), "--model-args", json.dumps(MODELS[model]),
            "--threads", str(threads), *extra]


def _timed(cmds) -> tuple[float, float]:
    """(wall s, child CPU s) of running the commands one after another."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for cmd in cmds:
        subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _metrics(folders) -> list[dict]:
    return [json.loads((f / "metrics.json").read_text()) for f in folders]


def bench_model(model: str, seeds: list[int], threads: int, work: Path) -> dict:
    pack_root, sep_root = work / f"{model}_pack", work / f"{model}_separate"
    pack_wall, pack_cpu = _timed([_cmd(model, threads, "--seeds", *map(str, seeds), "--out-root", str(pack_root))])
    sep_wall, sep_cpu = _timed([_cmd(model, threads, "--seed", str(s), "--out", str(sep_root / str(s)))
                                for s in seeds])
    packed = _metrics(pack_root / f"seed{s}" for s in seeds)
    separate = _metrics(sep_root / str(s) for s in seeds)
    strip = lambda m: {k: v for k, v in m.items() if k not in VOLATILE_KEYS}  # noqa: E731
    identical = all(strip(a) == strip(b) for a, b in zip(packed, separate))
    run_s_pack = sum(m["wall_time_s"] for m in packed)
    run_s_sep = sum(m["wall_time_s"] for m in separate)
    return {"model": model, "runs": len(seeds), "identical_metrics": identical,
            "pack": {"wall_s": round(pack_wall, 2), "cpu_s": round(pack_cpu, 2), "runs_s": round(run_s_pack, 2),
                     "overhead_s": round(pack_wall - run_s_pack, 2)},
            "separate": {"wall_s": round(sep_wall, 2), "cpu_s": round(sep_cpu, 2), "runs_s": round(run_s_sep, 2),
                         "overhead_s": round(sep_wall - run_s_sep, 2),
                         "overhead_per_run_s": round((sep_wall - run_s_sep) / len(seeds), 2)},
            "separate_over_pack_wall": round(sep_wall / pack_wall, 2),
            "separate_over_pack_cpu": round(sep_cpu / pack_cpu, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cnn,mamba")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "bench/train/pack_results.json"))
    args = ap.parse_args()
    if not TASK.is_dir():
        raise SystemExit(f"{TASK} is absent (real data from ../shared)")
    seeds = list(range(1, args.seeds + 1))
    work = Path(tempfile.mkdtemp(prefix="bench_pack_"))
    try:
        rows = []
        for model in args.models.split(","):
            rows.append(bench_model(model, seeds, args.threads, work))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "settings": SETTINGS, "models": MODELS,
                                          "provenance": provenance(stage="bench_pack", command=" ".join(sys.argv))},
                                         indent=2) + "\n")


if __name__ == "__main__":
    main()
