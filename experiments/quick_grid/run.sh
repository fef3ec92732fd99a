#!/usr/bin/env bash
# The quick grid (conf/experiment/quick_grid.yaml): MiniLM x {sst2, mrpc, rte, cola, stsb} x
# rate {1, 2, 5} x {bsp, magnitude}, one Hydra multirun per task (JOBS tasks at a time; the
# tasks' runs land side by side in one sweep folder), then the collector.
#
# Usage (repo root): bash experiments/quick_grid/run.sh
# Environment: PY (default .venv/bin/python), GLUE (data folder), OUT (sweep folder, default
# multirun/quick_grid), JOBS (default 1), HEATMAP (the run whose per-layer density is drawn).
set -euo pipefail
export PY=${PY:-.venv/bin/python}
export GLUE=${GLUE:-$(cd ../shared/data/glue && pwd)}
export OUT=${OUT:-multirun/quick_grid}
JOBS=${JOBS:-1}
HEATMAP=${HEATMAP:-experiment=quick_grid,prune.rate=5,prune=bsp,task=sst2}
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
printf '%s\n' sst2 mrpc rte cola stsb | xargs -P "$JOBS" -I{} bash -c \
  '$PY -m blockprune_pl -m experiment=quick_grid task={} task.data_dir="$GLUE" \
     hydra.sweep.dir="$OUT" trainer.enable_progress_bar=false > "$OUT/{}.log" 2>&1 \
   || echo "FAILED task {} (see $OUT/{}.log)"'
$PY -m blockprune_pl.collect "$OUT" --out experiments/quick_grid --heatmap "$HEATMAP"
