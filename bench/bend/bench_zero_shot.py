"""BEND-style zero-shot variant effect + gene-finding probe for small LMs pretrained on the chr2 piece.

Reproduces, from scratch into WORK_DIR, with the `dnatok` CLI only:

  1. train/valid FASTA: 64 kb intervals of hg38_chr2_1-2333275 (train 10,000-1,700,000,
     valid 1,700,000-2,000,000; the layout of tests/test_real_study.py `_build_mirrors`)
  2. tokenizers: char and BPE (vocab 4096, trained on the train FASTA)
  3. pretraining: HyenaDNA (causal LM) with each tokenizer
  4. BEND tasks from the GENCODE v24 canonical models of the piece: per-base gene finding
     (`--max-window-bp 2000`) and zero-shot SNVs (splice-dinucleotide breakers vs deep-intronic)
  5. zero-shot scores (cosine distance of ref/alt embeddings, `--context-bp 256`, BEND's)
     -> AUROC, Mann-Whitney p-value and a bootstrap 95 % CI
  6. frozen embeddings (char LM, BPE LM, one-hot) -> BEND CNN probe (LMs) / supervised
     ResNet (one-hot baseline) -> test MCC and per-class recall

The annotation's genes lie across the whole piece, so the LMs saw the genes' sequence (not
their labels) during pretraining, as BEND's models saw the genome.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bend/bench_zero_shot.py WORK_DIR [--steps N]

Writes WORK_DIR/commands.sh (every command run, in order), WORK_DIR/summary.json and
WORK_DIR/summary.md. Stages whose output exists are skipped (delete WORK_DIR to rerun all).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# ----------------------------------------------------------------------------- parameters
REPO = Path(__file__).resolve().parents[2]
DNATOK = str(REPO / ".venv/bin/dnatok")
GENOME = "/work/shared/data/genome/hg38_chr2_1-2333275.fa.gz"
PIECE_LEN = 2_333_275
ANNOTATION = "/work/shared/data/annotation/gencode_v24_canonical_chr2_1-2333275.tsv"
ANN_FORMAT = "exon_models"
INTERVAL_BP = 65_536
TRAIN_START, VALID_START, TEST_START = 10_000, 1_700_000, 2_000_000
THREADS = 1

MODEL = "hyena"
MODEL_ARGS = {"d_model": 128, "n_layer": 4, "max_seq_len": 1024}
TOKENIZERS = {"char": {"kind": "char"}, "bpe": {"kind": "bpe", "vocab_size": 4096}}
PRETRAIN = {"seed": 0, "steps": 200, "seq_len": 512, "batch_size": 16, "learning_rate": 3e-3,
            "warmup_fraction": 0.1, "valid_windows": 32, "eval_every": 50, "log_every": 10,
            "checkpoint_every": 100, "progress": False}

GF_MAX_WINDOW_BP = 2000
DEEP_PER_INTRON = 2
VARIANT_SEED = 0
CONTEXT_BP = 256                       # BEND's
LM_PROBE = ["--arch", "cnn", "--epochs", "10", "--patience", "3"]      # BEND defaults otherwise
# the same CNN probe with the baseline's class weights (the unweighted probe can collapse to one class)
LM_PROBE_WEIGHTED = LM_PROBE + ["--class-weights", "inverse-frequency"]
BASELINE_PROBE = ["--arch", "resnet", "--layers", "6", "--hidden", "32", "--epochs", "9",
                  "--batch-size", "8", "--class-weights", "inverse-frequency", "--rc-aug"]
PROBE_SEED = 0
N_BOOT = 2000
# -----------------------------------------------------------------------------


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Runner:
    def __init__(self, work: Path):
        self.work = work
        self.cmds = work / "commands.sh"
        if not self.cmds.exists():
            self.cmds.write_text("#!/bin/bash\n# commands run by bench/bend/bench_zero_shot.py, in order\n"
                                 f"cd {shlex.quote(str(work))}\nexport OMP_NUM_THREADS={THREADS}\n")
        self.state = work / "stage_times.json"     # kept across reruns (skipped stages keep their times)
        old = json.loads(self.state.read_text()) if self.state.exists() else {"times": {}, "loads": {}}
        self.times: dict[str, float] = old["times"]
        self.loads: dict[str, list[float]] = old["loads"]

    def run(self, stage: str, args: list[str], done: Path | None = None) -> None:
        if done is not None and done.exists():
            print(f"[skip] {stage}: {done} exists", flush=True)
            return
        line = " ".join(shlex.quote(a) for a in args)
        with open(self.cmds, "a") as fh:
            fh.write(line + "\n")
        print(f"[run] {stage}: {line}", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
        t0 = time.time()
        with open(self.work / "logs" / f"{stage}.log", "w") as log:
            subprocess.run(args, cwd=self.work, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        self.times[stage] = round(time.time() - t0, 1)
        self.loads[stage] = loadavg()
        self.state.write_text(json.dumps({"times": self.times, "loads": self.loads}, indent=1) + "\n")
        print(f"[done] {stage}: {self.times[stage]} s, load {self.loads[stage]}", flush=True)


def write_bed(path: Path) -> None:
    rows, start = [], TRAIN_START
    while start + INTERVAL_BP <= PIECE_LEN:
        split = "train" if start < VALID_START else "valid" if start < TEST_START else "test"
        rows.append(f"chr2\t{start}\t{start + INTERVAL_BP}\t{split}")
        start += INTERVAL_BP
    path.write_text("\n".join(rows) + "\n")


def variant_stats(scores_tsv: Path, seed: int = 0) -> dict:
    import pandas as pd
    from scipy.stats import mannwhitneyu
    from sklearn.metrics import roc_auc_score

    df = pd.read_csv(scores_tsv, sep="\t")
    y, s = df["label"].to_numpy(), df["score"].to_numpy(dtype=float)
    auc = float(roc_auc_score(y, s))
    mw = mannwhitneyu(s[y == 1], s[y == 0], alternative="two-sided")
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    boots = []
    for _ in range(N_BOOT):   # stratified bootstrap over variants
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        boots.append(roc_auc_score(y[idx], s[idx]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    by_kind = {k: {"n": int(len(g)), "mean_score": float(g["score"].mean())} for k, g in df.groupby("kind")}
    return {"auroc": auc, "n_pos": int(len(pos)), "n_neg": int(len(neg)),
            "mannwhitney_U": float(mw.statistic), "mannwhitney_p_two_sided": float(mw.pvalue),
            "bootstrap_95ci": [float(lo), float(hi)], "n_boot": N_BOOT, "by_kind": by_kind}


def loss_first_last(run_dir: Path) -> dict:
    import pandas as pd

    log = pd.read_csv(run_dir / "train_log.tsv", sep="\t")
    v = log.dropna(subset=["valid_loss"])
    return {"train_loss_first": float(log["loss"].iloc[0]), "step_first": int(log["step"].iloc[0]),
            "train_loss_last": float(log["loss"].iloc[-1]), "step_last": int(log["step"].iloc[-1]),
            "valid_loss_first": float(v["valid_loss"].iloc[0]) if len(v) else None,
            "valid_loss_last": float(v["valid_loss"].iloc[-1]) if len(v) else None,
            "valid_steps": v["step"].astype(int).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--steps", type=int, default=PRETRAIN["steps"], help="pretraining steps per model")
    a = ap.parse_args()
    PRETRAIN["steps"] = a.steps
    work = a.work.resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    r = Runner(work)
    load_before = loadavg()
    t_all = time.time()
    D = DNATOK

    write_bed(work / "pieces.bed")
    (work / "idx").mkdir(exist_ok=True)
    for split in ("train", "valid"):
        r.run(f"extract_{split}", [D, "data", "extract", "--genome", GENOME, "--bed", "pieces.bed",
                                   "--split", split, "--out", f"{split}.fa", "--index-dir", "idx"],
              work / f"{split}.fa")
    for tok, spec in TOKENIZERS.items():
        extra = ["--corpus", "train.fa"] if spec["kind"] != "char" else []
        r.run(f"tokenizer_{tok}", [D, "tokenizer", "train", "--spec", json.dumps(spec), "--out", f"tok_{tok}",
                                   *extra], work / f"tok_{tok}")
    r.run("task_gene_finding", [D, "bend", "task", "gene-finding", "--annotation", ANNOTATION, "--format",
                                ANN_FORMAT, "--genome", GENOME, "--out", "gene_finding",
                                "--max-window-bp", str(GF_MAX_WINDOW_BP)], work / "gene_finding")
    r.run("variants", [D, "bend", "variants", "--annotation", ANNOTATION, "--format", ANN_FORMAT,
                       "--genome", GENOME, "--out", "variants.tsv", "--deep-per-intron", str(DEEP_PER_INTRON),
                       "--seed", str(VARIANT_SEED)], work / "variants.tsv")
    for tok in TOKENIZERS:
        r.run(f"pretrain_{tok}", [D, "pretrain", "--model", MODEL, "--tokenizer", f"tok_{tok}",
                                  "--train-fasta", "train.fa", "--valid-fasta", "valid.fa",
                                  "--out", f"lm_{tok}", "--threads", str(THREADS),
                                  "--model-args", json.dumps(MODEL_ARGS), "--settings", json.dumps(PRETRAIN)],
              work / f"lm_{tok}" / "provenance.json")   # written when the run has finished
    for tok in TOKENIZERS:
        r.run(f"score_{tok}", [D, "bend", "score-variants", "--model", f"lm_{tok}", "--tokenizer", f"tok_{tok}",
                               "--variants", "variants.tsv", "--genome", GENOME, "--out", f"scores_{tok}.tsv",
                               "--context-bp", str(CONTEXT_BP), "--device", "cpu"], work / f"scores_{tok}.tsv")
    r.run("variant_table", [D, "bend", "variant-table", "--scores", *[f"scores_{t}.tsv" for t in TOKENIZERS],
                            "--names", *[f"{MODEL}/{t}" for t in TOKENIZERS], "--out", "variant_table.tsv"])
    embedders = {**{t: ["--model", f"lm_{t}", "--tokenizer", f"tok_{t}"] for t in TOKENIZERS},
                 "onehot": ["--model", "onehot"]}
    for name, args in embedders.items():
        r.run(f"embed_{name}", [D, "bend", "embed", *args, "--task", "gene_finding", "--genome", GENOME,
                                "--out", f"emb_{name}", "--device", "cpu"], work / f"emb_{name}")
    probes = {**{n: (BASELINE_PROBE if n == "onehot" else LM_PROBE) for n in embedders},
              **{f"{t}_weighted": LM_PROBE_WEIGHTED for t in TOKENIZERS}}
    for probe_name, probe in probes.items():
        name = probe_name.removesuffix("_weighted")
        r.run(f"probe_{probe_name}", [D, "bend", "probe", "--task", "gene_finding", "--embeddings", f"emb_{name}",
                                "--out", f"probe_{probe_name}", "--seed", str(PROBE_SEED), *probe,
                                "--model-name", MODEL if name != "onehot" else "onehot-resnet",
                                "--tokenizer-name", name, "--device", "cpu"], work / f"probe_{probe_name}")

    # ------------------------------------------------------------------ summary
    summary = {"work": str(work), "nproc": os.cpu_count(), "load_before": load_before,
               "load_after_stage": r.loads, "wall_s": r.times, "total_wall_s": round(time.time() - t_all, 1),
               "model": MODEL, "model_args": MODEL_ARGS, "pretrain": PRETRAIN, "tokenizers": TOKENIZERS,
               "context_bp": CONTEXT_BP, "lm_probe": LM_PROBE, "lm_probe_weighted": LM_PROBE_WEIGHTED, "baseline_probe": BASELINE_PROBE,
               "pretraining": {}, "variants": {}, "probe": {}}
    for tok in TOKENIZERS:
        s = json.loads((work / f"lm_{tok}" / "provenance.json").read_text())["summary"]
        summary["pretraining"][tok] = {**loss_first_last(work / f"lm_{tok}"), "step": s["step"],
                                       "n_params": s["n_params"], "window_bp": s["window_bp"],
                                       "bases_per_token": s["bases_per_token"],
                                       "final_valid_loss": s["final_valid_loss"]}
        summary["variants"][tok] = variant_stats(work / f"scores_{tok}.tsv")
    for name in probes:
        m = json.loads((work / f"probe_{name}" / "metrics.json").read_text())
        pc = m["test"].get("per_class", {})
        summary["probe"][name] = {"test_mcc": m["mcc"], "valid_mcc": m.get("valid_metric"),
                                  "best_epoch": m.get("best_epoch"), "epochs_run": m.get("epochs_run"),
                                  "embedding_dim": m.get("embedding_dim"),
                                  "recall": dict(zip(pc.get("class", []), pc.get("recall", []))),
                                  "support": dict(zip(pc.get("class", []), pc.get("support", [])))}
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    lines = ["| model | AUROC | n_pos / n_neg | Mann-Whitney p | bootstrap 95 % CI |", "|---|---|---|---|---|"]
    for tok, v in summary["variants"].items():
        lines.append(f"| {MODEL}/{tok} | {v['auroc']:.3f} | {v['n_pos']} / {v['n_neg']} | "
                     f"{v['mannwhitney_p_two_sided']:.3g} | {v['bootstrap_95ci'][0]:.3f}-{v['bootstrap_95ci'][1]:.3f} |")
    lines += ["", "| embeddings | probe | test MCC | " + " | ".join(summary["probe"]["onehot"]["recall"]) + " |",
              "|---|---|---|" + "---|" * len(summary["probe"]["onehot"]["recall"])]
    for name, p in summary["probe"].items():
        rec = " | ".join("-" if x is None else f"{x:.2f}" for x in p["recall"].values())
        arch = "resnet, inv-freq weights" if name == "onehot" else \
            "cnn, inv-freq weights" if name.endswith("_weighted") else "cnn"
        lines.append(f"| {name.removesuffix('_weighted')} | {arch} | {p['test_mcc']:.3f} | {rec} |")
    (work / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps({"wall_s": r.times, "total": summary["total_wall_s"], "load_before": load_before}))


if __name__ == "__main__":
    sys.exit(main())
