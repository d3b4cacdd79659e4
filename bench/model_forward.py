"""Benchmark: parameter counts and forward time of SASRec and FAME at Beauty size.

Run::

  .venv/bin/python bench/model_forward.py [--batch_size 256] [--max_len 50]

Builds both models from ``configs/base.py`` (d 64, H 2, E 4, 2 layers,
ffn_inner 256; SASRec = the same with ``num_experts=1, facet_heads=False``)
over 12,101 items (S3-Rec Beauty), and times on one ``[batch_size, max_len]``
batch of full-length rows:

* ``forward_ms``: the jitted ``model.apply(..., train=False)``;
* ``score_all_ms``: jitted ``score_items`` on every position's ``u``
  (``[B, L, N+1]``, what the dense training loss computes);
* ``score_last_ms``: jitted ``score_items`` on the last position only
  (``[B, N+1]``, what evaluation computes).

Each is the median of ``--repeats`` timed calls after one warm-up (compile)
call; CPU seconds are reported too because the CPU may be shared. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fame_jax import runtime  # noqa: E402

runtime.use_huge_pages()  # Before JAX loads (fame_jax/runtime.py).

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs.base import get_base_config  # noqa: E402
from fame_jax.models import FAME, count_params, extra_params_formula, score_items  # noqa: E402

_BEAUTY_ITEMS = 12101


def _timed(fn, *args, repeats):
  """``(median wall ms, median CPU ms)`` of ``fn(*args)`` after a warm-up."""
  jax.block_until_ready(fn(*args))  # Compile.
  walls, cpus = [], []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    walls.append((time.perf_counter() - t0) * 1e3)
    cpus.append((time.process_time() - c0) * 1e3)
  return round(statistics.median(walls), 2), round(statistics.median(cpus), 2)


def _model_cfg(sasrec: bool, max_len: int):
  c = get_base_config()
  c.model.max_len = max_len
  if sasrec:
    c.model.num_experts = 1
    c.model.facet_heads = False
  c.lock()
  return c.model


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--max_len", type=int, default=50)
  parser.add_argument("--num_items", type=int, default=_BEAUTY_ITEMS)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  shape = (args.batch_size, args.max_len)
  items = jnp.asarray(rng.integers(1, args.num_items + 1, size=shape), jnp.int32)
  positions = jnp.broadcast_to(jnp.arange(args.max_len, dtype=jnp.int32), shape)
  segments = jnp.ones(shape, jnp.int32)

  result = {"bench": "model_forward", "batch": list(shape), "num_items": args.num_items,
            "device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(),
            "repeats": args.repeats}
  for name, sasrec in (("sasrec", True), ("fame", False)):
    cfg = _model_cfg(sasrec, args.max_len)
    model = FAME(cfg=cfg, num_items=args.num_items)
    params = jax.jit(lambda k: model.init({"params": k}, items, positions, segments,  # noqa: B023
                                          train=False)["params"])(jax.random.key(0))
    forward = jax.jit(lambda p, i, t, s: model.apply({"params": p}, i, t, s, train=False)[0])  # noqa: B023
    u = forward(params, items, positions, segments)
    table = params["item_emb"]["embedding"]
    score = jax.jit(score_items)
    result[f"{name}_params"] = count_params(params)
    result[f"{name}_forward_ms"], result[f"{name}_forward_cpu_ms"] = _timed(
        forward, params, items, positions, segments, repeats=args.repeats)
    result[f"{name}_score_all_ms"], _ = _timed(score, u, table, repeats=args.repeats)
    result[f"{name}_score_last_ms"], _ = _timed(score, u[:, -1], table, repeats=args.repeats)
    if not sasrec:
      result["extra_params_formula"] = extra_params_formula(cfg, args.num_items)
  result["counted_extra"] = result["fame_params"] - result["sasrec_params"]
  print(json.dumps(result))


if __name__ == "__main__":
  main()
