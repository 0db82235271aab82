"""HyenaDNA (Nguyen et al. 2023): a causal decoder whose token mixer is the Hyena
operator (implicit long convolution gated by short convolutions), trained with next-token
prediction. Pure PyTorch, written from the published description of the architecture;
module and parameter names follow the released ``LongSafari/hyenadna-*-hf`` checkpoints
(ours = theirs without the ``hyena.`` prefix), so those load strictly
(:mod:`dnatok.released.hyena`).

Layer structure (pre-norm residual, LayerNorm):  h <- h + mixer(LN1(h)),
h <- h + fc2(gelu_tanh(fc1(LN2(h)))), ``ln_f`` at the end. The mixer (order 2):
u = short_conv(in_proj(x)) split into (x0, x1, v); v <- v * x1;
v <- (k * v) + bias * v with k the implicit filter (a causal convolution over the whole
sequence, via FFT); y = out_proj(v * x0).

Implicit filter: positional features z = [t, cos(-f w), sin(-f w)] (a trainable parameter,
``pos_emb.z``, one row per position up to ``max_seq_len``) -> MLP (Linear, Sin, ...,
Linear without bias; one Sin module with a learned ``freq`` reused at every activation)
-> times the exponential decay window exp(-t |deltas|) + 0.05. Inputs longer than
``max_seq_len`` tokens are refused (the positional table has no rows for them).

Padding: the model is causal, so with right padding the real positions never see the pads
and their outputs are the same as without padding; the mask is only checked (left padding
is refused when a mask is given) and used by pooling.

Parameter count at the study's size (d_model 256, 4 layers, d_inner 1024, filter_order 64,
emb_dim 5, max_seq_len 1026, 12-token vocabulary -> 16 embedding rows):
HyenaForCausalLM 3,301,160 = backbone 3,298,088 (823,370 per layer, of which 5,130 is the
positional table z; embedding 4,096) + lm_head 3,072 (12 x 256, untied); the mean-pool
classifier with 2 labels 3,298,602 (``num_parameters()``, the shared Sin ``freq`` counted
once).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from ..errors import UserError
from .heads import (ClassifierMixin, DnaConfig, causal_lm_loss, check_right_padded, init_fill,
                    init_normal, init_uniform, pool, token_embedding)

MODULATION_SHIFT = 0.05   # added to the decay window, so no filter tap is fully suppressed
FAST_DECAY_PCT, SLOW_DECAY_PCT, DECAY_TARGET = 0.3, 1.5, 1e-2


class HyenaConfig(DnaConfig):
    model_type = "dnatok_hyena"

    def __init__(self, d_model: int = 256, n_layer: int = 4, d_inner: int | None = None,
                 filter_order: int = 64, emb_dim: int = 5, short_filter_order: int = 3,
                 hyena_order: int = 2, num_inner_mlps: int = 2, activation_freq: float = 10.0,
                 max_seq_len: int = 1026, embed_dropout: float = 0.1, hyena_dropout: float = 0.0,
                 norm_eps: float = 1e-5, pad_vocab_size_multiple: int = 8, **kwargs):
        if emb_dim < 3 or emb_dim % 2 == 0:
            raise ValueError(f"emb_dim must be odd and >= 3 (t plus cos/sin pairs), got {emb_dim}")
        if hyena_order != 2:
            raise ValueError(f"only hyena_order 2 is implemented, got {hyena_order}")
        for name, value in (("max_seq_len", max_seq_len), ("short_filter_order", short_filter_order),
                            ("filter_order", filter_order),
                            ("pad_vocab_size_multiple", pad_vocab_size_multiple)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.d_model = d_model
        self.n_layer = n_layer
        self.d_inner = d_inner if d_inner is not None else 4 * d_model
        self.filter_order = filter_order
        self.emb_dim = emb_dim
        self.short_filter_order = short_filter_order
        self.hyena_order = hyena_order
        self.num_inner_mlps = num_inner_mlps
        self.activation_freq = activation_freq
        self.max_seq_len = max_seq_len
        self.embed_dropout = embed_dropout
        self.hyena_dropout = hyena_dropout
        self.norm_eps = norm_eps
        self.pad_vocab_size_multiple = pad_vocab_size_multiple
        super().__init__(**kwargs)

    @property
    def embedding_rows(self) -> int:
        """vocab_size rounded up to a multiple of pad_vocab_size_multiple (as released)."""
        m = self.pad_vocab_size_multiple
        return (self.vocab_size + m - 1) // m * m

    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer


# --------------------------------------------------------------------------- convolutions

def direct_causal_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Reference causal convolution, y[..., c, t] = sum_{s<=t} k[c, s] u[..., c, t-s]
    (u: (..., C, L), k: (C, L)); O(L^2), for tests."""
    length = u.shape[-1]
    y = torch.zeros_like(u)
    for s in range(length):
        y[..., s:] += k[:, s, None] * u[..., :length - s]
    return y


