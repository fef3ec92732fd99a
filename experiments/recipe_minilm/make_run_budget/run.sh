#!/bin/bash
# At `make run`'s budget (SST-2, 3,000 rows, rate 5, lr 1e-4, a one-epoch dense fine-tune in
# every run as its own reference), three seeds each:
#   default:   `make run`'s command (1 penalty + 2 retrain epochs with the dense teacher);
#   labels:    the fine-tuned model cut at once (no penalty), retrained on the labels alone
#              for 3 epochs: the same 376 optimizer steps;
#   r4:        the same cut, 4 retrain epochs (470 steps; no teacher, so about as fast);
#   lr3:       the retrain phase at 3x the lr (prune.retrain_lr_scale=3);
#   heads_bsp: whole heads in the attention, bsp segments in the FFN, in place of bsp;
#   headsratio: heads_bsp with the default preset's split (attn_ratio 5.5).
# Usage (repo root): bash experiments/recipe_minilm/make_run_budget/run.sh OUT
# Each run is skipped when its metrics.json exists, so the script resumes.
set -e
OUT=${1:?output folder}
GLUE=${GLUE:-$(realpath ../shared/data/glue)}
COMMON=(task.data_dir=$GLUE prune.rate=5.0 task.train_limit=3000 optim.lr=1e-4
        trainer.enable_progress_bar=false)
source "$(dirname "$0")/../../resumable_run.sh"  # run NAME OVERRIDES...
LABELS=(prune.penalty=false prune.phases.penalty=0 prune.distill.enabled=false)
mkdir -p "$OUT"
R4=("${LABELS[@]}" prune.phases.retrain=4)
for seed in 42 43 44; do
  run bsp_r4_lr3_s$seed prune=bsp "${R4[@]}" prune.retrain_lr_scale=3 seed=$seed
  run headsbsp_r4_lr3_s$seed prune=heads_bsp prune.attn_ratio=1 "${R4[@]}" prune.retrain_lr_scale=3 seed=$seed
done
run default_s42 prune=bsp prune.phases.retrain=2 seed=42
run default_lr3_s42 prune=bsp prune.phases.retrain=2 prune.retrain_lr_scale=3 seed=42
for seed in 43 44; do
  run default_s$seed prune=bsp prune.phases.retrain=2 seed=$seed
done
for seed in 42 43 44; do
  run bsp_r4_s$seed prune=bsp "${R4[@]}" seed=$seed
  run headsbsp_r4_s$seed prune=heads_bsp prune.attn_ratio=1 "${R4[@]}" seed=$seed
done
run bsp_labels_s42 prune=bsp "${LABELS[@]}" prune.phases.retrain=3 seed=42
run headsbsp_labels_s42 prune=heads_bsp prune.attn_ratio=1 "${LABELS[@]}" prune.phases.retrain=3 seed=42
# the default preset's split (5 of 12 heads, the FFN at 0.075) at the rate heads_bsp reaches at
# rate 5, so the same kept weights as headsbsp_*
for seed in 42 43 44; do
  run headsratio_r4_lr3_s$seed prune=heads_bsp prune.attn_ratio=5.5 prune.rate=5.295 "${R4[@]}" prune.retrain_lr_scale=3 seed=$seed
done
.venv/bin/python -m blockprune_pl.collect "$OUT" --out experiments/recipe_minilm/make_run_budget
