"""The test suite's checks on 8 simulated CPU devices, in one process.

The device count is fixed before JAX starts, so these run in a subprocess
(the ``eight_devices`` fixture in tests/conftest.py), once for the whole
suite: each such process compiles its own programs, 15-30 s on 2 cores.
Prints one JSON object of the quantities the tests compare, and leaves the
row-sharded run's workdir (with its params dumped) for
tests/test_sharded_checkpoints.py. ``python tests/eight_device_check.py WORKDIR``.

- row-sharded item table vs the replicated one (tests/test_sharded_table.py):
  loss and gradients, ranks, lookup, state layout, and two short runs;
- data-parallel training steps (tests/test_training.py compares them with one
  device);
- the row-sharded run's checkpoints restored here, on its own device count.
"""

import os
import sys

if __name__ == "__main__":  # Before JAX starts; importing this file changes nothing.
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8").strip()
  os.environ["JAX_PLATFORMS"] = "cpu"
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fame_jax import evaluation, losses, parallel, sharded_table  # noqa: E402
from fame_jax.models import score_items  # noqa: E402


def _max_diff(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _rel_diff(a, b) -> float:
  b = np.asarray(b, np.float64)
  return _max_diff(a, b) / max(1e-30, float(np.max(np.abs(b))))


def loss_and_grads(mesh) -> dict:
  """``sharded_table.ce`` vs ``losses.dense_ce``; N + 1 = 53 rows pad to 56."""
  rng = np.random.default_rng(0)
  n, d, t = 52, 16, 37
  h = rng.normal(size=(t, d)).astype(np.float32)
  table = (rng.normal(size=(n + 1, d)) * 0.5).astype(np.float32)
  targets = rng.integers(1, n + 1, size=t).astype(np.int32)
  targets[::6] = 0
  weights = rng.uniform(0.5, 2.0, size=t).astype(np.float32)
  weights[1::5] = 0.0
  layout = sharded_table.TableLayout(mesh=mesh, num_items=n)
  # Padding rows that would dominate every softmax if they were scored.
  padded = np.concatenate([table, np.tile(10.0 * h.mean(0, keepdims=True), (layout.rows - n - 1, 1))])
  padded = jax.device_put(padded, jax.sharding.NamedSharding(mesh, sharded_table.TABLE_SPEC))

  def grads(fn, tab):
    return jax.jit(jax.value_and_grad(lambda h, tab: fn(h, tab, targets, weights)[0],
                                      argnums=(0, 1)))(jnp.asarray(h), tab)

  want, (want_dh, want_dt) = grads(losses.dense_ce, jnp.asarray(table))
  out = {"rows": layout.rows, "dense_loss": float(want)}
  for name, chunk in (("one_tile", layout.rows_per_shard), ("chunk3", 3)):
    ce = lambda h, tab, y, w, chunk=chunk: sharded_table.ce(h, tab, y, w, layout, chunk)  # noqa: E731
    got, (dh, dt) = grads(ce, padded)
    dt = np.asarray(dt)
    out[name] = {"loss_rel": abs(float(got) - float(want)) / abs(float(want)),
                 "dh_rel": _rel_diff(dh, want_dh), "dtable_rel": _rel_diff(dt[:n + 1], want_dt),
                 "padding_grad_max": float(np.abs(dt[n + 1:]).max()),
                 "weight_sum": float(ce(h, padded, targets, weights)[1])}
  return out


def ranks(mesh) -> dict:
  """``sharded_table.ranks`` vs ``evaluation.compute_ranks`` of the dense scores."""
  rng = np.random.default_rng(1)
  n, d, b = 52, 8, 40
  u = rng.normal(size=(b, d)).astype(np.float32)
  table = rng.normal(size=(n + 1, d)).astype(np.float32)
  targets = rng.integers(1, n + 1, size=b).astype(np.int32)
  table[5] = table[targets[0]]  # Ties with a target: counted against it.
  table[9] = table[targets[1]]
  history = rng.integers(0, n + 1, size=(b, 12)).astype(np.int32)
  history[:, 0] = history[:, 1]  # Repeats.
  history[::3, 2] = targets[::3]  # The target in its own history.
  layout = sharded_table.TableLayout(mesh=mesh, num_items=n)
  # Padding rows that would beat every target if they were ranked.
  pad_rows = np.tile(100.0 * u.mean(0, keepdims=True), (layout.rows - n - 1, 1))
  padded = jax.device_put(np.concatenate([table, pad_rows]),
                          jax.sharding.NamedSharding(mesh, sharded_table.TABLE_SPEC))
  out = {}
  for mask in (True, False):
    want = evaluation.compute_ranks(score_items(jnp.asarray(u), jnp.asarray(table)), targets,
                                    history, mask_history=mask)
    for chunk in (2, 4096):
      got = jax.jit(sharded_table.ranks, static_argnums=(4, 5, 6))(
          u, padded, targets, history, layout, mask, chunk)
      out[f"mask{int(mask)}_chunk{chunk}"] = {"got": np.asarray(got).tolist(),
                                              "want": np.asarray(want).tolist()}
  return out


def lookup(mesh) -> dict:
  """``sharded_table.lookup`` (and its gradient) vs ``table[ids]``."""
  rng = np.random.default_rng(2)
  n, d = 52, 4
  layout = sharded_table.TableLayout(mesh=mesh, num_items=n)
  table = rng.normal(size=(layout.rows, d)).astype(np.float32)
  sharded = jax.device_put(table, jax.sharding.NamedSharding(mesh, sharded_table.TABLE_SPEC))
  out = {}
  for name, shape in (("scatter", (16, 5)), ("sum", (3, 5))):  # Batch divisible by 8, or not.
    ids = rng.integers(0, n + 1, size=shape).astype(np.int32)
    cot = rng.normal(size=shape + (d,)).astype(np.float32)
    f = lambda tab, ids=ids, cot=cot: jnp.sum(sharded_table.lookup(tab, ids, layout) * cot)  # noqa: E731
    got = jax.jit(lambda tab, ids=ids: sharded_table.lookup(tab, ids, layout))(sharded)
    grad = jax.jit(jax.grad(f))(sharded)
    want_grad = np.zeros_like(table)
    np.add.at(want_grad, ids, cot)
    out[name] = {"value": _max_diff(got, table[ids]), "grad": _max_diff(grad, want_grad)}
  return out


def _small(config):
  """The tiny config with one layer (the FAME block): every table read, less to compile."""
  config.model.num_layers = 1
  return config


def state_layout(mesh) -> dict:
  """Where a sharded train state's item table and its Adam moments live."""
  from configs import tiny
  from fame_jax.training import state as state_lib

  config = _small(tiny.get_config())
  n = config.data.synthetic.num_items
  layout = sharded_table.TableLayout(mesh, n)
  _, state = state_lib.create_train_state(config, n, jax.random.key(0), table=layout)
  _, plain = state_lib.create_train_state(config, n, jax.random.key(0))
  state = sharded_table.put_state(state, mesh, layout)
  table = state.params["item_emb"]["embedding"]
  moments = {jax.tree_util.keystr(p): str(leaf.sharding.spec)
             for p, leaf in jax.tree_util.tree_leaves_with_path(state.opt_state)
             if "item_emb" in jax.tree_util.keystr(p)}
  others = {str(leaf.sharding.spec) for p, leaf in jax.tree_util.tree_leaves_with_path(state.params)
            if "item_emb" not in jax.tree_util.keystr(p)}
  return {"num_items": n, "rows": int(table.shape[0]), "table_spec": str(table.sharding.spec),
          "table_shard_rows": [s.data.shape[0] for s in table.addressable_shards],
          "moment_specs": moments, "other_param_specs": sorted(others),
          "padding_rows_max": float(np.abs(np.asarray(table)[n + 1:]).max()),
          "real_rows_equal_unsharded_init": bool(np.array_equal(
              np.asarray(table)[:n + 1], np.asarray(plain.params["item_emb"]["embedding"])))}


def end_to_end(workdir: str) -> dict:
  """``train_and_evaluate`` (2 epochs, validation each) with and without the option.

  Equal losses through two epochs of Adam steps need equal gradients of every
  parameter (the loss and lookup checks above test the table's directly);
  every metric must agree too.
  """
  from configs import tiny
  from fame_jax.training import loop

  out = {}
  for shard in (False, True):
    config = _small(tiny.get_config())
    config.train.max_epochs = 2
    config.train.eval_every_epochs = 1
    config.train.shard_item_table = shard
    config.eval.batch_size = 512  # All 400 users in one chunk: fewer compiles.
    wd = os.path.join(workdir, f"shard{int(shard)}")
    results = loop.train_and_evaluate(config, wd)
    with open(os.path.join(wd, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
    out[f"shard{int(shard)}"] = {
        "losses": [r["loss"] for r in rows],
        "valid_ndcg10": [r["valid/NDCG@10"] for r in rows],
        "results": {k: v for k, v in results.items() if k.startswith(("valid/", "test/"))}}
  return out


def train_steps(mesh) -> dict:
  """Mean losses of the first 4 data-parallel steps on ``mesh`` (configs/tiny.py, one layer)."""
  from configs import tiny
  from fame_jax.data import batching
  from fame_jax.training import loop, state as state_lib, steps as steps_lib

  config = _small(tiny.get_config())
  dataset, split = loop.load_data(config)
  model, state = state_lib.create_train_state(config, dataset.num_items, jax.random.key(0))
  state = jax.device_put(state, parallel.replicated(mesh))
  batcher = batching.make_batcher(split.train, examples="all_positions",
                                  max_len=config.data.max_len, batch_size=config.train.batch_size,
                                  packing=True, row_multiple=8)
  step = steps_lib.make_train_step(model, config, mesh)
  losses_ = []
  for b in batcher.epoch(0, 1)[:4]:
    state, m = step(state, parallel.put_batch(b, mesh), jax.random.key(3))
    losses_.append(float(m["loss_sum"] / m["weight_sum"]))
  return {"devices": int(mesh.devices.size), "losses": losses_}


SHARDED_RUN = "shard1"  # end_to_end's row-sharded workdir.
PARAMS_DUMP = "sharded_params_{}.npz"  # best / latest, padded as saved.


def sharded_checkpoints(mesh, workdir: str) -> dict:
  """Dumps the row-sharded run's best and latest params, padded as saved.

  Restored into the sharded layout the run trained in (as its final
  evaluation restores them), not through ``checkpoints.restore_params``,
  which is then checked against them here (8 devices) and by the test (one).
  """
  import flax
  from fame_jax import workdir as workdir_lib
  from fame_jax.training import checkpoints as ckpt_lib

  config = workdir_lib.load_config(workdir)
  num_items = config.data.synthetic.num_items
  layout = sharded_table.TableLayout(mesh, num_items)
  target = ckpt_lib.abstract_train_state(config, num_items, mesh=mesh, table=layout)
  ckpts = ckpt_lib.Checkpoints(os.path.join(workdir, "checkpoints"))
  try:
    best, _ = ckpts.restore_best(target.params)
    latest, _ = ckpts.restore_latest(target)
  finally:
    ckpts.close()
  out = {}
  for name, params in (("best", best), ("latest", latest.params)):
    flat = flax.traverse_util.flatten_dict(jax.device_get(params), sep="/")
    np.savez(os.path.join(workdir, PARAMS_DUMP.format(name)), **flat)
    here = ckpt_lib.restore_params(config, workdir, num_items, name)["item_emb"]["embedding"]
    out[name] = {"shape": list(here.shape), "equal": bool(np.array_equal(
        np.asarray(here), flat["item_emb/embedding"][:num_items + 1]))}
  return out


def main() -> None:
  import time
  mesh = parallel.make_mesh()
  assert mesh.devices.size == 8, jax.devices()
  out = {"devices": mesh.devices.size}
  root = sys.argv[1]
  for name, fn in (("loss", loss_and_grads), ("ranks", ranks), ("lookup", lookup),
                   ("state_layout", state_layout), ("end_to_end", lambda _: end_to_end(root)),
                   ("sharded_checkpoints",
                    lambda m: sharded_checkpoints(m, os.path.join(root, SHARDED_RUN))),
                   ("train_steps", train_steps)):
    t = time.perf_counter()
    out[name] = fn(mesh)
    out.setdefault("seconds", {})[name] = round(time.perf_counter() - t, 1)
    out.setdefault("cpu_seconds", {})[name] = round(time.process_time(), 1)
  # The training log also goes to stdout: the result is the last line.
  print(json.dumps(out))


if __name__ == "__main__":
  main()
