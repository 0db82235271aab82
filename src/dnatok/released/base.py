"""What every released-checkpoint family shares: reading the released tensors and loading
them strictly into our own modules.

A *family* is one released architecture (DNABERT-2, NT-v2, ...). Its module in this
package exports:

- ``NAME``: the config ``arch`` (``dnabert2``); ``LABEL``: the run name that joins the
  published tables (``DNABERT2``); ``TOKENIZER``: the kind of its own tokenizer
  (a key of :data:`dnatok.released.tokenizers.KINDS`).
- ``matches(release_config: dict) -> bool``: does this ``config.json`` belong to it.
- ``Config``: a ``PretrainedConfig`` (``model_type = "dnatok_<name>"``) holding the
  release's architecture fields plus the classifier fields (``num_labels``, ``pooling``,
  ``conjoin``); ``config_from_release(release_config, **classifier_fields) -> Config``.
- ``Classifier``: a ``PreTrainedModel`` with ``.backbone`` (``forward(input_ids,
  attention_mask) -> (batch, length, dim)`` last hidden states, ``output_dim``) and the
  head the study used; ``forward(input_ids, attention_mask=None, labels=None,
  rc_input_ids=None, rc_attention_mask=None)`` -> ``SequenceClassifierOutput``.
- ``map_key(release_name) -> str | None``: the ``Classifier`` state-dict name of a
  released tensor, or None for tensors we knowingly leave out (pretraining heads, listed in
  ``DROPPED``: name prefixes, or globs where an entry holds ``*``; see :func:`is_dropped`).
- ``NEW_HEAD``: prefixes of ``Classifier`` tensors the release does not have (the new
  classification head, DNABERT-2's pooler ...): initialised fresh and reported.
- ``fill_tied(loaded) -> dict`` (optional): ``Classifier`` tensors a release may omit because
  they are tied copies of another tensor, filled from the loaded ones.
- ``write_tiny_release(out_dir, seed=0, **sizes)``: a tiny random checkpoint in the
  release's on-disk layout (its config.json keys, parameter names and shapes, safetensors
  or .bin as released), written from the layout, not from our modules: what the tests load.
"""
from __future__ import annotations

from pathlib import Path

from dnatok.errors import UserError
from dnatok.io import read_json

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_release_config(ckpt_dir) -> dict:
    return read_json(Path(ckpt_dir) / "config.json", f"{ckpt_dir}: not a checkpoint folder (no config.json)")


def read_state_dict(ckpt_dir) -> dict:
    """The released tensors (fp32 on CPU), from ``model.safetensors`` or ``pytorch_model.bin``
    (read with ``weights_only``: no code in a checkpoint runs)."""
    import torch

    ckpt_dir = Path(ckpt_dir)
    for name in WEIGHT_FILES:
        path = ckpt_dir / name
        if not path.is_file():
            continue
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file
            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    raise UserError(f"{ckpt_dir}: no weights ({' or '.join(WEIGHT_FILES)})")


def is_dropped(name: str, dropped) -> bool:
    """Does a released tensor name match ``dropped`` (prefixes; globs where ``*`` occurs)?"""
    import fnmatch

    return any(fnmatch.fnmatchcase(name, d) if "*" in d else name.startswith(d) for d in dropped)


def load_strict(model, release_sd: dict, family, source: str) -> dict:
    """Copy the released tensors into ``model`` (a family ``Classifier``).

    Strict: a released tensor that maps to nothing (and is not a known pretraining head),
    a model tensor that gets no released tensor (and is not a new head), or a shape
    mismatch is an error naming the tensor. Returns the report for the run's log and
    provenance: loaded count, dropped release tensors, freshly initialised tensors.
    """
    import torch

    own = model.state_dict()
    loaded, dropped, unexpected, shapes = {}, [], [], []
    for name, tensor in release_sd.items():
        target = family.map_key(name)
        if target is None:
            if is_dropped(name, family.DROPPED):
                dropped.append(name)
            else:
                unexpected.append(name)
            continue
        if target not in own:
            unexpected.append(name)
        elif tuple(own[target].shape) != tuple(tensor.shape):
            shapes.append(f"{name}: release {tuple(tensor.shape)}, model {tuple(own[target].shape)}")
        else:
            loaded[target] = tensor
    tied = family.fill_tied(loaded) if hasattr(family, "fill_tied") else {}
    loaded.update(tied)
    fresh = sorted(k for k in own if k not in loaded and k.startswith(tuple(family.NEW_HEAD)))
    missing = sorted(k for k in own if k not in loaded and not k.startswith(tuple(family.NEW_HEAD)))
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} released tensor(s) this model has no place for: "
                        + ", ".join(sorted(unexpected)[:10]))
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing from the release: " + ", ".join(missing[:10]))
    if shapes:
        problems.append("shape mismatch: " + "; ".join(shapes[:10]))
    if problems:
        raise UserError(f"{source}: not a {family.NAME} checkpoint this config describes: "
                        + " | ".join(problems))
    with torch.no_grad():
        for k, v in loaded.items():
            own[k].copy_(v)
    return {"loaded": len(loaded), "tied": sorted(tied), "dropped": sorted(dropped),
            "initialised": fresh}
