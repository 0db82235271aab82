"""`dnatok plan`: job counts and requested GPU-hours from a Snakemake dry run, checked
against numbers computed independently from the config files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dnatok import plan as planmod
from dnatok import registry
from dnatok.cli import main

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"


def _resource(conf: dict, rule: str, key: str, benchmark: str | None = None):
    """The config's resource layering (default < rule < benchmark), recomputed here."""
    value = conf["resources"]["default"].get(key)
    value = conf["resources"].get(rule, {}).get(key, value)
    if benchmark is not None:
        value = conf["benchmarks"][benchmark].get("resources", {}).get(rule, {}).get(key, value)
    return value or 0


def _tasks(conf: dict, benchmark: str) -> list[str]:
    declared = conf["benchmarks"][benchmark]["tasks"]
    return sorted(registry.TASKS[benchmark]) if declared == "all" else sorted(declared)


def _grid_size(conf: dict, model: str, tok: str, bench: str, task: str) -> int:
    """Grid points of (model, tokenizer, benchmark, task): the model's grid with matching
    overrides (a task match is a glob) replacing keys, recomputed here; a key not swept
    counts once."""
    import fnmatch

    grid = dict(conf["models"][model].get("grid") or {})
    for block in conf["models"][model].get("overrides") or []:
        if (block.get("tokenizer", tok) == tok and block.get("benchmark", bench) == bench
                and fnmatch.fnmatchcase(task, block.get("task", task))):
            grid.update(block.get("grid") or {})
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


def _expected(conf: dict) -> dict:
    """Finetune/pretrain job counts and GPU-hours straight from a config: one fine-tuning
    job per grid point, running every seed (its runtime is the per-run runtime x seeds)."""
    models = conf["models"]
    # a released checkpoint brings its own tokenizer ("own") and is not pretrained here
    released = {m for m in models if "checkpoint" in models[m]}
    toks = {m: ["own"] if m in released else models[m].get("tokenizers", list(conf["tokenizers"])) for m in models}
    protocols = [conf["protocol"]] if isinstance(conf["protocol"], str) else conf["protocol"]
    finetune_jobs, finetune_gpu_h = 0, 0.0
    size = conf.get("finetune_pack", "all")
    for bench in conf["benchmarks"]:
        for m in models:
            for t in toks[m]:
                for task in _tasks(conf, bench):
                    points = _grid_size(conf, m, t, bench, task)
                    chunks = [points] if size == "all" else [min(size, points - i) for i in range(0, points, size)]
                    for chunk in chunks:    # one job per pack of grid points, each with every seed
                        minutes = _resource(conf, "finetune", "runtime", bench) * chunk * len(conf["seeds"])
                        cap = _resource(conf, "finetune", "max_runtime", bench)
                        finetune_jobs += len(protocols)
                        finetune_gpu_h += (len(protocols) * (min(minutes, cap) if cap else minutes) / 60
                                           * _resource(conf, "finetune", "gpu", bench))
    pretrain_jobs = sum(len(toks[m]) for m in models if models[m]["arch"] != "cnn" and m not in released)
    pretrain_gpu_h = pretrain_jobs * _resource(conf, "pretrain", "runtime") / 60 * _resource(conf, "pretrain", "gpu")
    return {"finetune": finetune_jobs, "finetune_gpu_h": finetune_gpu_h,
            "pretrain": pretrain_jobs, "pretrain_gpu_h": pretrain_gpu_h}


def _rows_by_rule(rows):
    return {r.rule: r for r in rows}


# ---------------------------------------------------------------- pure functions
def test_summarize_adds_runtime_times_gpus_and_flags_missing_runtimes():
    jobs = [
        {"rule": "train", "wildcards": {"b": "x"}, "threads": 2, "resources": {"runtime": 300, "gpu": 1, "cpus_per_task": 2}},
        {"rule": "train", "wildcards": {"b": "y"}, "threads": 2, "resources": {"runtime": 120, "gpu": 2, "cpus_per_task": 2}},
        {"rule": "prep", "wildcards": {}, "threads": 4, "resources": {"runtime": 30}},
        {"rule": "all", "wildcards": {}, "threads": 1, "resources": {"runtime": "<TBD>"}},
    ]
    stages = {"prep": "data", "train": "finetune", "all": "target"}
    rows = _rows_by_rule(planmod.summarize(jobs, stages))
    assert rows["train"].jobs == 2 and rows["train"].gpu_jobs == 2
    assert rows["train"].gpu_hours == pytest.approx(5.0 + 4.0)
    assert rows["train"].core_hours == pytest.approx(10.0 + 4.0)
    assert rows["prep"].gpu_jobs == 0 and rows["prep"].core_hours == pytest.approx(2.0)  # threads when no cpus_per_task
    assert rows["all"].no_runtime == 1 and rows["all"].gpu_hours == 0
    assert [r.stage for r in planmod.summarize(jobs, stages)] == ["data", "finetune", "target"]
    split = _rows_by_rule(planmod.summarize(jobs, stages, by="b"))
    assert split["train[x]"].gpu_hours == pytest.approx(5.0) and split["train[y]"].gpu_hours == pytest.approx(4.0)
    table = planmod.format_table(planmod.summarize(jobs, stages), "t")
    assert "no numeric runtime, hours not counted: all (1)" in table
    assert table.splitlines()[-3].split()[:5] == ["total", "4", "2", "9.0", "16.0"]


