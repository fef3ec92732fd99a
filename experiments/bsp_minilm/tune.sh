#!/usr/bin/env bash
# Penalty tuning on SST-2 at rate 5, from a short dense fine-tune (3000 rows, 1 epoch), each
# variant with the same data and steps (penalty 1 epoch + retrain 1 epoch on 1500 rows).
# Usage (repo root): bash experiments/bsp_minilm/tune.sh
set -euo pipefail
GLUE=${GLUE:-$(cd ../shared/data/glue && pwd)}
OUT=${OUT:-outputs/bsp_tune}
PY=".venv/bin/python -m blockprune_pl"
export HF_HUB_OFFLINE=1
COMMON=(task=sst2 task.data_dir="$GLUE" optim.lr=1e-4 seed=42 trainer.enable_progress_bar=false)
if [ ! -d "$OUT/start/export_hf" ]; then
  $PY "${COMMON[@]}" prune=dense task.train_limit=3000 hydra.run.dir="$OUT/start"
  .venv/bin/python -m blockprune_pl.export "$OUT/start"
fi
START=(model.name=minilm model.name_or_path="$OUT/start/export_hf" prune.rate=5.0 task.train_limit=1500
       prune.phases.finetune=0 prune.phases.penalty=1 prune.phases.retrain=1)
run() { local name=$1; shift; [ -f "$OUT/$name/metrics.json" ] ||
  $PY "${COMMON[@]}" "${START[@]}" "$@" hydra.run.dir="$OUT/$name"; }
run magnitude prune=magnitude
run grad_paper prune=bsp prune.penalty_mode=grad prune.lam=1e-4
run prox_lam10 prune=bsp prune.penalty_mode=proximal prune.lam=10 prune.reweight_every=10
run prox_lam40 prune=bsp prune.penalty_mode=proximal prune.lam=40 prune.reweight_every=10
run prox_lam40_cubic prune=bsp prune.penalty_mode=proximal prune.lam=40 prune.reweight_every=10 \
  prune.schedule=cubic prune.prune_every=5
run prox_lam3 prune=bsp prune.penalty_mode=proximal prune.lam=3 prune.reweight_every=10
run prox_lam3_cubic prune=bsp prune.penalty_mode=proximal prune.lam=3 prune.reweight_every=10 \
  prune.schedule=cubic prune.prune_every=5
run magnitude_cubic prune=magnitude prune.schedule=cubic prune.prune_every=5
