#!/usr/bin/env bash
# Runs a list of config variants, each as its own resumable workdir, and copies
# each finished run's small files (results.json, config.json, metrics.jsonl)
# into results/<dataset>/<study>/<name>/.
#
#   bash scripts/run_variants.sh configs/beauty.py beauty probe8 scripts/variants_beauty_probe.txt \
#       --config.train.max_epochs=8 --config.train.eval_every_epochs=2
#
# The list file has one variant per line: `name --config.a=b --config.c=d ...`
# (blank lines and # comments skipped). Re-running skips finished variants and
# resumes interrupted ones (train.py does both).
set -euo pipefail
config=$1; dataset=$2; study=$3; list=$4; shift 4
common=("$@")
py=${PYTHON:-.venv/bin/python}
while read -r name overrides; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  workdir="runs/$dataset/$study/$name"
  out="results/$dataset/$study/$name"
  echo "=== $name: $overrides ${common[*]}"
  # shellcheck disable=SC2086
  $py train.py --config "$config" --workdir "$workdir" --config.train.progress=False \
      "${common[@]}" $overrides
  mkdir -p "$out"
  cp "$workdir"/{results.json,config.json,metrics.jsonl} "$out"/
  # shellcheck disable=SC2086
  { printf '%q ' $py train.py --config "$config" --workdir "$workdir" --config.train.progress=False "${common[@]}" $overrides; echo; } > "$out/command.txt"
done < "$list"
