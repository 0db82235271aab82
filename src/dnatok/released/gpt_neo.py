"""GPT-Neo (``EleutherAI/gpt-neo-125m``, the study's "GPT"), loaded into transformers' own
``GPTNeoModel`` without remote code (the release needs none: ``model_type gpt_neo``).

Head (as ``GPTNeoForSequenceClassification``, which the study fine-tuned): a bias-free
``score`` Linear on the last hidden state of the last real token. The last real token is
the last position where ``attention_mask`` is 1 (the last position when there is no mask).
With the study's setup (pad = eos = 50256, right padding, mask = ids != pad, the GPT-2
tokenizer adds no eos) this is the token transformers picks (the rightmost id != pad).

Released names ``transformer.X`` become ``backbone.X``; the tied ``lm_head.weight`` is
dropped. Old ``pytorch_model.bin`` files also hold each layer's causal-mask buffers
``attn.attention.bias`` / ``masked_bias``; they are non-persistent in transformers >= 4.3x
(rebuilt from the config), so they are dropped too.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn as nn
from transformers import GPTNeoConfig, GPTNeoModel, PreTrainedConfig
from transformers.models.gpt_neo.modeling_gpt_neo import GPTNeoPreTrainedModel

from dnatok.errors import UserError
from dnatok.released.base import is_dropped
from dnatok.models.heads import POOLINGS, ClassifierMixin

__all__ = ["NAME", "LABEL", "TOKENIZER", "matches", "Config", "config_from_release", "Classifier",
           "map_key", "DROPPED", "NEW_HEAD", "write_tiny_release"]

NAME = "gpt_neo"
LABEL = "GPT"
TOKENIZER = "gpt2"

# layers' causal-mask buffers stored by old transformers (they sit mid-path: globs)
DROPPED = ("lm_head.", "transformer.h.*.attn.attention.bias", "transformer.h.*.attn.attention.masked_bias")
NEW_HEAD = ("score.",)

_BASE_FIELDS = {f.name for f in dataclasses.fields(PreTrainedConfig)}
RELEASE_FIELDS = tuple(f.name for f in dataclasses.fields(GPTNeoConfig) if f.name not in _BASE_FIELDS)


def matches(release_config: dict) -> bool:
    return release_config.get("model_type") == "gpt_neo"


class Config(GPTNeoConfig):
    """GPTNeoConfig plus the classifier fields. ``pooling`` is kept for the uniform family
    contract; the head is fixed (last real token) and does not use it."""

    model_type = "dnatok_gpt_neo"
    pooling: str = "mean"
    conjoin: bool = False

    def __post_init__(self, **kwargs):
        if self.pooling not in POOLINGS:
            raise UserError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        super().__post_init__(**kwargs)


def config_from_release(release_config: dict, **classifier_fields) -> Config:
    """Our Config from a released config.json (its GPTNeoConfig fields only). pad_token_id
    defaults to eos, as the study set it."""
    if not matches(release_config):
        raise UserError(f"not a GPT-Neo config (model_type {release_config.get('model_type')!r})")
    fields = {k: release_config[k] for k in RELEASE_FIELDS if k in release_config}
    if fields.get("pad_token_id") is None:
        fields["pad_token_id"] = fields.get("eos_token_id", 50256)
    return Config(**fields, **classifier_fields)


class Backbone(GPTNeoModel):
    """transformers' GPTNeoModel, returning the last hidden states as a tensor."""

    @property
    def output_dim(self) -> int:
        return self.config.hidden_size

    def forward(self, input_ids, attention_mask=None):
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state


def last_token_index(attention_mask, batch: int, length: int, device) -> torch.Tensor:
    """Position of the last 1 in each row of attention_mask (length - 1 without a mask)."""
    if attention_mask is None:
        return torch.full((batch,), length - 1, dtype=torch.long, device=device)
    pos = torch.arange(length, device=device)
    return (pos * (attention_mask != 0).long()).argmax(-1)


class Classifier(ClassifierMixin, GPTNeoPreTrainedModel):
    config_class = Config
    base_model_prefix = "backbone"
    main_input_name = "input_ids"

    def __init__(self, config: Config):
        super().__init__(config)
        self.backbone = Backbone(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.wte

    def sequence_logits(self, input_ids, attention_mask):
        h = self.backbone(input_ids, attention_mask)
        batch, length = input_ids.shape
        idx = last_token_index(attention_mask, batch, length, h.device)
        return self.score(h[torch.arange(batch, device=h.device), idx])


def map_key(release_name: str) -> str | None:
    if is_dropped(release_name, DROPPED):
        return None
    if release_name.startswith("transformer."):
        return "backbone." + release_name[len("transformer."):]
    return None


def write_tiny_release(out_dir, seed: int = 0, vocab_size: int = 50257, hidden_size: int = 16,
                       num_layers: int = 2, num_heads: int = 2, max_position_embeddings: int = 2048,
                       window_size: int = 4, legacy_bin: bool = False) -> Path:
    """A tiny GPT-Neo written by transformers' own ``GPTNeoForCausalLM.save_pretrained``
    (model.safetensors, config.json with the release keys; the release's vocabulary and
    positions by default, so any GPT-2 tokenizer's ids fit; bos = eos = vocab_size - 1).
    legacy_bin: instead write ``pytorch_model.bin`` as the 2021 release did, with the tied
    ``lm_head.weight`` and each layer's ``attn.attention.bias``/``masked_bias`` buffers."""
    from transformers import GPTNeoForCausalLM

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    eos = vocab_size - 1
    cfg = GPTNeoConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                       num_heads=num_heads, max_position_embeddings=max_position_embeddings,
                       attention_types=[[["global", "local"], num_layers // 2]]
                       if num_layers % 2 == 0 else [[["global"], num_layers]],
                       window_size=window_size, bos_token_id=eos, eos_token_id=eos,
                       architectures=["GPTNeoForCausalLM"])
    model = GPTNeoForCausalLM(cfg).eval()
    with torch.no_grad():  # non-trivial layer norms (the default init is all ones / zeros)
        for name, p in model.named_parameters():
            if "ln" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(out_dir)
    if legacy_bin:
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        sd["lm_head.weight"] = sd["transformer.wte.weight"].clone()
        for i, block in enumerate(model.transformer.h):
            sd[f"transformer.h.{i}.attn.attention.bias"] = block.attn.attention.bias.clone()
            sd[f"transformer.h.{i}.attn.attention.masked_bias"] = torch.tensor(-1e9)
        (out_dir / "model.safetensors").unlink()
        torch.save(sd, out_dir / "pytorch_model.bin")
    return out_dir
