"""Fit against generalisation from runs' logs: training loss and validation NDCG@10 per epoch.

  python scripts/fit_curves.py results/ml1m/sasrec_seed0 \
      results/ml1m/fame_gate_uniform_seed0 [--epochs 10,20,30] \
      [--losses 5.8,5.6,5.5] [--out results/ml1m/analysis/fit_curves.jsonl]
  python scripts/fit_curves.py --all      # every results/<ds>/analysis/fit_curves.jsonl

Each argument is a run's results (or work) directory holding ``metrics.jsonl``
(one row per epoch: ``loss`` is the epoch's mean training cross-entropy over
its targets, dropout on; ``valid/NDCG@10`` the full-ranking validation metric
after that epoch). Nothing is recomputed: it reads the logs only.

For every run, one JSON line:

* ``at_epoch``: ``{epoch: [loss, valid NDCG@10]}`` at the ``--epochs`` asked for
  (``null`` past the run's last epoch);
* ``at_loss``: ``{level: [epoch, valid NDCG@10]}`` for the first epoch whose
  training loss is at or below each ``--losses`` level (``null`` where the run
  never got there). Two models compared at the same training loss tell
  "fits the training data worse" (it reaches a level later or never) apart
  from "generalises worse at the same fit" (lower NDCG at the same level);
* ``best_epoch`` / ``best_valid`` / ``loss_at_best``: the best validation
  epoch (the first of ties, as the trainer keeps it), its NDCG@10 and loss.

A malformed log stops the script with the file and line.
"""

from __future__ import annotations

import argparse
import json
import os

from fame_jax.analysis.seeds import jsonl_rows

_NDCG = "valid/NDCG@10"


def read_log(run_dir: str) -> list[dict]:
  """The epoch rows of ``run_dir/metrics.jsonl`` that carry a validation metric, in order.

  Raises:
    SystemExit: the file is missing, a line is not JSON, or an epoch row lacks
      ``epoch`` / ``loss`` / ``valid/NDCG@10`` (the message names file and line).
  """
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    raise SystemExit(f"{path} not found: pass a run's results or work directory")
  rows = []
  for n, row in jsonl_rows(path):
    if _NDCG not in row:  # Rows without validation (e.g. a final test row) are not epochs.
      continue
    for key in ("epoch", "loss"):
      if not isinstance(row.get(key), (int, float)):
        raise SystemExit(f"{path}:{n}: epoch row without a numeric {key!r}")
    rows.append(row)
  if not rows:
    raise SystemExit(f"{path}: no epoch rows with {_NDCG}")
  return rows


def summarise(rows: list[dict], epochs: list[int], losses: list[float]) -> dict:
  """The ``at_epoch`` / ``at_loss`` / best-epoch summary of one run's epoch rows."""
  by_epoch = {int(r["epoch"]): r for r in rows}
  at_epoch = {str(e): ([by_epoch[e]["loss"], by_epoch[e][_NDCG]] if e in by_epoch else None)
              for e in epochs}
  at_loss = {}
  for level in losses:
    first = next((r for r in rows if r["loss"] <= level), None)
    at_loss[repr(level)] = None if first is None else [int(first["epoch"]), first[_NDCG]]
  best = max(rows, key=lambda r: (r[_NDCG], -r["epoch"]))  # First epoch of a tie.
  return {"epochs_run": int(rows[-1]["epoch"]), "at_epoch": at_epoch, "at_loss": at_loss,
          "best_epoch": int(best["epoch"]), "best_valid": best[_NDCG], "loss_at_best": best["loss"]}


def _floats(text: str) -> list[float]:
  return [float(x) for x in text.split(",") if x]


def _seeds(name: str, *seeds: int) -> list[str]:
  return [f"{name}_seed{k}" for k in seeds]


