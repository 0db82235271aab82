"""Pieces shared by every architecture: the config base, weight-init helpers, pooling,
the sequence-classification forward (with optional reverse-complement "conjoining") and
the small LM-loss helpers.

Weight tying between the token embedding and the LM output layer is done functionally
(the head multiplies by ``embedding.weight``; there is no second parameter), so there are
no aliased tensors for ``save_pretrained``/``from_pretrained`` to drop or re-tie and round
trips are bit-exact whatever the transformers version.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput

POOLINGS = ("mean", "mean_all")


class DnaConfig(PretrainedConfig):
    """Fields every dnatok model has; architecture configs add their own hyperparameters.

    pooling / conjoin only matter for sequence classification (see :class:`ClassifierMixin`).
    code_dim: 0 = an ordinary token embedding; > 0 = the tokens are a learned tokenizer's
    codes whose vectors (``code_dim`` wide) stay frozen (:class:`CodeEmbedding`).
    complement_map: list, complement_map[token id] = id of the complementary token (an
    involution; special tokens map to themselves) -- needed by RC-equivariant models only.
    """

    def __init__(self, vocab_size: int = 16, pad_token_id: int = 0, pooling: str = "mean",
                 conjoin: bool = False, complement_map: list[int] | None = None,
                 initializer_range: float = 0.02, code_dim: int = 0, **kwargs):
        self.vocab_size = vocab_size
        if int(code_dim) < 0:
            raise ValueError(f"code_dim must be >= 0, got {code_dim}")
        self.code_dim = int(code_dim)
        self.pooling = pooling
        self.conjoin = conjoin
        self.complement_map = list(complement_map) if complement_map is not None else None
        self.initializer_range = initializer_range
        # tie_word_embeddings stays False: tying is functional (see module docstring), so
        # transformers must not try to alias parameters itself.
        kwargs["tie_word_embeddings"] = False
        super().__init__(pad_token_id=pad_token_id, **kwargs)


# --------------------------------------------------------------------------- init helpers
# During from_pretrained, transformers flags loaded tensors with `_is_hf_initialized`;
# initialising must leave those alone (otherwise loaded weights would be overwritten).

def _is_loaded(t: torch.Tensor | None) -> bool:
    return t is None or getattr(t, "_is_hf_initialized", False)


@torch.no_grad()
def init_uniform(t, bound: float):
    if not _is_loaded(t):
        t.uniform_(-bound, bound)


@torch.no_grad()
def init_normal(t, std: float):
    if not _is_loaded(t):
        t.normal_(0.0, std)


@torch.no_grad()
def init_fill(t, value):
    """Fill with a constant or copy a tensor of the same shape."""
    if not _is_loaded(t):
        if isinstance(value, torch.Tensor):
            t.copy_(value)
        else:
            t.fill_(value)


def init_bert_style(module: nn.Module, std: float) -> None:
    """BERT's init: Linear/Embedding weights N(0, std), biases 0, LayerNorm 1 and 0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        init_normal(module.weight, std)
        if getattr(module, "bias", None) is not None:
            init_fill(module.bias, 0.0)
    elif isinstance(module, nn.LayerNorm):
        init_fill(module.weight, 1.0)
        init_fill(module.bias, 0.0)


def init_linear_default(module: nn.Linear, scale: float = 1.0):
    """PyTorch's default Linear init (uniform +-1/sqrt(fan_in)), optionally scaled; zero bias."""
    init_uniform(module.weight, scale / math.sqrt(module.in_features))
    if module.bias is not None:
        init_fill(module.bias, 0.0)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.to(x.dtype) * self.weight


# --------------------------------------------------------------------------- embeddings
N_SPECIAL = 5  # [PAD] [UNK] [CLS] [SEP] [MASK]: ids 0-4 in every dnatok vocabulary


class CodeEmbedding(nn.Module):
    """Token embedding over a learned tokenizer's codes (VQDNA's way): the code vectors are
    a frozen buffer (``codes``, one row per id, saved with the model); what trains is a
    linear map to the model width and one vector per special token (ids 0-4, whose code
    rows are zero). ``weight`` is the effective (vocab, dim) table, so heads tied to the
    embedding work unchanged."""

    def __init__(self, num_embeddings: int, embedding_dim: int, code_dim: int):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.register_buffer("codes", torch.zeros(num_embeddings, code_dim))
        self.proj = nn.Linear(code_dim, embedding_dim)
        self.special = nn.Embedding(N_SPECIAL, embedding_dim)

    @torch.no_grad()
    def set_codes(self, vectors) -> None:
        vectors = torch.as_tensor(vectors, dtype=self.codes.dtype)
        rows = vectors.shape[0]
        if vectors.shape[1] != self.codes.shape[1] or rows > self.num_embeddings:
            raise ValueError(f"code vectors {tuple(vectors.shape)} do not fit the embedding "
                             f"({self.num_embeddings} ids x {self.codes.shape[1]})")
        self.codes.zero_()
        self.codes[:rows] = vectors.to(self.codes.device)

    def _special_rows(self, ids: torch.Tensor) -> torch.Tensor:
        is_special = ids < N_SPECIAL
        return self.special(ids.clamp(max=N_SPECIAL - 1)) * is_special.unsqueeze(-1)

    @property
    def weight(self) -> torch.Tensor:
        ids = torch.arange(self.num_embeddings, device=self.codes.device)
        return self.proj(self.codes) + self._special_rows(ids)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.codes[ids]) + self._special_rows(ids)