def fft_causal_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The same convolution in O(L log L): both zero-padded to 2L (so the circular
    convolution of the FFT has no wrap-around), computed in fp32 (fp64 stays fp64)."""
    length = u.shape[-1]
    dtype = torch.promote_types(u.dtype, torch.float32)
    n = 2 * length
    u_f = torch.fft.rfft(u.to(dtype), n=n)
    k_f = torch.fft.rfft(k.to(dtype), n=n)
    return torch.fft.irfft(u_f * k_f, n=n)[..., :length].to(u.dtype)


# --------------------------------------------------------------------------- implicit filter

def positional_features(max_len: int, emb_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, t): z (1, max_len, emb_dim) = [t, cos(-f w), sin(-f w)] with t = linspace(0, 1),
    w = 2 pi (0..max_len-1) / max_len, f = linspace(1e-4, bands - 1, bands),
    bands = (emb_dim - 1) / 2; t (1, max_len, 1)."""
    bands = (emb_dim - 1) // 2
    t = torch.linspace(0, 1, max_len, device="cpu")[None, :, None]
    w = 2 * math.pi * torch.linspace(0, max_len - 1, max_len, device="cpu")[None, :, None] / max_len
    f = torch.linspace(1e-4, bands - 1, bands, device="cpu")[None, None]
    phase = -f * w
    return torch.cat([t, torch.cos(phase), torch.sin(phase)], dim=-1), t


def decay_rates(d_model: int) -> torch.Tensor:
    """deltas (1, 1, d_model): per channel, the rate at which the window exp(-t |delta|)
    reaches DECAY_TARGET, from t = SLOW_DECAY_PCT down to t = FAST_DECAY_PCT."""
    slowest = math.log(DECAY_TARGET) / SLOW_DECAY_PCT
    fastest = math.log(DECAY_TARGET) / FAST_DECAY_PCT
    return torch.linspace(slowest, fastest, d_model, device="cpu")[None, None]


class Sin(nn.Module):
    """sin(freq * x) with a learned per-feature frequency."""

    def __init__(self, dim: int):
        super().__init__()
        self.freq = nn.Parameter(torch.empty(1, dim))

    def forward(self, x):
        return torch.sin(self.freq * x)


class PositionalEmbedding(nn.Module):
    """The filter's input table: ``z`` (trainable) and ``t`` (buffer), one row per position."""

    def __init__(self, emb_dim: int, max_len: int):
        super().__init__()
        self.z = nn.Parameter(torch.empty(1, max_len, emb_dim))
        self.register_buffer("t", torch.empty(1, max_len, 1))

    def forward(self, length: int):
        if length > self.z.shape[1]:
            raise UserError(f"input of {length} tokens is longer than this HyenaDNA's max_seq_len "
                            f"({self.z.shape[1]}, the rows of its filter's positional table); "
                            "build the model with a larger max_seq_len")
        return self.z[:, :length], self.t[:, :length]


