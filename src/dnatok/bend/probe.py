"""BEND's downstream probe on cached per-base embeddings (``dnatok bend probe``).

Two architectures (``arch``):

* ``cnn`` (default) is BEND's ``downstream.CNN`` probe: two non-dilated Conv1d layers
  (kernel 3, padding 1, GELU) of width ``hidden`` (default 64) and a Linear to the label
  dimension. Its receptive field is 5 bp.
* ``resnet`` is BEND's supervised baseline ``resnet-supervised`` (fact sheet B5): a
  kernel-1 input projection to ``hidden`` (default 256), ``layers`` (default 30) residual
  blocks ``h + LayerNorm(GELU(Conv1d_k9,d(h)))`` with dilation 1, 2, 4, ..., 32, cycling
  every 6 blocks, and a Linear to the label dimension. The LayerNorm runs over the channels
  of each position, so it mixes no positions. Six blocks see 505 bp.

Per-base tasks (gene finding) predict every base; per-sequence multi-label tasks average
over positions. Padding is masked: positions past a sequence's end are zeroed before the
first layer and after every layer/block, so a sequence's outputs do not depend on what
it is batched with. Padded labels are -100.

Training: AdamW (lr 3e-3, weight decay 0.01, BEND's), cross-entropy per base or BCE per
label (optionally class-weighted), whole sequences padded in batches of similar length
(or random ``crop_bp`` windows; optional reverse-complement augmentation of one-hot
input with strand-swapped labels, which BEND does not do), fixed seed, plain fp32 on
CPU (BEND hard-codes CUDA fp16 autocast). The epoch
kept is the one with the best validation metric (flattened multiclass MCC for per-base
tasks, mean per-label AUROC for multi-label ones), and the test set is scored once with
it on all of its bases/sequences.

Outputs in ``out_dir`` (written atomically): ``metrics.json`` (readable by
:func:`dnatok.stats.collect.read_metrics_json`), ``predictions.npz``, ``losses.tsv``,
``provenance.json``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dnatok.errors import UserError
from dnatok.io import atomic_path, provenance

PROTOCOL = "bend_probe"
DEFAULT_BATCH = {"per_base": 64, "multi_label": 256}     # BEND: 64 for gene finding, 256 the rest
ARCHS = ("cnn", "resnet")
CLASS_WEIGHTS = ("none", "inverse-frequency")
DEFAULT_HIDDEN = {"cnn": 64, "resnet": 256}               # BEND's probe / resnet-supervised
DEFAULT_LAYERS = {"cnn": 2, "resnet": 30}


class ProbeCNN(nn.Module):
    """BEND's CNN probe. forward(x [B, L, D], mask [B, L] or None) -> [B, L, num_outputs]
    per base, or [B, num_outputs] with ``pool=True`` (mean over the unpadded positions)."""

    def __init__(self, in_dim: int, num_outputs: int, hidden: int = 64, pool: bool = False):
        super().__init__()
        if min(in_dim, num_outputs, hidden) < 1:
            raise UserError(f"ProbeCNN: in_dim, num_outputs and hidden must be >= 1 "
                            f"(got {in_dim}, {num_outputs}, {hidden})")
        self.pool = bool(pool)
        self.conv1 = nn.Conv1d(in_dim, hidden, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel_size=3, stride=1, padding=1)
        self.act = nn.GELU()
        self.out = nn.Linear(hidden, num_outputs)

    def forward(self, x, mask=None):
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
        m = mask.to(x.dtype)[:, None, :]                    # [B, 1, L]
        h = x.transpose(1, 2) * m
        h = self.act(self.conv1(h)) * m                     # padding stays zero between layers
        h = self.act(self.conv2(h)) * m
        h = h.transpose(1, 2)                               # [B, L, H]
        if self.pool:
            h = h.sum(1) / m[:, 0, :].sum(1, keepdim=True).clamp(min=1)
        return self.out(h)


def dilation_schedule(layers: int, max_dilation: int = 32, cycle: int = 6) -> list[int]:
    """BEND's ResNet dilations: doubling from 1 up to ``max_dilation``, restarting every
    ``cycle`` blocks (1, 2, 4, 8, 16, 32, 1, 2, ...)."""
    return [min(max_dilation, 2 ** (i % cycle)) for i in range(int(layers))]


class _ResBlock(nn.Module):
    def __init__(self, hidden: int, dilation: int, kernel: int = 9):
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h, m):                                # h [B, H, L], m [B, 1, L]
        z = self.norm(self.act(self.conv(h)).transpose(1, 2)).transpose(1, 2)
        return (h + z) * m


class ProbeResNet(nn.Module):
    """BEND's supervised dilated ResNet (module docstring). Same call as :class:`ProbeCNN`."""

    def __init__(self, in_dim: int, num_outputs: int, hidden: int = 256, layers: int = 30,
                 pool: bool = False, kernel: int = 9):
        super().__init__()
        if min(in_dim, num_outputs, hidden, layers) < 1:
            raise UserError(f"ProbeResNet: in_dim, num_outputs, hidden and layers must be >= 1 "
                            f"(got {in_dim}, {num_outputs}, {hidden}, {layers})")
        self.pool = bool(pool)
        self.inp = nn.Conv1d(in_dim, hidden, kernel_size=1)
        self.blocks = nn.ModuleList(_ResBlock(hidden, d, kernel) for d in dilation_schedule(layers))
        self.out = nn.Linear(hidden, num_outputs)

    def forward(self, x, mask=None):
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
        m = mask.to(x.dtype)[:, None, :]                    # [B, 1, L]
        h = self.inp(x.transpose(1, 2) * m) * m
        for block in self.blocks:                           # each block re-zeroes the padding
            h = block(h, m)
        h = h.transpose(1, 2)                               # [B, L, H]
        if self.pool:
            h = h.sum(1) / m[:, 0, :].sum(1, keepdim=True).clamp(min=1)
        return self.out(h)


