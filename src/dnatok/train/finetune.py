"""Fine-tune one model on one task with one seed under a named protocol.

One call = one row of the results: ``finetune(task_dir, arch, tokenizer, out_dir,
seed)`` reads the task folder, builds the validation set by the protocol's rule,
trains with evaluation on validation after every epoch, keeps the best epoch by the
protocol's selection metric (early stopping when the protocol has a patience),
evaluates the test set exactly once with the best weights, and writes

- ``metrics.json``: whole-set test and validation metrics + what produced them,
- ``predictions.tsv``: one row per test sequence (id, label, pred, prob_0..K-1),
- ``provenance.json``: resolved settings, protocol, seed, device, versions, timing,
- ``train.log``: the readable log.

The output folder appears only when everything succeeded (atomic rename).
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np

from dnatok.errors import UserError
from dnatok.io import atomic_path, provenance, write_json
from dnatok.train.common import (Progress, autocast, close_logger, code_vectors, cosine_with_warmup,
                                 count_parameters, linear_with_warmup, make_logger,
                                 resolve_device, resolve_tokenizer, seed_everything)
from dnatok.train.metrics import classification_metrics, per_batch_mcc_mean
from dnatok.train.protocol import Protocol, get_protocol
from dnatok.train.splits import Split, TaskData, load_task, make_validation

# Hyperparameters (not protocol quirks): the study's CNN / genomic-benchmark recipe.
# lr 1e-3 and batch 64 for 10 epochs; AdamW with weight decay 0.1; timm cosine
# schedule with 1% warm-up and a floor at 0.1 x lr; gradient clipping at 1.0.
# A sweep is not a setting: each grid point is its own run (the `hp` wildcard) and the
# `select` stage picks one across seeds (dnatok.stats.select).
DEFAULT_SETTINGS = {
    "epochs": 10,
    "learning_rate": 1e-3,
    "batch_size": 64,
    "eval_batch_size": 256,
    "weight_decay": 0.1,
    "warmup_fraction": 0.01,
    "min_lr_ratio": 0.1,
    "schedule": "cosine",       # "cosine" (to min_lr_ratio x lr) or "linear" (to 0: the HF Trainer's)
    "warmup_steps": None,       # an int replaces warmup_fraction (the study's attention scripts: 50 or 30)
    "max_steps": None,          # stop after this many optimizer steps (DNABERT-2 on GUE mouse: 1000)
    "grad_clip": 1.0,
    "rc_aug": False,            # replace each training sequence by its reverse complement w.p. 0.5
    "conjoin": False,           # average forward and reverse-complement predictions
    "val_fraction": 0.1,        # held-out share of train when validation comes from train
    "select_metric": None,      # best-epoch metric; None: the protocol's rule; else one of SELECT_METRICS
    "patience": "protocol",     # early stopping: "protocol" (its rule), None (off) or epochs without gain
    # Never stop early before this epoch: on the demo a char model sits at validation MCC 0
    # for up to two epochs before it takes off (README, "What the demo measures").
    "min_epochs": 3,
    "add_special_tokens": False,  # the study tokenised without CLS/SEP
    # None: the protocol's length rule; an int overrides it; {task glob: int} gives per-task
    # budgets (the study's attention scripts), every task must match one pattern.
    "max_tokens": None,
    "lora": None,               # dict of peft LoraConfig arguments (needs peft installed)
    "model_name": None,         # the run's model name in metrics.json (the config's key); None: the arch
    "label": None,              # the run's name in the tables (a released model's: DNABERT2 ...); None: model/tokenizer
    "device": "auto",
    "threads": None,            # torch CPU threads (Snakemake's threads:); None leaves torch's default
    "log_every": 50,
    "progress": True,
}
SELECT_METRICS = ("mcc", "accuracy", "f1_macro", "auroc", "loss")
SCHEDULES = ("cosine", "linear")

# Architectures that read tokens in order (state-space recurrences): left padding goes
# into their state, so they accept an attention mask only with right padding.
RECURRENT = ("mamba", "caduceus", "hyena", "caduceus_hub")

# A max_len no sequence reaches: encode_batch then pads to the longest row only.
UNLIMITED = 2**31 - 1

# Keys of metrics.json that vary between identical runs (timing); tests ignore them.
VOLATILE_KEYS = ("wall_time_s",)


def resolve_settings(settings: dict | None) -> dict:
    settings = dict(settings or {})
    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise UserError(f"unknown fine-tuning setting(s): {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(DEFAULT_SETTINGS)}")
    out = {**DEFAULT_SETTINGS, **settings}
    for key in ("epochs", "batch_size", "eval_batch_size", "min_epochs"):
        if int(out[key]) < 1:
            raise UserError(f"setting {key} must be >= 1, got {out[key]}")
    if out["select_metric"] not in (None, *SELECT_METRICS):
        raise UserError(f"select_metric must be one of {', '.join(SELECT_METRICS)} or null, "
                        f"got {out['select_metric']!r}")
    if out["patience"] not in ("protocol", None) and int(out["patience"]) < 1:
        raise UserError(f"patience must be >= 1, None or 'protocol', got {out['patience']!r}")
    if out["schedule"] not in SCHEDULES:
        raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}, got {out['schedule']!r}")
    for key in ("warmup_steps", "max_steps"):
        if out[key] is not None and (isinstance(out[key], bool) or int(out[key]) < (0 if key == "warmup_steps" else 1)):
            raise UserError(f"setting {key} must be a {'non-negative' if key == 'warmup_steps' else 'positive'} "
                            f"integer or null, got {out[key]!r}")
    tokens = out["max_tokens"]
    if isinstance(tokens, dict):
        bad = {k: v for k, v in tokens.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
        if not tokens or bad:
            raise UserError(f"max_tokens by task needs positive integer budgets, got {bad or tokens}")
    elif tokens is not None and (isinstance(tokens, bool) or int(tokens) < 1):
        raise UserError(f"max_tokens must be a positive integer, a {{task pattern: integer}} mapping or null, "
                        f"got {tokens!r}")
    return out


def task_max_tokens(max_tokens, task: str | None) -> int | None:
    """The token budget ``max_tokens`` gives ``task``: an int as is; a mapping by the first
    matching task glob (in order); no match is an error, never a silent default."""
    import fnmatch

    if not isinstance(max_tokens, dict):
        return None if max_tokens is None else int(max_tokens)
    for pattern, value in max_tokens.items():
        if fnmatch.fnmatchcase(str(task), pattern):
            return int(value)
    raise UserError(f"max_tokens: no pattern matches task {task!r} (patterns: {', '.join(max_tokens)})")


# ----------------------------------------------------------------------------- encoding

def token_lengths(tok, sequences: list[str], add_special_tokens: bool, reverse: bool = False) -> np.ndarray:
    """Untruncated token count of each sequence (of its reverse complement with ``reverse``)."""
    encode = tok.encode_reverse_complement_batch if reverse else tok.encode_batch
    out = []
    for start in range(0, len(sequences), 4096):
        _, mask = encode(sequences[start:start + 4096], UNLIMITED, add_special_tokens=add_special_tokens)
        out.append(np.asarray(mask).sum(axis=1))
    return np.concatenate(out).astype(np.int64)


def token_budget(data: TaskData, lengths: dict, protocol: Protocol, settings: dict,
                 min_tokens: int = 1, max_tokens: int | None = None) -> tuple[int, str]:
    """Padded length in tokens and how it was decided. ``lengths``: view -> token counts
    (``train``, ``test`` … and, when both strands are fed, ``train_rc`` …), so under the
    true-length rule no view of any sequence is ever cut. ``min_tokens``: the shortest
    input the architecture accepts (the CNN's 57); a shorter budget is raised to it."""
    if settings["max_tokens"] is not None and protocol.recipe == "hf_trainer":
        # the Trainer scripts' max_length caps a batch padded to its longest row
        # (padding="longest"); with the attention mask the pad count changes nothing
        cap = task_max_tokens(settings["max_tokens"], data.info.get("name"))
        budget = min(cap, int(max(v.max() for v in lengths.values())))
        rule = f"longest task sequence in tokens, capped at the study's max_length {cap}"
    elif settings["max_tokens"] is not None:
        budget = task_max_tokens(settings["max_tokens"], data.info.get("name"))
        rule = "settings.max_tokens" + (" (by task)" if isinstance(settings["max_tokens"], dict) else "")
    elif protocol.length_rule == "study":
        study_len = data.info.get("study_len")
        if not study_len:
            raise UserError(f"protocol {protocol.name} pads to the study's length, but task "
                            f"{data.info.get('name')} has no study_len (not a registry task and no "
                            "task.json); pass settings max_tokens")
        budget, rule = int(study_len), "registry study_len (used as a token count)"
    else:
        # true length: the longest task sequence (either strand when both are fed) in this
        # tokenizer's tokens. Uses only the sequences, never labels, so looking at the test
        # inputs leaks nothing.
        budget = int(max(v.max() for v in lengths.values()))
        rule = "longest task sequence in tokens" + (", both strands" if any(k.endswith("_rc") for k in lengths) else "")
    if budget < min_tokens:
        return int(min_tokens), f"{rule}: {budget}, padded to the architecture's minimum {min_tokens}"
    if max_tokens is not None and budget > max_tokens:
        # the model has no positions beyond this: longer sequences are cut, and counted
        return int(max_tokens), f"{rule}: {budget}, capped at the model's {max_tokens} positions"
    return budget, rule


def fit_both_strands(tok, sequences: list[str], max_len: int, add_special_tokens: bool,
                     fwd: np.ndarray | None = None, rev: np.ndarray | None = None) -> tuple[list[str], int]:
    """Cut sequences so that both strands fit ``max_len`` tokens and cover the same bases.

    A sequence whose forward or reverse-complement tokenization is too long keeps its
    longest 5' prefix for which both fit (found by bisection on the number of bases); the
    reverse-complement view is then the reverse complement of that same prefix. ``fwd`` /
    ``rev``: the sequences' token lengths on each strand when already known. Returns the
    (possibly cut) sequences and how many were cut.
    """
    fwd = token_lengths(tok, sequences, add_special_tokens) if fwd is None else fwd
    rev = token_lengths(tok, sequences, add_special_tokens, reverse=True) if rev is None else rev
    out, cut = list(sequences), 0
    for i in np.flatnonzero((fwd > max_len) | (rev > max_len)):
        seq = sequences[i]

        def fits(n_bases: int) -> bool:
            part = [seq[:n_bases]]
            return (token_lengths(tok, part, add_special_tokens)[0] <= max_len
                    and token_lengths(tok, part, add_special_tokens, reverse=True)[0] <= max_len)

        lo, hi = 0, len(seq)            # fits(lo) holds, fits(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        out[i] = seq[:lo]
        cut += 1
    return out, cut


def encode(tok, sequences: list[str], max_len: int, padding_side: str, add_special_tokens: bool,
           fwd: np.ndarray, rev: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """(ids, mask[, rc_ids, rc_mask]) as int64 numpy arrays padded to ``max_len``, and which
    sequences were truncated; ``fwd`` / ``rev`` are their token lengths per strand. With
    ``rev`` both strands are encoded from the same bases (:func:`fit_both_strands`);
    otherwise a long sequence keeps its first tokens."""
    kw = dict(add_special_tokens=add_special_tokens, padding_side=padding_side, pad_to_max=True)
    rc = rev is not None
    if rc:
        fitted, _ = fit_both_strands(tok, sequences, max_len, add_special_tokens, fwd, rev)
        cut = np.asarray([len(a) != len(b) for a, b in zip(fitted, sequences)], dtype=bool)
        sequences = fitted
    else:
        cut = fwd > max_len
    ids, mask = tok.encode_batch(sequences, max_len, **kw)
    out = {"ids": np.asarray(ids, dtype=np.int64), "mask": np.asarray(mask, dtype=np.int64)}
    if rc:
        rids, rmask = tok.encode_reverse_complement_batch(sequences, max_len, **kw)
        out["rc_ids"] = np.asarray(rids, dtype=np.int64)
        out["rc_mask"] = np.asarray(rmask, dtype=np.int64)
    return out, cut


class TaskTokens:
    """A task's splits tokenized once and shared by every run of a pack: token lengths per
    split and strand, and the padded encodings, from which each run takes its rows (runs of
    one grid point differ only in which train rows form their validation set)."""

    def __init__(self, data: TaskData, tok, add_special_tokens: bool):
        self.data, self.tok, self.special = data, tok, add_special_tokens
        self._lengths, self._encoded = {}, {}

    def splits(self) -> dict[str, Split]:
        return {name: sp for name, sp in (("train", self.data.train), ("dev", self.data.dev),
                                          ("test", self.data.test)) if sp is not None}

    def lengths(self, both_strands: bool) -> dict[str, np.ndarray]:
        out = {}
        for name, sp in self.splits().items():
            for reverse in ((False, True) if both_strands else (False,)):
                key = f"{name}_rc" if reverse else name
                if key not in self._lengths:
                    self._lengths[key] = token_lengths(self.tok, sp.sequences, self.special, reverse=reverse)
                out[key] = self._lengths[key]
        return out

    def view(self, split: Split, source: str, max_len: int, padding_side: str, rc: bool) -> tuple[dict, int]:
        """Encodings of ``split`` (rows of the file ``source``) and how many were truncated."""
        key = (source, max_len, padding_side, rc)
        if key not in self._encoded:
            lengths = self.lengths(both_strands=rc)
            self._encoded[key] = encode(self.tok, self.splits()[source].sequences, max_len, padding_side,
                                        self.special, lengths[source], lengths.get(f"{source}_rc"))
        enc, cut = self._encoded[key]
        if split.rows is None:
            return enc, int(cut.sum())
        return {k: v[split.rows] for k, v in enc.items()}, int(cut[split.rows].sum())


# ----------------------------------------------------------------------------- train / eval

def _batch_inputs(enc: dict, idx, device, conjoin: bool, with_mask: bool, use_rc=None):
    """Model inputs for rows ``idx``; ``use_rc`` (bool per row) swaps in the reverse
    complement (rc augmentation); ``with_mask=False`` withholds the attention mask (the
    original protocol: padding is ordinary input)."""
    import torch

    ids, mask = enc["ids"][idx], enc["mask"][idx]
    if use_rc is not None and use_rc.any():
        ids, mask = ids.copy(), mask.copy()
        ids[use_rc] = enc["rc_ids"][idx][use_rc]
        mask[use_rc] = enc["rc_mask"][idx][use_rc]
    inputs = {"input_ids": torch.from_numpy(ids).to(device),
              "attention_mask": torch.from_numpy(mask).to(device) if with_mask else None}
    if conjoin:
        inputs["rc_input_ids"] = torch.from_numpy(enc["rc_ids"][idx]).to(device)
        inputs["rc_attention_mask"] = (torch.from_numpy(enc["rc_mask"][idx]).to(device)
                                       if with_mask else None)
    return inputs


def predict(model, enc: dict, labels: np.ndarray, batch_size: int, device, conjoin: bool,
            with_mask: bool = True):
    """(probs (n, K) float64, mean cross-entropy) over a whole split, in row order."""
    import torch

    model.eval()
    probs, loss_sum = [], 0.0
    n = labels.size
    with torch.no_grad():
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(n, start + batch_size))
            inputs = _batch_inputs(enc, idx, device, conjoin, with_mask)
            y = torch.from_numpy(labels[idx]).to(device)
            with autocast(device):
                logits = model(**inputs).logits
            logits = logits.float()
            loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            probs.append(torch.softmax(logits, dim=-1).cpu().numpy().astype(np.float64))
    return np.concatenate(probs), loss_sum / n


def evaluate(model, enc, split: Split, num_classes, batch_size, device, conjoin, with_mask=True,
             per_batch_mcc: int | None = None):
    """Whole-set metrics (+ probabilities). ``per_batch_mcc``: also record the study's
    faulty per-batch MCC average over batches of this size (its evaluation batches were
    the training batch size)."""
    probs, loss = predict(model, enc, split.labels, batch_size, device, conjoin, with_mask)
    preds = probs.argmax(axis=1)
    m = classification_metrics(split.labels, preds, probs=probs if num_classes == 2 else None,
                               num_classes=num_classes)
    m["loss"] = loss
    if per_batch_mcc:
        # the study's faulty epoch metric, recorded beside the true MCC (quirk measurement)
        m["mcc_per_batch_mean"] = per_batch_mcc_mean(split.labels, preds, int(per_batch_mcc))
    m["predicted_classes"] = int(np.unique(preds).size)
    return m, probs


class BestEpoch:
    """Which epoch's weights a run keeps, and when it stops.

    An epoch is a gain when its selection metric beats the best so far, or — with the
    protocol's ``selection_tie_break == "loss"`` — ties it with a lower validation loss.
    Early stopping needs ``patience`` epochs without gain *and* at least ``min_epochs``
    epochs trained.
    """

    def __init__(self, metric: str, patience: int | None, min_epochs: int, tie_break: str):
        self.metric, self.patience, self.min_epochs, self.tie_break = metric, patience, min_epochs, tie_break
        self.value = self.loss = self.epoch = self.state = None
        self.since = 0

    def _gain(self, value, loss) -> bool:
        if value is None:
            return False
        if self.value is None:
            return True
        if value == self.value:
            return self.tie_break == "loss" and self.metric != "loss" and loss < self.loss
        return value < self.value if self.metric == "loss" else value > self.value

    def update(self, epoch: int, value, loss: float, model) -> bool:
        """Record one epoch's validation result; True when training should stop."""
        if self._gain(value, loss):
            self.value, self.loss, self.epoch, self.since = value, loss, epoch, 0
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        self.since += 1
        return self.patience is not None and self.since >= self.patience and epoch >= self.min_epochs


def _apply_lora(model, lora: dict, logger):
    """LoRA adapters on the backbone's linear layers (peft); the new classification head
    (``classifier`` in every dnatok classifier) stays fully trainable."""
    try:
        import peft
    except ImportError:
        raise UserError("settings.lora needs the optional package peft (pip install 'dnatok[lora]')") from None
    import torch

    cfg = dict(lora if isinstance(lora, dict) else {})
    cfg.setdefault("r", 8)
    cfg.setdefault("lora_alpha", 16)
    cfg.setdefault("lora_dropout", 0.05)
    cfg.setdefault("modules_to_save", ["classifier"])
    if "target_modules" not in cfg:
        cfg["target_modules"] = [name for name, m in model.named_modules()
                                 if isinstance(m, torch.nn.Linear) and not name.startswith("classifier")]
        if not cfg["target_modules"]:
            raise UserError(f"LoRA: {type(model).__name__} has no linear layers outside its head")
    model = peft.get_peft_model(model, peft.LoraConfig(**cfg))
    logger.info("LoRA adapters on %d modules, r=%s", len(cfg["target_modules"]), cfg["r"])
    return model


def _run_options(settings: dict, protocol: Protocol, benchmark, logger) -> dict:
    """Selection metric, patience and strand options of a run; settings may override the
    protocol (explicit wins), said loudly because under ``original`` these are quirks."""
    sel_metric = settings["select_metric"] or protocol.selection_metric_for(benchmark)
    if sel_metric != protocol.selection_metric_for(benchmark):
        logger.warning("settings select_metric=%s overrides protocol %s (%s)", sel_metric, protocol.name,
                       protocol.selection_metric_for(benchmark))
    patience = (protocol.early_stopping_patience if settings["patience"] == "protocol"
                else settings["patience"])
    if patience != protocol.early_stopping_patience:
        logger.warning("settings patience=%s overrides protocol %s (%s)", patience, protocol.name,
                       protocol.early_stopping_patience)
    rc_aug, conjoin = bool(settings["rc_aug"]), bool(settings["conjoin"])
    if rc_aug and conjoin:
        logger.warning("conjoin averages both strands already: rc_aug turned off (as the study did)")
        rc_aug = False
    return {"sel_metric": sel_metric, "patience": patience, "rc_aug": rc_aug, "conjoin": conjoin}


def model_token_limit(arch: str, model_hparams: dict, pretrained) -> int | None:
    """Longest input the run's model reads: a released checkpoint's positions, or the
    architecture's limit for the hyperparameters (a pretrained model's own, when given)."""
    from dnatok.architectures import max_tokens

    if isinstance(pretrained, ReleasedCheckpoint):
        from dnatok import released

        return released.token_limit(pretrained)
    if pretrained:
        saved = json.loads((Path(pretrained) / "config.json").read_text())
        model_hparams = {**saved, **model_hparams}
    return max_tokens(arch, model_hparams)


def _prepare_inputs(data: TaskData, arch: str, tokens: TaskTokens, seed: int, protocol: Protocol,
                    settings: dict, opts: dict, model_hparams: dict, pretrained, logger) -> dict:
    """Validation split, token budget and the encoded splits of one run."""
    from dnatok.architectures import min_tokens

    split_seed = protocol.split_seed(seed)
    train, val, val_source = make_validation(data, split_seed, protocol.validation_from_train,
                                             protocol.validation_split_for(data.info.get("benchmark")),
                                             settings["val_fraction"])
    need_rc = opts["rc_aug"] or opts["conjoin"]
    lengths = tokens.lengths(both_strands=need_rc)
    max_len, len_rule = token_budget(data, lengths, protocol, settings, min_tokens(arch, model_hparams),
                                     model_token_limit(arch, model_hparams, pretrained))
    with_mask = protocol.model_sees_padding_mask
    if with_mask and protocol.padding_side == "left" and arch in RECURRENT:
        raise UserError(f"{arch} reads its input in order, so with a padding mask it needs right padding; "
                        "left padding is only replayable without the mask (model_sees_padding_mask=false, "
                        "as in the original protocol)")
    val_file = "dev" if val_source == "dev.csv" else "train"
    side = protocol.padding_side
    # one encoding per file serves train and validation rows alike, so with rc_aug the
    # validation rows are encoded on both strands too (and counted as such when cut)
    enc_train, cut_train = tokens.view(train, "train", max_len, side, need_rc)
    enc_val, cut_val = tokens.view(val, val_file, max_len, side, need_rc if val_file == "train" else opts["conjoin"])
    enc_test, cut_test = tokens.view(data.test, "test", max_len, side, opts["conjoin"])
    # counted over every view the model reads (both strands where both are fed)
    truncated = {"train": cut_train, "validation": cut_val, "test": cut_test}
    if any(truncated.values()):
        logger.warning("sequences longer than %d tokens are truncated (both strands alike): %s",
                       max_len, truncated)
    logger.info("task %s: train %d, validation %d (%s), test %d, %d classes; %d tokens (%s), %s padding",
                data.info.get("name"), len(train), len(val), val_source, len(data.test), data.num_classes,
                max_len, len_rule, protocol.padding_side)
    return {"train": train, "val": val, "val_source": val_source, "enc_train": enc_train,
            "enc_val": enc_val, "enc_test": enc_test, "max_len": max_len, "len_rule": len_rule,
            "truncated": truncated, "with_mask": with_mask, "split_seed": split_seed}


class ReleasedCheckpoint(str):
    """A released checkpoint folder given as the pretrained model: the classifier is the
    family's own (dnatok.released), its weights loaded strictly, its head new."""


def _build_model(arch, tok, data: TaskData, protocol: Protocol, pretrained, settings, opts, max_len,
                 model_hparams, device, logger):
    """(classifier on ``device``, load report of a released checkpoint or None)."""
    report = None
    if isinstance(pretrained, ReleasedCheckpoint):
        from dnatok import released

        if model_hparams:
            raise UserError(f"a released checkpoint brings its own architecture; drop the model "
                            f"hyperparameters {sorted(model_hparams)}")
        model, report = released.load_classifier(pretrained, data.num_classes, arch, pooling=protocol.pooling,
                                                 conjoin=opts["conjoin"])
        logger.info("released %s checkpoint %s: %d tensors loaded; dropped (pretraining head): %s; "
                    "new (initialised here): %s", report["family"], pretrained, report["loaded"],
                    ", ".join(report["dropped"]) or "none", ", ".join(report["initialised"]) or "none")
    else:
        from dnatok.models import build_classifier

        model = build_classifier(arch, num_labels=data.num_classes, vocab_size=tok.vocab_size,
                                 pad_token_id=tok.pad_id, pretrained=pretrained,
                                 complement_map=getattr(tok, "complement_map", None), pooling=protocol.pooling,
                                 conjoin=opts["conjoin"], max_len=max_len, code_vectors=code_vectors(tok),
                                 **model_hparams)
    if settings["lora"]:
        model = _apply_lora(model, settings["lora"], logger)
    model.to(device)
    return model, report


def training_length(settings: dict, steps_per_epoch: int) -> tuple[int, int]:
    """(epochs, optimizer steps). ``max_steps`` wins over ``epochs`` as in the HF Trainer:
    training runs exactly that many steps, over as many epochs as it takes."""
    if settings["max_steps"]:
        total = int(settings["max_steps"])
        return math.ceil(total / steps_per_epoch), total
    epochs = int(settings["epochs"])
    return epochs, steps_per_epoch * epochs


def make_schedule(optimizer, settings: dict, total_steps: int):
    warmup = (int(settings["warmup_steps"]) if settings["warmup_steps"] is not None
              else int(total_steps * settings["warmup_fraction"]))
    if settings["schedule"] == "linear":
        return linear_with_warmup(optimizer, warmup, total_steps)
    return cosine_with_warmup(optimizer, warmup, total_steps, float(settings["min_lr_ratio"]))


def _fit(model, inputs: dict, data: TaskData, train_seed: int, protocol: Protocol, settings: dict,
         opts: dict, device, logger) -> tuple[BestEpoch, list, list]:
    """The epoch loop: train, evaluate on validation, keep the best epoch, stop early."""
    import torch

    train, enc_train = inputs["train"], inputs["enc_train"]
    bs = int(settings["batch_size"])
    steps_per_epoch = math.ceil(len(train) / bs)
    epochs, total_steps = training_length(settings, steps_per_epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(settings["learning_rate"]),
                                  weight_decay=float(settings["weight_decay"]))
    scheduler = make_schedule(optimizer, settings, total_steps)
    step = 0
    best = BestEpoch(opts["sel_metric"], opts["patience"], int(settings["min_epochs"]),
                     protocol.selection_tie_break)
    history, collapsed_epochs = [], []
    for epoch in range(1, epochs + 1):
        model.train()
        # shuffling and rc flips come from a generator keyed by (training seed, epoch):
        # reproducible and independent of anything else the run draws
        rng = np.random.default_rng([train_seed, epoch])
        order = rng.permutation(len(train))
        flips = rng.random(len(train)) < 0.5 if opts["rc_aug"] else None
        bar = Progress(steps_per_epoch, f"epoch {epoch}/{epochs}", logger, settings["log_every"],
                       settings["progress"])
        loss_sum, seen = 0.0, 0
        for b in range(min(steps_per_epoch, total_steps - step)):
            step += 1
            idx = order[b * bs:(b + 1) * bs]
            batch = _batch_inputs(enc_train, idx, device, opts["conjoin"], inputs["with_mask"],
                                  flips[b * bs:(b + 1) * bs] if flips is not None else None)
            y = torch.from_numpy(train.labels[idx]).to(device)
            with autocast(device):
                loss = model(**batch, labels=y).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(params, float(settings["grad_clip"]))
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * idx.size
            seen += idx.size
            bar.update(loss=float(loss.detach()))
        bar.close()
        vm, _ = evaluate(model, inputs["enc_val"], inputs["val"], data.num_classes,
                         int(settings["eval_batch_size"]), device, opts["conjoin"], inputs["with_mask"])
        if vm["predicted_classes"] < 2:
            collapsed_epochs.append(epoch)
            logger.warning("epoch %d: the model predicts a single class on validation (collapse)", epoch)
        history.append({"epoch": epoch, "train_loss": loss_sum / seen,
                        **{k: vm[k] for k in ("loss", "accuracy", "mcc", "f1_macro") if k in vm}})
        logger.info("epoch %d: train loss %.4f | validation loss %.4f acc %.4f mcc %.4f",
                    epoch, loss_sum / seen, vm["loss"], vm["accuracy"], vm["mcc"])
        if best.update(epoch, vm.get(opts["sel_metric"]), vm["loss"], model):
            logger.info("early stop: validation %s has not improved for %d epochs", opts["sel_metric"],
                        opts["patience"])
            break
    if best.state is None:   # selection metric undefined every epoch (e.g. auroc on one class)
        best.epoch = len(history)
        best.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return best, history, collapsed_epochs


def _write_predictions(path: Path, test: Split, probs: np.ndarray) -> None:
    preds = probs.argmax(axis=1)
    with open(path, "w") as fh:
        fh.write("\t".join(["id", "label", "pred"] + [f"prob_{k}" for k in range(probs.shape[1])]) + "\n")
        for i in range(len(test)):
            row = "\t".join(f"{p:.6f}" for p in probs[i])
            fh.write(f"{test.ids[i]}\t{test.labels[i]}\t{preds[i]}\t{row}\n")


def _train_one(data: TaskData, arch: str, tokens: TaskTokens, tok_name: str, work: Path, seed: int,
               protocol: Protocol, pretrained, settings: dict, model_hparams: dict, logger) -> dict:
    """Train + select the best epoch + test once, into ``work`` (a fresh folder)."""
    tok = tokens.tok
    import torch

    t0 = time.time()
    device = resolve_device(settings["device"])
    if settings["threads"]:
        torch.set_num_threads(int(settings["threads"]))
    benchmark = data.info.get("benchmark")
    opts = _run_options(settings, protocol, benchmark, logger)
    inputs = _prepare_inputs(data, arch, tokens, seed, protocol, settings, opts, model_hparams, pretrained,
                             logger)
    train_seed = protocol.training_seed(seed)
    seed_everything(train_seed)
    model, release_report = _build_model(arch, tok, data, protocol, pretrained, settings, opts,
                                         inputs["max_len"], model_hparams, device, logger)
    n_total, n_trainable = count_parameters(model)
    logger.info("model %s: %d parameters (%d trainable), device %s, pretrained=%s",
                arch, n_total, n_trainable, device, pretrained)
    best, history, collapsed_epochs = _fit(model, inputs, data, train_seed, protocol, settings, opts,
                                           device, logger)
    model.load_state_dict(best.state)
    eval_bs = int(settings["eval_batch_size"])
    val_m, _ = evaluate(model, inputs["enc_val"], inputs["val"], data.num_classes, eval_bs, device,
                        opts["conjoin"], inputs["with_mask"])
    # the single test evaluation of the run, with the selected weights
    test_m, test_probs = evaluate(model, inputs["enc_test"], data.test, data.num_classes, eval_bs, device,
                                  opts["conjoin"], inputs["with_mask"],
                                  per_batch_mcc=int(settings["batch_size"]) if protocol.report_per_batch_mcc else None)
    _write_predictions(work / "predictions.tsv", data.test, test_probs)
    wall = time.time() - t0
    run = {"seed": seed, "train_seed": train_seed, "benchmark": benchmark, "best": best, "history": history,
           "collapsed_epochs": collapsed_epochs, "val_m": val_m, "test_m": test_m, "wall": wall,
           "device": device, "n_params": (n_total, n_trainable), "release_load": release_report,
           "tokenizer_variant": getattr(tok, "name", tok_name)}
    metrics = _metrics_record(data, arch, tok_name, protocol, pretrained, settings, opts, inputs,
                              model_hparams, run)
    if metrics["collapsed"]:
        logger.warning("COLLAPSED: %s", metrics["collapse_note"])
    write_json(work / "metrics.json", metrics)
    write_json(work / "provenance.json", provenance(
        stage="finetune", task_dir=str(data.path), protocol=protocol.to_dict(), settings=settings,
        model_hparams=model_hparams, seed=int(seed), device=str(device), wall_time_s=round(wall, 3),
        threads=torch.get_num_threads(), tokenizer=tok_name, pretrained=str(pretrained) if pretrained else None,
        released_checkpoint=release_report))
    logger.info("test: mcc %.4f accuracy %.4f (best epoch %d of %d, %.1fs)", test_m["mcc"],
                test_m["accuracy"], best.epoch, len(history), wall)
    return metrics


def _metrics_record(data, arch, tok_name, protocol, pretrained, settings, opts, inputs, model_hparams,
                    run) -> dict:
    """The content of metrics.json."""
    best, val_m, test_m = run["best"], run["val_m"], run["test_m"]
    collapsed = val_m["predicted_classes"] < 2
    note = ""
    if collapsed:
        note = f"selected model (epoch {best.epoch}) predicts a single class on validation"
    elif run["collapsed_epochs"]:
        note = f"single-class validation predictions at epochs {run['collapsed_epochs']}; selected epoch is not"
    hyper = {
        "learning_rate": float(settings["learning_rate"]), "batch_size": int(settings["batch_size"]),
        "epochs": int(settings["epochs"]), "rc_aug": opts["rc_aug"], "conjoin": opts["conjoin"],
        "weight_decay": float(settings["weight_decay"]), "warmup_fraction": settings["warmup_fraction"],
        "min_lr_ratio": settings["min_lr_ratio"], "grad_clip": settings["grad_clip"],
        "max_tokens": inputs["max_len"], "length_rule": inputs["len_rule"],
        "padding_side": protocol.padding_side, "pooling": protocol.pooling,
        "padding_mask_to_model": inputs["with_mask"], "selection_metric": opts["sel_metric"],
        "early_stopping_patience": opts["patience"], "min_epochs": int(settings["min_epochs"]),
        "add_special_tokens": settings["add_special_tokens"], "lora": settings["lora"],
        "model": dict(model_hparams),
    }
    strip = ("predicted_classes",)
    return {
        "benchmark": run["benchmark"], "task": data.info.get("name"), "category": data.info.get("category"),
        "model": settings["model_name"] or arch, "architecture": arch, "tokenizer": tok_name,
        "label": settings["label"], "tokenizer_variant": run["tokenizer_variant"],
        "seed": int(run["seed"]), "split_seed": inputs["split_seed"], "training_seed": run["train_seed"],
        "protocol": protocol.name, "protocol_fields": protocol.to_dict(),
        "pretrained": str(pretrained) if pretrained else None,
        "released_checkpoint": isinstance(pretrained, ReleasedCheckpoint),
        "new_head_tensors": (run["release_load"] or {}).get("initialised"),
        "protocol_recipe": protocol.recipe, "validation_source": inputs["val_source"],
        "n_train": len(inputs["train"]), "n_validation": len(inputs["val"]), "n_test": len(data.test),
        "test": {k: v for k, v in test_m.items() if k not in strip},
        "validation": {k: v for k, v in val_m.items() if k not in strip},
        "selection_metric": opts["sel_metric"], "hyperparameters": hyper,
        "collapsed": bool(collapsed), "collapse_note": note,
        "epochs_run": len(run["history"]), "best_epoch": best.epoch, "history": run["history"],
        "truncated_sequences": inputs["truncated"], "device": str(run["device"]),
        "n_params": run["n_params"][0], "n_trainable_params": run["n_params"][1],
        "wall_time_s": round(run["wall"], 3),
    }


def _run_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("metrics.json", "predictions.tsv", "provenance.json"))


