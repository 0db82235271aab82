"""The nine-models part of the DAG, run for real on real data from ../shared
(tests/study/real_released.yaml): HyenaDNA pretrained here with char and BPE, and two
released checkpoints fetched from local mirrors (DNABERT-2 with the real released
tokenizer.json; DNABERT-6) through download_checkpoint -> finetune -> select -> tables,
both protocols, on GUE mouse_3 and a Genomic Benchmarks task cut from the chr2 piece."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_real_study import GB_TASK, SNAKEMAKE, _build_mirrors

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "study" / "real_released.yaml"
SEEDS = (1, 2)


def _released_mirrors(work: Path, shared: Path, conf: dict) -> None:
    from dnatok.released import dnabert, dnabert2
    from dnatok.released.tokenizers import write_release_tokenizer

    d2 = work / conf["models"]["dnabert2"]["mirror"]
    dnabert2.write_tiny_release(d2)              # vocab 4096: the real tokenizer's ids fit
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(shared / "checkpoints/dnabert2-117m" / name, d2 / name)
    d6 = work / conf["models"]["dnabert"]["mirror"]
    dnabert.write_tiny_release(d6)
    write_release_tokenizer("dnabert6", d6)
    # the nine genes' exon models (GENCODE V24, SpliceAI's table) for the bend tasks
    annotation = work / conf["bend"]["tasks"]["gene_finding"]["mirror"]
    annotation.parent.mkdir(parents=True)
    shutil.copyfile(shared / "data/annotation/gencode_v24_canonical_chr2_1-2333275.tsv", annotation)


@pytest.fixture(scope="module")
def study(tmp_path_factory, shared_dir):
    work = tmp_path_factory.mktemp("real_released")
    conf = yaml.safe_load(CONFIG.read_text())
    _build_mirrors(work, shared_dir, conf)
    _released_mirrors(work, shared_dir, conf)
    proc = subprocess.run(SNAKEMAKE + ["--configfile", str(CONFIG), "--cores", "2", "all"], cwd=work,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return {"work": work, "conf": conf}


def _metrics(work: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(work.glob("results/finetune/*/*/*/*/*/*/seed*/metrics.json"))]


def test_every_run_of_every_model_exists(study):
    runs = _metrics(study["work"])
    # 2 tasks x 2 protocols x 2 seeds x (hyena char + hyena bpe + DNABERT-2 + DNABERT-6)
    assert len(runs) == 2 * 2 * len(SEEDS) * 4
    names = {(m["model"], m["tokenizer"], m["label"]) for m in runs}
    assert names == {("hyena", "char", "HyenaDNA-char"), ("hyena", "bpe", "HyenaDNA-bpe"),
                     ("dnabert2", "own", "DNABERT2"), ("dnabert", "own", "DNABERT")}
    for m in runs:
        if m["tokenizer"] == "own":
            assert m["released_checkpoint"] and m["new_head_tensors"]
            assert m["pretrained"].endswith(f"resources/checkpoints/{m['model']}")
        else:
            assert m["pretrained"].endswith(f"results/pretrain/hyena/{m['tokenizer']}")


def test_checkpoints_are_fetched_with_checksums_and_loaded_once(study):
    work = study["work"]
    for model in ("dnabert2", "dnabert"):
        side = (work / f"resources/checkpoints/{model}.sha256").read_text().splitlines()
        assert any(line.endswith("config.json") for line in side)
        log = (work / f"logs/download_checkpoint/{model}.log").read_text()
        assert '"family": "' + model + '"' in log


def test_original_replays_the_attention_recipe_and_the_dnabert_input_bug(study):
    runs = _metrics(study["work"])
    for m in (r for r in runs if r["tokenizer"] == "own"):
        hp = m["hyperparameters"]
        if m["protocol"] == "original":
            assert m["protocol_recipe"] == "hf_trainer" and m["selection_metric"] == "loss"
        else:
            assert m["protocol_recipe"] == "caduceus" and m["selection_metric"] == "mcc"
        assert hp["padding_side"] == "right" and hp["padding_mask_to_model"]
        bug = m["model"] == "dnabert" and m["benchmark"] == "gb" and m["protocol"] == "original"
        assert (m["tokenizer_variant"] == "dnabert6-unspaced") == bug
        if bug:
            assert hp["max_tokens"] == 3          # every input became [CLS] [UNK] [SEP]
    hyena_original = [m for m in runs if m["model"] == "hyena" and m["protocol"] == "original"]
    assert {m["hyperparameters"]["padding_side"] for m in hyena_original} == {"left"}


def test_released_models_join_the_tables_under_their_published_names(study):
    work = study["work"]
    for bench in ("gue", "gb"):
        summary = pd.read_csv(work / f"results/{bench}/own/summary.tsv", sep="\t")
        assert set(summary["name"]) == {"DNABERT2", "DNABERT"}
    means = pd.read_csv(work / "results/study/means_benchmark.tsv", sep="\t")
    for name in ("HyenaDNA-char", "HyenaDNA-bpe", "DNABERT2", "DNABERT"):
        for protocol in ("original", "corrected"):
            assert f"{name}[{protocol}]" in means.columns
    protocols = pd.read_csv(work / "results/study/protocols.tsv", sep="\t")
    gb_dnabert = protocols[(protocols["task"] == GB_TASK) & (protocols["model"] == "dnabert")]
    assert len(gb_dnabert) == 1                    # what the --kmer -1 bug cost, side by side


# ---------------------------------------------------------------- nucleotide level (bend)
BEND_PAIRS = {("onehot", "none"), ("hyena", "char"), ("hyena", "bpe"), ("dnabert", "own")}


def _probe_metrics(work: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(work.glob("results/bend/probe/*/*/*/seed*/metrics.json"))]


def test_bend_gene_finding_is_split_by_gene_and_labels_sit_on_splice_sites(study):
    from dnatok.bend.format import read_task

    work = study["work"]
    task = read_task(work / "data/bend/gene_finding")
    genome = work / "resources/pretrain/hg38/hg38.ml.fa.gz"
    seqs = task.sequences(genome)
    genes = {}
    for rec, labels, seq in zip(task.records, task.labels, seqs):
        assert len(labels) == rec.end - rec.start == len(seq)
        genes.setdefault(rec.id.split(":")[0], set()).add(rec.split)
        for p in map(int, (labels == 1).nonzero()[0]):      # donor, + strand: GT starts here
            assert seq[p:p + 2] == "GT"
        for p in map(int, (labels == 3).nonzero()[0]):      # acceptor, + strand: AG ends here
            assert seq[p - 1:p + 1] == "AG"
    assert all(len(splits) == 1 for splits in genes.values())   # no gene in two splits
    strands = {(r.split, r.strand) for r in task.records}
    assert {s for s, _ in strands} == {"train", "valid", "test"}


def test_bend_embeds_every_model_at_base_resolution_and_records_the_upsampling(study):
    work = study["work"]
    modes = {}
    for model, tok in BEND_PAIRS:
        meta = json.loads((work / f"results/bend/embeddings/gene_finding/{model}/{tok}/meta.json").read_text())
        modes[(model, tok)] = meta["upsample"]
    assert modes == {("onehot", "none"): "none", ("hyena", "char"): "none",
                     ("hyena", "bpe"): "repeat", ("dnabert", "own"): "repeat"}


def test_bend_probes_feed_the_summary_significance_and_report(study):
    from sklearn.metrics import matthews_corrcoef

    import numpy as np

    work = study["work"]
    runs = _probe_metrics(work)
    assert {(m["model"], m["tokenizer"], m["seed"]) for m in runs} == {
        (m, t, s) for m, t in BEND_PAIRS for s in SEEDS}
    for m in runs:
        pred = np.load(work / f"results/bend/probe/gene_finding/{m['model']}/{m['tokenizer']}/seed{m['seed']}/predictions.npz")
        assert m["test"]["mcc"] == pytest.approx(matthews_corrcoef(pred["labels"], pred["pred"]), abs=1e-9)
        assert pred["labels"].size == m["n_bases"]["test"]      # every test base is scored
    # BEND's supervised baseline (one-hot, dilated ResNet) learns something on held-out genes
    assert all(m["test"]["mcc"] > 0 for m in runs if m["model"] == "onehot")
    summary = pd.read_csv(work / "results/bend/probe_summary.tsv", sep="\t")
    assert {(m, t) for m, t in zip(summary["model"], summary["tokenizer"])} == BEND_PAIRS
    sig = pd.read_csv(work / "results/bend/probe_significance.tsv", sep="\t")
    assert set(sig["model"]) == {"hyena"} and set(sig["a"]) == {"hyena/char"} and set(sig["b"]) == {"hyena/bpe"}
    report = (work / "results/report/index.md").read_text()
    assert "results/bend/probe_summary.tsv" in report and "results/bend/variant_effects.tsv" in report


def test_bend_variant_effects_score_splice_breakers_against_deep_intronic_snvs(study):
    work = study["work"]
    table = pd.read_csv(work / "results/bend/variant_effects.tsv", sep="\t")
    assert {(m, t) for m, t in zip(table["model"], table["tokenizer"])} == BEND_PAIRS - {("onehot", "none")}
    assert table["auroc"].between(0, 1).all()
    assert (table["n_pos"] == 208).all()                   # one SNV in each of the 104 GT donors and 104 AG acceptors
    hyena = table[table["model"] == "hyena"]
    assert hyena["causal"].all() and not table[table["model"] == "dnabert"]["causal"].any()
