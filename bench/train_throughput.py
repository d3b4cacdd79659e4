"""Training throughput of FAME on Beauty, packing on and off. Prints one JSON line.

  .venv/bin/python bench/train_throughput.py                 # both modes
  .venv/bin/python bench/train_throughput.py --packing on --epochs 2
  .venv/bin/python bench/train_throughput.py --model committed   # configs/beauty.py

Measures, per mode: median milliseconds per step after warm-up, training
targets per second, wall seconds of whole epochs (batch building included),
and the peak RSS of the process. Model (``--model spec``, the default): the benchmark model,
docs/protocol.md §4's FAME (d=64, H=2, E=4, MoE in the last
layer, L=50, batch 256) on Beauty's data, whatever configs/beauty.py has been
tuned to; ``--model committed`` measures configs/beauty.py as it stands. The
JSON names the measured model from its config. Needs ../shared/data (exits
with a message otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fame_jax import runtime  # noqa: E402

runtime.use_huge_pages()  # Before JAX loads (fame_jax/runtime.py).

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import base, beauty  # noqa: E402
from fame_jax import parallel  # noqa: E402
from fame_jax.data import batching  # noqa: E402
from fame_jax.training import loop, state as state_lib, steps as steps_lib  # noqa: E402


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(config, split, num_items, packing: bool, epochs: int) -> dict:
  mesh = parallel.make_mesh()
  batcher = batching.make_batcher(split.train, examples=config.train.examples, max_len=config.data.max_len,
                                  batch_size=config.train.batch_size, packing=packing,
                                  row_multiple=mesh.devices.size)
  model, state = state_lib.create_train_state(config, num_items, jax.random.key(0))
  state = jax.device_put(state, parallel.replicated(mesh))
  step = steps_lib.make_train_step(model, config, mesh)
  rng = jax.random.key(1)
  # Warm-up: compile and run a few steps.
  warm = batcher.epoch(0, 0)[:3]
  for b in warm:
    state, m = step(state, parallel.put_batch(b, mesh), rng)
  jax.block_until_ready(m)
  step_ms, epoch_s = [], []
  for e in range(1, epochs + 1):
    t_epoch = time.perf_counter()
    batches = batcher.epoch(0, e)
    for b in batches:
      t = time.perf_counter()
      state, m = step(state, parallel.put_batch(b, mesh), rng)
      jax.block_until_ready(m["loss_sum"])
      step_ms.append((time.perf_counter() - t) * 1e3)
    epoch_s.append(time.perf_counter() - t_epoch)
  return {
      "packing": packing,
      "rows_per_batch": batcher.rows_per_batch,
      "steps_per_epoch": len(batches),
      "median_ms_per_step": float(np.median(step_ms)),
      "targets_per_epoch": batcher.num_targets,
      "targets_per_second": batcher.num_targets / float(np.median(epoch_s)),
      "seconds_per_epoch": float(np.median(epoch_s)),
      "epochs_timed": epochs,
      "peak_rss_mb_so_far": _peak_rss_mb(),
      "device_peak_mb_so_far": parallel.device_memory_peak_mb(),
  }


def bench_config(model: str):
  """Beauty's data config with docs/protocol.md §4's model and training shape, or configs/beauty.py as is.

  The benchmark model is pinned here: before this it read configs/beauty.py,
  so once that file was tuned (d 128, 4 heads, MoE in every layer) the
  benchmark measured a model twice as costly under the old d=64 label.
  """
  config = beauty.get_config()
  if model == "spec":
    spec = base.get_base_config()
    with config.unlocked():
      config.model = spec.model
      config.model.facet_proj_init = "normal"  # The protocol's init (the base starts at the selector).
      config.train.batch_size = spec.train.batch_size
      config.data.max_len = spec.data.max_len
  return config


def describe(config) -> str:
  """The measured model's size and shape, read from its config (never a fixed label).

  The variant switches (gate, facet_item_proj, ...: the label options of
  fame_jax.options) are named by loop.model_variant, as in every results.json,
  under "model_variant".
  """
  m = config.model
  return (f"FAME d={m.hidden_size} H={m.num_heads} E={m.num_experts} L={config.data.max_len} "
          f"batch={config.train.batch_size} moe_all_layers={m.moe_all_layers}")


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--packing", choices=["on", "off", "both"], default="both")
  ap.add_argument("--epochs", type=int, default=2)
  ap.add_argument("--loss_impl", default="dense")
  ap.add_argument("--model", choices=["spec", "committed"], default="spec",
                  help="spec: docs/protocol.md §4's FAME; committed: configs/beauty.py")
  args = ap.parse_args()
  config = bench_config(args.model)
  config.train.loss_impl = args.loss_impl
  if not os.path.exists(config.data.path):
    print(json.dumps({"bench": "train_throughput", "skipped": f"{config.data.path} not found"}))
    return
  dataset, split = loop.load_data(config)
  modes = {"on": [True], "off": [False], "both": [True, False]}[args.packing]
  out = {"bench": "train_throughput", "dataset": "beauty", "model": describe(config),
         "model_variant": loop.model_variant(config.model),
         "model_source": {"spec": "docs/protocol.md §4 defaults (configs/base.py) on Beauty", "committed": "configs/beauty.py"}[args.model],
         "loss_impl": args.loss_impl, "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
         "cpu_count": os.cpu_count(), "jax": jax.__version__}
  for p in modes:
    out["packing_on" if p else "packing_off"] = measure(config, split, dataset.num_items, p, args.epochs)
  out["peak_rss_mb"] = _peak_rss_mb()
  out["device_peak_mb"] = parallel.device_memory_peak_mb()  # None on CPU.
  print(json.dumps(out))


if __name__ == "__main__":
  main()
