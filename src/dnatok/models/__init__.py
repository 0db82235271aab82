"""Models of the study: Mamba (causal LM), Caduceus (bidirectional Mamba, masked LM,
optionally RC-equivariant), a BERT-style ALiBi encoder (masked LM), HyenaDNA (causal LM)
and the Genomic Benchmarks CNN baseline (never pretrained).

Every model is a transformers ``PretrainedConfig`` + ``PreTrainedModel`` pair, so
``save_pretrained`` / ``from_pretrained`` work; the public entry points are
:func:`build_pretraining_model`, :func:`build_classifier` and :func:`load_model`.

Adding an architecture: write ``<arch>.py`` with a config (subclass of
:class:`heads.DnaConfig`), a backbone module with an ``embedding`` and
``forward(input_ids, attention_mask) -> (batch, length, dim)``, a pretraining model and a
classifier (``ClassifierMixin`` + ``sequence_logits``), then add it to the tables below.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..io import read_json
from .bert import BertConfig, BertForMaskedLM, BertForSequenceClassification
from .caduceus import CaduceusConfig, CaduceusForMaskedLM, CaduceusForSequenceClassification
from .cnn import CnnConfig, CnnForSequenceClassification
from .heads import POOLINGS, code_vectors_of, set_code_vectors
from .hyena import HyenaConfig, HyenaForCausalLM, HyenaForSequenceClassification
from .mamba import MambaConfig, MambaForCausalLM, MambaForSequenceClassification

from ..architectures import ARCHITECTURES, HPARAMS, OBJECTIVE as _OBJECTIVE, min_tokens  # noqa: F401

CONFIGS = {"mamba": MambaConfig, "caduceus": CaduceusConfig, "bert": BertConfig, "cnn": CnnConfig,
           "hyena": HyenaConfig}
PRETRAINING_MODELS = {"mamba": MambaForCausalLM, "caduceus": CaduceusForMaskedLM, "bert": BertForMaskedLM,
                      "hyena": HyenaForCausalLM}
CLASSIFIERS = {"mamba": MambaForSequenceClassification, "caduceus": CaduceusForSequenceClassification,
               "bert": BertForSequenceClassification, "cnn": CnnForSequenceClassification,
               "hyena": HyenaForSequenceClassification}

_ARCH_OF_MODEL_TYPE = {cfg.model_type: arch for arch, cfg in CONFIGS.items()}
_CLASS_BY_NAME = {cls.__name__: cls for cls in [*PRETRAINING_MODELS.values(), *CLASSIFIERS.values()]}


def _register_auto_classes() -> None:
    """Let transformers' Auto* classes resolve our model types (handy for generic tools)."""
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM,
                              AutoModelForSequenceClassification)
    for cfg in CONFIGS.values():
        AutoConfig.register(cfg.model_type, cfg, exist_ok=True)
    AutoModelForCausalLM.register(MambaConfig, MambaForCausalLM, exist_ok=True)
    AutoModelForCausalLM.register(HyenaConfig, HyenaForCausalLM, exist_ok=True)
    AutoModelForMaskedLM.register(CaduceusConfig, CaduceusForMaskedLM, exist_ok=True)
    AutoModelForMaskedLM.register(BertConfig, BertForMaskedLM, exist_ok=True)
    for arch, cls in CLASSIFIERS.items():
        AutoModelForSequenceClassification.register(CONFIGS[arch], cls, exist_ok=True)


_register_auto_classes()


def objective_of(arch: str) -> str | None:
    """"clm" (next-token), "mlm" (masked LM) or None (cnn: never pretrained)."""
    _check_arch(arch)
    return _OBJECTIVE[arch]


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise UserError(f"unknown model architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")


def _check_hparams(arch: str, hparams: dict) -> None:
    unknown = sorted(set(hparams) - set(HPARAMS[arch]))
    if unknown:
        raise UserError(f"unknown hyperparameter(s) for {arch}: {', '.join(unknown)}; "
                        f"accepted: {', '.join(HPARAMS[arch])}")


