"""Whole-set metrics equal scikit-learn's and do not depend on how the set is batched."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from dnatok.train.metrics import (binary_auroc, classification_metrics, per_batch_mcc_mean)


def _noisy_preds(labels, k, error_rate, rng):
    preds = labels.copy()
    flip = rng.random(labels.size) < error_rate
    preds[flip] = rng.integers(0, k, flip.sum())
    return preds


def _cases():
    rng = np.random.default_rng(0)
    balanced = rng.integers(0, 2, 1000)
    unbalanced = (rng.random(1000) < 0.08).astype(int)
    class_sorted = np.sort(rng.integers(0, 2, 1000))
    multi = rng.integers(0, 4, 1200)
    return {
        "balanced": (balanced, _noisy_preds(balanced, 2, 0.3, rng), 2),
        "unbalanced": (unbalanced, _noisy_preds(unbalanced, 2, 0.2, rng), 2),
        "class_sorted": (class_sorted, _noisy_preds(class_sorted, 2, 0.25, rng), 2),
        "multiclass": (multi, _noisy_preds(multi, 4, 0.4, rng), 4),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_matches_sklearn(name):
    labels, preds, k = _cases()[name]
    m = classification_metrics(labels, preds, num_classes=k)
    assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(labels, preds), abs=1e-12)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, preds), abs=1e-12)
    assert m["f1_macro"] == pytest.approx(skm.f1_score(labels, preds, average="macro"), abs=1e-12)
    assert m["precision"] == pytest.approx(
        skm.precision_score(labels, preds, average="macro", zero_division=0), abs=1e-12)
    assert m["recall"] == pytest.approx(skm.recall_score(labels, preds, average="macro"), abs=1e-12)
    if k == 2:
        assert m["specificity"] == pytest.approx(skm.recall_score(labels, preds, pos_label=0), abs=1e-12)
        # the study's published binary F1: the positive class's
        assert m["f1_binary"] == pytest.approx(skm.f1_score(labels, preds, average="binary"), abs=1e-12)
        assert m["f1_binary"] != pytest.approx(m["f1_macro"], abs=1e-6)
    else:
        assert "auroc" not in m and "specificity" not in m and "f1_binary" not in m


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = np.round(labels * 0.3 + rng.random(500), 1)   # rounding creates many ties
    probs = np.stack([1 - scores, scores], axis=1)
    m = classification_metrics(labels, (scores > 0.6).astype(int), probs=probs)
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert binary_auroc(np.ones(5, int), np.arange(5)) is None


def test_degenerate_sets():
    # a model that predicts one class: MCC 0 (sklearn's convention), precision of the
    # never-predicted class 0
    labels = np.array([0, 1, 1, 0, 1])
    m = classification_metrics(labels, np.ones(5, int))
    assert m["mcc"] == 0.0 == skm.matthews_corrcoef(labels, np.ones(5, int))
    assert m["precision"] == pytest.approx(skm.precision_score(labels, np.ones(5, int), average="macro",
                                                               zero_division=0))
    with pytest.raises(ValueError):
        classification_metrics([], [])


def _batched_eval(labels, preds, batch_size):
    """How an evaluation loop feeds the metric: collect every batch, then compute once."""
    all_l, all_p = [], []
    for s in range(0, labels.size, batch_size):
        all_l.append(labels[s:s + batch_size])
        all_p.append(preds[s:s + batch_size])
    return classification_metrics(np.concatenate(all_l), np.concatenate(all_p))["mcc"]


def test_independent_of_batch_size_but_per_batch_average_is_not():
    labels, preds, _ = _cases()["class_sorted"]
    truth = skm.matthews_corrcoef(labels, preds)
    for bs in (1, 7, 32, 64, 1000):
        assert _batched_eval(labels, preds, bs) == pytest.approx(truth, abs=1e-12)
    # The study's per-batch average: on class-sorted rows most batches hold one class
    # and score 0, so the average is far below the set's MCC, and it moves with the
    # batch size. This is the bug the whole-set metric exists to avoid.
    buggy_64 = per_batch_mcc_mean(labels, preds, 64)
    buggy_256 = per_batch_mcc_mean(labels, preds, 256)
    assert truth > 0.6
    assert buggy_64 < truth - 0.3
    assert abs(buggy_64 - buggy_256) > 0.05
    # with one batch holding everything, the faulty average coincides with the truth
    assert per_batch_mcc_mean(labels, preds, labels.size) == pytest.approx(truth, abs=1e-12)
