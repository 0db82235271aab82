"""A pack: many fine-tuning runs of one task, model and tokenizer in one process.

The runs of a pack share everything but their grid point (learning rate, batch size,
rc_aug) and seed, so the task is read and tokenized once and the process starts once;
each run still trains on its own and writes its usual folder, atomically:

    out_root/{hp}/seed{N}/   (out_root/seed{N}/ for a pack of one grid point without ``grid``)

The same seed gives the same ``metrics.json`` packed or alone (runs are sequential and
each reseeds everything).

Resume at run granularity: a run folder that is complete *and* was written by the same
run (``identity.json``: every setting that decides its numbers, the protocol, the model's
hyperparameters, the seed, and the content of the task, the tokenizer and the starting
weights) is kept; a complete folder written by another run (changed settings, data or
weights) is moved aside to ``out_root/stale-<time>/`` and retrained — never silently
reused. A pack killed at its time limit therefore continues with the runs it had not
finished. ``manifest`` (optional) lists every run of the pack with its status once all
are done: it is the job's declared output.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from pathlib import Path

from dnatok.errors import UserError
from dnatok.io import atomic_path, write_json

# Settings that change how a run executes, not its numbers.
RUNTIME_SETTINGS = ("device", "threads", "progress", "log_every", "eval_batch_size")
IDENTITY_FILE = "identity.json"
MANIFEST_COLUMNS = ("hp", "seed", "status", "identity", "metrics")
# Files of a model folder that decide its weights (a pretraining folder's checkpoints/ do not).
MODEL_FILES = ("config.json", "*.safetensors", "*.bin", "tokenizer.json", "vocab.txt", "vocab.json", "merges.txt")


def _sha256_files(paths) -> str:
    from dnatok.data.validate import sha256_file

    entries = {p.name: sha256_file(p) for p in sorted(paths)}
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def model_fingerprint(path) -> str | None:
    """sha256 over a model folder's config, weights and tokenizer files (None: no model)."""
    if not path:
        return None
    folder = Path(path)
    files = {p for pattern in MODEL_FILES for p in folder.glob(pattern) if p.is_file()}
    return _sha256_files(files)


def tokenizer_fingerprint(tokenizer) -> str:
    """A tokenizer folder's content; a kind name (``char``) or ``own`` as itself (``own`` is
    part of the model's fingerprint)."""
    if isinstance(tokenizer, (str, Path)) and Path(tokenizer).is_dir():
        from dnatok.train.pretrain import content_fingerprint

        return content_fingerprint(tokenizer)
    return str(tokenizer)


def run_identity(fingerprints: dict, arch: str, protocol, settings: dict, model_hparams: dict, seed: int) -> dict:
    return {"arch": arch, "seed": int(seed), "protocol": protocol.to_dict(), "model_hparams": model_hparams,
            "settings": {k: v for k, v in sorted(settings.items()) if k not in RUNTIME_SETTINGS},
            **fingerprints}


def digest(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def pack_runs(out_root: Path, grid, seeds, settings: dict | None) -> list[tuple]:
    """(hp, seed, folder, settings) of every run, grid point by grid point."""
    from dnatok.config import parse_hp

    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"seeds must be distinct and at least one, got {list(seeds)}")
    if grid is not None and (not grid or len(set(grid)) != len(grid)):
        raise UserError(f"grid points must be distinct and at least one, got {list(grid)}")
    runs = []
    for hp in (grid if grid is not None else [None]):
        point = {**(settings or {}), **(parse_hp(hp) if hp else {})}
        base = out_root / hp if hp else out_root
        runs += [(hp, int(s), base / f"seed{int(s)}", point) for s in seeds]
    return runs


def _kept(folder: Path, ident: str) -> str:
    """"kept" (complete, same run), "stale" (complete, another run) or "missing"."""
    from dnatok.train.finetune import _run_complete

    if not _run_complete(folder):
        return "missing"
    path = folder / IDENTITY_FILE
    old = json.loads(path.read_text()).get("digest") if path.is_file() else None
    return "kept" if old == ident else "stale"