def _complement_list(complement_map, vocab_size: int) -> list[int] | None:
    """Accept a list (id -> id) or a dict (ids not listed map to themselves)."""
    if complement_map is None:
        return None
    if isinstance(complement_map, dict):
        out = list(range(vocab_size))
        for k, v in complement_map.items():
            k, v = int(k), int(v)
            if not (0 <= k < vocab_size and 0 <= v < vocab_size):
                raise UserError(f"complement_map entry {k} -> {v} is outside the vocabulary (size {vocab_size})")
            out[k] = v
        return out
    return [int(v) for v in complement_map]


def _make_config(arch: str, **kwargs):
    try:
        return CONFIGS[arch](**kwargs)
    except ValueError as e:  # invalid combination of hyperparameters
        raise UserError(f"{arch}: {e}") from e


def _with_codes(model, code_vectors):
    """Fill a fresh model's frozen code table from a learned tokenizer (no-op without one)."""
    if code_vectors is not None:
        set_code_vectors(model, code_vectors)
    return model


def _code_dim(code_vectors) -> int:
    return 0 if code_vectors is None else int(code_vectors.shape[1])


def build_pretraining_model(arch: str, vocab_size: int, pad_token_id: int, complement_map=None,
                            code_vectors=None, **hparams):
    """A randomly initialised pretraining model: causal LM for mamba and hyena, masked LM
    for caduceus and bert. forward(input_ids, attention_mask=None, labels=None) -> .loss, .logits
    (labels: -100 = ignored; for the causal LM pass labels = input_ids, shifted inside).
    complement_map is used by caduceus (required with rcps=True) and ignored otherwise.
    code_vectors: a learned tokenizer's (vocab, code_dim) table, held frozen as the token
    embedding (:class:`heads.CodeEmbedding`); None = an ordinary trainable embedding."""
    _check_arch(arch)
    if _OBJECTIVE[arch] is None:
        raise UserError(f"{arch} is never pretrained; build it with build_classifier")
    _check_hparams(arch, hparams)
    cm = _complement_list(complement_map, vocab_size) if arch == "caduceus" else None
    config = _make_config(arch, vocab_size=vocab_size, pad_token_id=pad_token_id, complement_map=cm,
                          code_dim=_code_dim(code_vectors), **hparams)
    return _with_codes(PRETRAINING_MODELS[arch](config), code_vectors)


def _read_config_json(path: Path) -> dict:
    return read_json(Path(path) / "config.json", f"{path}: not a saved model directory (no config.json)")


