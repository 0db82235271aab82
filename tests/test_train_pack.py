"""Packs: several grid points x seeds of one task, model and tokenizer in one process.
Packed runs equal the same runs alone; a pack killed mid-way keeps its finished runs and
trains only the rest on rerun; a run folder written by different settings is moved aside,
never reused."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_train_finetune import TINY_CNN, _stable, make_task

from dnatok.errors import UserError
from dnatok.train.finetune import finetune
from dnatok.train.pack import finetune_pack, read_manifest

GRID = ["lr1e-2_bs16_rc0", "lr3e-3_bs32_rc0"]
SETTINGS = {"epochs": 2, "learning_rate": 1.0, "batch_size": 1, "progress": False}   # grid keys replaced


def test_packed_runs_equal_runs_alone_and_the_manifest_lists_them(tmp_path):
    task = make_task(tmp_path / "task")
    packed = finetune_pack(task, "cnn", "char", tmp_path / "pack", [2, 1], GRID, settings=SETTINGS,
                           model_hparams=TINY_CNN, manifest=tmp_path / "pack.tsv")
    assert [(m["hyperparameters"]["learning_rate"], m["seed"]) for m in packed] == [
        (1e-2, 2), (1e-2, 1), (3e-3, 2), (3e-3, 1)]
    for hp, lr, bs in (("lr1e-2_bs16_rc0", 1e-2, 16), ("lr3e-3_bs32_rc0", 3e-3, 32)):
        for seed in (1, 2):
            alone = finetune(task, "cnn", "char", tmp_path / f"alone_{hp}_{seed}", seed=seed, model_hparams=TINY_CNN,
                             settings={**SETTINGS, "learning_rate": lr, "batch_size": bs, "rc_aug": False})
            on_disk = json.loads((tmp_path / "pack" / hp / f"seed{seed}" / "metrics.json").read_text())
            assert _stable(on_disk) == _stable(alone)
    listed = read_manifest(tmp_path / "pack.tsv")
    assert listed == [tmp_path / "pack" / hp / f"seed{s}" / "metrics.json" for hp in GRID for s in (2, 1)]
    assert all(p.is_file() for p in listed)


def test_changed_settings_set_the_old_runs_aside(tmp_path):
    task = make_task(tmp_path / "task")
    finetune_pack(task, "cnn", "char", tmp_path / "pack", [1], GRID[:1], settings=SETTINGS, model_hparams=TINY_CNN)
    notes = []
    again = finetune_pack(task, "cnn", "char", tmp_path / "pack", [1], GRID[:1], settings={**SETTINGS, "epochs": 1},
                          model_hparams=TINY_CNN, log=notes.append)
    assert again[0]["epochs_run"] == 1
    stale = list((tmp_path / "pack").glob(f"stale-*/{GRID[0]}/seed1/metrics.json"))
    assert stale and json.loads(stale[0].read_text())["epochs_run"] == 2
    assert any("written by a different run" in n for n in notes)
    # a run-time setting (threads, progress, device) is not part of a run's identity
    kept = []
    finetune_pack(task, "cnn", "char", tmp_path / "pack", [1], GRID[:1], model_hparams=TINY_CNN, log=kept.append,
                  settings={**SETTINGS, "epochs": 1, "threads": 1, "eval_batch_size": 7})
    assert any(n.endswith("complete run kept") for n in kept)
    with pytest.raises(UserError, match="distinct"):
        finetune_pack(task, "cnn", "char", tmp_path / "x", [1], [GRID[0], GRID[0]], settings=SETTINGS)


def _pack_cmd(task, root, manifest):
    return [sys.executable, "-m", "dnatok", "finetune", "--data", str(task), "--model", "cnn", "--tokenizer", "char",
            "--seeds", "1", "2", "--grid", *GRID, "--out-root", str(root), "--manifest", str(manifest),
            "--settings", json.dumps({"epochs": 25, "patience": None, "progress": False}),
            "--model-args", json.dumps(TINY_CNN), "--threads", "1"]


def test_a_killed_pack_continues_with_the_runs_it_had_not_finished(tmp_path):
    task = make_task(tmp_path / "task", n_train=400)
    root, manifest = tmp_path / "pack", tmp_path / "pack.tsv"
    proc = subprocess.Popen(_pack_cmd(task, root, manifest), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = root / GRID[0] / "seed1" / "metrics.json"
    deadline = time.time() + 240
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.parent for p in root.glob("*/seed*/metrics.json"))
    assert first.is_file() and 1 <= len(done) < 4, "the kill should land between runs 1 and 4"
    assert not manifest.exists(), "a killed pack has no manifest (its declared output)"
    stamps = {d: (d / "metrics.json").stat().st_mtime_ns for d in done}
    rerun = subprocess.run(_pack_cmd(task, root, manifest), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert all((d / "metrics.json").stat().st_mtime_ns == t for d, t in stamps.items()), "finished runs redone"
    assert not [p for p in root.glob("*/.seed*")], "the killed run's work folder is left behind"
    status = [line.split("\t")[2] for line in manifest.read_text().splitlines()[1:]]
    assert status.count("kept") == len(done) and status.count("trained") == 4 - len(done)
    # and the result equals an uninterrupted pack
    whole = subprocess.run(_pack_cmd(task, tmp_path / "whole", tmp_path / "whole.tsv"), capture_output=True,
                           text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    for hp in GRID:
        for seed in (1, 2):
            a = json.loads((root / hp / f"seed{seed}" / "metrics.json").read_text())
            b = json.loads((tmp_path / "whole" / hp / f"seed{seed}" / "metrics.json").read_text())
            assert _stable(a) == _stable(b)
