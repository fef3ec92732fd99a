"""GLUE's metrics through torchmetrics: one MetricCollection per validation split."""

from __future__ import annotations

import torchmetrics as tm

METRICS = ("acc", "f1", "mcc", "pearson", "spearman")


def build_metrics(names, num_labels: int) -> tm.MetricCollection:
    """`names` from METRICS; classification metrics take class ids, regression takes floats."""
    bad = [n for n in names if n not in METRICS]
    if bad:
        raise ValueError(f"unknown metrics {bad}; known: {list(METRICS)}")
    made = {}
    for name in names:
        if name in ("pearson", "spearman"):
            if num_labels != 1:
                raise ValueError(f"metric {name!r} needs a regression task (num_labels=1)")
            made[name] = tm.PearsonCorrCoef() if name == "pearson" else tm.SpearmanCorrCoef()
            continue
        task = "binary" if num_labels == 2 else "multiclass"
        extra = {} if task == "binary" else {"num_classes": num_labels}
        if name == "acc":
            made[name] = tm.Accuracy(task=task, **extra)
        elif name == "f1":
            if task != "binary":
                raise ValueError("metric 'f1' is GLUE's binary F1 of the positive class")
            made[name] = tm.F1Score(task="binary")
        else:
            made[name] = tm.MatthewsCorrCoef(task=task, **extra)
    return tm.MetricCollection(made)
