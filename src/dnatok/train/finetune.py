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

import copy
import math
import shutil
import time
from pathlib import Path

import numpy as np

from dnatok.errors import UserError
from dnatok.io import atomic_path, provenance, write_json
from dnatok.train.common import (Progress, autocast, close_logger, cosine_with_warmup,
                                 count_parameters, make_logger, resolve_device,
                                 resolve_tokenizer, seed_everything)
from dnatok.train.metrics import classification_metrics, per_batch_mcc_mean
from dnatok.train.protocol import Protocol, get_protocol
from dnatok.train.splits import Split, TaskData, load_task, make_validation

# Hyperparameters (not protocol quirks): the study's CNN / genomic-benchmark recipe.
# lr 1e-3 and batch 64 for 10 epochs; AdamW with weight decay 0.1; timm cosine
# schedule with 1% warm-up and a floor at 0.1 x lr; gradient clipping at 1.0.
DEFAULT_SETTINGS = {
    "epochs": 10,
    "learning_rate": 1e-3,
    "batch_size": 64,
    "eval_batch_size": 256,
    "weight_decay": 0.1,
    "warmup_fraction": 0.01,
    "min_lr_ratio": 0.1,
    "grad_clip": 1.0,
    "rc_aug": False,            # replace each training sequence by its reverse complement w.p. 0.5
    "conjoin": False,           # average forward and reverse-complement predictions
    "val_fraction": 0.1,        # held-out share of train when validation comes from train
    "select_metric": None,      # best-epoch metric; None: the protocol's rule; else mcc|accuracy|f1|auroc|loss
    "patience": "protocol",     # early stopping: "protocol" (its rule), None (off) or epochs without gain
    "add_special_tokens": False,  # the study tokenised without CLS/SEP
    "max_tokens": None,         # None: the protocol's length rule; an int overrides it
    "lora": None,               # dict of peft LoraConfig arguments (needs peft installed)
    "grid": None,               # {"learning_rate": [...], "batch_size": [...]} small sweep
    "select_on": "validation",  # grid selection: validation | test (test: original protocol only)
    "model_name": None,         # the run's model name in metrics.json (the config's key); None: the arch
    "device": "auto",
    "threads": None,            # torch CPU threads (Snakemake's threads:); None leaves torch's default
    "log_every": 50,
    "progress": True,
}

# Architectures that read tokens in order (state-space recurrences): left padding goes
# into their state, so they accept an attention mask only with right padding.
RECURRENT = ("mamba", "caduceus")

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
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if int(out[key]) < 1:
            raise UserError(f"setting {key} must be >= 1, got {out[key]}")
    if out["select_metric"] not in (None, "mcc", "accuracy", "f1", "auroc", "loss"):
        raise UserError(f"select_metric must be mcc, accuracy, f1, auroc or loss, got {out['select_metric']!r}")
    if out["patience"] not in ("protocol", None) and int(out["patience"]) < 1:
        raise UserError(f"patience must be >= 1, None or 'protocol', got {out['patience']!r}")
    if out["select_on"] not in ("validation", "test"):
        raise UserError(f"select_on must be 'validation' or 'test', got {out['select_on']!r}")
    return out


# ----------------------------------------------------------------------------- encoding

def token_lengths(tok, sequences: list[str], add_special_tokens: bool) -> np.ndarray:
    """Untruncated token count of each sequence."""
    out = []
    for start in range(0, len(sequences), 4096):
        _, mask = tok.encode_batch(sequences[start:start + 4096], UNLIMITED,
                                   add_special_tokens=add_special_tokens)
        out.append(np.asarray(mask).sum(axis=1))
    return np.concatenate(out).astype(np.int64)


def token_budget(data: TaskData, lengths: dict, protocol: Protocol, settings: dict) -> tuple[int, str]:
    """Padded length in tokens and how it was decided. ``lengths``: split -> token counts."""
    if settings["max_tokens"] is not None:
        return int(settings["max_tokens"]), "settings.max_tokens"
    if protocol.length_rule == "study":
        study_len = data.info.get("study_len")
        if not study_len:
            raise UserError(f"protocol {protocol.name} pads to the study's length, but task "
                            f"{data.info.get('name')} has no study_len (not a registry task and no "
                            "task.json); pass settings max_tokens")
        return int(study_len), "registry study_len (used as a token count)"
    # true length: the longest task sequence in this tokenizer's tokens. Uses only the
    # sequences, never labels, so looking at the test inputs leaks nothing.
    return int(max(v.max() for v in lengths.values())), "longest task sequence in tokens"


