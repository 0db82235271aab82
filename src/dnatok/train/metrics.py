"""Classification metrics computed once on a whole evaluation set.

Why this module exists: the study being reproduced logged MCC per batch and let the
training framework average those batch values over the epoch. MCC is not additive,
so that average is not the MCC of the set; on data whose rows are sorted by class
(many benchmark files are) most batches contain a single class, every such batch
scores 0, and the "epoch MCC" collapses toward 0 whatever the model does.
:func:`classification_metrics` therefore takes all labels and predictions of a set
at once. :func:`per_batch_mcc_mean` reproduces the faulty average, only so that
the original protocol's quirk can be measured beside the correct value.

Everything is computed from the confusion matrix with numpy (no per-batch state);
tests check the values against scikit-learn.
"""
from __future__ import annotations

import math

import numpy as np


def confusion_matrix(labels, preds, num_classes: int | None = None) -> np.ndarray:
    """``C[i, j]`` = number of rows with true class ``i`` predicted as ``j``."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    preds = np.asarray(preds, dtype=np.int64).ravel()
    if labels.shape != preds.shape:
        raise ValueError(f"labels ({labels.size}) and preds ({preds.size}) differ in length")
    if labels.size and (labels.min() < 0 or preds.min() < 0):
        raise ValueError("class ids must be non-negative")
    k = int(max(num_classes or 0, (labels.max() + 1) if labels.size else 0,
                (preds.max() + 1) if preds.size else 0))
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def mcc_from_confusion(cm: np.ndarray) -> float:
    """Multi-class Matthews correlation (Gorodkin's R_K, as scikit-learn computes it).

    Returns 0.0 when it is undefined (all rows in one true class or one predicted
    class), which is scikit-learn's convention too.
    """
    cm = cm.astype(np.float64)
    t = cm.sum(axis=1)          # rows per true class
    p = cm.sum(axis=0)          # rows per predicted class
    c = np.trace(cm)            # correct rows
    s = cm.sum()                # all rows
    cov_ytyp = c * s - t @ p
    cov_ypyp = s * s - p @ p
    cov_ytyt = s * s - t @ t
    denom = cov_ytyt * cov_ypyp
    if denom == 0:
        return 0.0
    return float(cov_ytyp / math.sqrt(denom))


def binary_auroc(labels, scores) -> float | None:
    """Area under the ROC curve for a binary task, from ranks (Mann-Whitney U).

    Ties get their average rank, matching the trapezoidal ROC area. ``None`` when
    only one class is present (undefined).
    """
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # average rank within each run of equal scores
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [scores.size]])
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0   # mean of 1-based ranks a+1 .. b
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def classification_metrics(labels, preds, probs=None, num_classes: int | None = None) -> dict:
    """Metrics of one whole evaluation set.

    Keys: ``n``, ``accuracy``, ``mcc``, ``f1_macro``, ``precision``, ``recall`` (macro
    averages over the classes present in labels or predictions; a class never
    predicted gets precision 0), for binary tasks ``f1_binary`` (F1 of the positive
    class 1, the study's published binary F1: scikit-learn's ``average="binary"``),
    ``specificity`` (true-negative rate of class 0) and ``auroc`` (needs ``probs``;
    None when undefined). ``probs`` is an (n, K) array of class probabilities.
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    preds = np.asarray(preds, dtype=np.int64).ravel()
    if labels.size == 0:
        raise ValueError("no rows to evaluate")
    cm = confusion_matrix(labels, preds, num_classes)
    k = cm.shape[0]
    present = np.flatnonzero(cm.sum(axis=0) + cm.sum(axis=1))   # classes seen at all
    tp = np.diag(cm).astype(np.float64)
    pred_pos = cm.sum(axis=0).astype(np.float64)
    true_pos = cm.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_pos > 0, tp / pred_pos, 0.0)
        recall = np.where(true_pos > 0, tp / true_pos, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    out = {
        "n": int(labels.size),
        "accuracy": float(tp.sum() / labels.size),
        "mcc": mcc_from_confusion(cm),
        "f1_macro": float(f1[present].mean()),
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
    }
    if k <= 2 and (num_classes in (None, 2)):
        negatives = cm[0].sum() if k > 0 else 0
        out["specificity"] = float(cm[0, 0] / negatives) if negatives else 0.0
        out["f1_binary"] = float(f1[1]) if k == 2 else 0.0
        if probs is not None:
            probs = np.asarray(probs, dtype=np.float64)
            score = probs[:, 1] if probs.ndim == 2 else probs
            out["auroc"] = binary_auroc(labels, score)
    return out


def per_batch_mcc_mean(labels, preds, batch_size: int, weight_by_size: bool = True) -> float:
    """THE STUDY'S FAULTY METRIC, kept only to measure the original protocol's quirk.

    MCC computed on each consecutive batch of ``batch_size`` rows and then averaged
    over batches, the way a per-step metric logged with epoch averaging ends up
    (PyTorch Lightning weights each batch by its size, hence ``weight_by_size``).
    Never use it to report results: use :func:`classification_metrics`.
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    preds = np.asarray(preds, dtype=np.int64).ravel()
    values, weights = [], []
    for start in range(0, labels.size, batch_size):
        cm = confusion_matrix(labels[start:start + batch_size], preds[start:start + batch_size])
        values.append(mcc_from_confusion(cm))
        weights.append(min(batch_size, labels.size - start) if weight_by_size else 1)
    return float(np.average(values, weights=weights))
