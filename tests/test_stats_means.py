"""`dnatok stats means`: the headline mean-MCC table (benchmark / category x name), on small
synthetic tables for the logic and on the study's two published per-run CSVs."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from dnatok.errors import DataError, UserError
from dnatok.stats.cli import add_commands
from dnatok.stats.collect import load_table
from dnatok.stats.means import headline_means, load_inputs

RUN_COLUMNS = ["benchmark", "task", "category", "model", "tokenizer", "name", "protocol", "seed",
               "learning_rate", "batch_size", "rc_aug", "mcc"]


def run_stats(*argv) -> int:
    parser = argparse.ArgumentParser(prog="dnatok")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stats", *map(str, argv)])
    return args.func(args) or 0


def runs_table(path, rows):
    """rows: (benchmark, task, model, tokenizer, protocol, seed, lr, mcc); category empty
    (taken from the registry, as for the pipeline's real tasks)."""
    df = pd.DataFrame([{"benchmark": b, "task": t, "category": "", "model": m, "tokenizer": k,
                        "name": f"{m}/{k}", "protocol": p, "seed": s, "learning_rate": lr,
                        "batch_size": 32, "rc_aug": False, "mcc": v}
                       for b, t, m, k, p, s, lr, v in rows], columns=RUN_COLUMNS)
    df.to_csv(path, sep="\t", index=False)
    return path


def _task_rows(bench, task, model, tok, values, protocol="corrected", lr=1e-3):
    return [(bench, task, model, tok, protocol, seed, lr, v) for seed, v in enumerate(values, 1)]


@pytest.fixture()
def simple(tmp_path):
    """mamba/char: prom_core_all 4 runs (mean 0.3), tf_0 2 runs (mean 0.9), GB
    human_ocr_ensembl 2 runs (mean 0.0); mamba/bpe only on prom_core_all (mean 0.5)."""
    rows = (_task_rows("gue", "prom_core_all", "mamba", "char", [0.2, 0.4, 0.2, 0.4])
            + _task_rows("gue", "tf_0", "mamba", "char", [0.8, 1.0])
            + _task_rows("gb", "human_ocr_ensembl", "mamba", "char", [-0.1, 0.1])
            + _task_rows("gue", "prom_core_all", "mamba", "bpe", [0.5, 0.5]))
    return runs_table(tmp_path / "runs.tsv", rows)


def test_mean_of_task_means_and_overall_over_tasks(simple, tmp_path):
    out = tmp_path / "means.tsv"
    assert run_stats("means", "--input", simple, "--out", out) == 0
    table = pd.read_csv(out, sep="\t").set_index("group")
    assert list(table.index) == ["gue", "gb", "overall"]
    assert list(table.columns) == ["mamba/char", "mamba/bpe"]
    # gue: mean of the task means (0.3, 0.9) = 0.6, not the run mean (4*0.3 + 2*0.9)/6 = 0.5
    assert table.loc["gue", "mamba/char"] == pytest.approx(0.6)
    assert table.loc["gb", "mamba/char"] == pytest.approx(0.0)
    # overall: over the 3 tasks (0.3+0.9+0)/3 = 0.4, not the mean of group means (0.3)
    assert table.loc["overall", "mamba/char"] == pytest.approx(0.4)
    assert table.loc["gue", "mamba/bpe"] == pytest.approx(0.5)
    detail = pd.read_csv(tmp_path / "means.detail.tsv", sep="\t").set_index(["group", "name"])
    assert list(detail.reset_index().columns) == ["group", "name", "mean", "std", "n_tasks",
                                                  "n_runs"]
    row = detail.loc[("gue", "mamba/char")]
    assert (row.n_tasks, row.n_runs) == (2, 6)
    assert row["std"] == pytest.approx(np.std([0.3, 0.9], ddof=1))
    assert detail.loc[("overall", "mamba/char")].n_tasks == 3
    prov = json.loads((tmp_path / "means.provenance.json").read_text())
    assert prov["stage"] == "stats means" and prov["params"]["by"] == "benchmark"


def test_missing_cells_are_empty_not_zero(simple, tmp_path):
    out = tmp_path / "means.tsv"
    run_stats("means", "--input", simple, "--out", out)
    lines = out.read_text().splitlines()
    gb = next(ln for ln in lines if ln.startswith("gb\t")).split("\t")
    assert gb[2] == ""                               # mamba/bpe has no GB task
    assert pd.isna(pd.read_csv(out, sep="\t").set_index("group").loc["gb", "mamba/bpe"])
    detail = pd.read_csv(tmp_path / "means.detail.tsv", sep="\t")
    assert not ((detail.group == "gb") & (detail.name == "mamba/bpe")).any()


def test_by_category(simple):
    wide, _ = headline_means(load_inputs([simple]), by="category")
    table = wide.set_index("group")
    assert list(table.index) == ["regulatory", "promoters", "transcription_factors", "overall"]
    assert table.loc["promoters", "mamba/char"] == pytest.approx(0.3)
    assert pd.isna(table.loc["transcription_factors", "mamba/bpe"])


def test_tasks_outside_the_44_are_dropped_unless_all_tasks(tmp_path):
    rows = (_task_rows("gue", "tf_0", "mamba", "char", [0.5, 0.7])
            + _task_rows("gue", "emp_H3", "mamba", "char", [0.1, 0.1])
            + _task_rows("demo", "phage_fragments", "mamba", "char", [0.0, 0.0]))
    path = runs_table(tmp_path / "runs.tsv", rows)
    notes = []
    wide, _ = headline_means(load_inputs([path]), warn=notes.append)
    assert wide.set_index("group").loc["overall", "mamba/char"] == pytest.approx(0.6)
    assert "emp_H3" in notes[0] and "phage_fragments" in notes[0]
    notes.clear()
    wide, _ = headline_means(load_inputs([path]), all_tasks=True, warn=notes.append)
    table = wide.set_index("group")["mamba/char"]
    assert table["gue"] == pytest.approx(0.35)            # tf_0 and emp_H3
    assert table["demo"] == pytest.approx(0.0)            # its own benchmark row
    assert table["overall"] == pytest.approx((0.6 + 0.1 + 0.0) / 3)
    # by category, the uncategorised tasks count in overall only (and are named)
    notes.clear()
    wide, _ = headline_means(load_inputs([path]), by="category", all_tasks=True, warn=notes.append)
    assert list(wide.group) == ["transcription_factors", "overall"]
    assert "overall' only" in notes[0] and "emp_H3" in notes[0]


def test_several_protocols_become_separate_columns(tmp_path):
    rows = (_task_rows("gue", "tf_0", "mamba", "char", [0.5, 0.7], protocol="study")
            + _task_rows("gue", "tf_0", "mamba", "char", [0.1, 0.3], protocol="corrected"))
    path = runs_table(tmp_path / "runs.tsv", rows)
    wide, _ = headline_means(load_inputs([path]))
    table = wide.set_index("group")
    assert list(table.columns) == ["mamba/char[study]", "mamba/char[corrected]"]
    assert table.loc["gue", "mamba/char[study]"] == pytest.approx(0.6)
    assert table.loc["gue", "mamba/char[corrected]"] == pytest.approx(0.2)
    # a single protocol keeps the plain name
    one = runs_table(tmp_path / "one.tsv", rows[:2])
    assert list(headline_means(load_inputs([one]))[0].columns) == ["group", "mamba/char"]


def test_mixed_hyperparameters_are_refused_naming_the_file(tmp_path):
    rows = (_task_rows("gue", "tf_0", "mamba", "char", [0.5, 0.7], lr=1e-3)
            + _task_rows("gue", "tf_0", "mamba", "char", [0.1, 0.3], lr=1e-4))
    path = runs_table(tmp_path / "sweep.tsv", rows)
    with pytest.raises(UserError, match=r"sweep\.tsv.*mamba/char on tf_0.*stats select"):
        run_stats("means", "--input", path, "--out", tmp_path / "m.tsv")
    assert not (tmp_path / "m.tsv").exists()


def test_bad_input_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.tsv"
    pd.DataFrame({"task": ["tf_0"], "model": ["mamba"], "mcc": [0.1]}).to_csv(bad, sep="\t",
                                                                              index=False)
    with pytest.raises(DataError, match="broken.tsv"):
        run_stats("means", "--input", bad, "--out", tmp_path / "m.tsv")
    attn = tmp_path / "attn.csv"
    pd.DataFrame({"model": ["GPT", "GPT"], "lr": [1e-5, 1e-5], "benchmark": ["GUE", "XYZ"],
                  "task": ["tf_0", "tf_1"], "seed": [1, 1], "mcc": [0.1, 0.2]}
                 ).to_csv(attn, index=False)
    with pytest.raises(DataError, match=r"attn\.csv:3: unknown benchmark 'XYZ'"):
        load_table(attn)
    clash = tmp_path / "clash.csv"
    pd.DataFrame({"model": ["GPT"], "lr": [1e-5], "benchmark": ["GB"], "task": ["tf_0"],
                  "seed": [1], "mcc": [0.1]}).to_csv(clash, index=False)
    with pytest.raises(DataError, match=r"clash\.csv:2: task 'tf_0'.*'GB'.*'gue'"):
        load_table(clash)
    with pytest.raises(UserError, match="--by"):
        headline_means(pd.DataFrame(), by="task")


def test_published_formats_and_own_runs_in_one_table(simple, tmp_path):
    """Both published layouts (written here in miniature) next to a pipeline runs table."""
    ss = tmp_path / "ss.csv"
    pd.DataFrame({"task": ["human_tf_0"] * 2 + ["phage_fragments"], "run_name": ["r"] * 3,
                  "seed": [1, 2, 1], "learning_rate": [1e-3] * 3, "batch_size": [64] * 3,
                  "mcc": [0.4, 0.6, 0.9], "model": ["Mamba-char"] * 3,
                  "rc_aug": ["False"] * 3}).to_csv(ss, index=False)
    attn = tmp_path / "attn.csv"
    pd.DataFrame({"directory_name": ["d"] * 3, "model": ["DNABERT2"] * 3, "lr": [3e-5] * 3,
                  "benchmark": ["GUE", "GUE", "NTv2"],
                  "task": ["tf_0", "tf_0", "splice_sites_donor"],
                  "seed": [42.0, 42.0, 1.0], "mcc": [0.7, 0.8, 0.95]}).to_csv(attn, index=False)
    notes = []
    wide, detail = headline_means(load_inputs([ss, attn, simple]), warn=notes.append)
    table = wide.set_index("group")
    assert list(table.columns) == ["DNABERT2", "Mamba-char", "mamba/char", "mamba/bpe"]
    assert table.loc["gue", "Mamba-char"] == pytest.approx(0.5)
    assert table.loc["gue", "DNABERT2"] == pytest.approx(0.75)  # a repeated seed is another run
    assert table.loc["nt", "DNABERT2"] == pytest.approx(0.95)   # splice_sites_donor alias
    assert pd.isna(table.loc["nt", "Mamba-char"])
    assert "phage_fragments" in notes[0]
    row = detail.set_index(["group", "name"]).loc[("gue", "DNABERT2")]
    assert (row.n_tasks, row.n_runs) == (1, 2)


# --------------------------------------------------------------------------- published data
PUBLISHED_NAMES = ["CNN", "GPT", "DNABERT2", "Mamba-bpe", "NTv2", "DNABERT", "HyenaDNA",
                   "Mamba-char", "Caduceus"]


@pytest.fixture(scope="module")
def published(shared_dir):
    folder = shared_dir / "published" / "lindsey2025"
    paths = [folder / "best_replicates_ss.csv", folder / "best_replicates.csv"]
    if not all(p.exists() for p in paths):
        pytest.skip("published per-run CSVs are absent")
    return paths


@pytest.fixture(scope="module")
def independent(published):
    """Task means straight from the raw CSVs with pandas, without the package's reader."""
    ss = pd.read_csv(published[0])
    attn = pd.read_csv(published[1])
    ss = ss[ss.task != "phage_fragments"]
    attn = attn[attn.task != "drosophilia_enhancers"]
    gue = {f"{p}_{i}" for p in ("tf", "mouse") for i in range(5)} | {"covid", "reconstructed"}
    gue |= {f"prom_{k}_{s}" for k in ("core", "300") for s in ("all", "notata", "tata")}
    gb_tasks = set(attn.loc[attn.benchmark == "GB", "task"])
    bench = {t: "gue" if t in gue else "gb" if t in gb_tasks else "nt" for t in ss.task.unique()}
    both = pd.concat([ss[["task", "model", "mcc"]], attn[["task", "model", "mcc"]]])
    means = both.groupby(["model", "task"])["mcc"].mean().rename("mean").reset_index()
    means["benchmark"] = means.task.map(bench)
    return means


def test_published_by_benchmark(published, independent, tmp_path):
    out = tmp_path / "means.tsv"
    assert run_stats("means", "--input", *published, "--by", "benchmark", "--out", out) == 0
    table = pd.read_csv(out, sep="\t").set_index("group")
    assert list(table.index) == ["gue", "gb", "nt", "overall"]
    assert list(table.columns) == PUBLISHED_NAMES
    assert table.notna().all().all()
    ref = independent.groupby(["benchmark", "model"])["mean"].mean()
    for bench, model in [("gue", "DNABERT2"), ("gb", "Caduceus"), ("nt", "NTv2"),
                         ("nt", "Mamba-char"), ("gue", "CNN")]:
        assert table.loc[bench, model] == pytest.approx(ref[(bench, model)], abs=1e-12)
    overall = independent.groupby("model")["mean"].mean()
    for model in ("Mamba-bpe", "GPT", "HyenaDNA"):
        assert table.loc["overall", model] == pytest.approx(overall[model], abs=1e-12)
    # task counts: GUE 18, GB 8, NT 18 = the 44 study tasks, for every model
    detail = pd.read_csv(tmp_path / "means.detail.tsv", sep="\t")
    counts = detail.pivot(index="group", columns="name", values="n_tasks")
    assert (counts.loc["gue"] == 18).all() and (counts.loc["gb"] == 8).all()
    assert (counts.loc["nt"] == 18).all() and (counts.loc["overall"] == 44).all()
    # the paper's reading: Caduceus best on GB, NTv2 best on NT, DNABERT2 best overall
    assert table.loc["gb"].idxmax() == "Caduceus"
    assert table.loc["nt"].idxmax() == "NTv2"
    assert table.loc["overall"].idxmax() == "DNABERT2"


def test_published_by_category(published, independent):
    from dnatok.registry import CATEGORIES, category_of

    wide, detail = headline_means(load_inputs(published), by="category")
    table = wide.set_index("group")
    assert list(table.index) == [*CATEGORIES, "overall"]
    assert list(table.columns) == PUBLISHED_NAMES
    ref = independent.assign(category=independent.task.map(category_of))
    ref = ref.groupby(["category", "model"])["mean"].mean()
    for cat, model in [("virus_variant", "Caduceus"), ("splice_sites", "NTv2"),
                       ("promoters", "DNABERT"), ("taxonomic", "Mamba-char")]:
        assert table.loc[cat, model] == pytest.approx(ref[(cat, model)], abs=1e-12)
    counts = detail[detail.name == "Mamba-char"].set_index("group")["n_tasks"]
    assert counts.to_dict() == {"regulatory": 3, "promoters": 9, "enhancers": 5,
                                "transcription_factors": 10, "epigenetic_marks": 10,
                                "splice_sites": 4, "coding": 1, "taxonomic": 1,
                                "virus_variant": 1, "overall": 44}


def test_published_all_tasks_keeps_the_extra_tasks(published):
    notes = []
    _, detail = headline_means(load_inputs(published), all_tasks=True, warn=notes.append)
    counts = detail.set_index(["group", "name"])["n_tasks"]
    assert counts[("gb", "DNABERT")] == 9                    # + drosophilia_enhancers
    assert counts[("gb", "HyenaDNA")] == 8
    assert counts[("overall", "HyenaDNA")] == 45             # + phage_fragments, overall only
    assert any("phage_fragments" in n for n in notes)
