"""Validation NDCG@10 per history-length bucket for exported runs (evaluate.py --export).

  python scripts/length_buckets.py sasrec=/tmp/exp/sas fame_text=/tmp/exp/fame

Each NAME=DIR is an export directory (arrays.npz + manifest.json). A user's
bucket is the export's `history_lengths` (items before the scored target);
all exports must cover the same users. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

_EDGES = (0, 50, 100, 200, 400, None)


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("runs", nargs="+", help="NAME=EXPORT_DIR")
  args = ap.parse_args(argv)
  out, users = {"runs": {}}, None
  for spec in args.runs:
    if "=" not in spec:
      raise SystemExit(f"expected NAME=EXPORT_DIR, got {spec!r}")
    name, d = spec.split("=", 1)
    a = np.load(os.path.join(d, "arrays.npz"))
    with open(os.path.join(d, "manifest.json")) as f:
      manifest = json.load(f)
    if users is None:
      users = a["user_index"]
    elif not np.array_equal(a["user_index"], users):
      raise SystemExit(f"{d}: exports cover different users")
    n, ndcg = a["history_lengths"], a["ndcg_at_10"]
    buckets = []
    for lo, hi in zip(_EDGES[:-1], _EDGES[1:]):
      m = (n >= lo) & (n < hi) if hi is not None else (n >= lo)
      buckets.append({"history": f"{lo}-{hi - 1}" if hi is not None else f">={lo}",
                      "users": int(m.sum()), "NDCG@10": float(ndcg[m].mean()) if m.any() else None})
    out["runs"][name] = {"export": d, "workdir": manifest["workdir"], "checkpoint": manifest["checkpoint"],
                         "split": manifest["split"], "metrics": manifest["metrics"], "buckets": buckets}
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