def build_classifier(arch: str, num_labels: int, vocab_size: int, pad_token_id: int, pretrained=None,
                     complement_map=None, pooling: str = "mean", conjoin: bool = False,
                     max_len: int | None = None, code_vectors=None, **hparams):
    """A sequence classifier; with ``pretrained`` (a directory written by the pretraining
    model's save_pretrained) its backbone weights and hyperparameters are taken from there,
    otherwise it is randomly initialised.

    pooling: "mean" (over non-padding positions) or "mean_all" (over all positions, the
    original study's quirk). conjoin: average forward and reverse-complement logits when
    forward() gets rc_input_ids/rc_attention_mask. max_len (tokens) is required by cnn and
    ignored by the others. code_vectors: as in :func:`build_pretraining_model`; a pretrained
    model must hold the same table (else the tokenizer is not the one it was trained with).
    """
    _check_arch(arch)
    _check_hparams(arch, hparams)
    if num_labels < 2:
        raise UserError(f"num_labels must be >= 2 (got {num_labels})")
    if pooling not in POOLINGS:
        raise UserError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
    head = dict(num_labels=num_labels, pooling=pooling, conjoin=bool(conjoin))
    cm = _complement_list(complement_map, vocab_size) if arch == "caduceus" else None

    if arch == "cnn":
        if pretrained is not None:
            raise UserError("cnn is never pretrained; pretrained must be None")
        if max_len is None:
            raise UserError("cnn needs max_len (tokens) to size its dense layer")
        config = _make_config(arch, vocab_size=vocab_size, pad_token_id=pad_token_id, max_len=int(max_len),
                              code_dim=_code_dim(code_vectors), **head, **hparams)
        return _with_codes(CLASSIFIERS[arch](config), code_vectors)

    if pretrained is None:
        config = _make_config(arch, vocab_size=vocab_size, pad_token_id=pad_token_id, complement_map=cm,
                              code_dim=_code_dim(code_vectors), **head, **hparams)
        return _with_codes(CLASSIFIERS[arch](config), code_vectors)

    saved = _read_config_json(pretrained)
    if saved.get("model_type") != CONFIGS[arch].model_type:
        raise UserError(f"{pretrained}: holds a {saved.get('model_type')!r} model, not {arch}")
    for key, value in (("vocab_size", vocab_size), ("pad_token_id", pad_token_id)):
        if saved.get(key) != value:
            raise UserError(f"{pretrained}: {key} is {saved.get(key)}, but {value} was given "
                            "(tokenizer and pretrained model do not match)")
    for key, value in hparams.items():
        if saved.get(key) != value:
            raise UserError(f"{pretrained}: {key} is {saved.get(key)!r} in the pretrained model, "
                            f"but {value!r} was given")
    if cm is not None and saved.get("complement_map") not in (None, cm):
        raise UserError(f"{pretrained}: complement_map differs from the one given")
    if int(saved.get("code_dim") or 0) != _code_dim(code_vectors):
        raise UserError(f"{pretrained}: code_dim is {saved.get('code_dim') or 0}, the tokenizer gives "
                        f"{_code_dim(code_vectors)} (tokenizer and pretrained model do not match)")
    arch_fields = {k: saved[k] for k in HPARAMS[arch] if k in saved}
    config = _make_config(arch, vocab_size=vocab_size, pad_token_id=pad_token_id,
                          complement_map=saved.get("complement_map") or cm,
                          code_dim=_code_dim(code_vectors), **head, **arch_fields)
    model = CLASSIFIERS[arch](config)
    pre = PRETRAINING_MODELS[arch].from_pretrained(str(pretrained))
    # strict: every backbone tensor must come from the checkpoint
    model.backbone.load_state_dict(pre.backbone.state_dict(), strict=True)
    _check_same_codes(model, code_vectors, pretrained)
    return model


def _check_same_codes(model, code_vectors, where) -> None:
    import torch

    held = code_vectors_of(model)
    if held is not None and not torch.equal(held[:code_vectors.shape[0]],
                                            torch.as_tensor(code_vectors, dtype=held.dtype)):
        raise UserError(f"{where}: its frozen code vectors differ from the tokenizer's "
                        "(a different learned tokenizer)")


def load_model(path):
    """Load any model saved by save_pretrained (pretraining model or classifier)."""
    saved = _read_config_json(path)
    names = saved.get("architectures") or []
    if saved.get("model_type") not in _ARCH_OF_MODEL_TYPE or not names or names[0] not in _CLASS_BY_NAME:
        raise UserError(f"{path}: not a dnatok model (model_type {saved.get('model_type')!r}, "
                        f"architectures {names})")
    return _CLASS_BY_NAME[names[0]].from_pretrained(str(path))


def arch_of(model_or_config) -> str:
    """Architecture name of a model or config built here."""
    config = getattr(model_or_config, "config", model_or_config)
    return _ARCH_OF_MODEL_TYPE[config.model_type]


__all__ = ["ARCHITECTURES", "HPARAMS", "objective_of", "build_pretraining_model", "build_classifier",
           "load_model", "arch_of", "MambaConfig", "CaduceusConfig", "BertConfig", "CnnConfig",
           "MambaForCausalLM", "MambaForSequenceClassification", "CaduceusForMaskedLM",
           "CaduceusForSequenceClassification", "BertForMaskedLM", "BertForSequenceClassification",
           "CnnForSequenceClassification", "HyenaConfig", "HyenaForCausalLM",
           "HyenaForSequenceClassification"]
