"""Row-sharded item table (fame_jax/sharded_table.py) against the replicated table.

The 8-device checks run once, in a subprocess with 8 simulated CPU devices
(tests/eight_device_check.py; the device count is fixed before JAX starts):
loss and its gradients, ranks, the input lookup, the state layout and a short
``train_and_evaluate`` with and without ``train.shard_item_table``. In every
case N + 1 does not divide 8, so the table carries padding rows; in the loss
and rank checks those rows are filled with values that would win every
softmax and every ranking if they took part.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from fame_jax import losses, parallel, sharded_table


@pytest.fixture(scope="module")
def eight(eight_devices):
  return eight_devices[0]


def test_padded_rows():
  assert sharded_table.padded_rows(53, 8) == 56
  assert sharded_table.padded_rows(56, 8) == 56
  assert sharded_table.padded_rows(1, 8) == 8
  assert sharded_table.padded_rows(121, 1) == 121


def test_layout_follows_the_config_option():
  from configs import tiny
  config = tiny.get_config()
  mesh = parallel.make_mesh()
  assert config.train.shard_item_table is False
  assert sharded_table.layout_for(config, 120, mesh) is None
  config.train.shard_item_table = True
  layout = sharded_table.layout_for(config, 120, mesh)
  assert (layout.num_items, layout.rows, layout.rows_per_shard) == (120, 121, 121)


def test_one_device_sharded_loss_equals_dense():
  # The shard_map path with a single shard (no padding): the same numbers as dense_ce.
  rng = np.random.default_rng(0)
  h = rng.normal(size=(9, 4)).astype(np.float32)
  table = rng.normal(size=(11, 4)).astype(np.float32)
  targets = np.array([0, 1, 2, 3, 10, 5, 6, 7, 9], np.int32)
  weights = np.ones(9, np.float32)
  layout = sharded_table.TableLayout(parallel.make_mesh(), 10)
  got = sharded_table.ce(jnp.asarray(h), jnp.asarray(table), targets, weights, layout, 4)
  want = losses.dense_ce(jnp.asarray(h), jnp.asarray(table), targets, weights)
  np.testing.assert_allclose([float(x) for x in got], [float(x) for x in want], rtol=1e-6)


def test_loss_and_gradients_equal_the_replicated_table(eight):
  loss = eight["loss"]
  assert loss["rows"] == 56  # 53 rows padded to a multiple of 8.
  for impl in ("one_tile", "chunk3"):  # loss_impl "dense" (one tile a shard) and "chunked".
    r = loss[impl]
    assert r["loss_rel"] < 1e-6, r
    assert r["dh_rel"] < 1e-5 and r["dtable_rel"] < 1e-5, r
    assert r["padding_grad_max"] == 0.0, r  # Padding rows (that would dominate) get no gradient.
    assert r["weight_sum"] > 0


def test_ranks_equal_the_dense_evaluator(eight):
  # Pessimistic ties, repeated history, targets in their own history, masking on/off;
  # padding rows would outrank every target if they were counted.
  for name, r in eight["ranks"].items():
    assert r["got"] == r["want"], name
  assert len(set(eight["ranks"]["mask1_chunk2"]["want"])) > 10  # Varied ranks.
  assert eight["ranks"]["mask0_chunk2"]["want"] != eight["ranks"]["mask1_chunk2"]["want"]


def test_lookup_and_its_gradient_equal_a_gather(eight):
  for name in ("scatter", "sum"):  # Batch divisible by the devices (reduce-scatter) or not.
    assert eight["lookup"][name] == {"value": 0.0, "grad": 0.0}, name


def test_state_holds_an_eighth_of_the_table_and_its_moments(eight):
  s = eight["state_layout"]
  assert (s["num_items"], s["rows"]) == (120, 128)
  assert s["table_spec"] == "P('data', None)"
  assert s["table_shard_rows"] == [16] * 8
  assert len(s["moment_specs"]) == 2 and set(s["moment_specs"].values()) == {"P('data', None)"}
  assert s["other_param_specs"] == ["P()"]
  assert s["padding_rows_max"] == 0.0
  assert s["real_rows_equal_unsharded_init"]


def test_training_and_evaluation_equal_the_replicated_run(eight):
  plain, sharded = eight["end_to_end"]["shard0"], eight["end_to_end"]["shard1"]
  assert len(plain["losses"]) == 2
  np.testing.assert_allclose(sharded["losses"], plain["losses"], rtol=1e-6)
  np.testing.assert_allclose(sharded["valid_ndcg10"], plain["valid_ndcg10"], rtol=1e-9)
  assert plain["results"].keys() == sharded["results"].keys()
  for k, v in plain["results"].items():
    assert sharded["results"][k] == pytest.approx(v, rel=1e-9), k
  assert plain["results"]["test/NDCG@10"] > 0.05  # A model that learned something.