def _checked_call(protocol, settings, model_hparams, pretrained, task_dir, task, arch, checkpoint=None):
    """The arguments of a fine-tuning call, resolved and checked, and the task read.
    ``checkpoint``: a released checkpoint folder (dnatok.released) instead of ``pretrained``."""
    protocol = get_protocol(protocol, arch)
    settings = resolve_settings(settings)
    if pretrained and checkpoint:
        raise UserError("give a pretrained model or a released checkpoint, not both")
    pretrained = ReleasedCheckpoint(checkpoint) if checkpoint else (str(pretrained) if pretrained else None)
    if pretrained and not Path(pretrained).is_dir():
        raise UserError(f"{'checkpoint' if checkpoint else 'pretrained model'} folder {pretrained} does not exist")
    return protocol, settings, dict(model_hparams or {}), pretrained, load_task(task_dir, task)


def run_tokenizer(tokenizer, workdir: Path, arch: str, pretrained, protocol: Protocol, benchmark):
    """(tokenizer, name) of a run: ``own`` = the released checkpoint's own tokenizer (for
    DNABERT-k fed un-spaced where the protocol replays the study's --kmer -1 bug)."""
    from dnatok.released import OWN_TOKENIZER

    if str(tokenizer) != OWN_TOKENIZER:
        if isinstance(pretrained, ReleasedCheckpoint):
            raise UserError(f"a released checkpoint is fine-tuned with its own tokenizer: pass "
                            f"--tokenizer {OWN_TOKENIZER}, not {tokenizer}")
        return resolve_tokenizer(tokenizer, workdir)
    if not isinstance(pretrained, ReleasedCheckpoint):
        raise UserError(f"tokenizer {OWN_TOKENIZER!r} is a released checkpoint's own; give --checkpoint")
    from dnatok import released

    options = {"unspaced": True} if arch == "dnabert" and benchmark in protocol.unspaced_kmer_benchmarks else {}
    return released.load_tokenizer(pretrained, arch, **options), OWN_TOKENIZER


