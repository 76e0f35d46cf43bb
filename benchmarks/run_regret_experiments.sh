#!/usr/bin/env bash
# The regret experiments behind the README table, one after another on ONE core
# (the machine is shared). Usage: bash benchmarks/run_regret_experiments.sh [PRESET:RUNS ...]
# Outputs: benchmarks/results/PRESET.json (+ .png), progress in benchmarks/results/PRESET.log.
# Environment: ROUNDS (5000), CORE (1), SEED (0; when set, outputs get a -seedN suffix),
# AGENTS (comma-separated subset of the preset's algorithms).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
PY=${PY:-/work/venv/bin/python}
ROUNDS=${ROUNDS:-5000}
jobs=("$@")
if [ ${#jobs[@]} -eq 0 ]; then
  jobs=(fig1-lindiff-lin-k100:50 exact-k100:50:x64 fig1-lindiff-logistic-k100:50 fig1-nonlindiff-lin-k100:50
        fig1-nonlindiff-logistic-k100:50 fig1-lindiff-lin-k10000:10 fig1-lindiff-logistic-k10000:10
        fig1-nonlindiff-lin-k10000:10 fig1-nonlindiff-logistic-k10000:10
        fig2a-k10:50 fig2a-k100:50 fig2a-k500:50 fig2a-k5000:20 fig2a-k50000:10
        fig2c-v0:50 fig2c-v0.5:50 fig2c-v1:50 fig2c-v1.5:50)
fi
for job in "${jobs[@]}"; do
  IFS=: read -r preset runs flag <<< "$job"
  extra=()
  [ "${flag:-}" = "x64" ] && extra=(--x64)
  out=benchmarks/results/$preset
  [ -n "${SEED:-}" ] && out=$out-seed$SEED
  echo "$(date -u +%H:%M:%S) start $preset runs=$runs rounds=$ROUNDS ${extra[*]:-}"
  taskset -c "${CORE:-1}" "$PY" -m dts_ppl.cli bench regret --preset "$preset" --runs "$runs" --rounds "$ROUNDS" \
    --seed "${SEED:-0}" ${AGENTS:+--agents "$AGENTS"} --json "$out.json" --plot "$out.png" --quiet "${extra[@]}" > "$out.log" 2>&1
  echo "$(date -u +%H:%M:%S) done  $preset rc=$?"
done
