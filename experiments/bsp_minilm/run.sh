#!/usr/bin/env bash
# MiniLM: dense vs bsp (reweighted group Lasso) vs magnitude at rates 2 and 5 on five GLUE
# tasks. Per task: one dense start (2 epochs on a seeded subset of TRAIN_LIMIT rows), then every
# pruned run from that start with the same data and optimizer steps (penalty phase 1 epoch with
# gradual cubic pruning, masked retrain 1 epoch, on the same subset). The collector makes the
# table. Usage (repo root): bash experiments/bsp_minilm/run.sh [task ...]
# STARTS_ONLY=1 makes only the dense starts.
set -euo pipefail
GLUE=${GLUE:-$(cd ../shared/data/glue && pwd)}
OUT=${OUT:-outputs/bsp_minilm}
TRAIN_LIMIT=${TRAIN_LIMIT:-1000}
# the bsp method: proximal reweighted group Lasso (tuned on SST-2, see README)
read -r -a BSP <<< "${BSP:-prune.penalty_mode=proximal prune.lam=3 prune.reweight_every=10}"
PY=".venv/bin/python -m blockprune_pl"
export HF_HUB_OFFLINE=1
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(sst2 mrpc rte cola stsb)
for task in "${tasks[@]}"; do
  COMMON=(task=$task task.data_dir="$GLUE" task.train_limit=$TRAIN_LIMIT optim.lr=1e-4 seed=42
          trainer.enable_progress_bar=false)
  if [ ! -f "$OUT/$task/dense/metrics.json" ]; then
    $PY "${COMMON[@]}" prune=dense prune.phases.finetune=2 hydra.run.dir="$OUT/$task/dense"
    .venv/bin/python -m blockprune_pl.export "$OUT/$task/dense"
  fi
  [ -n "${STARTS_ONLY:-}" ] && continue
  START=(model.name_or_path="$OUT/$task/dense/export_hf" prune.phases.finetune=0
         prune.phases.penalty=1 prune.phases.retrain=1 prune.schedule=cubic prune.prune_every=5)
  for rate in 2 5; do
    for method in bsp magnitude; do
      dir="$OUT/$task/${method}_r$rate"
      [ -f "$dir/metrics.json" ] && continue
      extra=()
      [ $method = bsp ] && extra=("${BSP[@]}")
      $PY "${COMMON[@]}" "${START[@]}" prune=$method prune.rate=$rate "${extra[@]}" \
        hydra.run.dir="$dir"
    done
  done
done
[ -n "${STARTS_ONLY:-}" ] || .venv/bin/python -m blockprune_pl.collect "$OUT" --out experiments/bsp_minilm
