"""Scale benchmark: FAME training and full-ranking scoring at ML-20M size, 1 M and 10 M items.

  .venv/bin/python bench/scale.py                      # ml20m and items1m, one JSON line
  .venv/bin/python bench/scale.py --cases items1m --steps 3
  .venv/bin/python bench/scale.py --cases items10m --devices 8 --shard_table --steps 2

Two synthetic datasets are generated (nothing is downloaded):

* ``ml20m``: ML-20M's size, 138,000 users, 27,000 items, 20 M interactions
  (lengths log-normal around ML-20M's mean of ~145, at least 20), window 200;
* ``items1m``: 1,000,000 items, 200,000 users, 2 M interactions, window 50;
* ``items10m``: 10,000,000 items, 20,000 users, 200,000 interactions, window
  50, batches of 8 sequences (the full softmax over 10 M items is ~4 GFLOP a
  target); not in the default ``--cases``.

``--devices N`` runs each case on N simulated CPU devices (or the first N
accelerators' worth of ``XLA_FLAGS`` on CPU) and ``--shard_table`` splits the
item table and its Adam moments by rows over them (``train.shard_item_table``,
fame_jax/sharded_table.py); ranking then counts per shard.

Items follow a Zipf-like popularity. Each case runs in its own subprocess so
its peak RSS is its own. Per case it measures, with the chunked loss
(``train.loss_impl="chunked"``, item tiles of ``--chunk``; memory O(T x chunk),
docs/protocol.md §9) and the protocol model (d=64, H=2, E=4, batch 256 sequences, packed rows):

* median seconds per train step after one warm-up step, training targets per
  step and per second, and the seconds per epoch that implies;
* ranking of ``--eval_users`` users against the whole catalog, history masked,
  with ``evaluation.compute_ranks_from_user_vectors`` (tiles over items, never
  a ``[B, N]`` matrix): seconds per 1,000 users and for all users;
* peak RSS of the process, next to what the dense loss's logits alone would
  take (``T x (N + 1) x 4`` bytes, forward only) to show the memory is bounded
  by the tile, not the catalog;
* per device, the bytes of the train state's arrays held by device 0
  (``state_mb_device0``, read from the live arrays' shards) and of the item
  table with its two Adam moments (``table_and_moments_mb_device0``). On CPU
  the simulated devices share one process, so the RSS is the sum over
  devices, and ``Device.memory_stats`` is unavailable (``device_peak_mb`` is
  None); on accelerators ``device_peak_mb`` is the largest device's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fame_jax import runtime  # noqa: E402

runtime.use_huge_pages()  # Before JAX loads (fame_jax/runtime.py).

CASES = {
    "ml20m": dict(users=138_000, items=27_000, interactions=20_000_000, min_len=20, max_len=200),
    "items1m": dict(users=200_000, items=1_000_000, interactions=2_000_000, min_len=5, max_len=50),
    "items10m": dict(users=20_000, items=10_000_000, interactions=200_000, min_len=5, max_len=50,
                     batch_size=8),
}


def _rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_sequences(users: int, items: int, interactions: int, min_len: int, seed: int = 0):
  """``users`` int32 sequences over ``1..items`` with about ``interactions`` items in all."""
  import numpy as np
  rng = np.random.default_rng(seed)
  mean = interactions / users
  raw = rng.lognormal(mean=0.0, sigma=1.0, size=users)
  lens = np.maximum(min_len, np.round(raw / raw.mean() * mean)).astype(np.int64)
  # Rescale the part above min_len so the total hits the target.
  extra = lens - min_len
  want = interactions - min_len * users
  lens = min_len + np.floor(extra * (want / max(1, extra.sum()))).astype(np.int64)
  pop = 1.0 / np.arange(1, items + 1) ** 0.8
  flat = rng.choice(items, size=int(lens.sum()), p=pop / pop.sum()).astype(np.int32) + 1
  return np.split(flat, np.cumsum(lens)[:-1]), int(lens.sum())


def _device0_mb(state) -> tuple[float, float]:
  """MiB of the state's arrays held by the first device: all, and item-table ones."""
  import jax
  dev = jax.devices()[0]
  total = table = 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    if not isinstance(leaf, jax.Array):
      continue
    nbytes = sum(s.data.nbytes for s in leaf.addressable_shards if s.device == dev)
    total += nbytes
    if "item_emb" in jax.tree_util.keystr(path):
      table += nbytes
  return round(total / 2**20, 1), round(table / 2**20, 1)


