#!/usr/bin/env bash
# The prepared script for a lent GPU (issue 7): the three benchmarks, then the
# Beauty variant study of bench/gpu_variants.txt, all inside one time budget.
#
#   bash bench/gpu_suite.sh OUT_DIR [BUDGET_SECONDS] [PARALLEL]
#
# Run from the repository root, with the Beauty files reachable as
# ../shared/data/beauty and /work/shared/data/beauty (the suite links them
# from ./.devdata when that folder exists, as on the device machine, where
# only the checkout travels), and a FAME+ stage-1 workdir (d 128, H 2,
# pretrain seed 0) in ./.devdata/beauty_stage1 for the FAME+ variants (made
# on the CPU beforehand with configs/beauty_text.py; the MiniLM weights do not
# travel). Wheels in ./.whl (ml_collections) are installed to /tmp/site first.
#
# Writes to OUT_DIR: env.txt (GPU, versions), bench.jsonl (one JSON line per
# benchmark, each with its command), variants.tgz (per run: results.json when
# it finished, config.json, metrics.jsonl, command.txt, train.log tail) and
# suite.log. Every stage has its own timeout; the variant study gets what is
# left of the budget less 30 s for packing, and runs still going then are
# stopped (their metrics.jsonl keeps the validation curve so far).
set -u
OUT_DIR=${1:?usage: bench/gpu_suite.sh OUT_DIR [BUDGET_SECONDS] [PARALLEL]}
BUDGET=${2:-480}
PARALLEL=${3:-8}
T0=$(date +%s)
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/suite.log"
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "[suite +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }

# ---------------------------------------------------------------- set-up
if compgen -G ".whl/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl >> "$LOG" 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [[ -d .devdata ]]; then
  for link in ../shared/data /work/shared/data; do
    if [[ ! -e $link ]]; then mkdir -p "$(dirname "$link")" && ln -s "$PWD/.devdata" "$link"; fi
  done
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # Several processes share the GPU; peaks are real use.
# JAX's persistent compilation cache, shared by all processes of the suite: in
# session 14's calls (without it) each variant spent 37-99 s compiling its
# train step and 78-135 s its first validation, 8-10 processes compiling at
# once; runs whose programs coincide (the same model shapes: the evaluation of
# dropout variants, say) now compile once. On the CPU a repeated tiny run went
# from 42.3 s to 12.5 s with it.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/jax_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-0}
export PYTHONUNBUFFERED=1
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  echo "cpus: $(nproc)"
  $PY - <<'EOF' 2>&1
import importlib, jax
print("python-packages:", {m: getattr(importlib.import_module(m), "__version__", "?")
                           for m in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "numpy", "ml_collections")})
print("devices:", jax.devices(), [d.device_kind for d in jax.devices()])
EOF
} > "$OUT_DIR/env.txt"
tee -a "$LOG" < "$OUT_DIR/env.txt"

# ---------------------------------------------------------------- benchmarks
bench() {  # bench TIMEOUT COMMAND...: one JSON line to bench.jsonl, with its command.
  local t=$1; shift
  say "bench: $*"
  local out rc line
  out=$(timeout "$t" "$@" 2>> "$LOG"); rc=$?
  line=$(tail -n 1 <<< "$out")
  if (( rc == 0 )) && [[ -n "$line" ]]; then
    $PY -c 'import json,sys; print(json.dumps({"command": sys.argv[1], "result": json.loads(sys.argv[2])}))' \
        "$*" "$line" >> "$OUT_DIR/bench.jsonl" || say "bench output not JSON: $line"
  else
    say "bench failed or timed out (rc $rc; 124 = timeout): $*"
  fi
}
if [[ -z "${SUITE_SKIP_BENCH:-}" ]]; then  # SUITE_SKIP_BENCH=1: variant study only (testing the suite).
  bench 150 $PY bench/train_throughput.py --epochs 3
  bench 60 $PY bench/eval_speed.py --repeats 5
  bench 180 $PY bench/scale.py --steps 10
fi

# ---------------------------------------------------------------- variant study
RUNS=/tmp/gpu_variants
mkdir -p "$RUNS"
DEADLINE=$(( T0 + BUDGET - 30 ))
run_one() {  # run_one DATASET NAME CONFIG [OVERRIDES...]
  local dataset=$1 name=$2 config=$3; shift 3
  local args=() a
  for a in "$@"; do
    if [[ $a == @STAGE1:*@ ]]; then
      a=${a#@STAGE1:}; a=${a%@}
      args+=(--config.pretrain.enabled=False "--config.init.item_embeddings_from=$PWD/.devdata/$a")
    else
      args+=("$a")
    fi
  done
  local t=$(( DEADLINE - $(date +%s) ))
  (( t < 20 )) && { echo "[variant] skip $dataset/$name: no time left" >> "$LOG"; return; }
  local wd="$RUNS/$dataset/$name"
  mkdir -p "$wd"
  local cmd=("$PY" train.py --config "$config" --workdir "$wd" --config.train.progress=False "${args[@]}")
  printf '%q ' "${cmd[@]}" > "$wd/command.txt"; echo >> "$wd/command.txt"
  echo "[variant] start $dataset/$name ($t s left)" >> "$LOG"
  timeout "$t" "${cmd[@]}" > "$wd/train.log" 2>&1
  echo "[variant] end $dataset/$name rc $? at +$(( $(date +%s) - T0 ))s" >> "$LOG"
}
export -f run_one
export RUNS DEADLINE PY LOG T0
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 \
    > "$OUT_DIR/gpu_util.csv" 2>/dev/null &
SMI_PID=$!
say "variant study: $(( DEADLINE - $(date +%s) )) s, $PARALLEL at a time"
grep -v '^\s*#' "${SUITE_VARIANTS:-bench/gpu_variants.txt}" | grep -v '^\s*$' \
  | xargs -P "$PARALLEL" -L 1 bash -c 'run_one "$@"' _
kill "$SMI_PID" 2>/dev/null
say "variant study ended"
(cd "$RUNS" && for d in */*/; do
   d=${d%/}; tail -n 40 "$d/train.log" > "$d/train_tail.log" 2>/dev/null
 done
 tar czf "$OUT_DIR/variants.tgz" --exclude=checkpoints --exclude=pretrain --exclude=train.log \
     --exclude='*.npy' --exclude='*.msgpack' --exclude='*.png' */)
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv >> "$OUT_DIR/env.txt" 2>&1
say "done"