def _remove_partial(folder: Path, log) -> None:
    """Delete what a killed process left of this run: atomic_path's hidden work folders
    (``.seed1.<random>``) — never a run folder, which appears only when complete."""
    for partial in folder.parent.glob(f".{folder.name}.*"):
        if partial.is_dir():
            shutil.rmtree(partial)
            log(f"{partial}: an unfinished run's work folder (killed process), removed")


def _set_aside(folder: Path, out_root: Path, stamp: str, log) -> None:
    dest = out_root / f"stale-{stamp}" / folder.relative_to(out_root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(dest))
    log(f"{folder}: written by a different run (settings, data or weights changed); moved to {dest}")


def finetune_pack(task_dir, arch: str, tokenizer, out_root, seeds, grid=None, protocol="corrected",
                  pretrained=None, settings: dict | None = None, model_hparams: dict | None = None,
                  task=None, log=None, checkpoint=None, manifest=None) -> list[dict]:
    """Train every (grid point, seed) run of one task, model and tokenizer; returns their
    metrics in order. ``grid``: hp ids (``lr1e-4_bs128_rc1``) whose values replace the
    grid keys of ``settings``; None: one grid point, ``settings`` as given."""
    from dnatok.train.finetune import (TaskTokens, _checked_call, _logged_run, resolve_settings,
                                       run_tokenizer)

    log = log or (lambda message: None)
    protocol, _, model_hparams, pretrained, data = _checked_call(
        protocol, settings, model_hparams, pretrained, task_dir, task, arch, checkpoint)
    out_root = Path(out_root)
    runs = [(hp, seed, folder, resolve_settings(point))
            for hp, seed, folder, point in pack_runs(out_root, grid, seeds, settings)]
    fingerprints = {"task": _task_fingerprint(data), "tokenizer": tokenizer_fingerprint(tokenizer),
                    "model": model_fingerprint(pretrained)}
    out_root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results, rows, tokens, tok_name = [], [], {}, None
    try:
        for hp, seed, folder, point in runs:
            ident = digest(run_identity(fingerprints, arch, protocol, point, model_hparams, seed))
            state = _kept(folder, ident)
            if state == "kept":
                log(f"{folder}: complete run kept")
                results.append(json.loads((folder / "metrics.json").read_text()))
                rows.append((hp, seed, "kept", ident, folder / "metrics.json"))
                continue
            if state == "stale":
                _set_aside(folder, out_root, stamp, log)
            _remove_partial(folder, log)
            special = point["add_special_tokens"]
            if special not in tokens:
                tok, tok_name = run_tokenizer(tokenizer, out_root / ".tokenizer", arch, pretrained, protocol,
                                              data.info.get("benchmark"))
                tokens[special] = TaskTokens(data, tok, special)
            with atomic_path(folder, is_dir=True) as work:
                write_json(work / IDENTITY_FILE, {"digest": ident})
                results.append(_logged_run(work, data, arch, tokens[special], tok_name, seed, protocol,
                                           pretrained, point, model_hparams))
            rows.append((hp, seed, "trained", ident, folder / "metrics.json"))
    finally:
        shutil.rmtree(out_root / ".tokenizer", ignore_errors=True)
    if manifest:
        write_manifest(manifest, rows)
    return results


def _task_fingerprint(data) -> str:
    """The task's files by content (its csv splits and task.json) and the task facts in use."""
    files = [p for p in Path(data.path).iterdir() if p.is_file() and p.suffix in (".csv", ".json")]
    info = json.dumps(data.info, sort_keys=True, default=str)
    return hashlib.sha256((_sha256_files(files) + info).encode()).hexdigest()


def write_manifest(path, rows) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(MANIFEST_COLUMNS)
            for hp, seed, status, ident, metrics in rows:
                w.writerow([hp or "", seed, status, ident, str(metrics)])


def read_manifest(path) -> list[Path]:
    """The metrics.json paths a pack manifest lists (every run of the pack)."""
    from dnatok.errors import DataError

    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
            raise DataError(path, 1, f"not a pack manifest (columns {reader.fieldnames}, expected {MANIFEST_COLUMNS})")
        return [Path(row["metrics"]) for row in reader]