class ExponentialModulation(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.register_buffer("deltas", torch.empty(1, 1, d_model))

    def forward(self, t, h):
        return h * (torch.exp(-t * self.deltas.abs()) + MODULATION_SHIFT)


class HyenaFilter(nn.Module):
    """The implicit long filter k (d_model, L) and the per-channel skip ``bias`` (D)."""

    def __init__(self, config: HyenaConfig):
        super().__init__()
        order, d = config.filter_order, config.d_model
        self.bias = nn.Parameter(torch.empty(d))
        self.pos_emb = PositionalEmbedding(config.emb_dim, config.max_seq_len)
        act = Sin(order)   # one module (one freq) at every activation position
        layers = [nn.Linear(config.emb_dim, order), act]
        for _ in range(config.num_inner_mlps):
            layers += [nn.Linear(order, order), act]
        layers.append(nn.Linear(order, d, bias=False))
        self.implicit_filter = nn.Sequential(*layers)
        self.modulation = ExponentialModulation(d)

    def kernel(self, length: int) -> torch.Tensor:
        z, t = self.pos_emb(length)
        h = self.modulation(t, self.implicit_filter(z))
        return h[0].transpose(0, 1)


class HyenaOperator(nn.Module):
    def __init__(self, config: HyenaConfig):
        super().__init__()
        d, width = config.d_model, config.hyena_order + 1
        self.d_model = d
        self.in_proj = nn.Linear(d, width * d)
        self.out_proj = nn.Linear(d, d)
        self.out_proj._dnatok_residual_out = True
        ks = config.short_filter_order
        self.short_filter = nn.Conv1d(width * d, width * d, ks, padding=ks - 1, groups=width * d)
        self.filter_fn = HyenaFilter(config)
        self.dropout = nn.Dropout(config.hyena_dropout)

    def forward(self, x):
        length = x.shape[1]
        u = self.short_filter(self.in_proj(x).transpose(1, 2))[..., :length]
        x0, x1, v = u.split(self.d_model, dim=1)
        v = self.dropout(v * x1)
        k = self.filter_fn.kernel(length)
        v = fft_causal_conv(v, k) + v * self.filter_fn.bias[:, None]
        return self.out_proj((v * x0).transpose(1, 2))


# --------------------------------------------------------------------------- blocks

class Mlp(nn.Module):
    def __init__(self, d_model: int, d_inner: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_inner)
        self.fc2 = nn.Linear(d_inner, d_model)
        self.fc2._dnatok_residual_out = True

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class HyenaBlock(nn.Module):
    """h <- h + mixer(LN1(h)); h <- h + mlp(LN2(h))."""

    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.mixer = HyenaOperator(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.mlp = Mlp(config.d_model, config.d_inner)

    def forward(self, h):
        h = h + self.mixer(self.norm1(h))
        return h + self.mlp(self.norm2(h))


class HyenaEmbeddings(nn.Module):
    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.word_embeddings = token_embedding(config, config.embedding_rows, config.d_model)


class HyenaBackbone(nn.Module):
    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.embeddings = HyenaEmbeddings(config)
        self.drop = nn.Dropout(config.embed_dropout)
        self.layers = nn.ModuleList(HyenaBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.norm_eps)

    @property
    def embedding(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    @property
    def output_dim(self) -> int:
        return self.ln_f.normalized_shape[0]

    def forward(self, input_ids, attention_mask=None):
        # causal: with right padding the real positions never see the pads (see module doc)
        check_right_padded(attention_mask)
        h = self.drop(self.embedding(input_ids))
        for layer in self.layers:
            h = layer(h)
        return self.ln_f(h)


# --------------------------------------------------------------------------- init

def shared_freq_names(module: nn.Module) -> dict[str, str]:
    """{alias: first name} for the Sin ``freq`` seen under several state-dict names."""
    first, out = {}, {}
    for name, p in module.named_parameters(remove_duplicate=False):
        if name.endswith(".freq"):
            out.update({name: first[id(p)]} if id(p) in first else {})
            first.setdefault(id(p), name)
    return out


def init_hyena_weights(module: nn.Module, config: HyenaConfig) -> None:
    """GPT-2 style: Linear/Embedding ~ N(0, initializer_range), zero biases, residual
    outputs (out_proj, fc2) scaled by 1/sqrt(2 n_layer); the filter's fixed tables."""
    std = config.initializer_range
    if isinstance(module, nn.Linear):
        scale = 1 / math.sqrt(2 * config.n_layer) if getattr(module, "_dnatok_residual_out", False) else 1.0
        init_normal(module.weight, std * scale)
        if module.bias is not None:
            init_fill(module.bias, 0.0)
    elif isinstance(module, nn.Embedding):
        init_normal(module.weight, std)
    elif isinstance(module, nn.LayerNorm):
        init_fill(module.weight, 1.0)
        init_fill(module.bias, 0.0)
    elif isinstance(module, nn.Conv1d):   # PyTorch's default for a depthwise conv
        bound = 1 / math.sqrt(module.weight[0].numel())
        init_uniform(module.weight, bound)
        init_uniform(module.bias, bound)
    elif isinstance(module, Sin):
        init_fill(module.freq, float(config.activation_freq))
    elif isinstance(module, PositionalEmbedding):
        z, t = positional_features(module.z.shape[1], module.z.shape[2])
        init_fill(module.z, z)
        init_fill(module.t, t)
    elif isinstance(module, ExponentialModulation):
        init_fill(module.deltas, decay_rates(module.deltas.shape[-1]))
    elif isinstance(module, HyenaFilter):
        init_normal(module.bias, 1.0)


class HyenaPreTrainedModel(PreTrainedModel):
    """The shared Sin ``freq`` appears under every activation index of the filter MLP
    (``implicit_filter.1.freq``, ``.3.freq``, ...): declared tied, so save_pretrained keeps
    one copy (as the release does) and from_pretrained re-ties the rest."""

    config_class = HyenaConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    _tied_weights_keys = {r"implicit_filter\.(?!1\.)\d+\.freq": r"implicit_filter\.1\.freq"}

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        return shared_freq_names(self)

    def _init_weights(self, module):
        init_hyena_weights(module, self.config)


class HyenaForCausalLM(HyenaPreTrainedModel):
    """HyenaDNA + an untied LM head over the vocabulary (the padding rows of the embedding
    get no logits); loss = next-token prediction."""

    def __init__(self, config: HyenaConfig):
        super().__init__(config)
        self.backbone = HyenaBackbone(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embedding

    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None):
        logits = self.lm_head(self.backbone(input_ids, attention_mask))
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return CausalLMOutput(loss=loss, logits=logits)


class HyenaForSequenceClassification(ClassifierMixin, HyenaPreTrainedModel):
    """Backbone -> pool over positions (config.pooling) -> Linear with bias: the study's
    mean-pool decoder."""

    def __init__(self, config: HyenaConfig):
        super().__init__(config)
        self.backbone = HyenaBackbone(config)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embedding

    def sequence_logits(self, input_ids, attention_mask):
        h = self.backbone(input_ids, attention_mask)
        return self.classifier(pool(h, attention_mask, self.config.pooling))
