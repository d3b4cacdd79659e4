#!/usr/bin/env bash
# Regenerates results/<ds>/analysis/fit_curves.jsonl (scripts/fit_curves.py):
# training loss against validation NDCG@10 for each dataset's committed SASRec
# and FAME runs and the ablations the README cites. Reads logs only (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
f=results/ml1m/full
$py scripts/fit_curves.py $f/sasrec_seed{0,1,2} $f/fame_nofacet_seed0 $f/fame_gate_uniform_seed{0,1,2} \
  $f/fame_uniform_allmoe_seed{0,1,2} $f/sasrec_d128_seed0 $f/sasrec_d128_l3_seed0 $f/fame_text_d128_pscale4_l3_seed0 \
  $f/fame_uniform_lr2e-3_seed{0,1,2} $f/sasrec_lr2e-3_seed0 \
  $f/fame_uniform_headffn_full_seed{0,1} $f/fame_uniform_oscale2_seed0 $f/fame_uniform_headffn_dense_seed{0,1,2} \
  results/ml1m/in_progress/fame_uniform_{headmix,headnorm_full,ffnhead512,headffn_dense64,keyproj}_seed0 \
  $f/fame_uniform_headffn_dense_oscale2_seed{0,1} \
  --epochs 10,20,30,40 --losses 5.9,5.8,5.75,5.7,5.6,5.55,5.5,5.45,5.4 \
  --out results/ml1m/analysis/fit_curves.jsonl > /dev/null
f=results/beauty/full
$py scripts/fit_curves.py $f/sasrec_h4_seed{0,1,2} $f/sasrec_d128_lr2.5e-4_seed{0,1,2} $f/fame_uniform_h4_oscale4_seed{0,1,2} \
  $f/fame_allmoe_gate_uniform_seed{0,1,2} $f/fame_nofacet_d128_lr2.5e-4_seed0 \
  $f/fame_uniform_h4_oscale4_headffn_dense_seed{0,1,2} \
  --epochs 10,20,30,40 --losses 7.5,7.0,6.6,6.4,6.2,6.0 --out results/beauty/analysis/fit_curves.jsonl > /dev/null
f=results/sports/full
$py scripts/fit_curves.py $f/sasrec_d128_lr2.5e-4_seed{0,1,2} $f/fame_gate_uniform_seed{0,1,2} \
  $f/fame_uniform_h4_oscale4_seed{0,1,2} $f/fame_uniform_h4_oscale4_headffn_dense_seed{0,1,2} \
  --epochs 10,20,30,40 --losses 7.5,7.2,7.0,6.8,6.6 --out results/sports/analysis/fit_curves.jsonl > /dev/null
wc -l results/{ml1m,beauty,sports}/analysis/fit_curves.jsonl