def encode(tok, split: Split, max_len: int, protocol: Protocol, settings: dict, rc: bool):
    """(ids, mask[, rc_ids, rc_mask]) as int64 numpy arrays padded to ``max_len``."""
    kw = dict(add_special_tokens=settings["add_special_tokens"],
              padding_side=protocol.padding_side, pad_to_max=True)
    ids, mask = tok.encode_batch(split.sequences, max_len, **kw)
    out = {"ids": np.asarray(ids, dtype=np.int64), "mask": np.asarray(mask, dtype=np.int64)}
    if rc:
        rids, rmask = tok.encode_reverse_complement_batch(split.sequences, max_len, **kw)
        out["rc_ids"] = np.asarray(rids, dtype=np.int64)
        out["rc_mask"] = np.asarray(rmask, dtype=np.int64)
    return out


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


def _better(value, best, metric: str) -> bool:
    if value is None:
        return False
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


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


def _train_one(data: TaskData, arch: str, tok, tok_name: str, work: Path, seed: int,
               protocol: Protocol, pretrained, settings: dict, model_hparams: dict, logger) -> dict:
    """Train + select + test into ``work`` (already a fresh folder). Returns metrics."""
    import torch

    from dnatok.models import build_classifier

    t0 = time.time()
    device = resolve_device(settings["device"])
    if settings["threads"]:
        torch.set_num_threads(int(settings["threads"]))
    num_classes = data.num_classes
    benchmark = data.info.get("benchmark")
    # settings may override the protocol's selection metric and patience (explicit wins);
    # say so loudly, because under the original protocol both are replayed quirks
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

    split_seed, train_seed = protocol.split_seed(seed), protocol.training_seed(seed)
    train, val, val_source = make_validation(data, split_seed, protocol.validation_from_train,
                                             protocol.stratified_validation, settings["val_fraction"])
    lengths = {name: token_lengths(tok, sp.sequences, settings["add_special_tokens"])
               for name, sp in (("train", data.train), ("dev", data.dev), ("test", data.test)) if sp is not None}
    max_len, len_rule = token_budget(data, lengths, protocol, settings)
    truncated = {name: int((v > max_len).sum()) for name, v in lengths.items()}
    if any(truncated.values()):
        logger.warning("sequences longer than %d tokens are truncated: %s", max_len, truncated)
    logger.info("task %s: train %d, validation %d (%s), test %d, %d classes; %d tokens (%s), %s padding",
                data.info.get("name"), len(train), len(val), val_source, len(data.test), num_classes,
                max_len, len_rule, protocol.padding_side)
    need_rc = rc_aug or conjoin
    with_mask = protocol.model_sees_padding_mask
    if with_mask and protocol.padding_side == "left" and arch in RECURRENT:
        raise UserError(f"{arch} reads its input in order, so with a padding mask it needs right padding; "
                        "left padding is only replayable without the mask (model_sees_padding_mask=false, "
                        "as in the original protocol)")
    enc_train = encode(tok, train, max_len, protocol, settings, need_rc)
    enc_val = encode(tok, val, max_len, protocol, settings, conjoin)
    enc_test = encode(tok, data.test, max_len, protocol, settings, conjoin)

    seed_everything(train_seed)
    complement_map = getattr(tok, "complement_map", None)
    model = build_classifier(arch, num_labels=num_classes, vocab_size=tok.vocab_size,
                             pad_token_id=tok.pad_id, pretrained=pretrained,
                             complement_map=complement_map, pooling=protocol.pooling,
                             conjoin=conjoin, max_len=max_len, **model_hparams)
    if settings["lora"]:
        model = _apply_lora(model, settings["lora"], logger)
    model.to(device)
    n_total, n_trainable = count_parameters(model)
    logger.info("model %s: %d parameters (%d trainable), device %s, pretrained=%s",
                arch, n_total, n_trainable, device, pretrained)

    bs, epochs = int(settings["batch_size"]), int(settings["epochs"])
    steps_per_epoch = math.ceil(len(train) / bs)
    total_steps = steps_per_epoch * epochs
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(settings["learning_rate"]),
                                  weight_decay=float(settings["weight_decay"]))
    scheduler = cosine_with_warmup(optimizer, int(total_steps * settings["warmup_fraction"]),
                                   total_steps, float(settings["min_lr_ratio"]))

    history, best, best_epoch, best_state, since_best = [], None, None, None, 0
    collapsed_epochs = []
    for epoch in range(1, epochs + 1):
        model.train()
        # shuffling and rc flips come from a generator keyed by (training seed, epoch):
        # reproducible and independent of anything else the run draws
        rng = np.random.default_rng([train_seed, epoch])
        order = rng.permutation(len(train))
        flips = rng.random(len(train)) < 0.5 if rc_aug else None
        bar = Progress(steps_per_epoch, f"epoch {epoch}/{epochs}", logger, settings["log_every"],
                       settings["progress"])
        loss_sum, seen = 0.0, 0
        for b in range(steps_per_epoch):
            idx = order[b * bs:(b + 1) * bs]
            inputs = _batch_inputs(enc_train, idx, device, conjoin, with_mask,
                                   flips[b * bs:(b + 1) * bs] if flips is not None else None)
            y = torch.from_numpy(train.labels[idx]).to(device)
            with autocast(device):
                out = model(**inputs, labels=y)
            loss = out.loss
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
        vm, _ = evaluate(model, enc_val, val, num_classes, int(settings["eval_batch_size"]), device,
                         conjoin, with_mask)
        value = vm.get(sel_metric)
        if vm["predicted_classes"] < 2:
            collapsed_epochs.append(epoch)
            logger.warning("epoch %d: the model predicts a single class on validation (collapse)", epoch)
        history.append({"epoch": epoch, "train_loss": loss_sum / seen,
                        **{k: vm[k] for k in ("loss", "accuracy", "mcc", "f1") if k in vm}})
        logger.info("epoch %d: train loss %.4f | validation loss %.4f acc %.4f mcc %.4f",
                    epoch, loss_sum / seen, vm["loss"], vm["accuracy"], vm["mcc"])
        if _better(value, best, sel_metric):
            best, best_epoch, since_best = value, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            since_best += 1
            if patience is not None and since_best >= patience:
                logger.info("early stop: validation %s has not improved for %d epochs", sel_metric, patience)
                break
    if best_state is None:   # selection metric undefined every epoch (e.g. auroc on one class)
        best_epoch = len(history)
        best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    val_m, _ = evaluate(model, enc_val, val, num_classes, int(settings["eval_batch_size"]), device, conjoin,
                        with_mask)
    # the single test evaluation of the run, with the selected weights
    test_m, test_probs = evaluate(model, enc_test, data.test, num_classes, int(settings["eval_batch_size"]),
                                  device, conjoin, with_mask,
                                  per_batch_mcc=bs if protocol.report_per_batch_mcc else None)
    collapsed = val_m["predicted_classes"] < 2
    note = ""
    if collapsed:
        note = f"selected model (epoch {best_epoch}) predicts a single class on validation"
    elif collapsed_epochs:
        note = f"single-class validation predictions at epochs {collapsed_epochs}; selected epoch is not"
    if collapsed:
        logger.warning("COLLAPSED: %s", note)

    preds = test_probs.argmax(axis=1)
    with open(work / "predictions.tsv", "w") as fh:
        fh.write("\t".join(["id", "label", "pred"] + [f"prob_{k}" for k in range(test_probs.shape[1])]) + "\n")
        for i in range(len(data.test)):
            probs = "\t".join(f"{p:.6f}" for p in test_probs[i])
            fh.write(f"{data.test.ids[i]}\t{data.test.labels[i]}\t{preds[i]}\t{probs}\n")

    wall = time.time() - t0
    hyper = {
        "learning_rate": float(settings["learning_rate"]), "batch_size": bs, "epochs": epochs,
        "rc_aug": rc_aug, "conjoin": conjoin, "weight_decay": float(settings["weight_decay"]),
        "warmup_fraction": settings["warmup_fraction"], "min_lr_ratio": settings["min_lr_ratio"],
        "grad_clip": settings["grad_clip"], "max_tokens": max_len, "length_rule": len_rule,
        "padding_side": protocol.padding_side, "pooling": protocol.pooling,
        "padding_mask_to_model": with_mask,
        "selection_metric": sel_metric, "early_stopping_patience": patience,
        "add_special_tokens": settings["add_special_tokens"], "lora": settings["lora"],
        "model": dict(model_hparams),
    }
    strip = ("predicted_classes",)
    metrics = {
        "benchmark": benchmark,
        "task": data.info.get("name"),
        "category": data.info.get("category"),
        "model": settings["model_name"] or arch,
        "architecture": arch,
        "tokenizer": tok_name,
        "seed": int(seed),
        "split_seed": split_seed,
        "training_seed": train_seed,
        "protocol": protocol.name,
        "protocol_fields": protocol.to_dict(),
        "pretrained": str(pretrained) if pretrained else None,
        "validation_source": val_source,
        "n_train": len(train), "n_validation": len(val), "n_test": len(data.test),
        "test": {k: v for k, v in test_m.items() if k not in strip},
        "validation": {k: v for k, v in val_m.items() if k not in strip},
        "selection_metric": sel_metric,
        "hyperparameters": hyper,
        "collapsed": bool(collapsed),
        "collapse_note": note,
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "history": history,
        "truncated_sequences": truncated,
        "device": str(device),
        "n_params": n_total,
        "n_trainable_params": n_trainable,
        "wall_time_s": round(wall, 3),
    }
    write_json(work / "metrics.json", metrics)
    write_json(work / "provenance.json", provenance(
        stage="finetune", task_dir=str(data.path), protocol=protocol.to_dict(), settings=settings,
        model_hparams=model_hparams, seed=int(seed), device=str(device), wall_time_s=round(wall, 3),
        threads=torch.get_num_threads(), tokenizer=tok_name, pretrained=str(pretrained) if pretrained else None))
    logger.info("test: mcc %.4f accuracy %.4f (best epoch %d of %d, %.1fs)", test_m["mcc"],
                test_m["accuracy"], best_epoch, len(history), wall)
    return metrics


