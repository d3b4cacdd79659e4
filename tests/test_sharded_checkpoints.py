"""Workdirs trained with the row-sharded item table load on one device.

A run with ``train.shard_item_table`` saves its item table (and the table's
Adam moments) padded to a multiple of its device count. The suite trains one
on 8 simulated CPU devices (tests/eight_device_check.py, run once by the
``eight_devices`` fixture: the device count is fixed before JAX starts),
which dumps its best and latest params as saved; then, in this one-device
process: ``evaluate_workdir`` reproduces the run's own ``results.json``,
``Recommender.load`` gives the top-k of a replicated-table reference built
from the same params with the padding rows cut, and the serving export runs
and agrees with it.
"""

import json
import os

import numpy as np
import pytest

from eight_device_check import PARAMS_DUMP, SHARDED_RUN

NUM_ITEMS = 120  # configs/tiny.py: 121 table rows, padded to 128 on 8 devices.


@pytest.fixture(scope="module")
def workdir(eight_devices):
  """A tiny run trained with ``train.shard_item_table=True`` on 8 CPU devices."""
  return str(eight_devices[1] / SHARDED_RUN)


def _dumped_params(workdir, checkpoint="best"):
  import flax
  with np.load(os.path.join(workdir, PARAMS_DUMP.format(checkpoint))) as f:
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
  for checkpoint in ("best", "latest"):  # Latest also holds the Adam moments.
    want = _dumped_params(workdir, checkpoint)
    got = ckpt_lib.restore_params(config, workdir, NUM_ITEMS, checkpoint)
    assert got["item_emb"]["embedding"].shape == (NUM_ITEMS + 1, config.model.hidden_size)
    np.testing.assert_array_equal(np.asarray(got["item_emb"]["embedding"]),
                                  want["item_emb"]["embedding"][:NUM_ITEMS + 1])
    np.testing.assert_array_equal(np.asarray(got["fame_block"]["facet_proj"]),
                                  want["fame_block"]["facet_proj"])

def test_restore_params_on_the_training_device_count(eight_devices, workdir):
  from fame_jax import workdir as workdir_lib
  width = workdir_lib.load_config(workdir).model.hidden_size
  for checkpoint in ("best", "latest"):
    assert eight_devices[0]["sharded_checkpoints"][checkpoint] == {
        "shape": [NUM_ITEMS + 1, width], "equal": True}


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

