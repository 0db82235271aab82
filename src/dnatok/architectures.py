"""What the rest of the pipeline needs to know about each architecture without importing
torch: its names, accepted hyperparameters, pretraining objective and input-length limits.
The Snakefile's config check reads this at parse time; the model modules use the same
tables."""
from __future__ import annotations

ARCHITECTURES = ("mamba", "caduceus", "bert", "cnn", "hyena")

# "clm" (next-token), "mlm" (masked LM) or None (the CNN: never pretrained).
OBJECTIVE = {"mamba": "clm", "caduceus": "mlm", "bert": "mlm", "cnn": None, "hyena": "clm"}

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
    "hyena": ("d_model", "n_layer", "d_inner", "filter_order", "emb_dim", "short_filter_order",
              "hyena_order", "num_inner_mlps", "activation_freq", "max_seq_len", "embed_dropout",
              "hyena_dropout", "norm_eps", "pad_vocab_size_multiple", "initializer_range"),
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


HYENA_MAX_SEQ_LEN = 1026   # HyenaConfig's default positional table


def max_tokens(arch: str, hparams: dict | None = None) -> int | None:
    """Longest input the architecture can read (HyenaDNA: its positional table), None if any."""
    if arch == "hyena":
        return int((hparams or {}).get("max_seq_len", HYENA_MAX_SEQ_LEN))
    return None


def hparam_problems(arch: str, hparams: dict) -> list[str]:
    """Value checks the config classes would make, without building them."""
    out = []
    for key in ("d_model", "n_layer", "n_head", "d_state", "expand", "d_conv", "kernel_size",
                "pool_size", "embed_dim", "dense_dim", "d_ff", "filter_order", "emb_dim",
                "short_filter_order", "max_seq_len", "pad_vocab_size_multiple"):
        if key in hparams and (not isinstance(hparams[key], int) or isinstance(hparams[key], bool)
                               or hparams[key] < 1):
            out.append(f"{key} must be a positive integer, got {hparams[key]!r}")
    if arch == "bert" and isinstance(hparams.get("d_model", 256), int) and isinstance(hparams.get("n_head", 8), int):
        if hparams.get("d_model", 256) % hparams.get("n_head", 8):
            out.append(f"d_model ({hparams.get('d_model', 256)}) must be divisible by n_head ({hparams.get('n_head', 8)})")
    if arch == "caduceus" and hparams.get("bidirectional_strategy", "add") not in CADUCEUS_STRATEGIES:
        out.append(f"bidirectional_strategy must be one of {', '.join(CADUCEUS_STRATEGIES)}, "
                   f"got {hparams['bidirectional_strategy']!r}")
    if arch == "hyena":
        out += _hyena_problems(hparams)
    return out


def _hyena_problems(hparams: dict) -> list[str]:
    out = []
    d_inner = hparams.get("d_inner")
    if d_inner is not None and (not isinstance(d_inner, int) or isinstance(d_inner, bool) or d_inner < 1):
        out.append(f"d_inner must be a positive integer or null (4 x d_model), got {d_inner!r}")
    emb_dim = hparams.get("emb_dim", 5)
    if isinstance(emb_dim, int) and (emb_dim < 3 or emb_dim % 2 == 0):
        out.append(f"emb_dim must be odd and >= 3, got {emb_dim!r}")
    if hparams.get("hyena_order", 2) != 2:
        out.append(f"hyena_order: only 2 is implemented, got {hparams['hyena_order']!r}")
    return out
