#!/usr/bin/env bash
# Exports a finished run's validation split (evaluate.py --export) and keeps the
# manifest's routing summary (gate / router entropies, top-gate-head analysis)
# as results/<dataset>/analysis/<run>_valid_routing.json, with the command.
#   bash scripts/export_routing.sh <config> <dataset> <study> <run> [--config.x=y ...]
# (pass the run's own overrides, from its command.txt).
set -euo pipefail
config=$1 dataset=$2 study=$3 run=$4
shift 4
py=${PYTHON:-.venv/bin/python}
out=runs/$dataset/export_valid/$run
cmd="$py evaluate.py --config $config --workdir runs/$dataset/$study/$run --split valid --export $out $*"
$cmd > /dev/null 2>&1
mkdir -p results/$dataset/analysis
$py - "$out/manifest.json" "results/$dataset/analysis/${run}_valid_routing.json" "$cmd" <<'P'
import json, sys
m = json.load(open(sys.argv[1]))
keep = {k: m[k] for k in ("workdir", "checkpoint", "split", "model_variant", "metrics",
                          "head_metrics", "routing")}
keep["command"] = sys.argv[3]
json.dump(keep, open(sys.argv[2], "w"), indent=1)
P
echo "wrote results/$dataset/analysis/${run}_valid_routing.json"
