#!/usr/bin/env bash
# One worker of a shared run queue. Several workers (e.g. one per CPU core,
# `taskset -c 0 bash scripts/queue_worker.sh Q &  taskset -c 1 bash ... Q &`)
# take lines from the same queue file; a line is claimed atomically with mkdir,
# so each runs once. The file is re-read after every run: lines appended while
# workers run are picked up. Line format:
#
#   <config> <dataset> <study> <name> [--config.a=b ...]
#
# Each run is a resumable workdir runs/<dataset>/<study>/<name>; its small files
# (results.json, config.json, metrics.jsonl, command.txt) are copied to
# results/<dataset>/<study>/<name>/ when it finishes. Runs whose results are
# there are skipped; a run claimed by a worker that no longer lives (the
# session ended) is taken over and resumes from its checkpoint. Two
# workers pinned to the two cores give ~1.3x the runs per hour of one job on both cores
# (Beauty FAME: 38.6 s/epoch pinned vs 25.2 s/epoch on 2 cores).
set -uo pipefail
queue=$1
py=${PYTHON:-.venv/bin/python}
claims=runs/.claims
mkdir -p "$claims"
while true; do
  picked=""
  while read -r config dataset study name overrides; do
    [[ -z "${config:-}" || "$config" == \#* ]] && continue
    claim="$claims/${dataset}__${study}__${name}"
    [[ -f "results/$dataset/$study/$name/results.json" ]] && continue  # Done earlier.
    # A claim whose worker is gone (session ended, killed) is stale: take it
    # over, and train.py resumes the run from its last checkpoint.
    # (A claim without a pid file older than a minute is stale too.)
    if [[ -d "$claim" ]]; then
      if [[ -f "$claim/pid" ]]; then
        kill -0 "$(cat "$claim/pid")" 2>/dev/null || rm -rf "$claim"
      elif [[ -n "$(find "$claim" -maxdepth 0 -mmin +1)" ]]; then
        rm -rf "$claim"
      fi
    fi
    if mkdir "$claim" 2>/dev/null; then
      echo $$ > "$claim/pid"
      picked="$config $dataset $study $name $overrides"; break
    fi
  done < "$queue"
  [[ -z "$picked" ]] && break
  read -r config dataset study name overrides <<< "$picked"
  workdir="runs/$dataset/$study/$name"
  out="results/$dataset/$study/$name"
  cmd="$py train.py --config $config --workdir $workdir --config.train.progress=False $overrides"
  echo "=== $(date -u +%H:%M:%S) start $dataset/$study/$name: $overrides"
  mkdir -p "$workdir"
  # shellcheck disable=SC2086
  if $cmd > "$workdir/train.log" 2>&1; then
    mkdir -p "$out"
    cp "$workdir"/{results.json,config.json,metrics.jsonl} "$out"/
    # Shell-quoted, so the line can be pasted back into a shell (values like
    # ('genres',) hold characters the shell would otherwise interpret).
    # shellcheck disable=SC2086
    { printf '%q ' $cmd; echo; } > "$out/command.txt"
    echo "=== $(date -u +%H:%M:%S) done $dataset/$study/$name"
  else
    echo "=== $(date -u +%H:%M:%S) FAILED $dataset/$study/$name (see $workdir/train.log)"
  fi
done
