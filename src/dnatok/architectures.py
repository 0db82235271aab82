"""What the rest of the pipeline needs to know about each architecture without importing
torch: its names, accepted hyperparameters, pretraining objective and input-length limits.
The Snakefile's config check reads this at parse time; the model modules use the same
tables."""
from __future__ import annotations

ARCHITECTURES = ("mamba", "caduceus", "bert", "cnn")

# "clm" (next-token), "mlm" (masked LM) or None (the CNN: never pretrained).
OBJECTIVE = {"mamba": "clm", "caduceus": "mlm", "bert": "mlm", "cnn": None}

# Architecture hyperparameters accepted as **hparams (anything else is a user error, so a
# typo cannot silently fall back to a default).
_MAMBA_HP = ("d_model", "n_layer", "d_state", "expand", "d_conv", "dt_rank", "dt_min", "dt_max",
             "norm_eps", "rescale_prenorm_residual", "initializer_range")
HPARAMS = {
    "mamba": _MAMBA_HP,
    "caduceus": _MAMBA_HP + ("bidirectional_strategy", "bidirectional_weight_tie", "rcps"),
    "bert": ("d_model", "n_layer", "n_head", "d_ff", "dropout", "attention_dropout", "norm_eps",
             "initializer_range"),
    "cnn": ("embed_dim", "channels", "kernel_size", "pool_size", "dense_dim"),
}

CADUCEUS_STRATEGIES = ("add", "ew_multiply")
CNN_DEFAULTS = {"channels": (16, 8, 4), "kernel_size": 8, "pool_size": 2}


def cnn_min_tokens(hparams: dict | None = None) -> int:
    """Shortest input the CNN's conv/pool stack leaves at least one position of (57 for the
    study's three blocks of kernel 8 and pooling 2). Shorter tasks are padded up to it."""
    hp = {**CNN_DEFAULTS, **(hparams or {})}
    length = 1
    for _ in hp["channels"]:   # invert (L - k + 1) // p >= length, block by block
        length = length * int(hp["pool_size"]) + int(hp["kernel_size"]) - 1
    return length


def min_tokens(arch: str, hparams: dict | None = None) -> int:
    return cnn_min_tokens(hparams) if arch == "cnn" else 1


def hparam_problems(arch: str, hparams: dict) -> list[str]:
    """Value checks the config classes would make, without building them."""
    out = []
    for key in ("d_model", "n_layer", "n_head", "d_state", "expand", "d_conv", "kernel_size",
                "pool_size", "embed_dim", "dense_dim", "d_ff"):
        if key in hparams and (not isinstance(hparams[key], int) or isinstance(hparams[key], bool)
                               or hparams[key] < 1):
            out.append(f"{key} must be a positive integer, got {hparams[key]!r}")
    if arch == "bert" and isinstance(hparams.get("d_model", 256), int) and isinstance(hparams.get("n_head", 8), int):
        if hparams.get("d_model", 256) % hparams.get("n_head", 8):
            out.append(f"d_model ({hparams.get('d_model', 256)}) must be divisible by n_head ({hparams.get('n_head', 8)})")
    if arch == "caduceus" and hparams.get("bidirectional_strategy", "add") not in CADUCEUS_STRATEGIES:
        out.append(f"bidirectional_strategy must be one of {', '.join(CADUCEUS_STRATEGIES)}, "
                   f"got {hparams['bidirectional_strategy']!r}")
    return out
