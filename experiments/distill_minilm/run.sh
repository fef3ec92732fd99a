#!/usr/bin/env bash
# MiniLM at rate 5 (then 10): bsp and neurons, with and without distillation from the dense
# start as a frozen teacher. Every run starts from the dense starts of experiments/bsp_minilm
# (run that first, STARTS_ONLY=1 is enough) and uses its data and steps: penalty 2 epochs with
# cubic pruning, masked retraining 2 epochs. bsp without distillation at rate 5 is the bsp_r5 run
# of bsp_minilm (the same command), so it is not repeated here.
#
# Usage (repo root): bash experiments/distill_minilm/run.sh
# Environment: as experiments/bsp_minilm/run.sh, plus STARTS (default outputs/bsp_minilm),
# RATES (default "5 10").
set -euo pipefail
export PY=${PY:-.venv/bin/python}
export GLUE=${GLUE:-$(cd ../shared/data/glue && pwd)}
export OUT=${OUT:-outputs/distill_minilm}
export STARTS=${STARTS:-outputs/bsp_minilm}
JOBS=${JOBS:-1}
TASKS=${TASKS:-sst2 mrpc rte cola stsb}
RATES=${RATES:-5 10}
export BSP=${BSP:-prune.penalty_mode=proximal prune.lam=3 prune.reweight_every=10}
# what prune=bsp meant when this study ran (the default is now the recipe_minilm recipe)
export LEGACY="prune.target=all prune.lam_per=step prune.relative=false prune.eps=1e-3 prune.distill.enabled=false prune.distill.alpha=0.5 prune.distill.hidden_weight=0"
export KD=${KD:-prune.distill.enabled=true prune.distill.alpha=0.5 prune.distill.temperature=2}
export HF_HUB_OFFLINE=1

run() {  # task $1, geometry $2 (bsp | neurons), rate $3, distillation $4 (kd | nokd)
  local dir=$OUT/$1/$2_r$3_$4 limit=null extra=$BSP
  [ -f "$dir/metrics.json" ] && return 0
  [ "$1" = sst2 ] && limit=20000
  [ "$4" = kd ] && extra="$extra $KD"
  mkdir -p "$OUT/$1"
  # shellcheck disable=SC2086
  $PY -m blockprune_pl task=$1 task.data_dir="$GLUE" task.train_limit=$limit optim.lr=1e-4 \
    seed=42 trainer.enable_progress_bar=false trainer.enable_model_summary=false \
    model.name=minilm model.name_or_path="$STARTS/$1/dense/export_hf" prune=$2 $LEGACY prune.rate=$3 \
    prune.phases.finetune=0 prune.phases.penalty=2 prune.phases.retrain=2 prune.schedule=cubic \
    prune.prune_every=10 $extra hydra.run.dir="$dir" > "$dir.log" 2>&1 \
    || echo "FAILED $dir (see $dir.log)"
}
export -f run

for rate in $RATES; do
  for t in $TASKS; do
    echo "$t neurons $rate nokd"; echo "$t neurons $rate kd"; echo "$t bsp $rate kd"
    [ "$rate" = 5 ] || echo "$t bsp $rate nokd"
  done
done | xargs -P "$JOBS" -L1 bash -c 'run "$@"' _
$PY -m blockprune_pl.collect "$OUT" "$STARTS" --only "*/dense" --only "*/bsp_r5" --only "*kd" \
  --out experiments/distill_minilm
