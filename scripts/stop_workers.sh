#!/usr/bin/env bash
# Stop the queue workers (scripts/queue_worker.sh) and their training runs, and
# keep what the interrupted runs measured: for every claimed run of the queue
# without final results, its metrics.jsonl so far and the command that was
# running go to results/<dataset>/in_progress/<name>/ (small files only; the
# checkpoints stay in runs/, which does not outlive a fresh checkout).
#
#   bash scripts/stop_workers.sh scripts/queue.txt
#   bash scripts/stop_workers.sh scripts/queue.txt --snapshot   # keep them running
#
# With --snapshot nothing is stopped: the running runs' metrics so far are
# copied the same way (e.g. to commit them while the queue goes on).
set -uo pipefail
queue=${1:?usage: stop_workers.sh QUEUE_FILE [--snapshot]}
mode=${2:-stop}
[[ "$mode" == stop || "$mode" == --snapshot ]] || { echo "unknown option: $mode" >&2; exit 2; }
py=${PYTHON:-.venv/bin/python}
claims=runs/.claims
if [[ "$mode" == stop ]]; then
  pkill -f "queue_worker.sh $queue" || true
  pkill -f "train.py --config" || true
  sleep 2
fi
[[ -d "$claims" ]] || { echo "no claims in $claims"; exit 0; }
while read -r config dataset study name overrides; do
  [[ -z "${config:-}" || "$config" == \#* ]] && continue
  [[ -d "$claims/${dataset}__${study}__${name}" ]] || continue
  [[ -f "results/$dataset/$study/$name/results.json" ]] && continue
  workdir="runs/$dataset/$study/$name"
  if [[ ! -s "$workdir/metrics.jsonl" ]]; then
    echo "$dataset/$study/$name: interrupted before its first metrics line, nothing to keep"
    continue
  fi
  out="results/$dataset/in_progress/$name"
  mkdir -p "$out"
  cp "$workdir/metrics.jsonl" "$out/"
  [[ -f "$workdir/config.json" ]] && cp "$workdir/config.json" "$out/"
  # shellcheck disable=SC2086
  { printf '%q ' $py train.py --config $config --workdir $workdir --config.train.progress=False $overrides; echo; } > "$out/command.txt"
  echo "$dataset/$study/$name: $(wc -l < "$out/metrics.jsonl") metrics lines kept in $out"
done < "$queue"