def build_probe(arch: str, in_dim: int, num_outputs: int, hidden: int | None = None,
                layers: int | None = None, pool: bool = False) -> nn.Module:
    """The probe network of ``arch`` with BEND's default width/depth where not given."""
    if arch not in ARCHS:
        raise UserError(f"unknown probe arch {arch!r}; choose one of {', '.join(ARCHS)}")
    hidden = int(hidden or DEFAULT_HIDDEN[arch])
    if arch == "cnn":
        if layers not in (None, 2):
            raise UserError(f"the cnn probe has 2 layers (BEND's); got layers={layers} (use arch='resnet')")
        return ProbeCNN(in_dim, num_outputs, hidden, pool=pool)
    return ProbeResNet(in_dim, num_outputs, hidden, int(layers or DEFAULT_LAYERS[arch]), pool=pool)


# --------------------------------------------------------------------------- data
class _Split:
    def __init__(self, task, emb_dir, name: str):
        from dnatok.bend.embeddings import load_embeddings

        self.x, self.ids = load_embeddings(emb_dir, name, task)
        idx = np.load(Path(emb_dir) / f"{name}.index.npz")
        self.rows = idx["rows"].tolist()
        self.y = [np.asarray(task.labels[r]) for r in self.rows]
        self.lengths = np.array([len(a) for a in self.x], dtype=np.int64)

    def batches(self, batch_size: int) -> list[list[int]]:
        order = sorted(range(len(self.x)), key=lambda i: (self.lengths[i], i))
        return [order[a:a + batch_size] for a in range(0, len(order), batch_size)]


def _collate(split: _Split, idx, kind: str, crop_bp, rng):
    spans = []
    for i in idx:
        n = int(split.lengths[i])
        if crop_bp is not None and n > crop_bp:
            a = int(rng.integers(0, n - crop_bp + 1))
            spans.append((a, a + crop_bp))
        else:
            spans.append((0, n))
    width = max(b - a for a, b in spans)
    dim = split.x[idx[0]].shape[1]
    x = np.zeros((len(idx), width, dim), dtype=np.float32)
    mask = np.zeros((len(idx), width), dtype=np.float32)
    if kind == "per_base":
        y = np.full((len(idx), width), -100, dtype=np.int64)
    else:
        y = np.stack([split.y[i] for i in idx]).astype(np.float32)
    for j, (i, (a, b)) in enumerate(zip(idx, spans)):
        x[j, :b - a] = split.x[i][a:b]
        mask[j, :b - a] = 1
        if kind == "per_base":
            y[j, :b - a] = split.y[i][a:b]
    return torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(y)


