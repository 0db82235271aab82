"""Specs of the learned tokenizers ``vq`` and ``hrq`` (VQDNA): validation and defaults.

Kept free of torch so that ``vocab.canonical_spec`` (imported everywhere) stays light.
See ``dnatok.tokenization.learned`` for what the keys mean.
"""
from __future__ import annotations

import re

from dnatok.errors import UserError

LEARNED_KINDS = ("vq", "hrq")

# key -> default, for both kinds. Keys that do not change the trained network:
# "embedding" (how models consume the tokenizer), "checkpoint_every" and "device" (where
# training runs: "auto" = CUDA when available; not saved with the tokenizer, see
# ``learned_train``).
COMMON = {
    "code_dim": 32, "width": 64, "depth": 3, "beta": 0.5, "ema_decay": 0.99, "steps": 300,
    "batch_size": 64, "window": 128, "learning_rate": 1e-3, "weight_decay": 0.01, "seed": 0,
    "valid_fraction": 0.1, "embedding": "frozen", "max_corpus_bp": None,
    "checkpoint_every": 200, "kmeans_iters": 10, "dead_after": 100, "max_n_fraction": 0.1,
    "device": "auto",
}
# Keys left out of the saved spec and of the checkpoint signature (run-time settings).
RUNTIME_KEYS = ("device",)
PER_KIND = {
    "vq": {"codebook_size": 64},
    "hrq": {"levels": [16, 32, 64], "max_joint_codes": 1024},
}
EMBEDDINGS = ("frozen", "ids")
MAX_CODES = 1 << 16
DEVICE_RE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check_device(value, where: str) -> str:
    """``value`` if it is "auto", "cpu", "cuda" or "cuda:N", else a ``UserError``."""
    if not isinstance(value, str) or not DEVICE_RE.fullmatch(value):
        raise UserError(f"{where} must be auto, cpu, cuda or cuda:N, got {value!r}")
    return value


def _fail(spec: dict, key: str, why: str):
    raise UserError(f"tokenizer spec {spec!r}: '{key}' {why}")


def _int(spec, key, value, lo, hi) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(spec, key, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        _fail(spec, key, f"must be in [{lo}, {hi}], got {value}")
    return value


def _float(spec, key, value, lo, hi, lo_open=False, hi_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(spec, key, f"must be a number, got {value!r}")
    value = float(value)
    if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
        _fail(spec, key, f"must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, "
                         f"got {value}")
    return value


INTS = {"code_dim": (1, 4096), "width": (1, 4096), "depth": (1, 64), "steps": (1, 10**8),
        "batch_size": (1, 1 << 16), "window": (8, 1 << 16), "seed": (0, 2**63 - 1),
        "checkpoint_every": (1, 10**8), "kmeans_iters": (0, 1000), "dead_after": (1, 10**8),
        "codebook_size": (2, MAX_CODES), "max_joint_codes": (1, 1 << 20),
        "max_corpus_bp": (1, 1 << 62)}
FLOATS = {"beta": (0.0, 100.0, False, False), "ema_decay": (0.0, 1.0, False, True),
          "learning_rate": (0.0, 10.0, True, False), "weight_decay": (0.0, 10.0, False, False),
          "valid_fraction": (0.0, 1.0, False, True), "max_n_fraction": (0.0, 1.0, False, False)}


def canonical_learned_spec(spec: dict) -> dict:
    """Validated copy of a ``vq``/``hrq`` spec with every default filled in; unknown keys
    and bad values are a ``UserError`` naming the key."""
    kind = spec["kind"]
    allowed = {**COMMON, **PER_KIND[kind]}
    unknown = sorted(set(spec) - set(allowed) - {"kind"})
    if unknown:
        raise UserError(f"tokenizer spec {spec!r}: unknown key(s) {', '.join(map(repr, unknown))} "
                        f"for kind {kind!r} (allowed: {', '.join(sorted(allowed))})")
    out = {"kind": kind}
    for key, default in allowed.items():
        value = spec.get(key, default)
        if key == "max_corpus_bp" and value is None:
            continue
        if key in INTS:
            value = _int(spec, key, value, *INTS[key])
        elif key in FLOATS:
            value = _float(spec, key, value, *FLOATS[key])
        elif key == "embedding":
            if value not in EMBEDDINGS:
                _fail(spec, key, f"must be one of {', '.join(EMBEDDINGS)}, got {value!r}")
        elif key == "device":
            check_device(value, f"tokenizer spec {spec!r}: 'device'")
        elif key == "levels":
            if not isinstance(value, (list, tuple)) or not value:
                _fail(spec, key, f"must be a non-empty list of codebook sizes, got {value!r}")
            value = [_int(spec, key, v, 2, MAX_CODES) for v in value]
        out[key] = value
    if kind == "hrq" and out["depth"] < len(out["levels"]):
        _fail(spec, "depth", f"must be >= len(levels) = {len(out['levels'])} "
                             f"(one encoder block per level), got {out['depth']}")
    return out


def learned_default_name(spec: dict) -> str:
    """'vq' or 'hrq' (the defaults), plus the codebook size(s) when they differ."""
    if spec["kind"] == "vq":
        k = spec["codebook_size"]
        return "vq" if k == PER_KIND["vq"]["codebook_size"] else f"vq{k}"
    levels = spec["levels"]
    return "hrq" if levels == PER_KIND["hrq"]["levels"] else "hrq" + "-".join(map(str, levels))
