"""HyenaDNA as released in ``LongSafari/hyenadna-*-seqlen-hf`` (config.json with
``model_type: hyenadna`` + ``model.safetensors``), loaded into our own
:class:`dnatok.models.hyena.HyenaForSequenceClassification` (the study's mean-pool decoder).

The released tensors live under ``hyena.backbone.``; ours under ``backbone.`` with the
same names below it. The pretraining head (``lm_head.weight``) or the release's own
classification head (``score.weight``) is dropped; ``classifier.*`` is new. The filter
MLP's Sin module is shared by its activation positions, so a release may hold its ``freq``
under one index only (``implicit_filter.1.freq``): :func:`fill_tied` copies it to the
others, and refuses a release whose copies differ.

Only the original ``-seqlen`` repositories' Lightning ``weights.ckpt`` (keys under
``model.backbone.``) are not read here.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from dnatok.errors import UserError
from dnatok.models.hyena import HyenaConfig, HyenaForSequenceClassification

NAME = "hyena"
LABEL = "HyenaDNA"
TOKENIZER = "char"

Config = HyenaConfig
Classifier = HyenaForSequenceClassification

PREFIX = "hyena.backbone."
DROPPED = ("lm_head.", "score.")
NEW_HEAD = ("classifier.",)

# config.json key -> HyenaConfig field; the first group must be present (they set shapes)
REQUIRED = {"d_model": "d_model", "n_layer": "n_layer", "vocab_size": "vocab_size",
            "max_seq_len": "max_seq_len", "emb_dim": "emb_dim", "filter_order": "filter_order"}
OPTIONAL = {"d_inner": "d_inner", "short_filter_order": "short_filter_order",
            "hyena_order": "hyena_order", "num_inner_mlps": "num_inner_mlps",
            "activation_freq": "activation_freq", "pad_vocab_size_multiple": "pad_vocab_size_multiple",
            "layer_norm_epsilon": "norm_eps", "embed_dropout": "embed_dropout",
            "hyena_dropout": "hyena_dropout", "initializer_range": "initializer_range"}
# switches the released models all have at these values; anything else is not implemented
FIXED = {"hyena_order": 2, "train_freq": True, "use_bias": True, "hyena_filter_dropout": 0.0}
PAD_ID = 4   # [PAD] of the HyenaDNA character tokenizer


def matches(cfg: dict) -> bool:
    return cfg.get("model_type") == "hyenadna"


def config_from_release(cfg: dict, **classifier_fields) -> HyenaConfig:
    """HyenaConfig from a -hf config.json; UserError naming the key for a missing shape
    key or a value this implementation does not support."""
    for key, value in FIXED.items():
        if key in cfg and cfg[key] != value:
            raise UserError(f"HyenaDNA config.json: {key}={cfg[key]!r} is not supported (only {value!r})")
    missing = [k for k in REQUIRED if cfg.get(k) is None]
    if missing:
        raise UserError(f"HyenaDNA config.json lacks {', '.join(missing)}")
    fields = {ours: cfg[key] for key, ours in {**REQUIRED, **OPTIONAL}.items() if cfg.get(key) is not None}
    pad = cfg.get("pad_token_id")
    try:
        return HyenaConfig(pad_token_id=PAD_ID if pad is None else pad, **fields, **classifier_fields)
    except ValueError as e:
        raise UserError(f"HyenaDNA config.json: {e}") from e


def map_key(name: str) -> str | None:
    return "backbone." + name[len(PREFIX):] if name.startswith(PREFIX) else None


_LINEAR = re.compile(r"^(.*\.implicit_filter\.)(\d+)\.weight$")


def fill_tied(loaded: dict) -> dict:
    """The shared Sin freq under every activation index (the index after each filter
    Linear but the last) from the one(s) the release holds."""
    linears: dict[str, list[int]] = {}
    for name in loaded:
        if m := _LINEAR.match(name):
            linears.setdefault(m.group(1), []).append(int(m.group(2)))
    out = {}
    for prefix, idx in linears.items():
        names = [f"{prefix}{j + 1}.freq" for j in sorted(idx)[:-1]]
        present = [n for n in names if n in loaded]
        if not present:
            continue   # load_strict reports them missing
        for n in present[1:]:
            if not bool((loaded[n] == loaded[present[0]]).all()):
                raise UserError(f"{present[0]} and {n} differ: the release does not share its Sin "
                                "module, which this model does")
        out.update({n: loaded[present[0]] for n in names if n not in loaded})
    return out


# --------------------------------------------------------------------------- tiny release

def release_layout(d_model: int, n_layer: int, max_seq_len: int, vocab_rows: int, d_inner: int,
                   filter_order: int, emb_dim: int, num_inner_mlps: int, short_filter_order: int,
                   freq_keys: str) -> dict[str, tuple[int, ...]]:
    """Released tensor name -> shape (the -hf HyenaDNAModel's state dict), written out
    from the published layout; freq_keys "one" (only ``.1.freq``, as a de-duplicated
    safetensors file holds it) or "all" (every activation index)."""
    d, o = d_model, filter_order
    shapes = {"embeddings.word_embeddings.weight": (vocab_rows, d)}
    mlp = [(o, emb_dim)] + [(o, o)] * num_inner_mlps
    for i in range(n_layer):
        p = f"layers.{i}."
        f = p + "mixer.filter_fn."
        shapes.update({p + "norm1.weight": (d,), p + "norm1.bias": (d,),
                       p + "norm2.weight": (d,), p + "norm2.bias": (d,),
                       p + "mixer.in_proj.weight": (3 * d, d), p + "mixer.in_proj.bias": (3 * d,),
                       p + "mixer.out_proj.weight": (d, d), p + "mixer.out_proj.bias": (d,),
                       p + "mixer.short_filter.weight": (3 * d, 1, short_filter_order),
                       p + "mixer.short_filter.bias": (3 * d,),
                       f + "bias": (d,), f + "pos_emb.z": (1, max_seq_len, emb_dim),
                       f + "pos_emb.t": (1, max_seq_len, 1), f + "modulation.deltas": (1, 1, d),
                       p + "mlp.fc1.weight": (d_inner, d), p + "mlp.fc1.bias": (d_inner,),
                       p + "mlp.fc2.weight": (d, d_inner), p + "mlp.fc2.bias": (d,)})
        for j, shape in enumerate(mlp):
            shapes[f"{f}implicit_filter.{2 * j}.weight"] = shape
            shapes[f"{f}implicit_filter.{2 * j}.bias"] = (o,)
            if freq_keys == "all" or j == 0:
                shapes[f"{f}implicit_filter.{2 * j + 1}.freq"] = (1, o)
        shapes[f"{f}implicit_filter.{2 * len(mlp)}.weight"] = (d, o)
    shapes.update({"ln_f.weight": (d,), "ln_f.bias": (d,)})
    return {PREFIX + k: v for k, v in shapes.items()}


def _random_tensor(name: str, shape, gen):
    import torch

    if name.endswith("pos_emb.t"):
        return torch.linspace(0, 1, shape[1])[None, :, None]
    if name.endswith(".freq"):
        return 5 + 10 * torch.rand(shape, generator=gen)
    if name.endswith(("norm1.weight", "norm2.weight", "ln_f.weight")):
        return 1 + 0.1 * torch.randn(shape, generator=gen)
    if name.endswith("modulation.deltas"):
        return -1 - 14 * torch.rand(shape, generator=gen)
    return 0.3 * torch.randn(shape, generator=gen)


def write_tiny_release(out_dir, seed: int = 0, d_model: int = 16, n_layer: int = 2,
                       max_seq_len: int = 66, vocab_size: int = 12, filter_order: int = 8,
                       emb_dim: int = 5, num_inner_mlps: int = 2, freq_keys: str = "one",
                       head: str = "lm_head", num_labels: int = 2) -> Path:
    """A random HyenaDNA -hf checkpoint: config.json + model.safetensors, with the
    CausalLM's ``lm_head`` (head="lm_head") or the SeqCls ``score`` (head="score")."""
    import torch
    from safetensors.torch import save_file

    if freq_keys not in ("one", "all") or head not in ("lm_head", "score"):
        raise ValueError("freq_keys is 'one' or 'all'; head is 'lm_head' or 'score'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = (vocab_size + 7) // 8 * 8
    cfg = {"activation_freq": 10, "d_inner": 4 * d_model, "d_model": d_model, "emb_dim": emb_dim,
           "embed_dropout": 0.1, "filter_order": filter_order, "hyena_dropout": 0.0,
           "hyena_filter_dropout": 0.0, "hyena_order": 2, "initializer_range": 0.02,
           "layer_norm_epsilon": 1e-5, "max_seq_len": max_seq_len, "model_type": "hyenadna",
           "n_layer": n_layer, "num_inner_mlps": num_inner_mlps, "pad_token_id": 4,
           "pad_vocab_size_multiple": 8, "short_filter_order": 3, "tie_word_embeddings": False,
           "torch_dtype": "float32", "train_freq": True, "use_bias": True, "vocab_size": vocab_size,
           "architectures": ["HyenaDNAForCausalLM" if head == "lm_head"
                             else "HyenaDNAForSequenceClassification"]}
    shapes = release_layout(d_model, n_layer, max_seq_len, rows, 4 * d_model, filter_order, emb_dim,
                            num_inner_mlps, 3, freq_keys)
    if head == "lm_head":
        shapes["lm_head.weight"] = (rows, d_model)
    else:
        shapes["score.weight"] = (num_labels, d_model)
        cfg["num_labels"] = num_labels
    gen = torch.Generator().manual_seed(seed)
    tensors = {k: _random_tensor(k, s, gen).contiguous() for k, s in shapes.items()}
    for k in tensors:   # one shared Sin module: every freq copy holds the same values
        if k.endswith(".freq"):
            tensors[k] = tensors[re.sub(r"\.\d+\.freq$", ".1.freq", k)].clone()
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out
