"""Pieces shared by pre-training and fine-tuning: seeds, device, precision, schedule,
logging, progress and tokenizer resolution."""
from __future__ import annotations

import contextlib
import logging
import math
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

from dnatok.errors import UserError

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def seed_everything(seed: int) -> None:
    """Seed every generator a run touches (python, numpy's legacy global, torch)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(name: str | None = "auto"):
    import torch

    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name} requested but CUDA is not available")
    return dev


def autocast(device):
    """bf16 autocast on CUDA; plain fp32 on CPU (CPU bf16 is slow and changes numerics,
    and CPU runs must be exactly reproducible)."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cosine_with_warmup(optimizer, warmup_steps: int, total_steps: int, min_ratio: float):
    """Linear warm-up to the base lr, then cosine decay to ``min_ratio`` x base lr at
    ``total_steps`` (the study used timm's cosine-with-warmup: 1% warm-up, floor 0.1 lr)."""
    import torch

    warmup_steps = max(0, int(warmup_steps))
    total_steps = max(1, int(total_steps))

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def linear_with_warmup(optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up from 0 to the base lr, then linear decay to 0 at ``total_steps``
    (the Hugging Face Trainer's default schedule, used by the study's attention scripts)."""
    import torch

    warmup_steps = max(0, int(warmup_steps))
    total_steps = max(1, int(total_steps))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_logger(name: str, log_file: Path | None) -> logging.Logger:
    """A logger writing to ``log_file`` and to stderr; call :func:`close_logger` after."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter(LOG_FORMAT, "%H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if log_file is not None:
        fileh = logging.FileHandler(log_file)
        fileh.setFormatter(fmt)
        logger.addHandler(fileh)
    return logger


def close_logger(logger: logging.Logger) -> None:
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


class Progress:
    """tqdm bar when installed and stderr is a terminal; otherwise a log line every
    ``every`` steps (logs of batch jobs stay readable)."""

    def __init__(self, total: int, desc: str, logger: logging.Logger, every: int = 50,
                 enabled: bool = True):
        self.total, self.desc, self.logger, self.every = total, desc, logger, max(1, every)
        self.n, self.start, self.bar = 0, time.time(), None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
            except ImportError:
                self.bar = None
        self.enabled = enabled

    def update(self, **postfix) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
            if postfix:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        elif self.enabled and (self.n % self.every == 0 or self.n == self.total):
            rate = self.n / max(1e-9, time.time() - self.start)
            extra = " ".join(f"{k}={v:.4g}" for k, v in postfix.items())
            self.logger.info("%s %d/%d (%.1f it/s) %s", self.desc, self.n, self.total, rate, extra)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_KMER = re.compile(r"^kmer(\d+)$")
_BPE = re.compile(r"^bpe(\d*)$")


def tokenizer_spec(kind: str) -> dict:
    """Spec for ``train_tokenizer`` from a short kind name: ``char``, ``kmer6``…
    BPE needs a training corpus, so it must be given as a saved tokenizer folder."""
    if kind == "char":
        return {"kind": "char"}
    m = _KMER.match(kind)
    if m:
        return {"kind": "kmer", "k": int(m.group(1))}
    if _BPE.match(kind):
        raise UserError(f"tokenizer {kind!r}: a BPE tokenizer must be trained first; pass its folder "
                        "(e.g. results/tokenizers/bpe4096)")
    raise UserError(f"unknown tokenizer {kind!r}: give char, kmer<k> or a saved tokenizer folder")


def resolve_tokenizer(tokenizer, workdir: Path):
    """(tokenizer object, short name) from a kind name, a saved folder, or an object."""
    from dnatok.tokenization import load_tokenizer, train_tokenizer

    if not isinstance(tokenizer, (str, Path)):
        return tokenizer, getattr(tokenizer, "name", type(tokenizer).__name__)
    path = Path(tokenizer)
    if path.is_dir():
        return load_tokenizer(path), path.name
    if "/" in str(tokenizer) or str(tokenizer).startswith("."):
        raise UserError(f"tokenizer folder {tokenizer} does not exist")
    spec = tokenizer_spec(str(tokenizer))
    return train_tokenizer(spec, Path(workdir)), str(tokenizer)


def code_vectors(tok):
    """A learned tokenizer's frozen code table for the model's embedding (see
    :class:`dnatok.models.heads.CodeEmbedding`); None for every other tokenizer and for a
    learned one whose spec says ``embedding: ids`` (a fresh trainable embedding)."""
    get = getattr(tok, "code_vectors", None)
    return get() if callable(get) else None


def count_parameters(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
