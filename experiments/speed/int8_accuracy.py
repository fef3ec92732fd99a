"""What int8 costs in accuracy: a run's fast form in fp32 (torch) against its int8 export
(onnxruntime), on the task's full validation split.

    python experiments/speed/int8_accuracy.py <run dir> [<run dir> ...] --glue ../shared/data/glue

For each run: exports `int8` into <run>/export_int8 (when missing), then evaluates the fp32 form
(`load_pruned(folder, int8=False)`) and the int8 graph (`load_pruned(folder)`) on the same
tokenized batches. Prints a Markdown row per run and writes int8_accuracy.json beside this file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from scipy.stats import pearsonr

from blockprune_pl.data.glue import load_split
from blockprune_pl.export import export, load_pruned


def evaluate(model, tokenizer, task, batch_size: int = 64) -> float:
    """Accuracy, or Pearson for a regression task, on the task's main validation split."""
    rows = load_split(task, next(iter(task.val_splits)))
    texts = [rows[f] for f in task.text_fields]
    preds = []
    with torch.no_grad():
        for start in range(0, len(rows["label"]), batch_size):
            chunk = [t[start : start + batch_size] for t in texts]
            enc = tokenizer(
                *chunk,
                truncation=True,
                max_length=int(task.max_length),
                padding=True,
                return_tensors="pt",
            )
            logits = model(**enc).logits
            preds.append(logits.float().numpy())
    logits, labels = np.concatenate(preds), np.asarray(rows["label"])
    if int(task.num_labels) == 1:
        return float(pearsonr(logits[:, 0], labels)[0])
    return float((logits.argmax(-1) == labels).mean())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--glue", required=True)
    parser.add_argument("--out", default=str(Path(__file__).with_name("int8_accuracy.json")))
    args = parser.parse_args(argv)
    results = []
    print("| run | task | geometry | rate | fp32 | int8 | change (points) |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        run = Path(run)
        metrics = json.loads((run / "metrics.json").read_text())
        task = OmegaConf.create(metrics["config"]["task"])
        task.data_dir = args.glue
        folder = run / "export_int8"
        if not (folder / "int8.json").is_file():
            export(run, folder, "int8")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        fp32 = evaluate(load_pruned(folder, int8=False), tokenizer, task)
        int8 = evaluate(load_pruned(folder), tokenizer, task)
        row = dict(
            run=str(run),
            task=task.name,
            geometry=metrics["geometry"],
            rate=metrics["target_rate"],
            fp32=fp32,
            int8=int8,
            change=100 * (int8 - fp32),
        )
        results.append(row)
        print(
            f"| {run.name} | {task.name} | {row['geometry']} | {row['rate']:g} | "
            f"{100 * fp32:.2f} | {100 * int8:.2f} | {row['change']:+.2f} |",
            flush=True,
        )
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
