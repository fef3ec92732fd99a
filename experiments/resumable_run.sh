# Sourced by the study scripts. `run NAME OVERRIDES...` trains one run into $OUT/NAME with the
# script's COMMON overrides and logs to $OUT/NAME.log; a run whose metrics.json exists is
# skipped and a half-written one is started again, so a stopped study resumes where it stopped.
run() {
  local name=$1; shift
  [ -f "$OUT/$name/metrics.json" ] && return
  rm -rf "$OUT/$name"
  HF_HUB_OFFLINE=1 .venv/bin/python -m blockprune_pl "${COMMON[@]}" hydra.run.dir="$OUT/$name" \
    "$@" > "$OUT/$name.log" 2>&1
}