ONEHOT_COMPLEMENT = [4, 2, 1, 3, 0]          # BEND's one-hot order A C G N T -> T G C N A


def strand_label_permutation(class_names) -> list[int]:
    """Label map of a reverse complement: class 'X+' <-> 'X-', the others fixed. Raises
    when no class name carries a strand or a stranded class lacks its partner."""
    names = list(class_names or [])
    index = {n: i for i, n in enumerate(names)}
    perm = list(range(len(names)))
    for i, n in enumerate(names):
        if n[-1:] in ("+", "-"):
            partner = n[:-1] + ("-" if n[-1] == "+" else "+")
            if partner not in index:
                raise UserError(f"rc_aug: class {n!r} has no opposite-strand class {partner!r}")
            perm[i] = index[partner]
    if perm == list(range(len(names))):
        raise UserError(f"rc_aug needs stranded class names ('X+'/'X-'); got {names}")
    return perm


def _rc_augment(x, mask, y, perm, rng, p: float = 0.5):
    """Reverse-complement each one-hot sequence of a batch with probability ``p`` (within
    its unpadded span), mapping its labels to the opposite strand."""
    comp, perm = torch.tensor(ONEHOT_COMPLEMENT), torch.tensor(perm)
    x, y = x.clone(), y.clone()
    for j in range(x.shape[0]):
        if rng.random() < p:
            n = int(mask[j].sum())
            x[j, :n] = x[j, :n].flip(0)[:, comp]
            y[j, :n] = perm[y[j, :n].flip(0)]
    return x, mask, y


def _predict(model, split: _Split, kind: str, batch_size: int, device):
    """Per-base: list of per-sequence probability arrays [L, C]; multi-label: [N, K] probs."""
    out = [None] * len(split.x)
    model.eval()
    with torch.no_grad():
        for idx in split.batches(batch_size):
            x, mask, _ = _collate(split, idx, kind, None, None)
            logits = model(x.to(device), mask.to(device)).float().cpu()
            probs = torch.softmax(logits, -1) if kind == "per_base" else torch.sigmoid(logits)
            for j, i in enumerate(idx):
                out[i] = probs[j, :split.lengths[i]].numpy() if kind == "per_base" else probs[j].numpy()
    return out if kind == "per_base" else np.stack(out)


# --------------------------------------------------------------------------- metrics
def per_base_metrics(labels_flat, preds_flat, num_classes: int, class_names=None) -> dict:
    """Flattened multiclass metrics over all (non-padded) bases: BEND's MCC, accuracy,
    macro precision/recall/F1 and per-class precision/recall/support."""
    from dnatok.train.metrics import classification_metrics, confusion_matrix

    labels_flat = np.asarray(labels_flat, dtype=np.int64)
    preds_flat = np.asarray(preds_flat, dtype=np.int64)
    out = classification_metrics(labels_flat, preds_flat, num_classes=num_classes)
    cm = confusion_matrix(labels_flat, preds_flat, num_classes)
    tp = np.diag(cm).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(cm.sum(0) > 0, tp / cm.sum(0), np.nan)
        rec = np.where(cm.sum(1) > 0, tp / cm.sum(1), np.nan)
    names = list(class_names) if class_names else [str(k) for k in range(cm.shape[0])]
    out["per_class"] = {
        "class": names[:cm.shape[0]],
        "precision": [None if math.isnan(v) else float(v) for v in prec],
        "recall": [None if math.isnan(v) else float(v) for v in rec],
        "support": cm.sum(1).astype(int).tolist(),
    }
    return out


