"""Spectrum of the map from a trained model's last LayerNorm to its user vector u.

  python scripts/output_map.py runs/beauty/<run> ... \
      [--out results/beauty/analysis/output_map.jsonl]

Item scores are <u, item_emb[v]>, and u is a linear map M of the normalised
(pre-scale, pre-bias) output n of the last LayerNorm, plus a constant:

* no facet heads (SASRec, or FAME with facet_heads=False): M = diag(gamma);
* facet heads, uniform gate (1/H), facet_item_proj="slice":
  M = diag(gamma) / H;
* facet heads, uniform gate, "linear": M = [W_f^1 ... W_f^H] diag(gamma) / H
  (the learned user-side projection);

where gamma is that LayerNorm's scale (head_ffn_norm, shared by the heads and
tiled H times, with facet heads; ffn_norm without).
With a learned gate M varies per position; it is reported with g = 1/H and
flagged. The singular values of M say how much each output direction is
amplified: the score scale the model learned. Prints one JSON line per run
(best checkpoint) and appends them to --out if given.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

import ml_collections
import numpy as np

from fame_jax.training import loop


def output_map(params, model_cfg) -> np.ndarray:
  """M [d, d] as in the module docstring."""
  block = params["fame_block"]
  if not model_cfg.facet_heads:
    return np.diag(np.asarray(block["ffn_norm"]["scale"]))
  h = model_cfg.num_heads
  gamma = np.tile(np.asarray(block["head_ffn_norm"]["scale"]), h)
  if model_cfg.facet_item_proj == "slice":
    return np.diag(gamma) / h
  w = np.asarray(block["facet_proj"])  # [H, d, d']
  return np.concatenate(list(w), axis=1) * gamma[None, :] / h


def summary(workdir: str, checkpoint: str = "best") -> dict:
  with open(os.path.join(workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  with open(os.path.join(workdir, "data_summary.json")) as f:
    num_items = json.load(f)["items"]
  params = loop.restore_params(config, workdir, num_items, checkpoint)
  m = output_map(params, config.model)
  sv = np.linalg.svd(m, compute_uv=False)
  results_path = os.path.join(workdir, "results.json")
  best_epoch = None
  if os.path.isfile(results_path):
    with open(results_path) as f:
      best_epoch = json.load(f).get("best_epoch")
  return {
      "dataset": config.data.name,
      "run": os.path.basename(os.path.normpath(workdir)),
      "checkpoint": checkpoint,
      "best_epoch": best_epoch,
      "facet_heads": bool(config.model.facet_heads),
      "facet_item_proj": config.model.facet_item_proj if config.model.facet_heads else None,
      "gate": config.model.gate if config.model.facet_heads else None,
      "gate_as_uniform": bool(config.model.facet_heads and config.model.gate != "uniform"),
      "sv_top5": [round(float(x), 3) for x in sv[:5]],
      "sv_median": round(float(np.median(sv)), 3),
      "sv_min": round(float(sv.min()), 3),
      "top_over_median": round(float(sv[0] / np.median(sv)), 3),
  }


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("workdirs", nargs="+")
  ap.add_argument("--checkpoint", default="best")
  ap.add_argument("--out", default="")
  args = ap.parse_args(argv)
  command = "python scripts/output_map.py " + " ".join(
      shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
  rows = []
  for wd in args.workdirs:
    if not os.path.isfile(os.path.join(wd, "config.json")):
      raise SystemExit(f"{wd}: no config.json (not a training workdir)")
    row = summary(wd, args.checkpoint)
    row["command"] = command
    print(json.dumps(row))
    rows.append(row)
  if args.out:
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "a") as f:
      for row in rows:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  main()
