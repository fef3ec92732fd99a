#!/usr/bin/env bash
# Dense MiniLM baselines on the full train splits of the local GLUE copy.
# Usage (repo root): bash experiments/dense_baselines/run.sh [task ...]
set -euo pipefail
GLUE=${GLUE:-$(cd ../shared/data/glue && pwd)}
OUT=${OUT:-outputs/dense_baselines}
SMALL=${SMALL_EPOCHS:-3}  # epochs for the small tasks
declare -A EPOCHS=([sst2]=1 [cola]=$SMALL [mrpc]=$SMALL [rte]=$SMALL [stsb]=$SMALL)
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(sst2 cola mrpc rte stsb)
for task in "${tasks[@]}"; do
  HF_HUB_OFFLINE=1 .venv/bin/python -m blockprune_pl model=minilm task=$task prune=dense \
    task.data_dir="$GLUE" task.max_length=128 optim.lr=1e-4 optim.batch_size=32 seed=42 \
    prune.phases.finetune=${EPOCHS[$task]} trainer.enable_progress_bar=false \
    hydra.run.dir="$OUT/$task"
  mkdir -p experiments/dense_baselines/results
  cp "$OUT/$task/metrics.json" "experiments/dense_baselines/results/$task.json"
done