def _logged_run(work: Path, data, arch, tokens: TaskTokens, tok_name, seed, protocol, pretrained,
                settings, model_hparams) -> dict:
    logger = make_logger(f"dnatok.finetune.{id(work)}", work / "train.log")
    try:
        logger.info("finetune %s / %s / %s seed %d, protocol %s", data.info.get("name"), arch,
                    tok_name, seed, protocol.name)
        return _train_one(data, arch, tokens, tok_name, work, int(seed), protocol, pretrained,
                          settings, model_hparams, logger)
    finally:
        close_logger(logger)


def finetune_seeds(task_dir, arch: str, tokenizer, out_root, seeds, protocol="corrected",
                   pretrained=None, settings: dict | None = None, model_hparams: dict | None = None,
                   task=None, log=None, checkpoint=None) -> list[dict]:
    """Fine-tune one grid point for several seeds in one process (a pack of one grid point,
    :func:`dnatok.train.pack.finetune_pack`): each run goes to ``out_root/seed{N}`` exactly
    as :func:`finetune` would write it alone; a complete run folder written by the same
    run is kept, so a restarted job continues with the runs it had not finished."""
    from dnatok.train.pack import finetune_pack

    return finetune_pack(task_dir, arch, tokenizer, out_root, seeds, None, protocol, pretrained, settings,
                         model_hparams, task, log, checkpoint)