def run_case(name: str, args) -> dict:
  import jax
  import numpy as np

  from configs.base import get_base_config
  from fame_jax import evaluation, parallel, sharded_table
  from fame_jax.data import batching, split as split_lib
  from fame_jax.training import state as state_lib, steps as steps_lib

  spec = dict(CASES[name])
  batch_size = args.batch_size or spec.pop("batch_size", 256)
  spec.pop("batch_size", None)
  spec["users"] //= args.shrink
  spec["interactions"] //= args.shrink
  t0 = time.perf_counter()
  seqs, total = synthetic_sequences(spec["users"], spec["items"], spec["interactions"], spec["min_len"])
  split = split_lib.leave_one_out(seqs)
  del seqs
  gen_s = time.perf_counter() - t0
  rss_data = _rss_mb()

  c = get_base_config()
  c.data.max_len = c.model.max_len = spec["max_len"]
  c.train.loss_impl = "chunked"
  c.train.loss_chunk_items = args.chunk
  c.train.batch_size = batch_size
  c.train.shard_item_table = bool(args.shard_table)
  mesh = parallel.make_mesh()
  batcher = batching.make_batcher(split.train, examples="all_positions", max_len=spec["max_len"],
                                  batch_size=batch_size, packing=True,
                                  row_multiple=mesh.devices.size)
  batches = batcher.epoch(0, 1)  # Lazy: only the batches read below are built.
  table_layout = sharded_table.layout_for(c, spec["items"], mesh)
  t = time.perf_counter()
  model, state = state_lib.create_train_state(c, spec["items"], jax.random.key(0), table=table_layout)
  state = sharded_table.put_state(state, mesh, table_layout)
  jax.block_until_ready(state)
  init_s = time.perf_counter() - t
  rss_init = _rss_mb()
  state_mb0, table_mb0 = _device0_mb(state)
  step = steps_lib.make_train_step(model, c, mesh, table_layout)
  rng = jax.random.key(1)
  times, targets = [], []
  for i in range(args.steps + 1):  # Step 0 compiles.
    b = batches[i]
    t = time.perf_counter()
    state, m = step(state, parallel.put_batch(b, mesh), rng)
    jax.block_until_ready(m["loss_sum"])
    if i:
      times.append(time.perf_counter() - t)
      targets.append(float(b["weights"].sum()))
  loss = float(m["loss_sum"] / m["weight_sum"])
  step_s = float(np.median(times))
  rss_train = _rss_mb()

  # Ranking against the whole catalog, tiled over items (per shard when sharded).
  user_vectors = steps_lib.make_user_vector_fn(model, "all_positions")
  table = state.params["item_emb"]["embedding"]
  rank_fn = jax.jit(evaluation.compute_ranks_from_user_vectors,
                    static_argnames=("mask_history", "item_chunk"))
  if table_layout is not None:
    c.train.loss_chunk_items = args.chunk  # The ranking tile.
    sharded_rank = steps_lib.make_sharded_rank_fn(model, state.params, c, table_layout)
  n_users = min(args.eval_users, len(split.test_inputs))
  hist = split.test_inputs[:n_users]
  eval_times = []
  for rep in range(2 if n_users else 0):  # The first pass compiles.
    t = time.perf_counter()
    for lo in range(0, n_users, args.eval_batch):
      rows = hist[lo:lo + args.eval_batch]
      bsz = args.eval_batch
      inputs, _, _ = batching.eval_inputs(rows + [rows[0]] * (bsz - len(rows)), spec["max_len"], False)
      lengths = np.minimum([len(h) for h in rows] + [len(rows[0])] * (bsz - len(rows)), spec["max_len"])
      width = 1 << int(np.ceil(np.log2(max(len(h) for h in rows))))
      full = np.zeros((bsz, width), np.int32)
      for r, h in enumerate(rows):
        full[r, :len(h)] = h
      tgt = np.ones(bsz, np.int32)
      tgt[:len(rows)] = split.test_targets[lo:lo + len(rows)]
      if table_layout is None:
        u = user_vectors(state.params, inputs, lengths.astype(np.int32))
        r = rank_fn(u, table, tgt, full, mask_history=True, item_chunk=args.chunk)
      else:
        r = sharded_rank(inputs, lengths.astype(np.int32), tgt, full)
      jax.block_until_ready(r)
    if rep:
      eval_times.append(time.perf_counter() - t)
  eval_s = eval_times[0] if eval_times else float("nan")
  t_per_step = float(np.mean(targets))
  return {
      "case": name,
      "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
      "shard_item_table": table_layout is not None,
      "table_rows": int(table.shape[0]),
      "users": len(split.train), "items": spec["items"], "interactions": total,
      "max_len": spec["max_len"], "batch_size": batch_size, "rows_per_batch": batcher.rows_per_batch,
      "steps_per_epoch": len(batches), "targets_per_epoch": batcher.num_targets,
      "data_generation_seconds": round(gen_s, 1),
      "loss_impl": "chunked", "loss_chunk_items": args.chunk,
      "median_seconds_per_step": round(step_s, 3), "steps_timed": args.steps,
      "targets_per_step": round(t_per_step, 1),
      "targets_per_second": round(t_per_step / step_s, 1),
      "seconds_per_epoch_estimate": round(step_s * len(batches), 1),
      "loss_after_steps": round(loss, 4),
      "eval_users_timed": n_users, "eval_batch": args.eval_batch,
      "eval_seconds_per_1000_users": round(eval_s / n_users * 1000, 3) if n_users else None,
      "eval_seconds_all_users_estimate": (round(eval_s / n_users * len(split.test_inputs), 1)
                                          if n_users else None),
      "init_seconds": round(init_s, 1),
      "state_mb_device0": state_mb0,
      "table_and_moments_mb_device0": table_mb0,
      "peak_rss_mb_after_data": round(rss_data, 1),
      "peak_rss_mb_after_init": round(rss_init, 1),
      "peak_rss_mb_after_train": round(rss_train, 1),
      "peak_rss_mb": round(_rss_mb(), 1),
      "device_peak_mb": parallel.device_memory_peak_mb(),  # None on CPU.
      "item_table_mb": round((spec["items"] + 1) * c.model.hidden_size * 4 / 2**20, 1),
      "dense_logits_mb_would_be": round(t_per_step * (spec["items"] + 1) * 4 / 2**20, 1),
      "dense_eval_scores_mb_would_be": round(args.eval_batch * (spec["items"] + 1) * 4 / 2**20, 1),
      "chunk_logits_mb": round(t_per_step * args.chunk * 4 / 2**20, 1),
  }


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--cases", default="ml20m,items1m")
  parser.add_argument("--steps", type=int, default=3, help="timed train steps after the warm-up step")
  parser.add_argument("--batch_size", type=int, default=0,
                      help="sequences per batch; 0 = the case's (256; 8 for items10m)")
  parser.add_argument("--devices", type=int, default=1,
                      help="simulated CPU devices (XLA_FLAGS) for each case's process")
  parser.add_argument("--shard_table", action="store_true",
                      help="train.shard_item_table: the item table's rows split over the devices")
  parser.add_argument("--chunk", type=int, default=8192, help="item tile of loss and ranking")
  parser.add_argument("--eval_users", type=int, default=2048, help="0 = no ranking")
  parser.add_argument("--eval_batch", type=int, default=512)
  parser.add_argument("--shrink", type=int, default=1,
                      help="divide users and interactions by this (smoke tests only)")
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(run_case(args.worker, args)))
    return
  import jax
  out = {"bench": "scale", "devices": args.devices, "shard_item_table": bool(args.shard_table),
         "cpu_count": os.cpu_count(), "jax": jax.__version__, "cases": []}
  env = dict(os.environ)
  if args.devices > 1:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={args.devices}").strip()
  for name in args.cases.split(","):
    if name not in CASES:
      raise SystemExit(f"--cases: unknown case {name!r}; choose from {sorted(CASES)}")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name] + [
        f"--{k}={v}" for k, v in vars(args).items() if k not in ("worker", "cases", "shard_table")]
    cmd += ["--shard_table"] if args.shard_table else []
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
      raise SystemExit(f"case {name} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall_seconds"] = round(time.perf_counter() - t, 1)
    out["cases"].append(res)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