def _run_grid(data, arch, tok, tok_name, work: Path, seed, protocol, pretrained, settings,
              model_hparams, logger) -> dict:
    """Small learning-rate x batch-size sweep; the winner is chosen on validation
    (``select_on="test"`` is the study's practice and allowed only under ``original``)."""
    grid = settings["grid"]
    select_on = settings["select_on"]
    if select_on == "test" and protocol.hyperparameter_selection != "test":
        raise UserError("select_on='test' picks hyperparameters by test score; it is allowed only under "
                        "the original protocol (to measure that quirk)")
    lrs = grid.get("learning_rate", [settings["learning_rate"]])
    bss = grid.get("batch_size", [settings["batch_size"]])
    if set(grid) - {"learning_rate", "batch_size"}:
        raise UserError(f"grid supports learning_rate and batch_size, got {sorted(grid)}")
    runs = []
    for lr in lrs:
        for bs in bss:
            sub = work / "grid" / f"lr{lr:g}_bs{int(bs)}"
            sub.mkdir(parents=True)
            one = {**settings, "grid": None, "learning_rate": float(lr), "batch_size": int(bs)}
            logger.info("grid point lr=%g batch_size=%d", lr, bs)
            m = _train_one(data, arch, tok, tok_name, sub, seed, protocol, pretrained, one,
                           model_hparams, logger)
            runs.append((sub, m))
    sel = runs[0][1]["selection_metric"]
    key = "validation" if select_on == "validation" else "test"

    def score(m):
        v = m[key].get(sel)
        if v is None:
            return -math.inf
        return -v if sel == "loss" else v

    best_dir, best = max(runs, key=lambda r: score(r[1]))   # first wins ties (grid order)
    for name in ("predictions.tsv", "provenance.json"):
        shutil.copy(best_dir / name, work / name)
    metrics = copy.deepcopy(best)
    metrics["hyperparameter_selection"] = ("test (original protocol quirk)" if select_on == "test"
                                           else "validation")
    metrics["grid"] = [{"learning_rate": m["hyperparameters"]["learning_rate"],
                        "batch_size": m["hyperparameters"]["batch_size"],
                        f"validation_{sel}": m["validation"].get(sel), f"test_{sel}": m["test"].get(sel),
                        "dir": str(d.relative_to(work))} for d, m in runs]
    metrics["wall_time_s"] = round(sum(m["wall_time_s"] for _, m in runs), 3)
    write_json(work / "metrics.json", metrics)
    return metrics