def token_embedding(config, rows: int, dim: int) -> nn.Module:
    """The input embedding of a model: ``nn.Embedding`` or, when the config says the tokens
    are learned codes (``code_dim`` > 0), a :class:`CodeEmbedding`."""
    code_dim = getattr(config, "code_dim", 0) or 0
    return CodeEmbedding(rows, dim, code_dim) if code_dim else nn.Embedding(rows, dim)


def set_code_vectors(model: nn.Module, vectors) -> None:
    """Copy a learned tokenizer's code vectors into the model's :class:`CodeEmbedding`."""
    found = [m for m in model.modules() if isinstance(m, CodeEmbedding)]
    if len(found) != 1:
        raise ValueError(f"expected one CodeEmbedding in the model, found {len(found)}")
    found[0].set_codes(vectors)


def code_vectors_of(model: nn.Module):
    """The frozen code table of a model (None for an ordinary embedding)."""
    found = [m for m in model.modules() if isinstance(m, CodeEmbedding)]
    return found[0].codes if found else None


# --------------------------------------------------------------------------- masks

def check_right_padded(attention_mask: torch.Tensor | None) -> None:
    """The recurrent models assume padding only at the end of each row (HF's default
    padding_side="right"); left padding would feed pads into the state before real tokens."""
    if attention_mask is None:
        return
    if bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
        raise ValueError("attention_mask must be right-padded (1...1 0...0 per row); "
                         "set the tokenizer's padding_side='right'")


def reverse_index(attention_mask: torch.Tensor | None, length: int, batch: int,
                  device) -> torch.Tensor | None:
    """Index that reverses each row within its real (unpadded) length; None = plain flip.

    For a row of length n followed by pads: position t < n maps to n-1-t and pads stay
    where they are, so a reversed sequence is again right-padded.
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None
    n = attention_mask.long().sum(1, keepdim=True)
    t = torch.arange(length, device=device).expand(batch, length)
    return torch.where(t < n, n - 1 - t, t)


def reverse_seq(x: torch.Tensor, rev_idx: torch.Tensor | None) -> torch.Tensor:
    """Reverse along dim 1 (per row within its real length when rev_idx is given)."""
    if rev_idx is None:
        return x.flip(1)
    if x.dim() == 2:
        return x.gather(1, rev_idx)
    return x.gather(1, rev_idx[..., None].expand_as(x))


# --------------------------------------------------------------------------- pooling

def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """(batch, length, dim) -> (batch, dim).

    "mean": mean over positions where attention_mask == 1 (all if no mask).
    "mean_all": mean over every position including padding -- a quirk of the original
    study's fine-tuning code, kept only so its protocol can be replayed.
    """
    if pooling == "mean_all" or attention_mask is None:
        return hidden.mean(1)
    if pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
    m = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


# --------------------------------------------------------------------------- losses

def causal_lm_loss(logits, labels):
    """Next-token loss: position t predicts labels[t+1]; -100 is ignored (HF convention)."""
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=-100)


def masked_lm_loss(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=-100)


# --------------------------------------------------------------------------- classification

class ClassifierMixin:
    """Sequence-classification forward shared by the architectures.

    Subclasses implement ``sequence_logits(input_ids, attention_mask) -> (batch, num_labels)``.

    conjoin: when config.conjoin is true and rc_input_ids are given, the logits are the
    average of the forward-strand and reverse-complement predictions (rc ids come from
    tokenizing the reverse complement of the raw sequence, so any tokenizer works). Without
    rc ids the forward prediction alone is returned (e.g. conjoining at test time only).
    Passing rc ids to a model built with conjoin=False is an error rather than silently
    ignored.
    """

    def forward(self, input_ids, attention_mask=None, labels=None, rc_input_ids=None,
                rc_attention_mask=None, token_type_ids=None, return_dict=None):
        # token_type_ids: produced by some tokenizers; every sequence here is a single
        # segment, so they carry no information and are ignored.
        if rc_input_ids is None:
            logits = self.sequence_logits(input_ids, attention_mask)
        else:
            if not self.config.conjoin:
                raise ValueError("rc_input_ids given but the classifier was built with conjoin=False")
            n = input_ids.shape[0]
            if (rc_input_ids.shape == input_ids.shape
                    and (attention_mask is None) == (rc_attention_mask is None)):
                # one batched pass over both strands
                ids = torch.cat([input_ids, rc_input_ids])
                mask = None if attention_mask is None else torch.cat([attention_mask, rc_attention_mask])
                both = self.sequence_logits(ids, mask)
                logits = (both[:n] + both[n:]) / 2
            else:  # different token counts (e.g. BPE): two passes, no extra padding
                logits = (self.sequence_logits(input_ids, attention_mask)
                          + self.sequence_logits(rc_input_ids, rc_attention_mask)) / 2
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), labels.long())
        return SequenceClassifierOutput(loss=loss, logits=logits)
