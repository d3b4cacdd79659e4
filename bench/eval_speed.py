"""Benchmark: wall time of one full-ranking ``evaluation.evaluate`` at Beauty size.

Run::

  .venv/bin/python bench/eval_speed.py [--batch_size 1024] [--users_file PATH]

Uses the real S3-Rec Beauty histories when /work/shared/data/beauty/Beauty.txt
exists (test split: input ``s[:-1]``, target ``s[-1]``), otherwise a synthetic
case of the same size (22,363 users, 12,101 items, lengths ~ Beauty's). User
vectors ``u [U, d]`` and the item table are random; the score function is the
jitted ``u[user_index] @ item_table.T``, so the time is the protocol's cost
(scores, history masking, ranks, metrics) without a model. Prints one JSON line;
``wall_seconds`` is the best of ``--repeats`` timed runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fame_jax import runtime  # noqa: E402

runtime.use_huge_pages()  # Before JAX loads (fame_jax/runtime.py).

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fame_jax import evaluation, parallel  # noqa: E402

_BEAUTY = "/work/shared/data/beauty/Beauty.txt"


def _load_histories(path: str, rng: np.random.Generator):
  """``(histories, targets, num_items, source)`` for the test split."""
  if os.path.exists(path):
    histories, targets, num_items = [], [], 0
    with open(path) as f:
      for line in f:
        ids = np.asarray(line.split()[1:], np.int32)  # "user item item ..."
        if len(ids) < 3:
          continue
        num_items = max(num_items, int(ids.max()))
        histories.append(ids[:-1])
        targets.append(ids[-1])
    return histories, np.asarray(targets, np.int32), num_items, path
  users, num_items = 22363, 12101
  # Beauty is 5-core with mean length ~8.9 and a long tail.
  lens = np.minimum(5 + rng.geometric(1 / 4.9, size=users), 200)
  histories = [rng.integers(1, num_items + 1, size=n - 1).astype(np.int32) for n in lens]
  targets = rng.integers(1, num_items + 1, size=users).astype(np.int32)
  return histories, targets, num_items, "synthetic"


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch_size", type=int, default=512)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--data", default=_BEAUTY)
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  histories, targets, num_items, source = _load_histories(args.data, rng)
  users = len(histories)
  u = jnp.asarray(rng.normal(size=(users, args.dim)).astype(np.float32))
  table = jnp.asarray((rng.normal(size=(num_items + 1, args.dim)) * 0.1).astype(np.float32))

  @jax.jit
  def scores_for(idx):
    return u[idx] @ table.T

  def score_fn(inputs, lengths, user_index):
    del inputs, lengths  # Scores come from the precomputed user vectors.
    return scores_for(user_index)

  def run():
    return evaluation.evaluate(score_fn, histories, targets, num_items,
                               batch_size=args.batch_size, mask_history=True,
                               pass_user_index=True)

  run()  # warm-up: compiles the score and rank functions for every bucket
  # The CPU is shared; the best of a few runs is the least noisy estimate.
  # CPU seconds of this process are reported too: under contention they show
  # how much of the wall time was our own work.
  walls, cpus = [], []
  for _ in range(args.repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    metrics = run()
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
  wall = min(walls)
  print(json.dumps({
      "bench": "eval_speed",
      "users": users,
      "items": num_items,
      "wall_seconds": round(wall, 4),
      "wall_seconds_all": [round(w, 4) for w in walls],
      "cpu_seconds_all": [round(c, 4) for c in cpus],
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      "batch_size": args.batch_size,
      "device": jax.devices()[0].device_kind,
      "device_peak_mb": parallel.device_memory_peak_mb(),  # None on CPU.
      "data": source,
      "HR@10": round(metrics["HR@10"], 5),
  }))


if __name__ == "__main__":
  main()
