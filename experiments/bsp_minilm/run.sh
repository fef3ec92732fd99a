#!/usr/bin/env bash
# MiniLM: dense vs bsp (reweighted group Lasso) vs magnitude at rates 2 and 5 on five GLUE tasks.
# Per task: one dense start (3 epochs), then every pruned run from that start with the same data
# and optimizer steps: penalty phase 2 epochs with gradual (cubic) pruning to the rate, then
# masked retraining 2 epochs. bsp adds the proximal reweighted group Lasso; magnitude does not.
# SST-2 uses a seeded 20,000-row subset of its training split, the other tasks all of theirs.
#
# Usage (repo root): bash experiments/bsp_minilm/run.sh
# Environment: PY (python, default .venv/bin/python), GLUE (data folder), OUT (runs folder),
# JOBS (runs at a time, default 1), TASKS (default: the five tasks), STARTS_ONLY=1.
set -euo pipefail
export PY=${PY:-.venv/bin/python}
export GLUE=${GLUE:-$(cd ../shared/data/glue && pwd)}
export OUT=${OUT:-outputs/bsp_minilm}
JOBS=${JOBS:-1}
TASKS=${TASKS:-sst2 mrpc rte cola stsb}
# the bsp method: proximal reweighted group Lasso (lambda chosen on SST-2, see README)
export BSP=${BSP:-prune.penalty_mode=proximal prune.lam=3 prune.reweight_every=10}
# what prune=bsp meant when this study ran (the default is now the recipe_minilm recipe)
export LEGACY="prune.target=all prune.lam_per=step prune.relative=false prune.eps=1e-3 prune.distill.enabled=false prune.distill.alpha=0.5 prune.distill.hidden_weight=0"
export HF_HUB_OFFLINE=1

common() {  # the data and optimizer settings every run of task $1 shares
  local limit=null
  [ "$1" = sst2 ] && limit=20000
  echo "task=$1 task.data_dir=$GLUE task.train_limit=$limit optim.lr=1e-4 seed=42" \
    "trainer.enable_progress_bar=false trainer.enable_model_summary=false"
}
export -f common

start() {  # the dense fine-tune of task $1 and its exported HF folder
  local dir=$OUT/$1/dense
  if [ ! -f "$dir/metrics.json" ]; then
    # shellcheck disable=SC2046
    $PY -m blockprune_pl $(common "$1") prune=dense prune.phases.finetune=3 \
      hydra.run.dir="$dir" > "$OUT/$1.dense.log" 2>&1
  fi
  [ -d "$dir/export_hf" ] || $PY -m blockprune_pl.export "$dir" >> "$OUT/$1.dense.log" 2>&1
}
export -f start

pruned() {  # task $1, method $2 (bsp | magnitude), rate $3: from the task's dense start
  local dir=$OUT/$1/$2_r$3 extra=""
  [ -f "$dir/metrics.json" ] && return 0
  [ "$2" = bsp ] && extra=$BSP
  # shellcheck disable=SC2046,SC2086
  $PY -m blockprune_pl $(common "$1") model.name=minilm model.name_or_path="$OUT/$1/dense/export_hf" \
    prune=$2 $LEGACY prune.rate=$3 prune.phases.finetune=0 prune.phases.penalty=2 \
    prune.phases.retrain=2 prune.schedule=cubic prune.prune_every=10 $extra \
    hydra.run.dir="$dir" > "$dir.log" 2>&1 || echo "FAILED $dir (see $dir.log)"
}
export -f pruned

mkdir -p "$OUT"
for t in $TASKS; do mkdir -p "$OUT/$t"; done
# shellcheck disable=SC2086
printf '%s\n' $TASKS | xargs -P "$JOBS" -I{} bash -c 'start {}'
[ -n "${STARTS_ONLY:-}" ] && exit 0
for rate in 5 2; do for method in bsp magnitude; do for t in $TASKS; do
  echo "$t $method $rate"
done; done; done | xargs -P "$JOBS" -L1 bash -c 'pruned "$@"' _
$PY -m blockprune_pl.collect "$OUT" --out experiments/bsp_minilm