# What `--all` writes to results/<dataset>/analysis/fit_curves.jsonl: each
# dataset's committed SASRec and FAME runs and the ablations docs/findings.md
# cites, with loss levels spread over the range those runs cross.
STANDARD_RUNS = {
    "ml1m": ([*_seeds("sasrec", 0, 1, 2), "fame_nofacet_seed0", *_seeds("fame_gate_uniform", 0, 1, 2),
              *_seeds("fame_uniform_allmoe", 0, 1, 2), "sasrec_d128_seed0", "sasrec_d128_l3_seed0",
              "fame_text_d128_pscale4_l3_seed0", *_seeds("fame_uniform_lr2e-3", 0, 1, 2),
              "sasrec_lr2e-3_seed0", *_seeds("fame_uniform_headffn_full", 0, 1),
              "fame_uniform_oscale2_seed0", *_seeds("fame_uniform_headffn_dense", 0, 1, 2),
              *_seeds("fame_uniform_headffn_dense_oscale2", 0, 1)],
             [5.9, 5.8, 5.75, 5.7, 5.6, 5.55, 5.5, 5.45, 5.4]),
    "beauty": ([*_seeds("sasrec_h4", 0, 1, 2), *_seeds("sasrec_d128_lr2.5e-4", 0, 1, 2),
                *_seeds("fame_uniform_h4_oscale4", 0, 1, 2), *_seeds("fame_allmoe_gate_uniform", 0, 1, 2),
                "fame_nofacet_d128_lr2.5e-4_seed0", *_seeds("fame_uniform_h4_oscale4_headffn_dense", 0, 1, 2)],
               [7.5, 7.0, 6.6, 6.4, 6.2, 6.0]),
    "sports": ([*_seeds("sasrec_d128_lr2.5e-4", 0, 1, 2), *_seeds("fame_gate_uniform", 0, 1, 2),
                *_seeds("fame_uniform_h4_oscale4", 0, 1, 2),
                *_seeds("fame_uniform_h4_oscale4_headffn_dense", 0, 1, 2)],
               [7.5, 7.2, 7.0, 6.8, 6.6]),
}
STANDARD_EPOCHS = [10, 20, 30, 40]


def write_lines(runs: list[str], epochs: list[int], losses: list[float], out: str | None) -> list[str]:
  """One JSON line per run (``run`` is the directory as given); written to ``out`` when set."""
  lines = [json.dumps({"run": os.path.normpath(d), **summarise(read_log(d), epochs, losses)})
           for d in runs]
  if out:
    with open(out, "w") as f:
      f.write("\n".join(lines) + "\n")
  return lines


def write_all(root: str) -> list[str]:
  """Rewrites every ``results/<dataset>/analysis/fit_curves.jsonl`` of :data:`STANDARD_RUNS`.

  Run paths are relative to ``root`` (the repository), as the tables print them.
  """
  written = []
  cwd = os.getcwd()
  os.chdir(root)  # So the stored run paths read results/<dataset>/<run>.
  try:
    for dataset, (names, losses) in STANDARD_RUNS.items():
      out = os.path.join("results", dataset, "analysis", "fit_curves.jsonl")
      write_lines([os.path.join("results", dataset, n) for n in names], STANDARD_EPOCHS, losses, out)
      written.append(out)
  finally:
    os.chdir(cwd)
  return written


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("runs", nargs="*", help="results or work directories with metrics.jsonl")
  ap.add_argument("--all", action="store_true",
                  help="rewrite results/<dataset>/analysis/fit_curves.jsonl for the standard runs")
  ap.add_argument("--epochs", default="10,20,30,40", help="comma-separated epochs")
  ap.add_argument("--losses", default="", help="comma-separated training-loss levels")
  ap.add_argument("--out", help="write the JSON lines to this file too (replacing it)")
  args = ap.parse_args(argv)
  if args.all:
    if args.runs or args.out:
      ap.error("--all takes no run directories and no --out")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for path in write_all(root):
      print(f"wrote {path}")
    return
  if not args.runs:
    ap.error("give run directories, or --all")
  print("\n".join(write_lines(args.runs, [int(e) for e in _floats(args.epochs)],
                              _floats(args.losses), args.out)))