def finetune(task_dir, arch: str, tokenizer, out_dir, seed: int, protocol="corrected",
             pretrained=None, settings: dict | None = None, model_hparams: dict | None = None,
             task=None, checkpoint=None) -> dict:
    """Fine-tune ``arch`` on the task in ``task_dir``; returns the metrics written to
    ``out_dir/metrics.json``.

    ``tokenizer``: a kind name (``char``, ``kmer6``), a saved tokenizer folder or a
    tokenizer object. ``protocol``: ``"corrected"`` (default), ``"original"``, a
    :class:`Protocol`, or ``{"base": name, field: value}``. ``settings``: see
    :data:`DEFAULT_SETTINGS`. ``model_hparams`` go to ``build_classifier``.
    ``task``: a registry Task or dict overriding ``task.json``. ``checkpoint``: a released
    checkpoint folder (dnatok.released) to start from instead of ``pretrained``, with
    ``tokenizer="own"`` (its own tokenizer).
    """
    protocol, settings, model_hparams, pretrained, data = _checked_call(
        protocol, settings, model_hparams, pretrained, task_dir, task, arch, checkpoint)
    with atomic_path(out_dir, is_dir=True) as work:
        tok, tok_name = run_tokenizer(tokenizer, work / "tokenizer", arch, pretrained, protocol,
                                      data.info.get("benchmark"))
        tokens = TaskTokens(data, tok, settings["add_special_tokens"])
        return _logged_run(work, data, arch, tokens, tok_name, seed, protocol, pretrained, settings,
                           model_hparams)
