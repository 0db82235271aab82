"""BERT-style attention encoder with ALiBi position biases (as in DNABERT-2), trained
with masked-LM.

No position embeddings: each head adds -slope * |i - j| to its attention scores, which
lets the model run on sequences longer than those seen in pretraining. Post-LayerNorm
blocks as in BERT: h <- LN(h + Attn(h)); h <- LN(h + FFN(h)). Padding is excluded as
attention keys, so real positions never depend on pads.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from .heads import ClassifierMixin, DnaConfig, init_bert_style, init_fill, masked_lm_loss, pool, token_embedding


class BertConfig(DnaConfig):
    model_type = "dnatok_bert"

    def __init__(self, d_model: int = 256, n_layer: int = 4, n_head: int = 8, d_ff: int = 1024,
                 dropout: float = 0.1, attention_dropout: float = 0.1, norm_eps: float = 1e-12,
                 **kwargs):
        if d_model % n_head:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
        self.d_model = d_model
        self.n_layer = n_layer
        self.n_head = n_head
        self.d_ff = d_ff
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.norm_eps = norm_eps
        super().__init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Geometric head slopes 2^(-8 i / n), i = 1..n (Press et al. 2022). For a head count
    that is not a power of two: the slopes of the next lower power of two, completed by
    every other slope of the next higher one."""
    def powers(n):
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    if n_head & (n_head - 1) == 0:
        return torch.tensor(powers(n_head))
    low = 2 ** int(math.floor(math.log2(n_head)))
    extra = powers(2 * low)[0::2][: n_head - low]
    return torch.tensor(powers(low) + extra)


def alibi_bias(n_head: int, length: int, device, dtype) -> torch.Tensor:
    """(n_head, length, length) additive bias -slope_h * |i - j| (symmetric: an encoder)."""
    pos = torch.arange(length, device=device)
    dist = (pos[None, :] - pos[:, None]).abs().to(dtype)
    return -alibi_slopes(n_head).to(device=device, dtype=dtype)[:, None, None] * dist


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        d = config.d_model
        self.n_head = config.n_head
        self.attention_dropout = config.attention_dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=config.norm_eps)
        self.ffn_in = nn.Linear(d, config.d_ff)
        self.ffn_out = nn.Linear(config.d_ff, d)
        self.ffn_norm = nn.LayerNorm(d, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, h, bias):
        batch, length, d = h.shape
        q, k, v = self.qkv(h).view(batch, length, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                           dropout_p=self.attention_dropout if self.training else 0.0)
        a = a.transpose(1, 2).reshape(batch, length, d)
        h = self.attn_norm(h + self.dropout(self.attn_out(a)))
        f = self.ffn_out(F.gelu(self.ffn_in(h)))
        return self.ffn_norm(h + self.dropout(f))


class BertBackbone(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.n_head = config.n_head
        self.embedding = token_embedding(config, config.vocab_size, config.d_model)
        self.embed_norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.n_layer))

    @property
    def output_dim(self) -> int:
        return self.embedding.embedding_dim

    def forward(self, input_ids, attention_mask=None):
        h = self.dropout(self.embed_norm(self.embedding(input_ids)))
        batch, length = input_ids.shape
        bias = alibi_bias(self.n_head, length, h.device, h.dtype)[None]  # (1, H, L, L)
        if attention_mask is not None:
            # pads are never attended to (every row has at least one real key)
            key_pad = torch.zeros(attention_mask.shape, dtype=h.dtype, device=h.device)
            key_pad = key_pad.masked_fill(attention_mask == 0, torch.finfo(h.dtype).min)
            bias = bias + key_pad[:, None, None, :]
        for layer in self.layers:
            h = layer(h, bias)
        return h


class BertLMHead(nn.Module):
    """dense + GELU + LayerNorm, then the decoder tied to the token embedding (+ bias)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h, embedding_weight):
        return F.linear(self.norm(F.gelu(self.dense(h))), embedding_weight, self.bias)


class BertPreTrainedModel(PreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        init_bert_style(module, self.config.initializer_range)
        if isinstance(module, BertLMHead):
            init_fill(module.bias, 0.0)


class BertForMaskedLM(BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.backbone = BertBackbone(config)
        self.lm_head = BertLMHead(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embedding

    def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None, return_dict=None):
        h = self.backbone(input_ids, attention_mask)
        logits = self.lm_head(h, self.backbone.embedding.weight)
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return MaskedLMOutput(loss=loss, logits=logits)


class BertForSequenceClassification(ClassifierMixin, BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.backbone = BertBackbone(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embedding

    def sequence_logits(self, input_ids, attention_mask):
        h = self.backbone(input_ids, attention_mask)
        return self.classifier(self.dropout(pool(h, attention_mask, self.config.pooling)))
