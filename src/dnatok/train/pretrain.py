"""Pre-train a genomic language model on windows of a reference FASTA.

Objective by architecture (``dnatok.models.objective_of``): masked-token prediction
for bidirectional models (15% of real tokens; of those 80% become [MASK], 10% a
random token, 10% stay), next-token prediction for Mamba. Padding and special
tokens are never targets.

Windows are drawn from the training FASTA (one record per pretraining interval; runs
of N are common, windows that are mostly N are redrawn) by a generator keyed on
(seed, step, rank, micro-batch). Nothing about the data stream therefore needs to be
saved to resume: a run restarted from a checkpoint draws exactly the windows the
uninterrupted run would have drawn, and (model, optimizer, scheduler, RNG states)
come from the checkpoint, so the final weights are identical.

Outputs in ``out_dir``: the Hugging Face model (``config.json`` + weights, loadable
with ``build_classifier(..., pretrained=out_dir)``), ``train_log.tsv`` (step, loss,
lr, valid_loss), ``provenance.json``, ``pretrain.log`` and ``checkpoints/``.

Multi-GPU: run under ``torchrun``; when ``WORLD_SIZE`` > 1 the model is wrapped in
DistributedDataParallel, each rank draws its own windows, rank 0 writes.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from dnatok.errors import DataError, UserError
from dnatok.io import atomic_path, provenance, write_json
from dnatok.train.common import (Progress, autocast, close_logger, code_vectors, cosine_with_warmup,
                                 count_parameters, make_logger, resolve_device, seed_everything)

DEFAULT_PRETRAIN_SETTINGS = {
    "seed": 0,
    "steps": 1000,                # optimizer steps in total
    "max_steps_this_run": None,   # stop this invocation early (after a checkpoint) to resume later
    "seq_len": 1024,              # tokens per window
    "window_bp": None,            # bases per window; None: seq_len x bases-per-token of the tokenizer
    "batch_size": 16,             # global batch: sequences per optimizer step, all ranks and accumulation
    "micro_batch_size": None,     # per forward pass and rank; None = batch_size / world size
    "learning_rate": 8e-3,
    "weight_decay": 0.1,
    "betas": [0.9, 0.95],
    "warmup_steps": None,         # linear warm-up; None: warmup_fraction x steps
    "warmup_fraction": 0.1,
    "min_lr_ratio": 0.1,
    "grad_clip": 1.0,
    "mlm_probability": 0.15,
    "objective": None,            # None: objective_of(arch); "mlm" | "clm" forces one
    "rc_aug": False,              # reverse-complement each window with probability 0.5
    "max_n_fraction": 0.5,        # windows with a larger share of N are redrawn
    "add_special_tokens": False,
    "valid_windows": 64,          # fixed validation windows (drawn once from valid FASTA)
    "eval_every": 100,
    "log_every": 10,
    "checkpoint_every": 200,
    "keep_checkpoints": 2,
    "device": "auto",
    "threads": None,              # torch CPU threads; None leaves torch's default
    "progress": True,
}

_VALID_KEY = 7_777_777   # separates the validation windows' generator from training steps

# Settings that change how a run is executed or logged, never its weights: a checkpoint
# written under other values of these may be resumed.
RUNTIME_KEYS = ("threads", "device", "max_steps_this_run", "progress", "log_every", "eval_every",
                "checkpoint_every", "keep_checkpoints")


def resolve_pretrain_settings(settings: dict | None) -> dict:
    settings = dict(settings or {})
    unknown = set(settings) - set(DEFAULT_PRETRAIN_SETTINGS)
    if unknown:
        raise UserError(f"unknown pre-training setting(s): {', '.join(sorted(unknown))}")
    out = {**DEFAULT_PRETRAIN_SETTINGS, **settings}
    for key in ("steps", "seq_len", "batch_size", "checkpoint_every", "eval_every"):
        if int(out[key]) < 1:
            raise UserError(f"pre-training setting {key} must be >= 1, got {out[key]}")
    return out


# ----------------------------------------------------------------------------- FASTA windows

class WindowSampler:
    """Uniform windows of ``window_bp`` bases over every valid start of every record.

    The FASTA (plain, gzip or bgzip) is read through an index (``dnatok.data.genome.
    open_fasta``), so a whole genome is never loaded into memory.
    """

    def __init__(self, path, window_bp: int, max_n_fraction: float):
        from dnatok.data.genome import open_fasta

        self.path = Path(path)
        self.fasta = open_fasta(self.path)
        self.lengths = {name: len(self.fasta[name]) for name in self.fasta.keys()}
        self.window_bp = int(window_bp)
        self.max_n_fraction = float(max_n_fraction)
        names = sorted(n for n, length in self.lengths.items() if length >= self.window_bp)
        if not names:
            longest = max(self.lengths.values(), default=0)
            raise DataError(self.path, None, f"no record is as long as a window ({self.window_bp} bp; "
                            f"longest {longest} bp)")
        self.names = names
        starts = np.array([self.lengths[n] - self.window_bp + 1 for n in names], dtype=np.int64)
        self.cum = np.cumsum(starts)

    def draw(self, rng: np.random.Generator, n: int) -> list[str]:
        out = []
        for _ in range(n):
            for _attempt in range(1000):
                u = int(rng.integers(0, self.cum[-1]))
                r = int(np.searchsorted(self.cum, u, side="right"))
                start = u - (int(self.cum[r - 1]) if r else 0)
                seq = str(self.fasta[self.names[r]][start:start + self.window_bp]).upper()
                if seq.count("N") <= self.max_n_fraction * len(seq):
                    out.append(seq)
                    break
            else:
                raise DataError(self.path, None, "could not find a window that is not mostly N "
                                f"in 1000 draws (max_n_fraction={self.max_n_fraction})")
        return out


# ----------------------------------------------------------------------------- batches

def mask_for_mlm(ids: np.ndarray, attn: np.ndarray, tok, rng: np.random.Generator,
                 probability: float) -> tuple[np.ndarray, np.ndarray]:
    """(masked input ids, labels): BERT-style 80/10/10 corruption of ``probability``
    of the real, non-special tokens; labels -100 everywhere else."""
    ids = ids.copy()
    special = np.isin(ids, np.asarray(sorted(tok.special_ids), dtype=np.int64))
    candidate = (attn == 1) & ~special
    chosen = candidate & (rng.random(ids.shape) < probability)
    labels = np.where(chosen, ids, -100)
    roll = rng.random(ids.shape)
    to_mask = chosen & (roll < 0.8)
    to_random = chosen & (roll >= 0.8) & (roll < 0.9)
    ordinary = np.setdiff1d(np.arange(tok.vocab_size), np.asarray(sorted(tok.special_ids)))
    ids[to_mask] = tok.mask_id
    ids[to_random] = rng.choice(ordinary, size=int(to_random.sum()))
    return ids, labels


def make_batch(windows: list[str], tok, objective: str, settings: dict, rng: np.random.Generator):
    """numpy (input_ids, attention_mask, labels) for a list of windows."""
    from dnatok.tokenization import reverse_complement

    if settings["rc_aug"]:
        flips = rng.random(len(windows)) < 0.5
        windows = [reverse_complement(w) if f else w for w, f in zip(windows, flips)]
    ids, attn = tok.encode_batch(windows, int(settings["seq_len"]),
                                 add_special_tokens=settings["add_special_tokens"],
                                 padding_side="right", pad_to_max=True)
    ids, attn = np.asarray(ids, dtype=np.int64), np.asarray(attn, dtype=np.int64)
    if objective == "mlm":
        ids, labels = mask_for_mlm(ids, attn, tok, rng, float(settings["mlm_probability"]))
    else:  # next-token prediction: the model shifts; padding is ignored (-100)
        labels = np.where(attn == 1, ids, -100)
    return ids, attn, labels


def bases_per_token(tok, sampler: WindowSampler, settings: dict) -> float:
    """Mean bases per token of ``tok`` on a fixed sample of windows (1.0 for char)."""
    rng = np.random.default_rng([int(settings["seed"]), _VALID_KEY, 1])
    sample = sampler.draw(rng, 16)
    _, mask = tok.encode_batch(sample, 2**31 - 1, add_special_tokens=False)
    return sum(len(s) for s in sample) / max(1, int(np.asarray(mask).sum()))


# ----------------------------------------------------------------------------- checkpoints

def _rng_state() -> dict:
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def content_fingerprint(path) -> str:
    """sha256 over the content of a file, or of a folder's files by relative name (the
    download manifest's ``{name: sha256}``, so a rename of the folder itself does not count)."""
    import hashlib
    import json

    from dnatok.data.download import manifest

    entries = manifest(Path(path), "content")
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def run_identity(arch: str, objective: str, settings: dict, model_hparams: dict, tokenizer_dir,
                 train_fasta, valid_fasta) -> dict:
    """Everything that decides a run's weights: every resolved setting but the run-time
    ones, the model, the tokenizer's content and the training data's content. A checkpoint
    is resumed only under the identity that wrote it."""
    return {"arch": arch, "objective": objective, "model_hparams": dict(model_hparams),
            "settings": {k: v for k, v in sorted(settings.items()) if k not in RUNTIME_KEYS},
            "tokenizer_sha256": content_fingerprint(tokenizer_dir),
            "train_fasta_sha256": content_fingerprint(train_fasta),
            "valid_fasta_sha256": content_fingerprint(valid_fasta)}


