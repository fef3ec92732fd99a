#!/bin/bash
# Segment width and geometry at the `make run` budget, on CPU: SST-2 (a seeded 3,000-row
# subset), rate 5, the default recipe, 94 penalty + 94 retrain optimizer steps from one dense
# start. Usage (repo root): bash experiments/recipe_minilm/cpu_probe/run.sh OUT
# Each run is skipped when its metrics.json exists, so the script resumes.
set -e
OUT=${1:?output folder}
GLUE=${GLUE:-$(realpath ../shared/data/glue)}
COMMON=(task=sst2 task.data_dir=$GLUE task.train_limit=3000 optim.lr=1e-4 seed=42
        model.name=minilm trainer.enable_progress_bar=false)
source "$(dirname "$0")/../../resumable_run.sh"  # run NAME OVERRIDES...
mkdir -p "$OUT"
run sst2_dense prune=dense prune.phases.finetune=1
# prune.qk=same: these runs were made before q and k in head dimensions became bsp's default
START=(model.name_or_path=$OUT/sst2_dense/export_hf prune.rate=5 prune.phases.finetune=0
       prune.phases.penalty=1 prune.phases.retrain=1 prune.qk=same)
run sst2_bsp_r5 prune=bsp "${START[@]}"
run sst2_bsp_balanced_r5 prune=bsp prune.balance=true "${START[@]}"
run sst2_bsp_cb32_r5 prune=bsp prune.col_blocks=32 "${START[@]}"
run sst2_bsp_cb96_r5 prune=bsp prune.col_blocks=96 "${START[@]}"
run sst2_hybrid_r5 prune=hybrid "${START[@]}"
run sst2_neurons_r5 prune=neurons "${START[@]}"
run sst2_irregular_r5 prune=irregular "${START[@]}"
.venv/bin/python -m blockprune_pl.collect "$OUT" --out experiments/recipe_minilm/cpu_probe
