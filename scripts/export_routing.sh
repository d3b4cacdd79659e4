#!/usr/bin/env bash
# Exports a finished run's validation split (evaluate.py --export) and keeps the
# manifest's routing summary (gate / router entropies, top-gate-head analysis)
# as results/<dataset>/analysis/<run>_valid_routing.json, with the command.
#
#   bash scripts/export_routing.sh results/<dataset>/<run>
#
# The run's command.txt names its config, overrides and workdir (whose best
# checkpoint must still be on this machine); make_tables reads the JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=${1:?usage: scripts/export_routing.sh results/<dataset>/<run>}
run_dir=${run_dir%/}
dataset=$(basename "$(dirname "$run_dir")")
run=$(basename "$run_dir")
py=${PYTHON:-.venv/bin/python}
out=runs/$dataset/export_valid/$run
target=results/$dataset/analysis/${run}_valid_routing.json
mapfile -t cmd < <(FAME_JAX_HUGEPAGES=0 $py - "$run_dir" "$out" <<'P'
import sys
from fame_jax.analysis.score_scale import parse_command
config, overrides, workdir = parse_command(sys.argv[1])
print("\n".join([sys.executable, "evaluate.py", "--config", config, "--workdir", workdir,
                 "--split", "valid", "--export", sys.argv[2], *overrides]))
P
)
"${cmd[@]}" > /dev/null
mkdir -p "$(dirname "$target")"
$py - "$out/manifest.json" "$target" "$(printf '%q ' "${cmd[@]}")" <<'P'
import json, sys
m = json.load(open(sys.argv[1]))
keep = {k: m[k] for k in ("workdir", "checkpoint", "split", "model_variant", "metrics",
                          "head_metrics", "routing")}
keep["command"] = sys.argv[3].strip()
json.dump(keep, open(sys.argv[2], "w"), indent=1)
P
echo "wrote $target"