def finetune(task_dir, arch: str, tokenizer, out_dir, seed: int, protocol="corrected",
             pretrained=None, settings: dict | None = None, model_hparams: dict | None = None,
             task=None) -> dict:
    """Fine-tune ``arch`` on the task in ``task_dir``; returns the metrics written to
    ``out_dir/metrics.json``.

    ``tokenizer``: a kind name (``char``, ``kmer6``), a saved tokenizer folder or a
    tokenizer object. ``protocol``: ``"corrected"`` (default), ``"original"``, a
    :class:`Protocol`, or ``{"base": name, field: value}``. ``settings``: see
    :data:`DEFAULT_SETTINGS`. ``model_hparams`` go to ``build_classifier``.
    ``task``: a registry Task or dict overriding ``task.json``.
    """
    protocol = get_protocol(protocol)
    settings = resolve_settings(settings)
    model_hparams = dict(model_hparams or {})
    pretrained = str(pretrained) if pretrained else None
    if pretrained and not Path(pretrained).is_dir():
        raise UserError(f"pretrained model folder {pretrained} does not exist")
    data = load_task(task_dir, task)
    with atomic_path(out_dir, is_dir=True) as work:
        logger = make_logger(f"dnatok.finetune.{id(work)}", work / "train.log")
        try:
            tok, tok_name = resolve_tokenizer(tokenizer, work / "tokenizer")
            logger.info("finetune %s / %s / %s seed %d, protocol %s", data.info.get("name"), arch,
                        tok_name, seed, protocol.name)
            if settings["grid"]:
                metrics = _run_grid(data, arch, tok, tok_name, work, seed, protocol, pretrained,
                                    settings, model_hparams, logger)
            else:
                metrics = _train_one(data, arch, tok, tok_name, work, seed, protocol, pretrained,
                                     settings, model_hparams, logger)
        finally:
            close_logger(logger)
    return metrics