def _identity_diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        if isinstance(old.get(k), dict) and isinstance(new.get(k), dict):
            out += [f"{k}.{d}" for d in _identity_diff(old[k], new[k])]
        elif old.get(k) != new.get(k):
            out.append(f"{k}: {old.get(k)!r} -> {new.get(k)!r}")
    return out


def set_aside_stale(out_dir: Path, ckpt_dir: Path, latest: Path, old: dict, new: dict, logger) -> None:
    """Move checkpoints and the train log of a different run out of the way (kept, not
    deleted) so training starts from step 0."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = out_dir / f"stale-{stamp}"
    aside.mkdir(parents=True, exist_ok=True)
    os.replace(ckpt_dir, aside / "checkpoints")
    if (out_dir / "train_log.tsv").is_file():
        os.replace(out_dir / "train_log.tsv", aside / "train_log.tsv")
    changed = _identity_diff(old if isinstance(old, dict) else {}, new)
    logger.warning("checkpoint %s was written by a different run (%s); moved to %s, training starts "
                   "from step 0", latest, "; ".join(changed) or "identity format changed", aside)


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("step*.pt"), key=lambda p: int(p.stem[4:]))
    return found[-1] if found else None


def _save_checkpoint(ckpt_dir: Path, step: int, model, optimizer, scheduler, keep: int,
                     identity: dict) -> Path:
    import torch

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"step{step}.pt"
    with atomic_path(path) as tmp:
        torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": _rng_state(), "identity": identity}, tmp)
    for old in sorted(ckpt_dir.glob("step*.pt"), key=lambda p: int(p.stem[4:]))[:-max(1, keep)]:
        old.unlink()
    return path


# ----------------------------------------------------------------------------- main

def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _read_log(path: Path, upto_step: int) -> list[str]:
    """Rows of train_log.tsv up to a checkpoint's step (rows after it came from the
    interrupted part of a run and are redone)."""
    if not path.is_file():
        return []
    rows = path.read_text().splitlines()[1:]
    return [r for r in rows if r and int(r.split("\t")[0]) <= upto_step]


LOG_HEADER = "step\tloss\tlr\tvalid_loss"


def pretrain(arch: str, tokenizer_dir, train_fasta, valid_fasta, out_dir, settings: dict | None = None,
             model_hparams: dict | None = None) -> dict:
    """Pre-train ``arch`` with the tokenizer saved in ``tokenizer_dir``; resumes from the
    latest checkpoint in ``out_dir/checkpoints`` when there is one. Returns a summary."""
    import torch

    from dnatok.models import build_pretraining_model, objective_of
    from dnatok.tokenization import load_tokenizer

    settings = resolve_pretrain_settings(settings)
    model_hparams = dict(model_hparams or {})
    out_dir = Path(out_dir)
    tokenizer_dir = Path(tokenizer_dir)
    if not tokenizer_dir.is_dir():
        raise UserError(f"tokenizer folder {tokenizer_dir} does not exist")
    objective = settings["objective"] or objective_of(arch)
    if objective not in ("mlm", "clm"):
        raise UserError(f"model {arch!r} has no pre-training objective (got {objective!r}); "
                        "the CNN baseline is trained from scratch by finetune")

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    distributed = world > 1
    if distributed:
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        else:
            device = torch.device("cpu")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    else:
        device = resolve_device(settings["device"])
    is_main = rank == 0
    if settings["threads"]:
        torch.set_num_threads(int(settings["threads"]))

    gbs = int(settings["batch_size"])
    micro = int(settings["micro_batch_size"] or math.ceil(gbs / world))
    if gbs % (micro * world):
        raise UserError(f"batch_size {gbs} is not a multiple of micro_batch_size {micro} x "
                        f"world size {world}")
    accum = gbs // (micro * world)

    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / "checkpoints"
    logger = make_logger(f"dnatok.pretrain.{rank}", out_dir / "pretrain.log" if is_main else None)
    t0 = time.time()
    try:
        tok = load_tokenizer(tokenizer_dir)
        seed = int(settings["seed"])
        # window length in bases: enough to fill seq_len tokens (char: exactly seq_len).
        # Multi-base tokens vary in length, so 10% more bases make most windows fill the
        # budget (the excess is truncated) instead of ending in padding.
        probe = WindowSampler(valid_fasta, min(256, int(settings["seq_len"])), settings["max_n_fraction"])
        bpt = bases_per_token(tok, probe, settings)
        margin = 1.1 if bpt > 1.05 else 1.0
        window_bp = int(settings["window_bp"] or max(1, math.ceil(int(settings["seq_len"]) * bpt * margin)))
        train_windows = WindowSampler(train_fasta, window_bp, settings["max_n_fraction"])
        valid_windows = WindowSampler(valid_fasta, window_bp, settings["max_n_fraction"])
        vrng = np.random.default_rng([seed, _VALID_KEY])
        valid_batch = make_batch(valid_windows.draw(vrng, int(settings["valid_windows"])), tok, objective,
                                 {**settings, "rc_aug": False}, vrng)

        seed_everything(seed + rank)
        model = build_pretraining_model(arch, vocab_size=tok.vocab_size, pad_token_id=tok.pad_id,
                                        complement_map=getattr(tok, "complement_map", None),
                                        code_vectors=code_vectors(tok), **model_hparams)
        model.to(device)
        n_params, _ = count_parameters(model)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": float(settings["weight_decay"])},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=float(settings["learning_rate"]), betas=tuple(settings["betas"]))
        max_steps = int(settings["steps"])
        warmup = settings["warmup_steps"]
        warmup = int(warmup) if warmup is not None else int(max_steps * settings["warmup_fraction"])
        scheduler = cosine_with_warmup(optimizer, warmup, max_steps, float(settings["min_lr_ratio"]))
        identity = run_identity(arch, objective, settings, model_hparams, tokenizer_dir, train_fasta,
                                valid_fasta)

        step = 0
        latest = latest_checkpoint(ckpt_dir)
        state = torch.load(latest, map_location="cpu", weights_only=False) if latest is not None else None
        if state is not None and state.get("identity") != identity:
            if is_main:
                set_aside_stale(out_dir, ckpt_dir, latest, state.get("identity"), identity, logger)
            state = None
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            _set_rng_state(state["rng"])
            step = int(state["step"])
            logger.info("resumed from %s (step %d)", latest, step)
        log_rows = _read_log(out_dir / "train_log.tsv", step)
        if is_main:
            with atomic_path(out_dir / "train_log.tsv") as tmp:
                tmp.write_text("\n".join([LOG_HEADER] + log_rows) + "\n")

        train_model = model
        if distributed:
            train_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        logger.info("pretrain %s (%s, %d parameters) on %s: %d steps, global batch %d (micro %d x accum %d x "
                    "world %d), %d tokens = %d bp windows, device %s", arch, objective, n_params, train_fasta,
                    max_steps, gbs, micro, accum, world, int(settings["seq_len"]), window_bp, device)

        def valid_loss() -> float:
            train_model.eval()
            total, count = 0.0, 0
            ids, attn, labels = valid_batch
            with torch.no_grad():
                for s in range(0, ids.shape[0], micro):
                    sl = slice(s, s + micro)
                    with autocast(device):
                        out = _unwrap(train_model)(input_ids=torch.from_numpy(ids[sl]).to(device),
                                                   attention_mask=torch.from_numpy(attn[sl]).to(device),
                                                   labels=torch.from_numpy(labels[sl]).to(device))
                    n = int((labels[sl] != -100).sum())
                    total += float(out.loss) * n
                    count += n
            train_model.train()
            return total / max(1, count)

        budget = settings["max_steps_this_run"]
        stop_at = max_steps if budget is None else min(max_steps, step + int(budget))
        bar = Progress(stop_at - step, "pretrain", logger, int(settings["log_every"]),
                       settings["progress"] and is_main)
        train_model.train()
        log_fh = open(out_dir / "train_log.tsv", "a") if is_main else None
        try:
            while step < stop_at:
                step_loss = 0.0
                for m in range(accum):
                    rng = np.random.default_rng([seed, step, rank, m])
                    ids, attn, labels = make_batch(train_windows.draw(rng, micro), tok, objective, settings, rng)
                    sync = (not distributed) or m == accum - 1
                    ctx = train_model.no_sync() if (distributed and not sync) else contextlib.nullcontext()
                    with ctx:
                        with autocast(device):
                            out = train_model(input_ids=torch.from_numpy(ids).to(device),
                                              attention_mask=torch.from_numpy(attn).to(device),
                                              labels=torch.from_numpy(labels).to(device))
                        (out.loss / accum).backward()
                    step_loss += float(out.loss.detach()) / accum
                if settings["grad_clip"]:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(settings["grad_clip"]))
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if distributed:
                    t = torch.tensor([step_loss], device=device)
                    dist.all_reduce(t)
                    step_loss = float(t) / world
                bar.update(loss=step_loss)
                vloss = valid_loss() if (step % int(settings["eval_every"]) == 0 or step == max_steps) else None
                if is_main and (step % int(settings["log_every"]) == 0 or vloss is not None or step == stop_at):
                    lr = scheduler.get_last_lr()[0]
                    log_fh.write(f"{step}\t{step_loss:.6f}\t{lr:.6g}\t"
                                 f"{'' if vloss is None else f'{vloss:.6f}'}\n")
                    log_fh.flush()
                    if vloss is not None:
                        logger.info("step %d: loss %.4f, valid loss %.4f, lr %.3g", step, step_loss, vloss, lr)
                if is_main and (step % int(settings["checkpoint_every"]) == 0 or step == stop_at):
                    _save_checkpoint(ckpt_dir, step, model, optimizer, scheduler,
                                     int(settings["keep_checkpoints"]), identity)
                if distributed:
                    dist.barrier()
        finally:
            bar.close()
            if log_fh:
                log_fh.close()

        finished = step >= max_steps
        wall = time.time() - t0
        summary = {"arch": arch, "objective": objective, "step": step, "max_steps": max_steps,
                   "finished": finished, "window_bp": window_bp, "bases_per_token": bpt,
                   "n_params": n_params, "device": str(device), "world_size": world}
        if finished and is_main:
            summary["final_valid_loss"] = valid_loss()
            # the final model: a Hugging Face folder (config.json + weights) in out_dir;
            # files are written beside and renamed in, so a crash never leaves a half model
            tmp = Path(tempfile.mkdtemp(prefix=".final.", dir=out_dir))
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()   # keeps a shard bar out of batch logs
                _unwrap(model).save_pretrained(tmp)
                for f in tmp.iterdir():
                    os.replace(f, out_dir / f.name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            write_json(out_dir / "provenance.json", provenance(
                stage="pretrain", arch=arch, tokenizer=str(tokenizer_dir), train_fasta=str(train_fasta),
                valid_fasta=str(valid_fasta), settings=settings, model_hparams=model_hparams,
                device=str(device), world_size=world, wall_time_s_last_invocation=round(wall, 3),
                summary=summary, identity=identity))
            logger.info("pretraining done: %d steps, final valid loss %.4f, model in %s", step,
                        summary["final_valid_loss"], out_dir)
        elif not finished:
            logger.info("stopped at step %d of %d (max_steps_this_run); rerun to resume", step, max_steps)
        return summary
    finally:
        close_logger(logger)
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
