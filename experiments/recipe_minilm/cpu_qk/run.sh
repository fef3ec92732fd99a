#!/bin/bash
# q and k in coupled head dimensions (prune.qk=dims) against row segments (qk=same), on CPU:
# the recipe at rate 2 for bsp, bsp qk=dims, hybrid qk=dims and neurons on SST-2 (the 3,000-row
# `make run` start), MRPC and CoLA, one penalty and one retrain epoch each; then CoLA at rate 5.
# STS-B: experiments/recipe_minilm/stsb_qk. Usage (repo root):
#   bash experiments/recipe_minilm/cpu_qk/run.sh OUT
# Each run is skipped when its metrics.json exists, so the script resumes.
set -e
OUT=${1:?output folder}
GLUE=${GLUE:-$(realpath ../shared/data/glue)}
COMMON=(task.data_dir=$GLUE optim.lr=1e-4 seed=42 trainer.enable_progress_bar=false)
source "$(dirname "$0")/../../resumable_run.sh"  # run NAME OVERRIDES...
pruned() {  # task, name, overrides...
  local t=$1 name=$2; shift 2
  local rows=(); [ "$t" = sst2 ] && rows=(task.train_limit=3000)
  run "${t}_$name" task="$t" "${rows[@]}" model.name=minilm \
    model.name_or_path="$OUT/${t}_dense/export_hf" prune.phases.finetune=0 \
    prune.phases.penalty=1 prune.phases.retrain=1 "$@"
}
mkdir -p "$OUT"
run sst2_dense task=sst2 task.train_limit=3000 prune=dense prune.phases.finetune=1 \
  "export.formats=[hf]"
run mrpc_dense task=mrpc prune=dense prune.phases.finetune=3 "export.formats=[hf]"
run cola_dense task=cola prune=dense prune.phases.finetune=3 "export.formats=[hf]"
for t in sst2 mrpc cola; do
  pruned $t bsp_r2 prune=bsp prune.rate=2 prune.qk=same
  pruned $t bsp_r2_qkdims prune=bsp prune.rate=2 prune.qk=dims
  pruned $t hybrid_r2_qkdims prune=hybrid prune.rate=2 prune.qk=dims
  pruned $t neurons_r2 prune=neurons prune.rate=2
done
pruned cola bsp_r5 prune=bsp prune.rate=5 prune.qk=same
pruned cola bsp_r5_qkdims prune=bsp prune.rate=5 prune.qk=dims
.venv/bin/python -m blockprune_pl.collect "$OUT" --out experiments/recipe_minilm/cpu_qk
