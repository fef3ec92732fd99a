"""What the refit at the cut buys with no training at all: a fine-tuned dense model pruned in one
shot (the smallest groups of every matrix), with and without the least-squares refit of the kept
weights, scored on the full validation split.

    python experiments/recipe_minilm/refit_oneshot.py MODEL_DIR sst2 --glue ../shared/data/glue \
        --rates 2,5 --geometries bsp,neurons

`--roles each` cuts one matrix role at a time (the others stay dense): which role's cut costs
the task most. `--refit off` skips the refit rows. `--qk dims` cuts q and k in coupled head
dimensions (`prune.qk`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from blockprune_pl.pruning import BlockPruner, PruneSpec
from blockprune_pl.pruning.layouts import ROLES
from blockprune_pl.pruning.refit import input_grams

TEXT = {"sst2": ("sentence",), "stsb": ("sentence1", "sentence2")}


def batches(tokenizer, frame, fields, size):
    for start in range(0, len(frame), size):
        rows = frame[start : start + size]
        texts = [rows[f].tolist() for f in fields]
        yield tokenizer(*texts, padding=True, truncation=True, max_length=128, return_tensors="pt")


@torch.no_grad()
def score(model, tokenizer, val, task):
    model.eval()
    logits = torch.cat([model(**b).logits for b in batches(tokenizer, val, TEXT[task], 128)])
    labels = val["label"].to_numpy()
    if task == "stsb":
        return 100 * float(np.corrcoef(logits[:, 0].numpy(), labels)[0, 1])
    return 100 * float((logits.argmax(-1).numpy() == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("task", choices=list(TEXT))
    parser.add_argument("--glue", required=True)
    parser.add_argument("--rates", default="2,5")
    parser.add_argument("--geometries", default="bsp")
    parser.add_argument("--rows", type=int, default=256, help="calibration rows (train split)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--roles", default="all", help="all | each | a comma list of roles")
    parser.add_argument("--refit", choices=["both", "off", "on"], default="both")
    parser.add_argument("--qk", choices=["same", "dims"], default="same", help="prune.qk")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    val = pd.read_parquet(f"{args.glue}/{args.task}/validation.parquet")
    train = pd.read_parquet(f"{args.glue}/{args.task}/train.parquet")
    calibration = train.sample(args.rows, random_state=0)
    dense = AutoModelForSequenceClassification.from_pretrained(args.model)
    dense_metric = round(score(dense, tokenizer, val, args.task), 2)
    print(json.dumps({"task": args.task, "dense": dense_metric}))
    if args.roles == "all":
        role_sets = [ROLES]
    elif args.roles == "each":
        role_sets = [(role,) for role in ROLES]
    else:
        role_sets = [tuple(args.roles.split(","))]
    refits = {"both": (False, True), "off": (False,), "on": (True,)}[args.refit]
    rates = [float(r) for r in args.rates.split(",")]
    for geometry, roles, rate, refit in itertools.product(
        args.geometries.split(","), role_sets, rates, refits
    ):
        started = time.time()
        model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
        spec = PruneSpec(geometry=geometry, rate=rate, roles=roles, qk=args.qk)
        pruner = BlockPruner(spec).prepare(model)
        grams = None
        if refit:
            rows = batches(tokenizer, calibration, TEXT[args.task], 64)
            grams = input_grams(model, pruner.calibration_modules(), rows)
        pruner.prune(1 / rate, grams)
        row = {
            "geometry": geometry,
            "roles": ",".join(roles),
            "qk": args.qk,
            "rate": rate,
            "refit": refit,
            "energy_cut_pct": round(100 * pruner.pruned_energy["total"], 2),
            "metric": round(score(model, tokenizer, val, args.task), 2),
            "seconds": round(time.time() - started, 1),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
