#!/usr/bin/env bash
# The prepared script for a lent GPU: the benchmarks, then (time permitting)
# the runs of bench/gpu_runs.txt through `python -m fame_jax.sweep --runs`.
#
#   bash bench/gpu_suite.sh OUT_DIR [BUDGET_SECONDS]
#   SUITE_RUNS=       bash bench/gpu_suite.sh OUT_DIR    # benchmarks only
#   SUITE_SKIP_BENCH=1 bash bench/gpu_suite.sh OUT_DIR   # runs only
#   SUITE_PARALLEL=8 ...   # up to 8 runs at once on the one GPU (sweep --parallel)
#
# The ML-1M size study (configs/studies/ml1m_size.txt), prepared here with
# `mkdir -p .devdata/ml-1m && cp ../shared/data/ml-1m/{ml-1m.txt,ml-1m_item_text.jsonl} .devdata/ml-1m/`
# and run on the device with .devdata carried:
#   SUITE_SKIP_BENCH=1 SUITE_RUNS=configs/studies/ml1m_size.txt SUITE_PARALLEL=8 \
#       bash bench/gpu_suite.sh $OUT 560
#
# Run from the repository root. Data: /work/shared/data/<dataset>, or ./.devdata
# on a machine where only the checkout travels (linked to ../shared/data and
# /work/shared/data); ./.devdata/<dataset>_stage1 holds the stage-1 workdirs the
# FAME+ lines of the runs file start from. Wheels in ./.whl are installed to
# /tmp/site first.
#
# OUT_DIR gets env.txt (GPU, versions), <benchmark>.jsonl (one line per
# benchmark, in the format of results/bench/<benchmark>.jsonl: command, when,
# machine, result, so it can be appended there as is), runs.md / runs.csv (the
# sweep's table), runs.tgz (each run's results.json, config.json, metrics.jsonl,
# command.txt) and suite.log. Every benchmark has its own timeout; the runs get
# what is left of the budget less 30 s for packing.
set -u
OUT_DIR=${1:?usage: bench/gpu_suite.sh OUT_DIR [BUDGET_SECONDS]}
BUDGET=${2:-480}
RUNS_FILE=${SUITE_RUNS-bench/gpu_runs.txt}
PY=${PYTHON:-python3}
T0=$(date +%s)
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG="$OUT_DIR/suite.log"
say() { echo "[suite +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }

if compgen -G ".whl/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >> "$LOG" 2>&1 \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [[ -d .devdata ]]; then
  for link in ../shared/data /work/shared/data; do
    [[ -e $link ]] || { mkdir -p "$(dirname "$link")" && ln -s "$PWD/.devdata" "$link"; }
  done
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # Peaks in the benchmarks are real use.
export TQDM_DISABLE=1  # No progress bars in the log.
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
MACHINE="${GPU:-no GPU}, $(nproc) CPU cores"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $MACHINE"
  $PY -c 'import importlib, jax
print("packages:", {m: getattr(importlib.import_module(m), "__version__", "?") for m in
      ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "numpy", "ml_collections")})
print("devices:", [d.device_kind for d in jax.devices()])' 2>&1
} > "$OUT_DIR/env.txt"
tee -a "$LOG" < "$OUT_DIR/env.txt"

bench() {  # bench NAME TIMEOUT ARGS...: runs bench/NAME.py, one JSON line to OUT_DIR/NAME.jsonl.
  local name=$1 t=$2; shift 2
  local cmd="python bench/$name.py $*" out rc
  say "bench: $cmd"
  out=$(timeout "$t" $PY "bench/$name.py" "$@" 2>> "$LOG"); rc=$?
  if (( rc != 0 )); then say "bench failed or timed out (rc $rc; 124 = timeout): $cmd"; return; fi
  $PY -c 'import json, sys, time
print(json.dumps({"command": sys.argv[1], "when": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                  "machine": sys.argv[2], "result": json.loads(sys.argv[3])}))' \
      "$cmd" "$MACHINE" "$(tail -n 1 <<< "$out")" >> "$OUT_DIR/$name.jsonl" \
    || say "bench output is not one JSON line: $cmd"
}
if [[ -z "${SUITE_SKIP_BENCH:-}" ]]; then
  bench train_throughput 150 --epochs 3
  bench train_throughput 150 --epochs 3 --model committed
  bench eval_speed 60 --repeats 5
  bench scale 180 --steps 10
fi

left=$(( BUDGET - ($(date +%s) - T0) - 30 ))
if [[ -n "$RUNS_FILE" ]] && (( left > 60 )); then
  sed "s#@DEVDATA@#$PWD/.devdata#g" "$RUNS_FILE" > "$OUT_DIR/runs.txt"
  say "runs of $RUNS_FILE: $left s"
  timeout "$left" $PY -m fame_jax.sweep --runs "$OUT_DIR/runs.txt" --seeds "${SUITE_SEEDS:-1}" \
      --parallel "${SUITE_PARALLEL:-1}" --workdir /tmp/gpu_runs >> "$LOG" 2>&1
  say "runs ended (rc $?; 124 = budget reached, unfinished runs keep their validation curve)"
  cp /tmp/gpu_runs/runs.md /tmp/gpu_runs/runs.csv "$OUT_DIR"/ 2>/dev/null
  (cd /tmp/gpu_runs && tar czf "$OUT_DIR/runs.tgz" */results.json */config.json */metrics.jsonl \
       */command.txt */train.log 2>/dev/null)
fi
say "done"
