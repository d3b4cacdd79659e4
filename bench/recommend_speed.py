"""Benchmark: top-10 recommendations for every Beauty user with the Beauty model.

Run::

  .venv/bin/python bench/recommend_speed.py                    # fresh-init configs/beauty.py model
  .venv/bin/python bench/recommend_speed.py --workdir runs/beauty   # a trained workdir

Times ``Recommender.recommend_users(k=10)`` (whole histories masked, top-k on
device) over all 22,363 users of ../shared/data/beauty: one pass that
compiles (``compile_seconds``: its wall time, compiles included), then
``--repeats`` timed passes; ``seconds`` is the best of them (the CPU is
shared). Weights do not change the cost, so without ``--workdir`` the model
is configs/beauty.py's, freshly initialised (``weights`` says which).

Prints one JSON line and appends it to results/bench/recommend_speed.jsonl
(``--no-append`` to only print). Exits 0 with a "skipped" line when the
Beauty data is absent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

_REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, _REPO)

from fame_jax import runtime  # noqa: E402

runtime.use_huge_pages()  # Before JAX loads (fame_jax/runtime.py).

import jax  # noqa: E402

_RESULTS = os.path.join(_REPO, "results", "bench", "recommend_speed.jsonl")


def fresh_recommender(config):
  """``config``'s model with initial weights (seed 0) over ``config``'s data."""
  from fame_jax.data.loading import load_dataset
  from fame_jax.models import FAME
  from fame_jax.recommender import Recommender
  from fame_jax.training import state as state_lib
  dataset = load_dataset(config.data)
  model = FAME(cfg=config.model, num_items=dataset.num_items)
  # Jitted: an op-by-op init compiles every op on its own (seconds).
  params = jax.jit(lambda key: state_lib.init_params(model, config, key))(jax.random.key(0))
  return Recommender.from_dataset(config, dataset, params)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="", help="trained workdir (default: fresh-init model)")
  parser.add_argument("--k", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args()
  command = "python bench/recommend_speed.py " + " ".join(sys.argv[1:])
  now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")

  beauty = os.path.join(_REPO, "..", "shared", "data", "beauty", "Beauty.txt")
  if not args.workdir and not os.path.exists(beauty):
    print(json.dumps({"bench": "recommend_speed", "skipped": f"Beauty data not found at "
                      f"{os.path.abspath(beauty)} (licensed, kept outside the repo)"}))
    return

  if args.workdir:
    from fame_jax.recommender import Recommender
    rec, weights = Recommender.load(args.workdir), f"trained: {os.path.abspath(args.workdir)}"
  else:
    from configs import beauty
    rec, weights = fresh_recommender(beauty.get_config()), "fresh init (configs/beauty.py, seed 0)"

  t0 = time.perf_counter()
  first = rec.recommend_users(k=args.k)
  compile_seconds = time.perf_counter() - t0
  # The CPU is shared: CPU seconds of this process show how much of the wall
  # time was our own work (cpu_seconds / cores bounds an idle machine's wall time).
  walls, cpus = [], []
  for _ in range(args.repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    out = rec.recommend_users(k=args.k)
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
  assert (out.ids == first.ids).all(), "two passes disagree"
  seconds = min(walls)
  users = len(out)
  load = os.getloadavg()[0]
  line = {
      "command": command,
      "when": now,
      "machine_load": f"1-minute load average {load:.2f} on {os.cpu_count()} cores at the end",
      "result": {
          "bench": "recommend_speed",
          "users": users,
          "items": rec.num_items,
          "k": args.k,
          "seconds": round(seconds, 3),
          "seconds_all": [round(w, 3) for w in walls],
          "cpu_seconds_all": [round(c, 3) for c in cpus],
          "compile_seconds": round(compile_seconds, 3),
          "users_per_second": round(users / seconds),
          "shape_buckets_compiled": rec.compiled_shapes(),
          "model": (f"d={rec.config.model.hidden_size} H={rec.config.model.num_heads} "
                    f"E={rec.config.model.num_experts} layers={rec.config.model.num_layers} "
                    f"L={rec.max_len}"),
          "weights": weights,
          "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
          "cpu_cores": os.cpu_count(),
          "jax": jax.__version__,
      },
  }
  text = json.dumps(line)
  print(text)
  if not args.no_append:
    with open(_RESULTS, "a") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
