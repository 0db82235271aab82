"""DNABERT-2 (``zhihan1996/DNABERT-2-117M``, a MosaicBERT), clean-room, loaded strictly.

Architecture as released (facts: checkpoints.md §1), no remote code:

- embeddings: word + token-type row 0 (every sequence is one segment) -> LayerNorm -> dropout;
  no position embeddings.
- post-LN layers: fused ``Wqkv`` (last dim = 3 x heads x head_dim), scores q.k/sqrt(head_dim)
  + bias, softmax, dropout, ``dense``, dropout, ``LayerNorm(out + x)``; gated-GELU MLP:
  ``gated_layers`` (no bias) -> exact-erf GELU(first half) * second half -> dropout -> ``wo``
  -> ``layernorm(out + x)``.
- bias = ALiBi -slope_h * |i - j| (symmetric) + padding (1 - mask) * -10000, in float32. The
  release slices a table built for max(alibi_starting_size, L); the bias depends only on
  |i - j|, so building it for L gives the same values (tested); it is computed per call, never
  stored, so meta-device initialisation cannot leave it wrong.
- the release unpads tokens and pads back with zeros: pad positions of the last hidden state
  are returned as exact zeros; real positions equal masked padded attention (a -10000 bias
  gives pad keys weight 0 in float32).

Classifier (the release's ``BertForSequenceClassification``): pooler (token 0 -> dense ->
tanh) -> dropout (classifier_dropout, else hidden_dropout_prob) -> Linear. The release has no
pooler: pooler and classifier are new (``NEW_HEAD``). ``config.pooling`` is kept but ignored
(``HEAD_POOLING``). The embedding ``padding_idx`` is the release config's ``pad_token_id``
(absent -> 0 = ``[UNK]``, as the release builds it; it only stops that row's gradient).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel

from dnatok.errors import UserError
from dnatok.models.heads import ClassifierMixin, DnaConfig, init_bert_style

__all__ = ["NAME", "LABEL", "TOKENIZER", "HEAD_POOLING", "matches", "Config", "config_from_release",
           "Classifier", "map_key", "DROPPED", "NEW_HEAD", "write_tiny_release"]

NAME = "dnabert2"
LABEL = "DNABERT2"
TOKENIZER = "dnabert2"
HEAD_POOLING = "cls"          # the head reads token 0 ([CLS]); config.pooling is not used
RELEASE_PREFIX = "bert."
DROPPED = ("cls.",)           # the MLM head
NEW_HEAD = ("pooler.", "classifier.")
PAD_BIAS = -10000.0

# release config.json keys that become Config fields (the rest is bookkeeping or, like
# hidden_act and max_position_embeddings, only used by parts we do not build)
RELEASE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "type_vocab_size", "alibi_starting_size", "hidden_dropout_prob",
                  "attention_probs_dropout_prob", "classifier_dropout", "layer_norm_eps",
                  "initializer_range", "pad_token_id")
_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
          "type_vocab_size")


def matches(release_config: dict) -> bool:
    """model_type bert (or absent, as in the current release) and MosaicBERT's remote code
    (``auto_map`` -> ``bert_layers.*``) or its ``alibi_starting_size`` key."""
    if release_config.get("model_type", "bert") != "bert":
        return False
    auto = release_config.get("auto_map") or {}
    return ("alibi_starting_size" in release_config
            or any(str(v).startswith("bert_layers.") for v in auto.values()))


class Config(DnaConfig):
    model_type = "dnatok_dnabert2"

    def __init__(self, vocab_size: int = 4096, hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072, type_vocab_size: int = 2,
                 alibi_starting_size: int = 512, hidden_dropout_prob: float = 0.1,
                 attention_probs_dropout_prob: float = 0.0, classifier_dropout: float | None = None,
                 layer_norm_eps: float = 1e-12, pad_token_id: int | None = 0, **kwargs):
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by "
                             f"num_attention_heads ({num_attention_heads})")
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.type_vocab_size = type_vocab_size
        self.alibi_starting_size = alibi_starting_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.classifier_dropout = classifier_dropout
        self.layer_norm_eps = layer_norm_eps
        super().__init__(vocab_size=vocab_size, pad_token_id=pad_token_id, **kwargs)


def config_from_release(release_config: dict, **classifier_fields) -> Config:
    """Our Config from the release's config.json; values we do not implement are a UserError."""
    pet = release_config.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise UserError(f"DNABERT-2 config: position_embedding_type {pet!r} is not supported "
                        "(the release says 'absolute', which MosaicBERT ignores: positions are ALiBi)")
    for key in _SIZES:
        v = release_config.get(key, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"DNABERT-2 config: {key} must be a positive integer, got {v!r}")
    fields = {k: release_config[k] for k in RELEASE_FIELDS if k in release_config}
    hidden, heads = fields.get("hidden_size", 768), fields.get("num_attention_heads", 12)
    if hidden % heads:
        raise UserError(f"DNABERT-2 config: hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    return Config(**fields, **classifier_fields)


def map_key(release_name: str) -> str | None:
    """``bert.X`` -> ``backbone.X``; anything else (the MLM head ``cls.*``) has no place."""
    if release_name.startswith(RELEASE_PREFIX):
        return "backbone." + release_name[len(RELEASE_PREFIX):]
    return None


# --------------------------------------------------------------------------- ALiBi

def alibi_slopes(n_head: int) -> torch.Tensor:
    """float32 head slopes: for a power of two n, 2^(-8 i / n), i = 1..n; otherwise those of
    the largest power of two p < n followed by the first n - p even-indexed slopes of 2p
    (12 heads: 2^-1 ... 2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5)."""
    def powers(n):
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    low = 1 << (n_head.bit_length() - 1)
    slopes = powers(low) if low == n_head else powers(low) + powers(2 * low)[0::2][: n_head - low]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(n_head: int, length: int, device=None) -> torch.Tensor:
    """(1, n_head, length, length) float32: -slope_h * |i - j|."""
    pos = torch.arange(length, device=device)
    dist = (pos[None, :] - pos[:, None]).abs()
    return (alibi_slopes(n_head).to(device)[:, None, None] * -dist)[None]


def attention_bias(n_head: int, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, n_head, L, L) float32: ALiBi + (1 - mask) * -10000 over the keys."""
    pad = (1.0 - attention_mask.float()) * PAD_BIAS
    return alibi_bias(n_head, attention_mask.shape[1], attention_mask.device) + pad[:, None, None, :]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matmuls run in: autocast's when it is on, else the tensor's."""
    dev = x.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype


# --------------------------------------------------------------------------- modules
# Attribute names follow the release's parameter names (bert.<these>).

class Embeddings(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids):
        h = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(h))


