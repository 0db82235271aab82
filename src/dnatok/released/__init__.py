"""Released checkpoints as a model source, loaded into our own implementations.

No ``trust_remote_code``: each released architecture (a *family*, see :mod:`.base`) has a
clean-room module here (or uses transformers' own class where transformers has one), and
its tensors are copied in strictly: a released tensor without a place, a model tensor the
release lacks (other than the new classification head), or a shape mismatch is an error
naming the tensor.

Entry points: :func:`family_of` (which family a checkpoint folder holds),
:func:`load_classifier` (a fine-tunable classifier + the load report),
:func:`load_tokenizer` (the checkpoint's own tokenizer), :func:`check_checkpoint`.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from dnatok.errors import UserError
from dnatok.released.base import load_strict, read_release_config, read_state_dict

# config arch -> module of its family; the order is the order `family_of` tries them in
# (DNABERT-2 before DNABERT-k: both say model_type "bert").
FAMILY_MODULES = {
    "dnabert2": "dnatok.released.dnabert2",
    "ntv2": "dnatok.released.ntv2",
    "dnabert": "dnatok.released.dnabert",
    "gpt_neo": "dnatok.released.gpt_neo",
    "hyena": "dnatok.released.hyena",
    "caduceus_hub": "dnatok.released.caduceus",
}
# The run names that join the published tables (each family module's LABEL; kept here too
# so that the config check reads them without importing torch).
LABELS = {"dnabert2": "DNABERT2", "ntv2": "NTv2", "dnabert": "DNABERT", "gpt_neo": "GPT",
          "hyena": "HyenaDNA", "caduceus_hub": "Caduceus"}
# The value of the tokenizer axis for a model that brings its own tokenizer.
OWN_TOKENIZER = "own"
# Files a checkpoint download keeps (weights, config, the tokenizer files of every family).
CHECKPOINT_PATTERNS = ["config.json", "*.safetensors", "pytorch_model.bin", "tokenizer.json",
                       "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                       "merges.txt", "LICENSE*", "README.md"]


def family(arch: str):
    """The family module of a released architecture name."""
    if arch not in FAMILY_MODULES:
        raise UserError(f"unknown released architecture {arch!r}; known: {', '.join(FAMILY_MODULES)}")
    return importlib.import_module(FAMILY_MODULES[arch])


def family_of(ckpt_dir, arch: str | None = None):
    """The family of the checkpoint in ``ckpt_dir``; with ``arch``, also check it is that one."""
    cfg = read_release_config(ckpt_dir)
    found = next((a for a in FAMILY_MODULES if family(a).matches(cfg)), None)
    if found is None:
        raise UserError(f"{ckpt_dir}: config.json (model_type {cfg.get('model_type')!r}) is not a "
                        f"released architecture dnatok implements ({', '.join(FAMILY_MODULES)})")
    if arch is not None and found != arch:
        raise UserError(f"{ckpt_dir}: holds a {found} checkpoint, but the config says arch {arch}")
    return family(found)


def load_classifier(ckpt_dir, num_labels: int, arch: str | None = None, **classifier_fields):
    """(classifier, report): the family's classifier with every released backbone tensor
    loaded strictly and a fresh head; ``report`` lists what was loaded, dropped (the
    release's pretraining head) and initialised (the new head), for the run's log."""
    fam = family_of(ckpt_dir, arch)
    config = fam.config_from_release(read_release_config(ckpt_dir), num_labels=num_labels,
                                     **classifier_fields)
    model = fam.Classifier(config)
    report = load_strict(model, read_state_dict(ckpt_dir), fam, str(ckpt_dir))
    report["family"] = fam.NAME
    return model, report


def load_tokenizer(ckpt_dir, arch: str | None = None, **options):
    """The checkpoint's own tokenizer (its released ids), read from the checkpoint's files."""
    from dnatok.released.tokenizers import load_release_tokenizer

    fam = family_of(ckpt_dir, arch)
    return load_release_tokenizer(fam.TOKENIZER, ckpt_dir, **options)


def check_checkpoint(ckpt_dir, arch: str | None = None) -> dict:
    """Load the checkpoint once (strictly) with its tokenizer: what the download rule runs
    so that a wrong or corrupt checkpoint fails there, not in thousands of fine-tuning jobs."""
    model, report = load_classifier(ckpt_dir, num_labels=2, arch=arch)
    tok = load_tokenizer(ckpt_dir, arch)
    return {**report, "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": tok.vocab_size, "tokenizer": tok.kind, "path": str(Path(ckpt_dir))}


# config.json key holding a family's longest input (learned positions / positional tables)
_POSITION_KEYS = {"dnabert": "max_position_embeddings", "gpt_neo": "max_position_embeddings",
                  "hyena": "max_seq_len"}


def token_limit(ckpt_dir) -> int | None:
    """Longest input in tokens the checkpoint's model can read; None when unbounded (ALiBi,
    rotary, state-space scans)."""
    fam = family_of(ckpt_dir)
    key = _POSITION_KEYS.get(fam.NAME)
    value = read_release_config(ckpt_dir).get(key) if key else None
    return int(value) if value else None


def label_of(arch: str) -> str:
    """The run name that joins the published tables (``DNABERT2``, ``NTv2`` ...)."""
    if arch not in LABELS:
        raise UserError(f"unknown released architecture {arch!r}; known: {', '.join(LABELS)}")
    return LABELS[arch]
