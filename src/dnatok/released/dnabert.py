"""DNABERT (``zhihan1996/DNA_bert_6``, overlapping 6-mers), loaded into transformers' own
``BertModel`` without remote code: the release is standard BERT-base whose config merely
points at remote classes (``auto_map``), which we never run.

Head (the remote ``DNABertForSequenceClassification`` for inputs of at most 512 tokens,
which equals ``BertForSequenceClassification``): pooler (dense + tanh on ``[CLS]``) ->
dropout(hidden_dropout_prob) -> Linear. The remote class's chunked mode for longer inputs
(512-token chunks, pooled outputs averaged) is not reproduced: longer inputs are an error.

Released names ``bert.X`` become ``backbone.X``; the pretraining heads ``cls.*`` are
dropped, as are the derived ``bert.embeddings.position_ids``/``token_type_ids`` buffers
(non-persistent in current transformers; older files may hold them). Whether the release
holds pooler weights is unverified: they are loaded when present, else initialised fresh
and reported (``backbone.pooler.`` is in ``NEW_HEAD``).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import torch.nn as nn
from transformers import BertConfig, BertModel, PreTrainedConfig
from transformers.models.bert.modeling_bert import BertPreTrainedModel

from dnatok.errors import UserError
from dnatok.models.heads import POOLINGS, ClassifierMixin

__all__ = ["NAME", "LABEL", "TOKENIZER", "matches", "Config", "config_from_release", "Classifier",
           "map_key", "DROPPED", "NEW_HEAD", "write_tiny_release"]

NAME = "dnabert"
LABEL = "DNABERT"
TOKENIZER = "dnabert6"
K = 6
VOCAB_SIZE = 4 ** K + 5  # 5 specials, then every k-mer
MAX_TOKENS = 512

DROPPED = ("cls.", "bert.embeddings.position_ids", "bert.embeddings.token_type_ids")
NEW_HEAD = ("classifier.", "backbone.pooler.")

# config.json keys of the release that BertModel does not use (leftovers of DNABERT's fork)
LEFTOVERS = {"rnn": "lstm", "num_rnn_layer": 1, "rnn_hidden": 768, "split": 10}

_BASE_FIELDS = {f.name for f in dataclasses.fields(PreTrainedConfig)}
RELEASE_FIELDS = tuple(f.name for f in dataclasses.fields(BertConfig) if f.name not in _BASE_FIELDS)


def matches(release_config: dict) -> bool:
    """BERT with the 6-mer vocabulary; DNABERT-2 (also model_type bert) has ALiBi keys."""
    return (release_config.get("model_type") == "bert"
            and release_config.get("vocab_size") == VOCAB_SIZE
            and "alibi_starting_size" not in release_config)


class Config(BertConfig):
    """BertConfig plus the classifier fields. ``pooling`` is kept for the uniform family
    contract; the head is fixed (BERT pooler on ``[CLS]``) and does not use it."""

    model_type = "dnatok_dnabert"
    pooling: str = "mean"
    conjoin: bool = False

    def __post_init__(self, **kwargs):
        if self.pooling not in POOLINGS:
            raise UserError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        super().__post_init__(**kwargs)


def config_from_release(release_config: dict, **classifier_fields) -> Config:
    if not matches(release_config):
        raise UserError(f"not a DNABERT-{K} config (model_type {release_config.get('model_type')!r}, "
                        f"vocab_size {release_config.get('vocab_size')!r})")
    fields = {k: release_config[k] for k in RELEASE_FIELDS if k in release_config}
    return Config(**fields, **classifier_fields)


class Backbone(BertModel):
    """transformers' BertModel (with pooler), returning the last hidden states as a tensor."""

    def __init__(self, config):
        super().__init__(config, add_pooling_layer=True)

    @property
    def output_dim(self) -> int:
        return self.config.hidden_size

    def forward(self, input_ids, attention_mask=None):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class Classifier(ClassifierMixin, BertPreTrainedModel):
    config_class = Config
    base_model_prefix = "backbone"
    main_input_name = "input_ids"

    def __init__(self, config: Config):
        super().__init__(config)
        self.backbone = Backbone(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embeddings.word_embeddings

    def sequence_logits(self, input_ids, attention_mask):
        limit = min(MAX_TOKENS, self.config.max_position_embeddings)
        if input_ids.shape[1] > limit:
            raise UserError(f"DNABERT input of {input_ids.shape[1]} tokens: at most {limit} are "
                            "supported (the remote model's chunked >512 mode is not reproduced); "
                            "set the task's max length to 512 or less")
        h = self.backbone(input_ids, attention_mask)
        return self.classifier(self.dropout(self.backbone.pooler(h)))


def map_key(release_name: str) -> str | None:
    if release_name.startswith(DROPPED) or not release_name.startswith("bert."):
        return None
    name = "backbone." + release_name[len("bert."):]
    # very old BERT files name LayerNorm parameters gamma/beta
    if name.endswith(".gamma"):
        name = name[:-len("gamma")] + "weight"
    elif name.endswith(".beta"):
        name = name[:-len("beta")] + "bias"
    return name


def write_tiny_release(out_dir, seed: int = 0, hidden_size: int = 16, num_hidden_layers: int = 2,
                       num_attention_heads: int = 2, intermediate_size: int = 32,
                       max_position_embeddings: int = 512, head: str = "pretraining") -> Path:
    """A tiny DNABERT-6 in the release layout: transformers' own ``BertForPreTraining``
    (``head="pretraining"``: pooler + ``cls.*``) or ``BertForMaskedLM`` (``head="mlm"``: no
    pooler) state dict as ``pytorch_model.bin``, and config.json with model_type bert, the
    6-mer vocabulary, ``auto_map`` and the fork's leftover keys."""
    from transformers import BertForMaskedLM, BertForPreTraining

    if head not in ("pretraining", "mlm"):
        raise ValueError(f"head must be 'pretraining' or 'mlm', got {head!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                     num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                     max_position_embeddings=max_position_embeddings, pad_token_id=0,
                     layer_norm_eps=1e-12)
    model = (BertForPreTraining if head == "pretraining" else BertForMaskedLM)(cfg).eval()
    with torch.no_grad():  # non-trivial layer norms and biases (the default init is ones / zeros)
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, out_dir / "pytorch_model.bin")
    release = {k: v for k, v in cfg.to_dict().items() if k in RELEASE_FIELDS}
    release.update(LEFTOVERS, model_type="bert", architectures=["BertForMaskedLM"],
                   auto_map={"AutoConfig": "configuration_bert.BertConfig",
                             "AutoModel": "dnabert_layer.BertModel",
                             "AutoModelForSequenceClassification":
                                 "dnabert_layer.DNABertForSequenceClassification"})
    (out_dir / "config.json").write_text(json.dumps(release, indent=2, sort_keys=True))
    return out_dir
