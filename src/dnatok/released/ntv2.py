"""Nucleotide Transformer v2 (``InstaDeepAI/nucleotide-transformer-v2-*-multi-species``),
clean-room, loaded strictly; every size the config describes.

Architecture as released (facts: checkpoints.md §2), no remote code:

- embeddings: ``word_embeddings`` (padding_idx = pad_token_id, 1) times the attention mask
  (pad rows zeroed); no positions added (rotary), no embedding LayerNorm, no dropout.
- pre-LN layers: ``attention.LayerNorm`` -> q, k, v (bias); q * head_dim^-0.5 *before* rotary;
  rotary on q and k (base 10000 over head_dim, rotate-half pairs (i, i + head_dim/2),
  positions 0..L-1 whatever the padding); + mask bias (finfo.min on pad keys); softmax;
  dropout; ``attention.output.dense``; + residual. FFN: ``LayerNorm`` -> ``intermediate.dense``
  (no bias, hidden -> 2 x intermediate) -> SiLU(first half) * second half -> ``output.dense``
  (no bias) -> + residual. Last: ``encoder.emb_layer_norm_after``.
- rotary tables are computed per call (not stored), so meta-device init cannot corrupt them.

Module names are the release's under ``esm.`` (ours: ``backbone.``), so LoRA targets by
suffix (query, key, value, dense) hit the same modules as in the study (including the
head's ``classifier.dense``). Classifier: ESM's classification head (token 0 -> dropout ->
``classifier.dense`` -> tanh -> dropout -> ``classifier.out_proj``, dropout =
hidden_dropout_prob), new (``NEW_HEAD``). ``config.pooling`` is ignored (``HEAD_POOLING``).

Dropped released tensors (``DROPPED``, all reported by the loader): the MLM head ``lm_head.*``;
``esm.contact_head.*`` (protein contact regression the remote model class always builds);
``esm.embeddings.position_embeddings.weight`` (a table that exists but is not added with
rotary; ``esm.embeddings.position_ids`` too, if an export has it); per-layer
``attention.self.rotary_embeddings.inv_freq`` (persistent buffers in the remote class; our
tables use the same formula, 1 / 10000^(2i/head_dim) -- their values are not compared).
Whether a real release carries these four is inferred from the remote class, not from a key
listing: each is accepted when present and not required.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel

from dnatok.errors import UserError
from dnatok.released.base import is_dropped
from dnatok.models.heads import ClassifierMixin, DnaConfig, init_bert_style

__all__ = ["NAME", "LABEL", "TOKENIZER", "HEAD_POOLING", "matches", "Config", "config_from_release",
           "Classifier", "map_key", "DROPPED", "NEW_HEAD", "write_tiny_release"]

NAME = "ntv2"
LABEL = "NTv2"
TOKENIZER = "ntv2"
HEAD_POOLING = "cls"          # the head reads token 0 (<cls>); config.pooling is not used
RELEASE_PREFIX = "esm."
ROTARY_BASE = 10000.0
DROPPED = ("lm_head.", "esm.contact_head.", "esm.embeddings.position_embeddings.", "esm.embeddings.position_ids",
           "esm.encoder.layer.*.attention.self.rotary_embeddings.*")   # a glob: per layer
NEW_HEAD = ("classifier.",)

RELEASE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "hidden_dropout_prob", "attention_probs_dropout_prob",
                  "layer_norm_eps", "initializer_range", "pad_token_id", "max_position_embeddings")
_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
# release key -> (the only value implemented, the value an absent key means: ESM's default;
# add_bias_fnn's default in the remote config class is taken to be true, unverified).
# Flags compare as booleans (ESM's emb_layer_norm_before default is None = off).
_REQUIRED = {"position_embedding_type": ("rotary", "absolute"), "emb_layer_norm_before": (False, False),
             "token_dropout": (False, False), "add_bias_fnn": (False, True),
             "is_folding_model": (False, False), "is_decoder": (False, False),
             "add_cross_attention": (False, False)}


def matches(release_config: dict) -> bool:
    """model_type esm (or absent) with NT-v2's remote-code config: its ``add_bias_fnn`` key or
    ``auto_map`` -> ``esm_config.EsmConfig`` (stock ESM-2 and NT v1 have neither)."""
    if release_config.get("model_type", "esm") != "esm":
        return False
    auto = release_config.get("auto_map") or {}
    return "add_bias_fnn" in release_config or auto.get("AutoConfig") == "esm_config.EsmConfig"


class Config(DnaConfig):
    model_type = "dnatok_ntv2"

    def __init__(self, vocab_size: int = 4107, hidden_size: int = 1024, num_hidden_layers: int = 29,
                 num_attention_heads: int = 16, intermediate_size: int = 4096,
                 hidden_dropout_prob: float = 0.0, attention_probs_dropout_prob: float = 0.0,
                 layer_norm_eps: float = 1e-12, max_position_embeddings: int = 2050,
                 pad_token_id: int | None = 1, **kwargs):
        if hidden_size % num_attention_heads or (hidden_size // num_attention_heads) % 2:
            raise ValueError(f"hidden_size ({hidden_size}) / num_attention_heads ({num_attention_heads}) "
                             "must be an even integer (rotary)")
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.layer_norm_eps = layer_norm_eps
        self.max_position_embeddings = max_position_embeddings  # informational: rotary has no table
        super().__init__(vocab_size=vocab_size, pad_token_id=pad_token_id, **kwargs)


def config_from_release(release_config: dict, **classifier_fields) -> Config:
    """Our Config from the release's config.json; values we do not implement are a UserError."""
    for key, (want, default) in _REQUIRED.items():
        got = release_config.get(key, default)
        if (bool(got) if isinstance(want, bool) else got) != want:
            shown = repr(got) if key in release_config else f"absent (= {default!r})"
            raise UserError(f"NT-v2 config: {key} {shown} is not supported (implemented: {want!r})")
    for key in _SIZES:
        v = release_config.get(key, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"NT-v2 config: {key} must be a positive integer, got {v!r}")
    fields = {k: release_config[k] for k in RELEASE_FIELDS if k in release_config}
    hidden, heads = fields.get("hidden_size", 1024), fields.get("num_attention_heads", 16)
    if hidden % heads or (hidden // heads) % 2:
        raise UserError(f"NT-v2 config: hidden_size {hidden} / num_attention_heads {heads} "
                        "is not an even head size (rotary needs one)")
    return Config(**fields, **classifier_fields)


def map_key(release_name: str) -> str | None:
    """``esm.X`` -> ``backbone.X``; ``DROPPED`` names and anything outside ``esm.`` -> None."""
    if is_dropped(release_name, DROPPED) or not release_name.startswith(RELEASE_PREFIX):
        return None
    return "backbone." + release_name[len(RELEASE_PREFIX):]


# --------------------------------------------------------------------------- rotary

def rotary_tables(length: int, dim: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (length, dim) float32, for positions 0..length-1: angle of pair i
    (columns i and i + dim/2) = position / 10000^(2i/dim)."""
    inv_freq = 1.0 / (ROTARY_BASE ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    t = torch.arange(length, device=device, dtype=torch.float32)
    angles = torch.outer(t, inv_freq.to(device))
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half rotary on (..., L, dim), computed in float32 and returned in x's dtype."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


def key_padding_bias(attention_mask: torch.Tensor, dtype) -> torch.Tensor:
    """(batch, 1, 1, L): 0 on real keys, finfo(dtype).min on pads (HF's extended mask)."""
    bias = torch.zeros(attention_mask.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(attention_mask == 0, torch.finfo(dtype).min)[:, None, None, :]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matmuls run in: autocast's when it is on, else the tensor's."""
    dev = x.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype


# --------------------------------------------------------------------------- modules
# Attribute names follow the release's parameter names (esm.<these>).

class Embeddings(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)


class SelfAttention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.n_head = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.p_drop = c.attention_probs_dropout_prob
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, h, bias, cos, sin):
        b, length, d = h.shape

        def heads(t):
            return t.view(b, length, self.n_head, self.head_dim).transpose(1, 2)

        q = apply_rotary(heads(self.query(h)) * self.head_dim ** -0.5, cos, sin)
        k = apply_rotary(heads(self.key(h)), cos, sin)
        a = F.scaled_dot_product_attention(q, k, heads(self.value(h)), attn_mask=bias, scale=1.0,
                                           dropout_p=self.p_drop if self.training else 0.0)
        return a.transpose(1, 2).reshape(b, length, d)


class ResidualDense(nn.Module):
    """dense -> dropout -> + residual (``attention.output`` and the FFN's ``output``)."""

    def __init__(self, d_in: int, d_out: int, bias: bool, p_drop: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out, bias=bias)
        self.dropout = nn.Dropout(p_drop)

    def forward(self, x, residual):
        return self.dropout(self.dense(x)) + residual


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = ResidualDense(c.hidden_size, c.hidden_size, True, c.hidden_dropout_prob)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h, bias, cos, sin):
        return self.output(self.self(self.LayerNorm(h), bias, cos, sin), h)


class SwiGLU(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.d_ff = c.intermediate_size
        self.dense = nn.Linear(c.hidden_size, 2 * c.intermediate_size, bias=False)

    def forward(self, h):
        g = self.dense(h)
        return F.silu(g[..., : self.d_ff]) * g[..., self.d_ff:]


class Layer(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = SwiGLU(c)
        self.output = ResidualDense(c.intermediate_size, c.hidden_size, False, c.hidden_dropout_prob)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h, bias, cos, sin):
        h = self.attention(h, bias, cos, sin)
        return self.output(self.intermediate(self.LayerNorm(h)), h)


class Encoder(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))
        self.emb_layer_norm_after = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class Backbone(nn.Module):
    """``forward(input_ids, attention_mask=None) -> (batch, L, hidden)`` (after the final
    LayerNorm; pad rows hold whatever the layers made of them, as in the release)."""

    def __init__(self, c: Config):
        super().__init__()
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)

    @property
    def output_dim(self) -> int:
        return self.embeddings.word_embeddings.embedding_dim

    def forward(self, input_ids, attention_mask=None):
        h = self.embeddings.word_embeddings(input_ids)
        bias = None
        if attention_mask is not None:
            h = h * attention_mask[..., None].to(h.dtype)
            bias = key_padding_bias(attention_mask, compute_dtype(h))
        cos, sin = rotary_tables(input_ids.shape[1], self.head_dim, input_ids.device)
        for layer in self.encoder.layer:
            h = layer(h, bias, cos, sin)
        return self.encoder.emb_layer_norm_after(h)


class ClassificationHead(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        self.out_proj = nn.Linear(c.hidden_size, c.num_labels)

    def forward(self, h):
        x = torch.tanh(self.dense(self.dropout(h[:, 0])))
        return self.out_proj(self.dropout(x))


class PreTrained(PreTrainedModel):
    config_class = Config
    base_model_prefix = "backbone"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        init_bert_style(module, self.config.initializer_range)


class Classifier(ClassifierMixin, PreTrained):
    def __init__(self, config: Config):
        super().__init__(config)
        self.backbone = Backbone(config)
        self.classifier = ClassificationHead(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embeddings.word_embeddings

    def sequence_logits(self, input_ids, attention_mask):
        return self.classifier(self.backbone(input_ids, attention_mask))


# --------------------------------------------------------------------------- tiny release

def release_config(hidden=1024, layers=29, heads=16, intermediate=4096, vocab=4107) -> dict:
    """The release's config.json keys (NT-v2 multi-species; checkpoints.md §2), sizes replaced."""
    return {
        "add_bias_fnn": False,
        "architectures": ["EsmForMaskedLM", "EsmForTokenClassification", "EsmForSequenceClassification"],
        "attention_probs_dropout_prob": 0.0,
        "auto_map": {"AutoConfig": "esm_config.EsmConfig",
                     "AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM",
                     "AutoModelForTokenClassification": "modeling_esm.EsmForTokenClassification",
                     "AutoModelForSequenceClassification": "modeling_esm.EsmForSequenceClassification"},
        "emb_layer_norm_before": False, "esmfold_config": None, "hidden_dropout_prob": 0.0,
        "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": intermediate,
        "is_folding_model": False, "layer_norm_eps": 1e-12, "mask_token_id": 2,
        "max_position_embeddings": 2050, "model_type": "esm", "num_attention_heads": heads,
        "num_hidden_layers": layers, "pad_token_id": 1, "position_embedding_type": "rotary",
        "tie_word_embeddings": False, "token_dropout": False, "torch_dtype": "float32",
        "transformers_version": "4.32.0.dev0", "use_cache": False, "vocab_list": None, "vocab_size": vocab,
    }


def release_shapes(cfg: dict) -> dict:
    """Released tensor name -> shape (HF-ESM layout under ``esm.``, SwiGLU FFN without bias),
    with the tensors we drop: contact head, position table, rotary inv_freq, MLM head."""
    d, f, v, n_layer = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    hd = d // cfg["num_attention_heads"]
    shapes = {"esm.embeddings.word_embeddings.weight": (v, d),
              "esm.embeddings.position_embeddings.weight": (cfg["max_position_embeddings"], d)}
    for n in range(n_layer):
        p = f"esm.encoder.layer.{n}."
        for m in ("query", "key", "value"):
            shapes.update({p + f"attention.self.{m}.weight": (d, d), p + f"attention.self.{m}.bias": (d,)})
        shapes.update({p + "attention.self.rotary_embeddings.inv_freq": (hd // 2,),
                       p + "attention.output.dense.weight": (d, d), p + "attention.output.dense.bias": (d,),
                       p + "attention.LayerNorm.weight": (d,), p + "attention.LayerNorm.bias": (d,),
                       p + "intermediate.dense.weight": (2 * f, d), p + "output.dense.weight": (d, f),
                       p + "LayerNorm.weight": (d,), p + "LayerNorm.bias": (d,)})
    shapes.update({"esm.encoder.emb_layer_norm_after.weight": (d,), "esm.encoder.emb_layer_norm_after.bias": (d,),
                   "esm.contact_head.regression.weight": (1, n_layer * cfg["num_attention_heads"]),
                   "esm.contact_head.regression.bias": (1,),
                   "lm_head.dense.weight": (d, d), "lm_head.dense.bias": (d,),
                   "lm_head.layer_norm.weight": (d,), "lm_head.layer_norm.bias": (d,),
                   "lm_head.decoder.weight": (v, d), "lm_head.bias": (v,)})
    return shapes


def random_tensors(cfg: dict, seed: int) -> dict:
    """Random float32 tensors: norm weights near 1, inv_freq as ESM computes it, else N(0, 0.2^2)."""
    g = torch.Generator().manual_seed(seed)
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    inv_freq = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    out = {}
    for name, shape in release_shapes(cfg).items():
        t = 0.2 * torch.randn(shape, generator=g)
        if name.endswith("inv_freq"):
            t = inv_freq.clone()
        elif name.endswith(".weight") and "norm" in name.rsplit(".", 2)[-2].lower():
            t = 1.0 + t / 2
        out[name] = t.contiguous()
    return out


def write_tiny_release(out_dir, seed: int = 0, hidden: int = 32, layers: int = 2, heads: int = 4,
                       intermediate: int | None = None, vocab: int = 4107) -> Path:
    """A random NT-v2 checkpoint in the release's layout: config.json + model.safetensors
    (which weights file the hub repos hold, .safetensors and/or .bin, is not verified;
    both are read the same way)."""
    import json

    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = release_config(hidden, layers, heads, intermediate or 4 * hidden, vocab)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file(random_tensors(cfg, seed), str(out / "model.safetensors"), metadata={"format": "pt"})
    return out
