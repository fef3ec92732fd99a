import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from blockprune_pl.data.metrics import build_metrics

rng = np.random.default_rng(0)


def computed(names, num_labels, preds, labels, batches=3):
    metrics = build_metrics(names, num_labels)
    for p, y in zip(np.array_split(preds, batches), np.array_split(labels, batches)):
        metrics.update(torch.as_tensor(p), torch.as_tensor(y))
    return {k: float(v) for k, v in metrics.compute().items()}


def test_binary_accuracy_f1_mcc_match_sklearn():
    labels, preds = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    got = computed(["acc", "f1", "mcc"], 2, preds, labels)
    assert got["acc"] == pytest.approx(accuracy_score(labels, preds), abs=1e-6)
    assert got["f1"] == pytest.approx(f1_score(labels, preds), abs=1e-6)
    assert got["mcc"] == pytest.approx(matthews_corrcoef(labels, preds), abs=1e-5)


def test_three_class_accuracy_matches_a_hand_count():
    labels, preds = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    got = computed(["acc"], 3, preds, labels)
    assert got["acc"] == pytest.approx((labels == preds).mean(), abs=1e-6)


def test_regression_pearson_spearman_match_scipy():
    labels = rng.uniform(0, 5, 150).astype(np.float32)
    preds = (labels + rng.normal(0, 1, 150)).astype(np.float32)
    got = computed(["pearson", "spearman"], 1, preds, labels)
    assert got["pearson"] == pytest.approx(pearsonr(preds, labels)[0], abs=1e-4)
    assert got["spearman"] == pytest.approx(spearmanr(preds, labels)[0], abs=1e-4)


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match=r"unknown metrics \['bleu'\]"):
        build_metrics(["bleu"], 2)
