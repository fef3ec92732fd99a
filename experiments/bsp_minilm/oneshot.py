"""One-shot pruning damage, no retraining: a fine-tuned dense run's validation metric after
zeroing the weakest groups of every prunable matrix, per geometry and rate.

Usage (repo root): .venv/bin/python experiments/bsp_minilm/oneshot.py <dense run dir> [rates]
e.g. outputs/dense_baselines/stsb 1.33,2 (the run's own task and validation split).
"""

import sys

import torch

from blockprune_pl.data.glue import GlueDataModule
from blockprune_pl.data.metrics import build_metrics
from blockprune_pl.export import load_run
from blockprune_pl.pruning import BlockPruner, PruneSpec

GEOMETRIES = {"irregular": (1, 1), "bsp": (1, 1), "tiles": (32, 32), "neurons": (1, 1)}


@torch.no_grad()
def evaluate(model, loader, task) -> float:
    metrics = build_metrics(list(task.metrics), int(task.num_labels))
    for batch in loader:
        labels = batch.pop("labels")
        logits = model(**batch).logits
        preds = logits.squeeze(-1) if int(task.num_labels) == 1 else logits.argmax(-1)
        metrics.update(preds, labels)
    return float(metrics.compute()[task.main_metric])


def main() -> None:
    run, rates = sys.argv[1], [float(r) for r in (sys.argv[2:] or ["1.33,2"])[0].split(",")]
    model, tokenizer, cfg = load_run(run)
    cfg.task.data_dir, cfg.task.train_limit = "../shared/data/glue", 32
    data = GlueDataModule(cfg.task, tokenizer, eval_batch_size=128)
    data.setup()
    loader = data.val_dataloader()
    loader = loader[0] if isinstance(loader, list) else loader
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    print(f"| geometry | rate | {cfg.task.main_metric} |\n|---|---|---|")
    print(f"| dense | 1 | {evaluate(model, loader, cfg.task):.4f} |")
    for geometry, block in GEOMETRIES.items():
        for rate in rates:
            model.load_state_dict(dense)
            spec = PruneSpec(geometry=geometry, rate=rate, block=block)
            BlockPruner(spec).prepare(model).prune(1 / rate)
            print(
                f"| {geometry} | {rate:g} | {evaluate(model, loader, cfg.task):.4f} |", flush=True
            )


if __name__ == "__main__":
    main()