def multi_label_metrics(labels, probs) -> dict:
    """Mean per-label AUROC and AUPRC (labels with one class only are skipped and counted),
    plus threshold-0.5 metrics flattened over all (sequence, label) cells."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from dnatok.train.metrics import classification_metrics

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    aurocs, auprcs, skipped = [], [], 0
    for k in range(labels.shape[1]):
        y = labels[:, k]
        if y.min() == y.max():
            skipped += 1
            continue
        aurocs.append(float(roc_auc_score(y, probs[:, k])))
        auprcs.append(float(average_precision_score(y, probs[:, k])))
    flat = classification_metrics(labels.ravel(), (probs.ravel() > 0.5).astype(np.int64), num_classes=2)
    out = {k: flat[k] for k in ("accuracy", "mcc", "f1_macro", "precision", "recall")}
    out.update({"n": int(labels.shape[0]), "auroc": float(np.mean(aurocs)) if aurocs else None,
                "auprc": float(np.mean(auprcs)) if auprcs else None, "labels_scored": len(aurocs),
                "labels_skipped_one_class": skipped,
                "threshold_metrics": "accuracy/mcc/f1/precision/recall flattened over all labels at p > 0.5"})
    return out


def _evaluate(model, split, kind, num_classes, batch_size, device, class_names=None):
    probs = _predict(model, split, kind, batch_size, device)
    if kind == "per_base":
        preds = [p.argmax(-1) for p in probs]
        m = per_base_metrics(np.concatenate(split.y), np.concatenate(preds), num_classes, class_names)
        return m, m["mcc"], preds
    labels = np.stack(split.y)
    m = multi_label_metrics(labels, probs)
    return m, m["auroc"], probs


# --------------------------------------------------------------------------- training
@dataclass
class _Run:
    """What the phases of :func:`train_probe` share: the task, its splits, the network and
    the resolved hyperparameters."""
    task: object
    emb_meta: dict
    data: dict
    model: nn.Module
    device: torch.device
    hyper: dict
    dim: int

    @property
    def kind(self) -> str:
        return self.task.kind

    @property
    def num_classes(self) -> int:
        return int(self.task.num_classes)


def _setup(task_dir, emb_dir, seed, epochs, learning_rate, weight_decay, batch_size, arch, hidden, layers,
           patience, device, crop_bp, class_weights, rc_aug) -> _Run:
    """Check the arguments, load the task and its embeddings, seed and build the network."""
    from dnatok.bend.embeddings import META_FILE
    from dnatok.bend.format import read_task
    from dnatok.io import read_json
    from dnatok.train.common import resolve_device, seed_everything

    if int(epochs) < 1:
        raise UserError(f"epochs must be >= 1, got {epochs}")
    if patience is not None and int(patience) < 1:
        raise UserError(f"patience must be >= 1 or None, got {patience}")
    if crop_bp is not None and int(crop_bp) < 1:
        raise UserError(f"crop_bp must be >= 1, got {crop_bp}")
    if arch not in ARCHS:
        raise UserError(f"unknown probe arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if class_weights not in CLASS_WEIGHTS:
        raise UserError(f"unknown class_weights {class_weights!r}; choose one of {', '.join(CLASS_WEIGHTS)}")
    task = read_task(task_dir)
    if class_weights != "none" and task.kind != "per_base":
        raise UserError(f"class_weights={class_weights!r} applies to per-base tasks only ({task.name} is {task.kind})")
    emb_meta = read_json(Path(emb_dir) / META_FILE, f"{emb_dir}: not an embedding folder (no {META_FILE})")
    if emb_meta.get("task") != task.name:
        raise UserError(f"{emb_dir} holds embeddings of task {emb_meta.get('task')!r}, not {task.name!r}")
    if rc_aug and (emb_meta.get("model") != "onehot" or task.kind != "per_base"):
        raise UserError("rc_aug reverse-complements one-hot input of per-base tasks only "
                        f"(embeddings: {emb_meta.get('model')}, task kind: {task.kind})")
    perm = strand_label_permutation(task.meta.get("class_names")) if rc_aug else None
    data = {s: _Split(task, emb_dir, s) for s in ("train", "valid", "test")}
    dev = resolve_device(device)
    seed_everything(int(seed))
    dim = int(data["train"].x[0].shape[1])
    hidden, layers = int(hidden or DEFAULT_HIDDEN[arch]), int(layers or DEFAULT_LAYERS[arch])
    model = build_probe(arch, dim, int(task.num_classes), hidden, layers, pool=(task.kind != "per_base")).to(dev)
    hyper = {"learning_rate": float(learning_rate), "batch_size": int(batch_size or DEFAULT_BATCH[task.kind]),
             "rc_aug": bool(rc_aug), "weight_decay": float(weight_decay), "arch": arch, "hidden": hidden,
             "layers": layers, "epochs": int(epochs), "patience": patience, "crop_bp": crop_bp,
             "optimizer": "AdamW", "class_weights": class_weights}
    if class_weights == "inverse-frequency":
        hyper["class_weight_values"] = inverse_frequency_weights(data["train"].y, int(task.num_classes))
    if perm is not None:
        hyper["rc_label_permutation"] = perm
    return _Run(task, emb_meta, data, model, dev, hyper, dim)


def inverse_frequency_weights(labels, num_classes: int) -> list[float]:
    """Cross-entropy class weights n / (k * n_c) from the training bases (k: classes present,
    so a base's mean weight is 1); a class absent from training gets 0. BEND's gene-finding
    config carries (commented out) weights of about this form."""
    counts = np.bincount(np.concatenate([np.asarray(y).ravel() for y in labels]).astype(np.int64),
                         minlength=num_classes)[:num_classes].astype(float)
    present = counts > 0
    w = np.zeros(num_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return [float(v) for v in w]


def _fit(run: _Run, seed: int):
    """The epoch loop: train, score validation, keep the best epoch's weights, stop after
    ``patience`` epochs without a better validation metric. Returns (history, best_epoch,
    best_state)."""
    hp, model, dev, kind, K = run.hyper, run.model, run.device, run.kind, run.num_classes
    opt = torch.optim.AdamW(model.parameters(), lr=hp["learning_rate"], weight_decay=hp["weight_decay"])
    weight = hp.get("class_weight_values")
    weight = None if weight is None else torch.tensor(weight, dtype=torch.float32, device=dev)
    loss_fn = (torch.nn.CrossEntropyLoss(weight=weight, ignore_index=-100) if kind == "per_base"
               else torch.nn.BCEWithLogitsLoss())
    rng = np.random.default_rng(int(seed))
    train, batches = run.data["train"], run.data["train"].batches(hp["batch_size"])
    history, best, best_state, since = [], None, None, 0
    for epoch in range(1, hp["epochs"] + 1):
        model.train()
        total, n = 0.0, 0
        for b in rng.permutation(len(batches)).tolist():
            batch = _collate(train, batches[b], kind, hp["crop_bp"], rng)
            if hp["rc_aug"]:
                batch = _rc_augment(*batch, hp["rc_label_permutation"], rng)
            x, mask, y = (t.to(dev) for t in batch)
            logits = model(x, mask)
            loss = loss_fn(logits.reshape(-1, K), y.reshape(-1)) if kind == "per_base" else loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batches[b])
            n += len(batches[b])
        _, val, _ = _evaluate(model, run.data["valid"], kind, K, hp["batch_size"], dev)
        history.append({"epoch": epoch, "train_loss": total / max(1, n), "valid_metric": val})
        score = -math.inf if val is None else float(val)
        if best is None or score > best[1]:
            best, since = (epoch, score), 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if hp["patience"] is not None and since >= int(hp["patience"]):
                break
    return history, best[0], best_state


def _metrics_record(run: _Run, emb_dir, seed, history, best_epoch, valid, test, model_name, tokenizer_name,
                    t0) -> dict:
    """metrics.json's content. ``valid``/``test``: (metrics, selection value) of the best epoch."""
    (val_m, val_metric), (test_m, _) = valid, test
    kind, emb_meta, data = run.kind, run.emb_meta, run.data
    sel = "mcc" if kind == "per_base" else "auroc"
    embedder = "onehot" if emb_meta.get("model") == "onehot" else Path(emb_meta["model"]).name
    tok_name = tokenizer_name or ("onehot" if embedder == "onehot" else
                                  (Path(emb_meta["tokenizer_dir"]).name if emb_meta.get("tokenizer_dir")
                                   else emb_meta.get("tokenizer")))
    metrics = {
        "benchmark": "bend", "task": run.task.name, "category": f"bend_{kind}", "task_kind": kind,
        "model": model_name or embedder, "tokenizer": tok_name, "label": None, "seed": int(seed),
        "protocol": PROTOCOL, "protocol_fields": {"hyperparameter_selection": "validation"},
        "embedder": embedder, "embeddings": str(Path(emb_dir).resolve()),
        "upsample": emb_meta.get("upsample"), "chunk_bp": emb_meta.get("chunk_bp"),
        "embedding_dim": run.dim, "embedding_dtype": emb_meta.get("dtype"),
        "selection_metric": sel, "best_epoch": best_epoch, "valid_metric": val_metric,
        "epochs_run": len(history), "validation": {k: v for k, v in val_m.items() if k != "per_class"},
        "test": test_m, f"test_{sel}": test_m[sel], "hyperparameters": run.hyper,
        "n_sequences": {s: len(d.x) for s, d in data.items()},
        "n_bases": {s: int(d.lengths.sum()) for s, d in data.items()},
        "history": history, "device": str(run.device), "torch": torch.__version__,
    }
    if kind == "per_base":
        metrics["mcc"] = test_m["mcc"]
    metrics["wall_s"] = round(time.time() - t0, 3)
    return metrics


def _write_outputs(out_dir, run: _Run, test_out, history, metrics, task_dir, emb_dir, seed) -> None:
    """predictions.npz, losses.tsv, metrics.json and provenance.json, atomically."""
    test = run.data["test"]
    with atomic_path(Path(out_dir), is_dir=True) as tmp:
        ids = np.asarray(test.ids)
        if run.kind == "per_base":
            np.savez_compressed(tmp / "predictions.npz", ids=ids,
                                offsets=np.concatenate([[0], np.cumsum(test.lengths)]).astype(np.int64),
                                pred=np.concatenate(test_out).astype(np.int8),
                                labels=np.concatenate(test.y).astype(np.int8))
        else:
            np.savez_compressed(tmp / "predictions.npz", ids=ids, probs=test_out.astype(np.float32),
                                labels=np.stack(test.y).astype(np.uint8))
        with open(tmp / "losses.tsv", "w") as fh:
            fh.write("epoch\ttrain_loss\tvalid_metric\n")
            for h in history:
                v = "" if h["valid_metric"] is None else repr(float(h["valid_metric"]))
                fh.write(f"{h['epoch']}\t{h['train_loss']!r}\t{v}\n")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n")
        prov = provenance(stage="bend probe", task_dir=str(task_dir), embeddings=str(emb_dir), seed=int(seed),
                          hyperparameters=run.hyper, embeddings_meta=run.emb_meta, device=str(run.device),
                          wall_s=metrics["wall_s"])
        (tmp / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n")


def train_probe(task_dir, emb_dir, out_dir, seed: int = 0, epochs: int = 100, learning_rate: float = 3e-3,
                weight_decay: float = 0.01, batch_size: int | None = None, hidden: int | None = None,
                patience: int | None = None, device: str = "auto", crop_bp: int | None = None,
                model_name: str | None = None, tokenizer_name: str | None = None, arch: str = "cnn",
                layers: int | None = None, class_weights: str = "none", rc_aug: bool = False) -> dict:
    """Train a probe (``arch`` 'cnn': BEND's 2-layer CNN, 'resnet': BEND's supervised dilated
    ResNet; ``hidden``/``layers`` default to BEND's for the arch) on cached embeddings and
    score the test split (module docstring); ``class_weights`` 'inverse-frequency' weights
    the per-base cross-entropy by :func:`inverse_frequency_weights`; ``rc_aug``
    reverse-complements half the one-hot training sequences, swapping stranded labels
    (:func:`strand_label_permutation`). Returns the metrics.json content."""
    t0 = time.time()
    run = _setup(task_dir, emb_dir, seed, epochs, learning_rate, weight_decay, batch_size, arch, hidden,
                 layers, patience, device, crop_bp, class_weights, rc_aug)
    history, best_epoch, best_state = _fit(run, seed)
    run.model.load_state_dict(best_state)
    names, bs = run.task.meta.get("class_names"), run.hyper["batch_size"]
    val_m, val_metric, _ = _evaluate(run.model, run.data["valid"], run.kind, run.num_classes, bs, run.device, names)
    test_m, test_sel, test_out = _evaluate(run.model, run.data["test"], run.kind, run.num_classes, bs,
                                           run.device, names)
    metrics = _metrics_record(run, emb_dir, seed, history, best_epoch, (val_m, val_metric), (test_m, test_sel),
                              model_name, tokenizer_name, t0)
    _write_outputs(out_dir, run, test_out, history, metrics, task_dir, emb_dir, seed)
    return metrics
