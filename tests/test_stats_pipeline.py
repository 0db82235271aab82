"""`dnatok stats` commands end to end on synthetic metrics.json files (the pipeline's own
contract): collect -> select -> summary -> significance -> figures -> tables -> report."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from dnatok.errors import DataError, UserError
from dnatok.stats.cli import add_commands
from dnatok.stats.collect import collect_runs, read_metrics_json


def run_stats(*argv) -> int:
    """The stats command group alone (the other areas' commands are not needed here)."""
    parser = argparse.ArgumentParser(prog="dnatok")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stats", *map(str, argv)])
    return args.func(args) or 0


def _metrics(task, category, model, tok, seed, lr, mcc, val_mcc, collapsed=False):
    m = {"accuracy": 0.5 + mcc / 2, "mcc": mcc, "f1_macro": 0.5 + mcc / 2, "precision": 0.6, "recall": 0.6}
    return {
        "benchmark": "demo", "task": task, "category": category, "model": model,
        "tokenizer": tok, "seed": seed, "protocol": "corrected",
        "test": {**m, "auroc": 0.9}, "validation": {**m, "mcc": val_mcc},
        "hyperparameters": {"learning_rate": lr, "batch_size": 32, "rc_aug": False, "epochs": 4},
        "collapsed": collapsed, "wall_time_s": 12.5,              # extra keys are fine
    }


@pytest.fixture()
def metrics_files(tmp_path):
    """2 tasks x 2 tokenizers x 2 learning rates x 4 seeds; char beats BPE on splice_site."""
    rng = np.random.default_rng(0)
    paths = []
    for task, cat, gap in [("splice_site", "splice_sites", 0.10), ("gc_content", "epigenetic_marks", 0.0)]:
        for tok in ("char", "bpe"):
            for lr, shift in [(1e-3, 0.0), (1e-4, -0.2)]:       # 1e-3 is better on validation
                for seed in (1, 2, 3, 4):
                    base = 0.6 + shift + (gap if tok == "char" else 0.0) + 0.01 * seed
                    mcc = float(base + rng.normal(0, 0.005))
                    obj = _metrics(task, cat, "mamba", tok, seed, lr, mcc, mcc + 0.01,
                                   collapsed=(lr == 1e-4 and seed == 1))
                    path = (tmp_path / "results/finetune/demo" / task / "mamba" / tok
                            / f"lr{lr}" / f"seed{seed}" / "metrics.json")
                    path.parent.mkdir(parents=True)
                    path.write_text(json.dumps(obj))
                    paths.append(path)
    return paths


def test_read_metrics_errors_name_the_file(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"benchmark": "demo", "task": "t", "model": "m", "seed": 1,
                               "protocol": "corrected", "test": {"mcc": 0.1}}))
    with pytest.raises(DataError, match=r"metrics\.json.*tokenizer"):
        read_metrics_json(bad)
    obj = _metrics("t", None, "m", "char", 1, 1e-3, 0.5, 0.5)
    del obj["test"]["recall"]
    bad.write_text(json.dumps(obj))
    with pytest.raises(DataError, match="recall"):
        read_metrics_json(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_metrics_json(bad)


def test_collect_fills_category_from_registry_and_rejects_duplicates(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps({**_metrics("virus_covid", None, "mamba", "char", 1, 1e-3, 0.5, 0.5),
                             "benchmark": "gue"}))
    runs = collect_runs([a])
    assert runs.loc[0, "category"] == "virus_variant"          # registry, via the study alias
    assert runs.loc[0, "name"] == "mamba/char"
    assert runs.loc[0, "val_mcc"] == 0.5 and runs.loc[0, "auroc"] == 0.9
    b = tmp_path / "b.json"
    b.write_text(a.read_text())
    with pytest.raises(DataError, match="same run"):
        collect_runs([a, b])


def test_cli_end_to_end(tmp_path, metrics_files):
    runs = tmp_path / "runs.tsv"
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(map(str, metrics_files[1:])) + "\n")
    assert run_stats("collect", "--metrics", metrics_files[0], "--metrics-list", listing, "--out", runs) == 0
    table = pd.read_csv(runs, sep="\t")
    assert len(table) == 32 and (tmp_path / "runs.provenance.json").exists()

    # Two learning rates per model/tokenizer: the paired test refuses until selection.
    with pytest.raises(UserError, match="stats select"):
        run_stats("significance", "--runs", runs, "--a", "char", "--b", "bpe", "--out", tmp_path / "x.tsv")

    selected = tmp_path / "selected.tsv"
    run_stats("select", "--input", runs, "--out", selected)      # default rule: validation
    kept = pd.read_csv(selected, sep="\t")
    assert len(kept) == 16 and set(kept["learning_rate"]) == {1e-3}

    summary = tmp_path / "summary.tsv"
    run_stats("summary", "--runs", runs, "--tokenizer", "char", "--out", summary)
    s = pd.read_csv(summary, sep="\t")
    assert len(s) == 4 and set(s["tokenizer"]) == {"char"}         # 2 tasks x 2 lr
    row = s[(s.task == "splice_site") & (s.learning_rate == 1e-4)].iloc[0]
    raw = table[(table.task == "splice_site") & (table.tokenizer == "char") & (table.learning_rate == 1e-4)]
    assert row["n"] == 4 and row["n_collapsed"] == 1
    assert row["mcc_mean"] == pytest.approx(raw["mcc"].mean())
    assert row["mcc_std"] == pytest.approx(raw["mcc"].std(ddof=1))
    assert row["mcc_pm"] == f"{raw['mcc'].mean():.3f} ± {raw['mcc'].std(ddof=1):.3f}"

    # One runs table per tokenizer, as the workflow passes them.
    per_tok = []
    for tok in ("char", "bpe"):
        path = tmp_path / f"{tok}.tsv"
        kept[kept.tokenizer == tok].to_csv(path, sep="\t", index=False)
        per_tok.append(path)
    sig_path = tmp_path / "significance.tsv"
    run_stats("significance", "--runs", *per_tok, "--a", "char", "--b", "bpe", "--out", sig_path,
              "--bootstrap", 500)
    sig = pd.read_csv(sig_path, sep="\t")
    assert set(sig["level"]) == {"task", "category", "all"}
    assert (sig["model"] == "mamba").all() and (sig["a"] == "mamba/char").all()
    by = sig.set_index(["level", "group"])
    assert by.loc[("task", "splice_site"), "n_pairs"] == 4
    assert by.loc[("task", "splice_site"), "mean_diff"] == pytest.approx(0.10, abs=0.02)
    assert by.loc[("task", "splice_site"), "better"] == "mamba/char"
    assert by.loc[("category", "splice_sites"), "n_tasks"] == 1
    assert by.loc[("all", "OVERALL"), "n_pairs"] == 8

    fig_dir = tmp_path / "figures"
    run_stats("figures", "--runs", *per_tok, "--out-dir", fig_dir)
    for name in ("mcc_heatmap", "scatter_char_vs_bpe"):
        for ext in ("png", "pdf"):
            assert (fig_dir / f"{name}.{ext}").stat().st_size > 1000
    assert (fig_dir / "mcc_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    md, tex = tmp_path / "t.md", tmp_path / "t.tex"
    run_stats("tables", "--significance", sig_path, "--out-md", md, "--out-tex", tex)
    assert "| **splice_site** |" in md.read_text()
    assert r"\textbf{splice\_site}" in tex.read_text() and r"\toprule" in tex.read_text()

    report = tmp_path / "report" / "index.md"
    run_stats("report", "--summaries", summary, "--significance", sig_path, "--figures", fig_dir,
              "--out-md", report, "--out-tex", tmp_path / "report" / "tables.tex",
              "--out", tmp_path / "report" / "report.html")
    text = report.read_text()
    assert "![mcc_heatmap](../figures/mcc_heatmap.png)" in text and "splice_site" in text
    assert "data:image/png;base64," in (tmp_path / "report" / "report.html").read_text()


def test_figures_and_summary_on_published_table(shared_dir, tmp_path):
    best = shared_dir / "published" / "lindsey2025" / "best_replicates_ss.csv"
    if not best.exists():
        pytest.skip(f"{best} is absent")
    run_stats("figures", "--runs", best, "--out-dir", tmp_path, "--a", "Mamba-char", "--b", "Mamba-bpe")
    assert (tmp_path / "scatter_Mamba-char_vs_Mamba-bpe.pdf").exists()
    run_stats("summary", "--runs", best, "--out", tmp_path / "s.tsv")
    s = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert "tokenizer" not in s.columns                    # empty keys are dropped
    assert set(s["model"]) == {"CNN", "Caduceus", "HyenaDNA", "Mamba-bpe", "Mamba-char"}
    with pytest.raises(UserError, match="tokenizer column"):
        run_stats("summary", "--runs", best, "--tokenizer", "char", "--out", tmp_path / "t.tsv")


def test_malformed_table_is_a_located_error(tmp_path):
    bad = tmp_path / "runs.csv"
    bad.write_text("task,model,tokenizer,seed,mcc\nt,m,char,1,0.5\nt,m,char,2,0.5,extra\n")
    with pytest.raises(DataError, match=r"runs\.csv:3: malformed table"):
        run_stats("summary", "--runs", bad, "--out", tmp_path / "s.tsv")
    assert not (tmp_path / "s.tsv").exists()


def test_select_follows_each_runs_protocol(tmp_path):
    """corrected picks the grid point with the best mean validation MCC, original the best
    mean test MCC (the study's rule); the candidate table says why."""
    from dnatok.stats.collect import collect_runs
    from dnatok.stats.select import select_runs

    paths = []
    # lr 1e-3: better on validation; lr 1e-4: better on test
    for protocol, how in (("corrected", "validation"), ("original", "test")):
        for lr, val, test in ((1e-3, 0.8, 0.5), (1e-4, 0.6, 0.7)):
            for seed in (1, 2, 3):
                obj = _metrics("tf_0", None, "mamba", "char", seed, lr, test + 0.01 * seed, val)
                obj.update(protocol=protocol, protocol_fields={"hyperparameter_selection": how})
                path = tmp_path / protocol / f"lr{lr}" / f"seed{seed}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(obj))
                paths.append(path)
    runs = collect_runs(paths)
    assert set(runs["hp"]) == {"lr1e-3_bs32_rc0", "lr1e-4_bs32_rc0"}
    selected, cand = select_runs(runs)
    chosen = selected.groupby("protocol")["learning_rate"].unique().to_dict()
    assert list(chosen["corrected"]) == [1e-3] and list(chosen["original"]) == [1e-4]
    assert len(selected) == 6
    assert dict(zip(cand["protocol"], cand["rule"])) == {"corrected": "validation", "original": "study"}
    assert cand.groupby("protocol")["selected"].sum().to_dict() == {"corrected": 1, "original": 1}
    assert set(cand.columns) >= {"n_runs", "mean_val_mcc", "mean_test_mcc", "score", "eligible"}
    runs.loc[0, "hp_selection"] = None
    with pytest.raises(UserError, match="hp_selection"):
        select_runs(runs)
