r"""Dataset statistics as JSON, plus two closed-form baselines.

Usage (from the repo root; relative data paths resolve against the cwd)::

  python -m fame_jax.data.stats --config configs/base.py
  python -m fame_jax.data.stats --config configs/beauty.py \
      --config.data.path=../shared/data/beauty/Beauty.txt --baselines

Prints one JSON object: users, items, interactions, average/min/max length,
density, the preprocessing report (what each step dropped), the users the
leave-one-out split drops as too short, and with ``--baselines`` the test
HR@10 of popularity and of a first-order Markov chain (full ranking, history
masked, ties against the target: the protocol of docs/protocol.md §7), which is a
cheap sanity check that a dataset's order carries signal.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import scipy.sparse

from fame_jax.data.dataset import Dataset
from fame_jax.data.split import leave_one_out


def statistics(ds: Dataset) -> dict[str, Any]:
  """``Dataset.statistics()`` plus the split's dropped-user count."""
  out = ds.statistics()
  split = leave_one_out(ds.sequences)
  out["split_dropped_users"] = split.dropped_users
  out["split_evaluable_users"] = len(split.users)
  out["item_meta_fields"] = sorted(ds.item_meta)
  return out


def _hr_at_k(scores_fn, split, num_items: int, k: int) -> float:
  """Test HR@k with history masking and pessimistic ties (docs/protocol.md §7)."""
  hits = 0
  for hist, target in zip(split.test_inputs, split.test_targets):
    scores = scores_fn(hist).astype(np.float64)
    scores[0] = -np.inf
    target_score = scores[target]
    scores[hist] = -np.inf
    scores[target] = target_score  # The target is never excluded.
    # Ties count against the target: rank = #(score >= target) - 1.
    rank = int((scores >= target_score).sum()) - 1
    hits += rank < k
  return hits / max(1, len(split.test_targets))


def baseline_hr(ds: Dataset, k: int = 10) -> dict[str, float]:
  """Test HR@k of popularity and of a first-order Markov chain.

  Both are fit on the training parts of the leave-one-out split only. The
  Markov score of item ``j`` after last item ``i`` is the transition count
  ``i -> j`` plus popularity / (max popularity + 1), so popularity only breaks
  ties between equal counts.

  Returns:
    ``{"popularity_hr@k": float, "markov_hr@k": float, "users": int}``.
  """
  split = leave_one_out(ds.sequences)
  n = ds.num_items
  pop = np.zeros(n + 1)
  rows, cols = [], []
  for s in split.train:
    np.add.at(pop, s, 1.0)
    rows.append(s[:-1])
    cols.append(s[1:])
  rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
  cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
  trans = scipy.sparse.csr_matrix(
      (np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1))
  tie = pop / (pop.max() + 1.0)
  pop_hr = _hr_at_k(lambda h: pop.copy(), split, n, k)
  markov_hr = _hr_at_k(
      lambda h: trans[int(h[-1])].toarray().ravel() + tie, split, n, k)
  return {f"popularity_hr@{k}": pop_hr, f"markov_hr@{k}": markov_hr,
          "users": len(split.users)}


def load_config(path: str, overrides: list[str]) -> Any:
  """Loads a config file and applies ``--config.a.b=value`` overrides.

  ``path`` is ``file.py`` or ``file.py:arg`` (``get_config(arg)``), as
  ``--config`` takes it; each value is parsed with its field's type
  (:func:`fame_jax.config_tools.apply_override`), so a misspelt key or a
  wrong-typed value stops with one line naming the argument.
  """
  from fame_jax import config_tools

  try:
    cfg = config_tools.load_config_file(path)
    for item in overrides:
      config_tools.apply_override(cfg, item, source=path.split(":", 1)[0])
  except (KeyError, ValueError, TypeError) as e:
    raise SystemExit(" ".join(str(e).strip('"').split())) from None
  return cfg


def main(argv: list[str] | None = None) -> None:
  """Entry point: ``--config FILE [--config.a.b=v ...] [--baselines]``."""
  import argparse
  import sys

  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", required=True, help="Config file (.py).")
  parser.add_argument("--baselines", action="store_true",
                      help="Also print popularity and Markov test HR@10.")
  args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
  cfg = load_config(args.config, rest)
  from fame_jax.data import load_dataset
  ds = load_dataset(cfg.data)
  out = statistics(ds)
  if args.baselines:
    out["baselines"] = baseline_hr(ds)
  print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
  main()
