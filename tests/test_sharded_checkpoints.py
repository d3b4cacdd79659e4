"""Workdirs trained with the row-sharded item table load on one device.

A run with ``train.shard_item_table`` saves its item table (and the table's
Adam moments) padded to a multiple of its device count. The module trains
one on 8 simulated CPU devices, in a subprocess (the device count is fixed
before JAX starts; this file is also that subprocess's program), and then, in
this one-device process: ``evaluate_workdir`` reproduces the run's own
``results.json``, ``Recommender.load`` gives the top-k of a replicated-table
reference built from the same params with the padding rows cut, and the
serving export runs and agrees with it.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = 8
NUM_ITEMS = 120  # configs/tiny.py: 121 table rows, padded to 128 on 8 devices.
PARAMS_DUMP = "sharded_params.npz"
RESTORED_HERE = "restored_on_8_devices.json"


def _config():
  from configs import tiny
  config = tiny.get_config()
  config.model.num_layers = 1  # The FAME block alone: every table read, less to compile.
  config.train.max_epochs = 1
  config.train.eval_every_epochs = 1
  config.train.shard_item_table = True
  config.eval.batch_size = 512  # All 400 users in one chunk: fewer compiles.
  return config


def _train(workdir: str) -> None:
  """The subprocess: trains the sharded run, dumps its best params, padded,
  and restores them with ``restore_params`` on its 8 devices.

  The dump is restored into the sharded layout the run trained in (as its
  final evaluation restores it), not through ``checkpoints.restore_params``.
  """
  import flax
  import jax
  from fame_jax import parallel, sharded_table
  from fame_jax.training import checkpoints as ckpt_lib
  from fame_jax.training import loop

  assert jax.device_count() == DEVICES, jax.devices()
  config = _config()
  loop.train_and_evaluate(config, workdir)
  mesh = parallel.make_mesh()
  layout = sharded_table.TableLayout(mesh, NUM_ITEMS)
  # The padded model's params, the table rows split over the devices.
  shapes = ckpt_lib.abstract_train_state(config, layout.rows - 1).params
  target = jax.tree_util.tree_map(
      lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      shapes, sharded_table.state_shardings(shapes, mesh, layout))
  ckpts = ckpt_lib.Checkpoints(os.path.join(workdir, "checkpoints"))
  try:
    params, _ = ckpts.restore_best(target)
  finally:
    ckpts.close()
  flat = flax.traverse_util.flatten_dict(jax.device_get(params), sep="/")
  np.savez(os.path.join(workdir, PARAMS_DUMP), **flat)
  # restore_params on the training device count too.
  here = ckpt_lib.restore_params(config, workdir, NUM_ITEMS)["item_emb"]["embedding"]
  with open(os.path.join(workdir, RESTORED_HERE), "w") as f:
    json.dump({"shape": list(here.shape), "equal": bool(np.array_equal(
        np.asarray(here), flat["item_emb/embedding"][:NUM_ITEMS + 1]))}, f)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A tiny run trained with ``train.shard_item_table=True`` on 8 CPU devices."""
  workdir = str(tmp_path_factory.mktemp("sharded_run"))
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}",
         "JAX_PLATFORMS": "cpu"}
  out = subprocess.run([sys.executable, os.path.abspath(__file__), workdir], capture_output=True,
                       text=True, timeout=600, cwd=ROOT, env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


def _dumped_params(workdir):
  import flax
  with np.load(os.path.join(workdir, PARAMS_DUMP)) as f:
    return flax.traverse_util.unflatten_dict({k: f[k] for k in f.files}, sep="/")


def test_the_checkpoint_holds_padding_rows(workdir):
  # What makes the other tests meaningful: the saved table is padded.
  table = _dumped_params(workdir)["item_emb"]["embedding"]
  assert table.shape[0] == 128 and NUM_ITEMS + 1 < 128
  assert not table[NUM_ITEMS + 1:].any()
  assert np.abs(table[1:NUM_ITEMS + 1]).min(axis=1).max() > 0


def test_restore_params_cuts_the_padding_rows(workdir):
  from fame_jax import workdir as workdir_lib
  from fame_jax.training import checkpoints as ckpt_lib
  config = workdir_lib.load_config(workdir)
  want = _dumped_params(workdir)
  for checkpoint in ("best", "latest"):  # One epoch: the same params; latest has Adam moments.
    got = ckpt_lib.restore_params(config, workdir, NUM_ITEMS, checkpoint)
    assert got["item_emb"]["embedding"].shape == (NUM_ITEMS + 1, config.model.hidden_size)
    np.testing.assert_array_equal(np.asarray(got["item_emb"]["embedding"]),
                                  want["item_emb"]["embedding"][:NUM_ITEMS + 1])
    np.testing.assert_array_equal(np.asarray(got["fame_block"]["facet_proj"]),
                                  want["fame_block"]["facet_proj"])
  with open(os.path.join(workdir, RESTORED_HERE)) as f:  # In the 8-device process.
    assert json.load(f) == {"shape": [NUM_ITEMS + 1, config.model.hidden_size], "equal": True}


def test_evaluate_workdir_reproduces_results_json(workdir):
  from fame_jax.training import loop
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  for split in ("valid", "test"):
    got = loop.evaluate_workdir(None, workdir, split)
    want = {k: v for k, v in results.items() if k.startswith(f"{split}/")}
    assert set(got) == set(want) and len(got) == 6
    for k in want:
      assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9), k


@pytest.fixture(scope="module")
def recommenders(workdir):
  """``(Recommender.load(workdir), the replicated-table reference)``."""
  from fame_jax import workdir as workdir_lib
  from fame_jax.recommender import Recommender
  rec = Recommender.load(workdir)
  params = _dumped_params(workdir)
  table = params["item_emb"]["embedding"]
  params["item_emb"]["embedding"] = table[:NUM_ITEMS + 1]
  histories = workdir_lib.load_histories(workdir)
  ref = Recommender(rec.config, params, rec.user_ids, rec.item_ids, histories.offsets,
                    histories.items)
  return rec, ref


def test_recommender_equals_the_replicated_reference(recommenders):
  rec, ref = recommenders
  assert rec.params["item_emb"]["embedding"].shape[0] == NUM_ITEMS + 1
  # One chunk of all 400 users: one program each to compile.
  got, want = rec.recommend_users(k=10, chunk_users=512), ref.recommend_users(k=10, chunk_users=512)
  assert len(got) == 400
  np.testing.assert_array_equal(got.ids, want.ids)
  np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)
  # Control: another user's list differs, so the comparison can fail.
  assert (got.ids[0] != want.ids[1]).any()


def test_serving_export_of_a_sharded_run(recommenders, tmp_path):
  from fame_jax import serving
  rec, ref = recommenders
  serving.export_serving(rec, str(tmp_path), max_k=10, platforms=("cpu",))
  model = serving.ServingModel(str(tmp_path))
  users = rec.user_ids[:16]
  histories = [rec.item_indices(h)[0] for h in rec.histories(users)]
  items, scores = model.top_k(histories)
  want = ref.recommend_users(users, k=10)
  np.testing.assert_array_equal(np.asarray(rec.item_ids, dtype=object)[items], want.ids)
  np.testing.assert_allclose(scores, want.scores, rtol=1e-5)


if __name__ == "__main__":
  sys.path.insert(0, ROOT)  # configs/
  _train(sys.argv[1])