def test_rule_stages_follow_the_included_files(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "data.smk").write_text("rule fetch:\n    output: 'a'\n\ncheckpoint split_it:\n    output: 'b'\n")
    (tmp_path / "rules" / "train.smk").write_text("rule fit:\n    output: 'c'\n")
    (tmp_path / "Snakefile").write_text('include: "rules/data.smk"\ninclude: "rules/train.smk"\n\nrule all:\n    input: "c"\n')
    stages = planmod.rule_stages(tmp_path / "Snakefile")
    assert stages == {"fetch": "data", "split_it": "data", "fit": "train", "all": "target"}
    assert list(dict.fromkeys(stages.values())) == ["data", "train", "target"]


# ---------------------------------------------------------------- real dry runs
def test_demo_plan_matches_the_config(tmp_path):
    conf = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    expected = _expected(conf)
    cwd = os.getcwd()
    # an empty workdir: nothing is built yet, so every job of the DAG is listed
    rows = _rows_by_rule(planmod.plan(SNAKEFILE, [REPO / "config" / "demo.yaml"], workdir=tmp_path))
    assert os.getcwd() == cwd
    assert rows["finetune"].jobs == rows["finetune"].gpu_jobs == expected["finetune"]
    assert rows["finetune"].gpu_hours == pytest.approx(expected["finetune_gpu_h"])
    assert rows["pretrain"].jobs == expected["pretrain"]
    assert rows["pretrain"].gpu_hours == pytest.approx(expected["pretrain_gpu_h"])
    assert rows["finetune"].stage == "finetune" and rows["pretrain"].stage == "pretrain"
    # only the GPU rules ask for GPUs
    assert {r.rule for r in rows.values() if r.gpu_jobs} == {"finetune", "pretrain", "train_learned_tokenizer"}


def test_full_study_plan_from_the_command_line(tmp_path):
    conf = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    expected = _expected(conf)
    proc = subprocess.run(
        [sys.executable, "-m", "dnatok", "plan", "--snakefile", str(SNAKEFILE),
         "--configfile", str(REPO / "config" / "config.yaml"), "--by", "benchmark", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["rule"]: r for r in json.loads(proc.stdout)}
    finetune = {k: v for k, v in rows.items() if k.startswith("finetune[")}
    assert set(finetune) == {f"finetune[{b}]" for b in conf["benchmarks"]}
    # the study's sweeps, nine models and a learned vocabulary: 540 packs (54 tasks x 10 model/tokenizers)
    assert sum(r["jobs"] for r in finetune.values()) == expected["finetune"] == 540
    assert sum(r["gpu_hours"] for r in finetune.values()) == pytest.approx(expected["finetune_gpu_h"])
    assert rows["pretrain"]["jobs"] == expected["pretrain"]
    assert rows["pretrain"]["gpu_hours"] == pytest.approx(rows["pretrain"]["jobs"] * 12)


def test_table_output_and_errors(tmp_path, capsys, monkeypatch):
    assert main(["plan", "--snakefile", str(SNAKEFILE), "--configfile", str(REPO / "config" / "demo.yaml"),
                 str(tmp_path / "nothing-here")]) == 2  # no rule makes that target
    assert "snakemake dry run failed" in capsys.readouterr().err
    assert main(["plan", "--configfile", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    conf = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    bench, task = next((b, t) for b in conf["benchmarks"] for t in _tasks(conf, b))
    model = next(m for m in conf["models"] if conf["models"][m]["arch"] != "cnn")
    tok = next(iter(conf["tokenizers"]))
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--snakefile", str(SNAKEFILE), "--configfile", str(REPO / "config" / "demo.yaml"),
                 f"results/finetune/corrected/{bench}/{task}/{model}/{tok}/pack-g0.tsv"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line.split() for line in out.splitlines()
             if len(line.split()) > 2 and line.split()[0] in ("data", "tokenize", "pretrain", "finetune")}
    # one finetune job (a pack: every seed of the demo's single grid point) and one pretraining job
    points = _grid_size(conf, model, tok, bench, task)
    for rule, b, runs in (("finetune", bench, points * len(conf["seeds"])), ("pretrain", None, 1)):
        hours = runs * _resource(conf, rule, "runtime", b) / 60 * _resource(conf, rule, "gpu", b)
        assert lines[rule][2:5] == ["1", "1", f"{hours:.1f}"]
    assert out.splitlines()[0].startswith("dnatok plan:") and "total" in out
