"""Caduceus (Schiff et al. 2024): bidirectional Mamba ("BiMamba") trained with masked-LM,
optionally reverse-complement (RC) equivariant by parameter sharing ("RCPS", Caduceus-PS).

BiMamba: one Mamba scan left-to-right and one over the reversed sequence, combined by
``bidirectional_strategy`` "add" (sum) or "ew_multiply" (element-wise product). With
``bidirectional_weight_tie`` the two directions share in_proj and out_proj (each keeps
its own conv, x_proj, dt_proj, A, D). The reversal is per row within its real length,
so right padding does not leak into the backward scan.

RCPS: the hidden state has 2*d_model channels [a | b] and every layer satisfies
f(RC(h)) = RC(f(h)), RC = reverse the positions and the channel order. A layer built this
way from a d_model-channel layer g is [g(a) | RC(g(RC(b)))]. Because the RCPS embedding
gives b = RC(embed(RC(x))) (RC(x): reverse-complemented tokens), the stack of such layers
is exactly "run the same backbone g on x and on RC(x)", which is what we compute
(batched): h = [g(x) | RC(g(RC(x)))]. The LM head shares the embedding the same way:
logits[t, v] = <a_t, E_v> + <rev_ch(b_t), E_comp(v)>, giving
logits(RC(x))[t, v] = logits(x)[L-1-t, comp(v)] exactly. For classification the two halves
are folded into an RC-invariant feature (a + rev_ch(b)) / 2 before pooling.
Parameter count is the same as plain Caduceus of the same d_model.

Caduceus-Ph = plain Caduceus (rcps=False) fine-tuned/pretrained with RC data augmentation;
that is a training-side setting, not a different model.

Parameter counts (vocabulary of 12, d_model 256, d_state 16, expand 2, d_conv 4), from
``model.num_parameters()``: per BiMamba layer 482,560 with weight tying, 875,776 without;
4 tied layers 1,933,568; 4 untied layers 3,506,432; 8 tied layers 3,863,808. The
study's table lists Caduceus at ~3.9M, which matches 8 tied BiMamba layers rather than
4 (Mamba-char ~1.8M matches 4 Mamba layers) -- set n_layer accordingly.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from .heads import (ClassifierMixin, RMSNorm, check_right_padded, masked_lm_loss, pool,
                    reverse_index, reverse_seq, token_embedding)
from .mamba import MambaConfig, ResidualBlock, SSMCore, init_ssm_weights

from ..architectures import CADUCEUS_STRATEGIES as STRATEGIES  # noqa: E402


def validate_complement_map(complement_map, vocab_size: int) -> list[int]:
    """complement_map must be a permutation of range(vocab_size) that is its own inverse."""
    cm = list(complement_map)
    if len(cm) != vocab_size:
        raise ValueError(f"complement_map has {len(cm)} entries, vocab_size is {vocab_size}")
    if sorted(cm) != list(range(vocab_size)):
        raise ValueError("complement_map must be a permutation of the token ids")
    bad = [i for i, j in enumerate(cm) if cm[j] != i]
    if bad:
        raise ValueError(f"complement_map is not an involution (e.g. id {bad[0]})")
    return cm


class CaduceusConfig(MambaConfig):
    model_type = "dnatok_caduceus"

    def __init__(self, bidirectional_strategy: str = "add", bidirectional_weight_tie: bool = True,
                 rcps: bool = False, **kwargs):
        if bidirectional_strategy not in STRATEGIES:
            raise ValueError(f"bidirectional_strategy must be one of {STRATEGIES}, got {bidirectional_strategy!r}")
        self.bidirectional_strategy = bidirectional_strategy
        self.bidirectional_weight_tie = bidirectional_weight_tie
        self.rcps = rcps
        super().__init__(**kwargs)
        if rcps:
            if self.complement_map is None:
                raise ValueError("rcps=True needs a complement_map (token id -> complement token id)")
            validate_complement_map(self.complement_map, self.vocab_size)


class BiMambaMixer(nn.Module):
    def __init__(self, config: CaduceusConfig):
        super().__init__()
        di, d = config.d_inner, config.d_model
        self.strategy = config.bidirectional_strategy
        self.tie = config.bidirectional_weight_tie
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        self.out_proj = nn.Linear(di, d, bias=False)
        self.out_proj._dnatok_residual_out = True
        self.core_fwd = SSMCore(di, config.d_state, config.d_conv, config.dt_rank)
        self.core_rev = SSMCore(di, config.d_state, config.d_conv, config.dt_rank)
        if not self.tie:
            self.in_proj_rev = nn.Linear(d, 2 * di, bias=False)
            self.out_proj_rev = nn.Linear(di, d, bias=False)
            self.out_proj_rev._dnatok_residual_out = True

    def forward(self, h, rev_idx=None):
        x, z = self.in_proj(h).chunk(2, dim=-1)
        y_f = self.core_fwd(x, z)
        if self.tie:
            # in_proj acts per position, so projecting then reversing == reversing then projecting
            xr, zr = reverse_seq(x, rev_idx), reverse_seq(z, rev_idx)
        else:
            xr, zr = self.in_proj_rev(reverse_seq(h, rev_idx)).chunk(2, dim=-1)
        y_r = reverse_seq(self.core_rev(xr, zr), rev_idx)
        if self.strategy == "add":
            if self.tie:  # out_proj is linear without bias: one projection of the sum
                return self.out_proj(y_f + y_r)
            return self.out_proj(y_f) + self.out_proj_rev(y_r)
        out_rev = self.out_proj if self.tie else self.out_proj_rev
        return self.out_proj(y_f) * out_rev(y_r)


class CaduceusBackbone(nn.Module):
    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.rcps = config.rcps
        self.complement_map = config.complement_map
        self.embedding = token_embedding(config, config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(ResidualBlock(BiMambaMixer(config), config.d_model, config.norm_eps)
                                    for _ in range(config.n_layer))
        self.norm_f = RMSNorm(config.d_model, config.norm_eps)
        self._complement_cache: dict = {}

    @property
    def output_dim(self) -> int:
        d = self.embedding.embedding_dim
        return 2 * d if self.rcps else d

    def complement(self, device) -> torch.Tensor:
        """complement_map as a LongTensor on ``device`` (cached; derived from the config,
        so it is not a state-dict entry)."""
        key = str(device)
        if key not in self._complement_cache:
            self._complement_cache[key] = torch.tensor(self.complement_map, dtype=torch.long, device=device)
        return self._complement_cache[key]

    def _encode(self, input_ids, rev_idx):
        h = self.embedding(input_ids)
        for layer in self.layers:
            h = layer(h, rev_idx)
        return self.norm_f(h)

    def forward(self, input_ids, attention_mask=None):
        check_right_padded(attention_mask)
        batch, length = input_ids.shape
        rev_idx = reverse_index(attention_mask, length, batch, input_ids.device)
        if not self.rcps:
            return self._encode(input_ids, rev_idx)
        rc_ids = reverse_seq(self.complement(input_ids.device)[input_ids], rev_idx)
        rev2 = None if rev_idx is None else torch.cat([rev_idx, rev_idx])
        h2 = self._encode(torch.cat([input_ids, rc_ids]), rev2)
        h_fwd, h_rc = h2[:batch], h2[batch:]
        # second half b = RC(g(RC(x))): reverse positions and channel order
        return torch.cat([h_fwd, reverse_seq(h_rc, rev_idx).flip(-1)], dim=-1)

    def invariant_features(self, h):
        """Fold RCPS hidden states [a | b] into RC-invariant per-position features."""
        if not self.rcps:
            return h
        a, b = h.chunk(2, dim=-1)
        return (a + b.flip(-1)) / 2


class CaduceusPreTrainedModel(PreTrainedModel):
    config_class = CaduceusConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        init_ssm_weights(module, self.config)


class CaduceusForMaskedLM(CaduceusPreTrainedModel):
    def __init__(self, config: CaduceusConfig):
        super().__init__(config)
        self.backbone = CaduceusBackbone(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embedding

    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None):
        h = self.backbone(input_ids, attention_mask)
        E = self.backbone.embedding.weight
        if self.backbone.rcps:
            a, b = h.chunk(2, dim=-1)
            logits = F.linear(a, E) + F.linear(b.flip(-1), E[self.backbone.complement(E.device)])
        else:
            logits = F.linear(h, E)
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return MaskedLMOutput(loss=loss, logits=logits)


class CaduceusForSequenceClassification(ClassifierMixin, CaduceusPreTrainedModel):
    def __init__(self, config: CaduceusConfig):
        super().__init__(config)
        self.backbone = CaduceusBackbone(config)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embedding

    def sequence_logits(self, input_ids, attention_mask):
        h = self.backbone.invariant_features(self.backbone(input_ids, attention_mask))
        return self.classifier(pool(h, attention_mask, self.config.pooling))
