"""Validation NDCG@10 per history-length bucket for exported runs (evaluate.py --export).

  .venv/bin/python scripts/length_buckets.py --data ../shared/data/ml-1m/ml-1m_item5_3416.txt \\
      sasrec=/tmp/exp/sas fame_text=/tmp/exp/fame

Each NAME=DIR is an export directory (arrays.npz + manifest.json). A user's
bucket is the number of items on their line of the data file (the whole
sequence); all exports must cover the same users. Prints one JSON object.
"""

import argparse
import json
import os

import numpy as np

_EDGES = (0, 50, 100, 200, 400, None)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--data", required=True, help="`user item item ...` file the runs trained on")
  ap.add_argument("runs", nargs="+", help="NAME=EXPORT_DIR")
  args = ap.parse_args()
  lengths = {}
  with open(args.data) as f:
    for lineno, line in enumerate(f, 1):
      parts = line.split()
      if not parts:
        continue
      if len(parts) < 2:
        raise ValueError(f"{args.data}:{lineno}: a user with no items")
      lengths[parts[0]] = len(parts) - 1
  out, users = {"data": args.data, "runs": {}}, None
  for spec in args.runs:
    if "=" not in spec:
      raise ValueError(f"expected NAME=EXPORT_DIR, got {spec!r}")
    name, d = spec.split("=", 1)
    a = np.load(os.path.join(d, "arrays.npz"))
    with open(os.path.join(d, "manifest.json")) as f:
      manifest = json.load(f)
    uid = [str(u) for u in a["user_raw_ids"]]
    if users is None:
      users = uid
    elif uid != users:
      raise ValueError(f"{d}: exports cover different users")
    missing = [u for u in uid if u not in lengths]
    if missing:
      raise ValueError(f"{d}: user {missing[0]} is not in {args.data}")
    n = np.array([lengths[u] for u in uid])
    ndcg = a["ndcg_at_10"]
    buckets = []
    for lo, hi in zip(_EDGES[:-1], _EDGES[1:]):
      m = (n >= lo) & (n < hi) if hi is not None else (n >= lo)
      buckets.append({"items": f"{lo}-{hi - 1}" if hi is not None else f">={lo}",
                      "users": int(m.sum()), "NDCG@10": float(ndcg[m].mean()) if m.any() else None})
    out["runs"][name] = {"export": d, "workdir": manifest["workdir"], "checkpoint": manifest["checkpoint"],
                         "split": manifest["split"], "metrics": manifest["metrics"], "buckets": buckets}
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