class SelfAttention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.n_head = c.num_attention_heads
        self.p_drop = c.attention_probs_dropout_prob
        self.Wqkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)

    def forward(self, h, bias):
        b, length, d = h.shape
        q, k, v = self.Wqkv(h).view(b, length, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                           dropout_p=self.p_drop if self.training else 0.0)
        return a.transpose(1, 2).reshape(b, length, d)


class AttentionOutput(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, a, residual):
        return self.LayerNorm(self.dropout(self.dense(a)) + residual)


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = AttentionOutput(c)

    def forward(self, h, bias):
        return self.output(self.self(h, bias), h)


class GatedMLP(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.d_ff = c.intermediate_size
        self.gated_layers = nn.Linear(c.hidden_size, 2 * c.intermediate_size, bias=False)
        self.wo = nn.Linear(c.intermediate_size, c.hidden_size)
        self.layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, h):
        g = self.gated_layers(h)
        f = F.gelu(g[..., : self.d_ff]) * g[..., self.d_ff:]
        return self.layernorm(self.wo(self.dropout(f)) + h)


class Layer(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.attention = Attention(c)
        self.mlp = GatedMLP(c)

    def forward(self, h, bias):
        return self.mlp(self.attention(h, bias))


class Encoder(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))


class Backbone(nn.Module):
    """``forward(input_ids, attention_mask=None) -> (batch, L, hidden)``; pad rows are zeros."""

    def __init__(self, c: Config):
        super().__init__()
        self.n_head = c.num_attention_heads
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)

    @property
    def output_dim(self) -> int:
        return self.embeddings.word_embeddings.embedding_dim

    def forward(self, input_ids, attention_mask=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        h = self.embeddings(input_ids)
        bias = attention_bias(self.n_head, attention_mask).to(compute_dtype(h))
        for layer in self.encoder.layer:
            h = layer(h, bias)
        return h.masked_fill(attention_mask[..., None] == 0, 0.0)


class Pooler(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))


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
        self.pooler = Pooler(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embeddings.word_embeddings

    def sequence_logits(self, input_ids, attention_mask):
        h = self.backbone(input_ids, attention_mask)
        return self.classifier(self.dropout(self.pooler(h)))


# --------------------------------------------------------------------------- tiny release

def release_config(hidden=768, layers=12, heads=12, intermediate=3072, vocab=4096) -> dict:
    """The release's config.json (keys and values of DNABERT-2-117M), sizes replaced."""
    return {
        "_name_or_path": "zhihan1996/DNABERT-2-117M", "alibi_starting_size": 512,
        "attention_probs_dropout_prob": 0.0,
        "auto_map": {"AutoConfig": "configuration_bert.BertConfig", "AutoModel": "bert_layers.BertModel",
                     "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM",
                     "AutoModelForSequenceClassification": "bert_layers.BertForSequenceClassification"},
        "classifier_dropout": None, "gradient_checkpointing": False, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": hidden, "initializer_range": 0.02,
        "intermediate_size": intermediate, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
        "num_attention_heads": heads, "num_hidden_layers": layers, "position_embedding_type": "absolute",
        "torch_dtype": "float32", "transformers_version": "4.28.0", "type_vocab_size": 2,
        "use_cache": True, "vocab_size": vocab,
    }


def release_shapes(cfg: dict) -> dict:
    """Released tensor name -> shape (checkpoints.md §1), MLM head included."""
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    shapes = {"bert.embeddings.word_embeddings.weight": (v, d),
              "bert.embeddings.token_type_embeddings.weight": (cfg["type_vocab_size"], d),
              "bert.embeddings.LayerNorm.weight": (d,), "bert.embeddings.LayerNorm.bias": (d,)}
    for n in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{n}."
        shapes.update({p + "attention.self.Wqkv.weight": (3 * d, d), p + "attention.self.Wqkv.bias": (3 * d,),
                       p + "attention.output.dense.weight": (d, d), p + "attention.output.dense.bias": (d,),
                       p + "attention.output.LayerNorm.weight": (d,), p + "attention.output.LayerNorm.bias": (d,),
                       p + "mlp.gated_layers.weight": (2 * f, d), p + "mlp.wo.weight": (d, f),
                       p + "mlp.wo.bias": (d,), p + "mlp.layernorm.weight": (d,), p + "mlp.layernorm.bias": (d,)})
    shapes.update({"cls.predictions.transform.dense.weight": (d, d), "cls.predictions.transform.dense.bias": (d,),
                   "cls.predictions.transform.LayerNorm.weight": (d,),
                   "cls.predictions.transform.LayerNorm.bias": (d,),
                   "cls.predictions.decoder.weight": (v, d), "cls.predictions.decoder.bias": (v,)})
    return shapes


def random_tensors(shapes: dict, seed: int) -> dict:
    """Random float32 tensors: norm weights near 1, everything else N(0, 0.2^2)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        t = 0.2 * torch.randn(shape, generator=g)
        is_norm_weight = name.endswith(".weight") and "norm" in name.rsplit(".", 2)[-2].lower()
        out[name] = 1.0 + t / 2 if is_norm_weight else t
    return out


def write_tiny_release(out_dir, seed: int = 0, hidden: int = 32, layers: int = 2, heads: int = 4,
                       intermediate: int | None = None, vocab: int = 4096) -> Path:
    """A random DNABERT-2 checkpoint in the release's layout: config.json + pytorch_model.bin."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = release_config(hidden, layers, heads, intermediate or 4 * hidden, vocab)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    torch.save(random_tensors(release_shapes(cfg), seed), out / "pytorch_model.bin")
    return out
