"""The whole study DAG, run for real on real data from ../shared (tests/study/real_study.yaml):
two GUE tasks, one Genomic Benchmarks task cut from the hg38 chr2 piece, pretraining windows
from the same piece, char and BPE, a Mamba with a 2-point learning-rate grid and the CNN,
3 seeds, both protocols, through selection to results/study/.

The same run then answers three more questions: config values with shell metacharacters
(the mirror folder names) run nothing; editing one config section reruns exactly the jobs
that depend on it (dry runs against the finished outputs); and a changed pretraining
setting retrains from step 0 instead of resuming the old checkpoints.
"""
from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "study" / "real_study.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
PIECE = "data/genome/hg38_chr2_1-2333275.fa.gz"
PIECE_LEN = 2_333_275
GB_TASK = "human_ensembl_regulatory"
SEEDS = (1, 2, 3)
PROTOCOLS = ("original", "corrected")


def _run(args, cwd, timeout=900):
    proc = subprocess.run(SNAKEMAKE + args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr


def _build_mirrors(work: Path, shared: Path, conf: dict) -> None:
    """The offline copies the config points at, made from ../shared under the config's
    deliberately awkward folder names."""
    hg38 = work / conf["pretrain_data"]["mirror"]
    hg38.mkdir(parents=True)
    shutil.copyfile(shared / PIECE, hg38 / "hg38.ml.fa.gz")
    # 64 kb intervals of the piece (its first 10 kb are the telomere gap): train, then valid, then test
    rows, start = [], 10_000
    while start + 65_536 <= PIECE_LEN:
        split = "train" if start < 1_700_000 else "valid" if start < 2_000_000 else "test"
        rows.append(f"chr2\t{start}\t{start + 65_536}\t{split}")
        start += 65_536
    (hg38 / "sequences_human.bed").write_text("\n".join(rows) + "\n")

    gue = work / conf["benchmarks"]["gue"]["mirror"]
    for task in ("mouse/2", "mouse/3"):
        shutil.copytree(shared / "data/gue" / task, gue / task)

    gb = work / conf["benchmarks"]["gb"]["mirror"] / GB_TASK
    src = shared / "data/genomic_benchmarks" / GB_TASK
    gb.mkdir(parents=True)
    shutil.copyfile(src / "metadata.yaml", gb / "metadata.yaml")
    for part in src.glob("*/*.csv.gz"):   # chr2 rows only: inside the piece or past its end
        (gb / part.parent.name).mkdir(exist_ok=True)
        with gzip.open(part, "rt") as fh:
            lines = [ln for i, ln in enumerate(fh) if i == 0 or ",chr2," in ln]
        with gzip.open(gb / part.parent.name / part.name, "wt") as fh:
            fh.writelines(lines)
    refs = work / conf["benchmarks"]["gb"]["reference_mirror"]
    refs.mkdir(parents=True)
    shutil.copyfile(shared / PIECE, refs / "ensembl100_Homo_sapiens.GRCh38.dna.toplevel.fa.gz")


@pytest.fixture(scope="module")
def study(tmp_path_factory, shared_dir):
    work = tmp_path_factory.mktemp("real_study")
    conf = yaml.safe_load(CONFIG.read_text())
    _build_mirrors(work, shared_dir, conf)
    t0 = time.time()
    log = _run(["--configfile", str(CONFIG), "--cores", "2", "all"], cwd=work)
    (work / "wall_s.txt").write_text(f"{time.time() - t0:.1f}\n")
    return {"work": work, "conf": conf, "log": log}


def _table(work: Path, rel: str) -> pd.DataFrame:
    return pd.read_csv(work / rel, sep="\t")


def test_every_run_exists_and_its_mcc_comes_from_its_predictions(study):
    from sklearn.metrics import f1_score, matthews_corrcoef

    work = study["work"]
    metrics = sorted(work.glob("results/finetune/*/*/*/*/*/*/seed*/metrics.json"))
    # 3 tasks x 2 protocols x 3 seeds x (mamba: 2 tokenizers x 2 learning rates + cnn: 1)
    assert len(metrics) == 3 * 2 * len(SEEDS) * (2 * 2 + 1)
    for path in metrics:
        m = json.loads(path.read_text())
        protocol, benchmark, task, model, tok, hp, seed = path.parent.relative_to(work / "results/finetune").parts
        assert (m["protocol"], m["benchmark"], m["task"], m["model"], m["tokenizer"]) == \
               (protocol, benchmark, task, model, tok)
        assert seed == f"seed{m['seed']}"
        assert hp == f"lr{m['hyperparameters']['learning_rate']:.0e}".replace("e-0", "e-") + "_bs64_rc0"
        preds = pd.read_csv(path.parent / "predictions.tsv", sep="\t")
        assert len(preds) == m["n_test"]
        assert m["test"]["mcc"] == pytest.approx(matthews_corrcoef(preds["label"], preds["pred"]), abs=1e-9)
        if task == GB_TASK:
            assert m["test"]["f1_macro"] == pytest.approx(f1_score(preds["label"], preds["pred"], average="macro"))
            assert "f1_binary" not in m["test"]
        else:
            assert m["test"]["f1_binary"] == pytest.approx(f1_score(preds["label"], preds["pred"]))
        assert (path.parent / "provenance.json").is_file()
    assert not list(work.rglob("INJECTED*")), "a config value ran as a shell command"


def test_gb_task_is_cut_from_the_chr2_piece_and_drops_are_counted(study):
    info = json.loads((study["work"] / "data/gb" / GB_TASK / "task.json").read_text())
    assert info["dropped"]["by_reason"]["beyond_end"] > 0
    test = pd.read_csv(study["work"] / "data/gb" / GB_TASK / "test.csv")
    assert len(test) == 49 and sorted(test["label"].unique()) == [0, 1, 2]


def _independent_choice(runs: pd.DataFrame, score: str) -> pd.Series:
    """The grid point with the best mean `score` over seeds, per group (ties: smallest lr)."""
    means = runs.groupby(["protocol", "task", "model", "learning_rate"])[score].mean().reset_index()
    means = means.sort_values(["protocol", "task", "model", "learning_rate"])
    best = means.loc[means.groupby(["protocol", "task", "model"])[score].idxmax()]
    return best.set_index(["protocol", "task", "model"])["learning_rate"]


@pytest.mark.parametrize("benchmark,tokenizer", [("gue", "char"), ("gue", "bpe"), ("gb", "char"), ("gb", "bpe")])
def test_selection_picks_one_grid_point_per_task_by_the_protocols_rule(study, benchmark, tokenizer):
    work = study["work"]
    runs = _table(work, f"results/{benchmark}/{tokenizer}/runs.tsv")
    cand = _table(work, f"results/{benchmark}/{tokenizer}/selection.tsv")
    selected = _table(work, f"results/{benchmark}/{tokenizer}/selected.tsv")
    groups = cand.groupby(["protocol", "task", "model"])
    assert (groups["selected"].sum() == 1).all()
    for protocol, rule, score in (("corrected", "validation", "val_mcc"), ("original", "study", "mcc")):
        part = runs[runs["protocol"] == protocol]
        assert set(cand.loc[cand["protocol"] == protocol, "rule"]) == {rule}
        expect = _independent_choice(part, score)
        chosen = cand[cand["selected"] & (cand["protocol"] == protocol)].set_index(
            ["protocol", "task", "model"])["learning_rate"]
        pd.testing.assert_series_equal(chosen.sort_index(), expect.sort_index(), check_names=False)
    # selected.tsv: exactly the chosen grid point's seeds, nothing else
    per_group = selected.groupby(["protocol", "task", "model"])
    assert (per_group["hp"].nunique() == 1).all()
    assert (per_group["seed"].apply(lambda s: sorted(s)) == pd.Series([list(SEEDS)] * per_group.ngroups,
                                                                      index=per_group.size().index)).all()
    summary = _table(work, f"results/{benchmark}/{tokenizer}/summary.tsv")
    assert {"epochs_run_mean", "mcc_mean", "f1_macro_mean"} <= set(summary.columns)
    assert len(summary) == per_group.ngroups


def test_study_significance_pools_the_benchmarks_one_row_per_category(study):
    sig = _table(study["work"], "results/study/significance.tsv")
    for protocol in PROTOCOLS:
        part = sig[(sig["protocol"] == protocol) & (sig["model"] == "mamba")]
        cats = part[part["level"] == "category"]
        assert sorted(cats["group"]) == ["regulatory", "transcription_factors"]
        # pooled across benchmarks: the two GUE mouse tasks form one category row
        tf = cats[cats["group"] == "transcription_factors"].iloc[0]
        assert tf["n_tasks"] == 2 and tf["n_pairs"] == 2 * len(SEEDS) and tf["m_tests"] == 2
        tasks = part[part["level"] == "task"]
        assert sorted(tasks["group"]) == sorted(["mouse_2", "mouse_3", GB_TASK]) and (tasks["m_tests"] == 3).all()
        overall = part[part["level"] == "all"]
        assert len(overall) == 1 and int(overall["n_pairs"].iloc[0]) == 3 * len(SEEDS)


def test_headline_means_table_matches_an_independent_computation(study):
    work = study["work"]
    means = _table(work, "results/study/means_benchmark.tsv").set_index("group")
    assert list(means.index) == ["gue", "gb", "overall"]
    selected = pd.concat([_table(work, f"results/{b}/{t}/selected.tsv")
                          for b in ("gue", "gb") for t in ("char", "bpe")])
    for (protocol, model, tok), rows in selected.groupby(["protocol", "model", "tokenizer"]):
        column = f"{model}/{tok}[{protocol}]"
        per_task = rows.groupby(["benchmark", "task"])["mcc"].mean()
        for bench in ("gue", "gb"):
            assert means.loc[bench, column] == pytest.approx(per_task.loc[bench].mean())
        assert means.loc["overall", column] == pytest.approx(per_task.mean())
    by_cat = _table(work, "results/study/means_category.tsv")
    assert sorted(by_cat["group"]) == sorted(["regulatory", "transcription_factors", "overall"])
    assert (work / "results/study/figures/mcc_means_benchmark.png").stat().st_size > 1000


def test_protocols_side_by_side(study):
    table = _table(study["work"], "results/study/protocols.tsv")
    assert len(table) == 3 * 3          # tasks x (mamba/char, mamba/bpe, cnn/char)
    assert table[["mcc_original", "mcc_corrected"]].notna().all().all()
    np.testing.assert_allclose(table["diff"], table["mcc_original"] - table["mcc_corrected"])
    report = (study["work"] / "results/report/index.md").read_text()
    assert "results/study/protocols.tsv" in report and "results/study/means_benchmark.tsv" in report


def test_run_time_is_recorded(study):
    wall = float((study["work"] / "wall_s.txt").read_text())
    print(f"real-data study: {wall:.0f} s wall")
    assert wall > 0


# ----------------------------------------------------------------------------- reruns
def _dry_run_jobs(work: Path, conf: dict) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run with ``conf`` would execute."""
    path = work / f"edited_{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(conf))
    out = _run(["--configfile", str(path), "-n", "all"], cwd=work)
    jobs, current = [], None
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            current = (m.group(1), {})
            jobs.append(current)
        elif current and line.strip().startswith("wildcards:"):
            for item in line.split(":", 1)[1].split(","):
                k, v = item.strip().split("=", 1)
                current[1][k] = v
    return jobs


def _edited(conf: dict, edit) -> dict:
    new = json.loads(json.dumps(conf))
    edit(new)
    return new


AGGREGATES = {"collect_runs", "select", "summarize", "significance", "figures", "study_significance",
              "study_means", "protocols_table", "report_tables", "all"}


def _set(path: str, value):
    def edit(conf):
        node = conf
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


@pytest.mark.parametrize("edit,expect", [
    # (config edit, {rule: predicate on wildcards} that must hold for every job of that rule
    #  and rules that must run at all; rules not named must not run, aggregates excepted)
    (_set("pretrain.learning_rate", 0.002),
     {"pretrain": lambda w: w["model"] == "mamba", "finetune": lambda w: w["model"] == "mamba"}),
    (_set("finetune.epochs", 2), {"finetune": lambda w: True}),
    (_set("tokenizers.bpe.vocab_size", 96),
     {"train_tokenizer": lambda w: w["tokenizer"] == "bpe", "tokenizer_stats": lambda w: w["tokenizer"] == "bpe",
      "pretrain": lambda w: w["tokenizer"] == "bpe", "finetune": lambda w: w["tokenizer"] == "bpe"}),
    (_set("models.mamba.hparams.d_model", 16),
     {"pretrain": lambda w: w["model"] == "mamba", "finetune": lambda w: w["model"] == "mamba"}),
    (_set("models.cnn.finetune.learning_rate", 0.002), {"finetune": lambda w: w["model"] == "cnn"}),
    (_set("benchmarks.gb.finetune", {"epochs": 2}), {"finetune": lambda w: w["benchmark"] == "gb"}),
    (_set("protocol", ["corrected"]), {}),
], ids=["pretrain", "finetune", "tokenizers", "models", "models-finetune", "benchmarks", "protocol"])
def test_a_config_edit_reruns_exactly_the_dependent_jobs(study, edit, expect):
    jobs = _dry_run_jobs(study["work"], _edited(study["conf"], edit))
    rules = {rule for rule, _ in jobs}
    assert rules - AGGREGATES - set(expect) == set(), f"unexpected reruns: {sorted(rules - AGGREGATES - set(expect))}"
    for rule, ok in expect.items():
        selected = [w for r, w in jobs if r == rule]
        assert selected, f"{rule} should rerun"
        assert all(ok(w) for w in selected), (rule, selected)
    # and everything the edit touches: e.g. all 12 mamba packs after a pretrain change (one
    # pack per protocol x task x tokenizer: both learning rates x 3 seeds)
    if "finetune" in expect:
        all_ft = [(b, t, m, k, p) for p in PROTOCOLS for b, tasks in (("gue", ["mouse_2", "mouse_3"]),
                  ("gb", [GB_TASK])) for t in tasks for m, toks in (("mamba", ["char", "bpe"]), ("cnn", ["char"]))
                  for k in toks]
        want = [r for r in all_ft if expect["finetune"](dict(benchmark=r[0], model=r[2], tokenizer=r[3]))]
        assert len([w for r, w in jobs if r == "finetune"]) == len(want)


def test_unchanged_config_has_nothing_to_do(study):
    assert {r for r, _ in _dry_run_jobs(study["work"], study["conf"])} <= set()


def test_pretraining_change_retrains_from_step_zero(study):
    """Last (it changes the outputs): a real rerun after pretrain.learning_rate changed."""
    work = study["work"]
    conf = _edited(study["conf"], _set("pretrain.learning_rate", 0.002))
    path = work / "edited_lr.yaml"
    path.write_text(yaml.safe_dump(conf))
    _run(["--configfile", str(path), "--cores", "2", "results/pretrain/mamba/char/config.json"], cwd=work)
    log = (work / "logs/pretrain/mamba/char.log").read_text()
    assert "written by a different run" in log and "learning_rate: 0.004 -> 0.002" in log
    stale = list((work / "results/pretrain/mamba/char").glob("stale-*/checkpoints/step*.pt"))
    assert stale, "the old checkpoints are kept aside, not deleted"
    rows = (work / "results/pretrain/mamba/char/train_log.tsv").read_text().splitlines()[1:]
    assert int(rows[0].split("\t")[0]) <= 10 and "resumed from" not in log.split("different run")[-1]
    prov = json.loads((work / "results/pretrain/mamba/char/provenance.json").read_text())
    assert prov["identity"]["settings"]["learning_rate"] == 0.002
