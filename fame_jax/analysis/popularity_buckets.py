"""NDCG@10 per target-popularity bucket, and how popular each model's top-10 is.

  python scripts/popularity_buckets.py --config configs/ml1m.py \
      sasrec=/tmp/exp/sas fame_text=/tmp/exp/fame

Each NAME=DIR is an export directory of evaluate.py --export (arrays.npz +
manifest.json); all must cover the same users and split. An item's popularity
is its number of occurrences in the training sequences (s[:-2] of every
evaluable user: exactly what the models were trained on), read from the data
file that --config (a config file whose get_config() takes no argument) names.
Users are bucketed by their target's popularity into five groups of (about)
equal size; the bucket edges are printed. For each model it also reports the
mean training count of the items in its top-10 lists and how many distinct
items those lists cover. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os

import numpy as np

from fame_jax import data as data_lib
from fame_jax.data import split as split_lib

_BUCKETS = 5


def train_counts(config_path: str) -> tuple[np.ndarray, str]:
  """Training-sequence occurrence count of each item id (index 0 = pad), and the data path."""
  spec = importlib.util.spec_from_file_location("_cfg", config_path)
  if spec is None or spec.loader is None:
    raise ValueError(f"{config_path}: not a Python config file")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  cfg = mod.get_config()
  ds = data_lib.load_dataset(cfg.data)
  sp = split_lib.leave_one_out(ds.sequences)
  counts = np.bincount(np.concatenate(sp.train), minlength=ds.num_items + 1).astype(np.int64)
  counts[0] = 0
  return counts, cfg.data.get("path", "") or cfg.data.get("name", "")


def buckets_for(counts: np.ndarray, exports: list[tuple[str, str]]) -> dict:
  """The JSON report for already-loaded item counts and NAME, DIR export pairs."""
  out = {"item_popularity": "occurrences in the training sequences (s[:-2] of every user)",
         "runs": {}}
  users = targets = split = None
  edges = None
  for name, d in exports:
    a = np.load(os.path.join(d, "arrays.npz"))
    with open(os.path.join(d, "manifest.json")) as f:
      manifest = json.load(f)
    if users is None:
      users, targets, split = a["user_index"], a["targets"], manifest["split"]
      if targets.max(initial=0) >= len(counts):
        raise ValueError(f"{d}: target item ids exceed the dataset's {len(counts) - 1} items "
                         "(export of a different dataset?)")
      pop = counts[targets]
      qs = np.quantile(pop, np.linspace(0, 1, _BUCKETS + 1)[1:-1])
      edges = [int(pop.min())] + [int(np.ceil(q)) for q in qs] + [int(pop.max()) + 1]
      edges = sorted(set(edges))
    elif (not np.array_equal(a["user_index"], users) or not np.array_equal(a["targets"], targets)
          or manifest["split"] != split):
      raise ValueError(f"{d}: exports cover different users, targets or splits")
    ndcg = a["ndcg_at_10"]
    top = a["top_items"][:, :10]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
      m = (pop >= lo) & (pop < hi)
      rows.append({"target_train_count": f"{lo}-{hi - 1}", "users": int(m.sum()),
                   "NDCG@10": float(ndcg[m].mean()) if m.any() else None})
    out["runs"][name] = {
        "export": d, "workdir": manifest["workdir"], "checkpoint": manifest["checkpoint"],
        "split": manifest["split"], "metrics": manifest["metrics"], "buckets": rows,
        "top10_mean_train_count": float(counts[top].mean()),
        "top10_median_train_count": float(np.median(counts[top])),
        "top10_distinct_items": int(len(np.unique(top))),
    }
  out["target_mean_train_count"] = float(pop.mean())
  return out


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", required=True, help="config file naming the data (e.g. configs/ml1m.py)")
  ap.add_argument("runs", nargs="+", help="NAME=EXPORT_DIR")
  args = ap.parse_args(argv)
  exports = []
  for spec in args.runs:
    if "=" not in spec:
      raise SystemExit(f"expected NAME=EXPORT_DIR, got {spec!r}")
    exports.append(tuple(spec.split("=", 1)))
  counts, path = train_counts(args.config)
  try:
    out = buckets_for(counts, exports)
  except ValueError as e:  # One line naming the export, not a traceback.
    raise SystemExit(str(e)) from None
  out["config"], out["data"] = args.config, path
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
