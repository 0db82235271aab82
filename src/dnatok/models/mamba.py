"""Mamba (selective state-space model, Gu & Dao 2023): unidirectional, trained with
next-token prediction (causal LM).

Layer structure (pre-norm residual):  h <- h + out_proj(SSM(conv(x)) * silu(z)),
(x, z) = in_proj(RMSNorm(h)). The selective SSM, the short causal convolution and the
kernel dispatch live in :mod:`dnatok.models.scan`.

Parameter count at the study's size (d_model 256, 4 layers, expand 2, d_state 16,
d_conv 4, dt_rank 16): 438,016 per layer, 1,755,392 in all with a 12-token vocabulary
(the paper's "Mamba-char ~1.8M"); the embedding is vocab_size * d_model of that (the LM
head is tied to it, so a 4,096-token BPE vocabulary gives ~2.8M).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .heads import (ClassifierMixin, DnaConfig, RMSNorm, causal_lm_loss, check_right_padded,
                    init_fill, init_linear_default, init_normal, init_uniform, pool, token_embedding)
from .scan import causal_conv1d, selective_scan


class MambaConfig(DnaConfig):
    model_type = "dnatok_mamba"

    def __init__(self, d_model: int = 256, n_layer: int = 4, d_state: int = 16, expand: int = 2,
                 d_conv: int = 4, dt_rank: int | None = None, dt_min: float = 1e-3,
                 dt_max: float = 0.1, norm_eps: float = 1e-5, rescale_prenorm_residual: bool = True,
                 **kwargs):
        self.d_model = d_model
        self.n_layer = n_layer
        self.d_state = d_state
        self.expand = expand
        self.d_conv = d_conv
        # rank of the low-rank projection producing the step size (Mamba's "auto": d_model/16)
        self.dt_rank = dt_rank if dt_rank is not None else math.ceil(d_model / 16)
        self.dt_min = dt_min
        self.dt_max = dt_max
        self.norm_eps = norm_eps
        self.rescale_prenorm_residual = rescale_prenorm_residual
        super().__init__(**kwargs)

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    # names transformers and generic code look for
    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer


class SSMCore(nn.Module):
    """Everything of a Mamba mixer between in_proj and out_proj, for one scan direction:
    causal depthwise conv + SiLU, the input-dependent (dt, B, C), and the selective scan
    with skip D and output gate silu(z)."""

    def __init__(self, d_inner: int, d_state: int, d_conv: int, dt_rank: int):
        super().__init__()
        self.d_state, self.dt_rank = d_state, dt_rank
        self.conv_weight = nn.Parameter(torch.empty(d_inner, d_conv))
        self.conv_bias = nn.Parameter(torch.empty(d_inner))
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        # A = -exp(A_log) keeps the state matrix negative real (a stable, decaying system)
        self.A_log = nn.Parameter(torch.empty(d_inner, d_state))
        self.D = nn.Parameter(torch.empty(d_inner))

    def forward(self, x, z):
        x = causal_conv1d(x, self.conv_weight, self.conv_bias, activation="silu")
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        # dt_proj's bias is added inside the scan (delta_bias) before the softplus
        dt = F.linear(dt, self.dt_proj.weight)
        A = -torch.exp(self.A_log.float())
        return selective_scan(x, dt, A, B, C, D=self.D, z=z, delta_bias=self.dt_proj.bias,
                              delta_softplus=True)


class MambaMixer(nn.Module):
    def __init__(self, config: MambaConfig):
        super().__init__()
        di = config.d_inner
        self.in_proj = nn.Linear(config.d_model, 2 * di, bias=False)
        self.core = SSMCore(di, config.d_state, config.d_conv, config.dt_rank)
        self.out_proj = nn.Linear(di, config.d_model, bias=False)
        self.out_proj._dnatok_residual_out = True  # rescaled at init (see init_ssm_weights)

    def forward(self, h, rev_idx=None):
        x, z = self.in_proj(h).chunk(2, dim=-1)
        return self.out_proj(self.core(x, z))


class ResidualBlock(nn.Module):
    """h <- h + mixer(RMSNorm(h))."""

    def __init__(self, mixer: nn.Module, d_model: int, eps: float):
        super().__init__()
        self.norm = RMSNorm(d_model, eps)
        self.mixer = mixer

    def forward(self, h, rev_idx=None):
        return h + self.mixer(self.norm(h), rev_idx)


class MambaBackbone(nn.Module):
    def __init__(self, config: MambaConfig):
        super().__init__()
        self.embedding = token_embedding(config, config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(ResidualBlock(MambaMixer(config), config.d_model, config.norm_eps)
                                    for _ in range(config.n_layer))
        self.norm_f = RMSNorm(config.d_model, config.norm_eps)

    @property
    def output_dim(self) -> int:
        return self.embedding.embedding_dim

    def forward(self, input_ids, attention_mask=None):
        # causal: with right padding the real positions never see the pads, so the mask is
        # not needed inside the layers (only checked, and used later by pooling)
        check_right_padded(attention_mask)
        h = self.embedding(input_ids)
        for layer in self.layers:
            h = layer(h)
        return self.norm_f(h)


def init_ssm_weights(module: nn.Module, config) -> None:
    """Initialisation shared by Mamba and Caduceus (called per module by transformers)."""
    if isinstance(module, nn.Embedding):
        init_normal(module.weight, config.initializer_range)
    elif isinstance(module, nn.Linear):
        scale = 1.0
        if getattr(module, "_dnatok_residual_out", False) and config.rescale_prenorm_residual:
            # GPT-2 style: shrink the residual-branch output by 1/sqrt(n_layer) so the
            # residual stream's variance does not grow with depth
            scale = 1.0 / math.sqrt(config.n_layer)
        init_linear_default(module, scale)
    elif isinstance(module, RMSNorm):
        init_fill(module.weight, 1.0)
    elif isinstance(module, SSMCore):
        d_inner, d_conv = module.conv_weight.shape
        bound = 1.0 / math.sqrt(d_conv)  # PyTorch's default for a depthwise conv
        init_uniform(module.conv_weight, bound)
        init_uniform(module.conv_bias, bound)
        # dt_proj: weight ~ U(+-dt_rank^-0.5); bias = softplus^-1(dt) with dt log-uniform
        # in [dt_min, dt_max], so the initial step sizes span two orders of magnitude
        init_uniform(module.dt_proj.weight, module.dt_rank ** -0.5)
        if not getattr(module.dt_proj.bias, "_is_hf_initialized", False):
            lo, hi = math.log(config.dt_min), math.log(config.dt_max)
            dt = torch.exp(torch.rand(d_inner) * (hi - lo) + lo).clamp(min=1e-4)
            inv_softplus = dt + torch.log(-torch.expm1(-dt))
            init_fill(module.dt_proj.bias, inv_softplus)
        # S4D-real: A[:, n] = -(n + 1)
        a = torch.arange(1, module.d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        init_fill(module.A_log, torch.log(a))
        init_fill(module.D, 1.0)


class MambaPreTrainedModel(PreTrainedModel):
    config_class = MambaConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        init_ssm_weights(module, self.config)


class MambaForCausalLM(MambaPreTrainedModel):
    """Mamba + LM head tied to the embedding; loss = next-token prediction."""

    def __init__(self, config: MambaConfig):
        super().__init__(config)
        self.backbone = MambaBackbone(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embedding

    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None):
        h = self.backbone(input_ids, attention_mask)
        logits = F.linear(h, self.backbone.embedding.weight)
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return CausalLMOutput(loss=loss, logits=logits)


class MambaForSequenceClassification(ClassifierMixin, MambaPreTrainedModel):
    def __init__(self, config: MambaConfig):
        super().__init__(config)
        self.backbone = MambaBackbone(config)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embedding

    def sequence_logits(self, input_ids, attention_mask):
        h = self.backbone(input_ids, attention_mask)
        return self.classifier(pool(h, attention_mask, self.config.pooling))
