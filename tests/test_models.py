"""Model contract tests: shapes, parameter counts, init, masking, packing, grads.

Numerical agreement with docs/protocol.md lives in ``test_model_reference.py``. Most
tests here use random parameter values built from ``jax.eval_shape`` (no init
compile), so they stay fast on a shared CPU; the few that test the
initialisation itself run the real ``init`` once per config.
"""

import functools
import glob
import json
import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import model_reference_np as ref
from fame_jax import options
from fame_jax.models import FAME, count_params, extra_params_formula, model_settings, score_items
from fame_jax.models import layers
from fame_jax.models.fame import selector_init
from fame_jax.training.config_check import with_added_defaults
from fame_jax.training.loop import model_variant

jax.config.update("jax_default_matmul_precision", "highest")

N = ref.NUM_ITEMS


def _shapes(cfg):
  """``(model, params of ShapeDtypeStruct)`` for the mixed batch."""
  model = FAME(cfg=cfg, num_items=N)
  shapes = jax.eval_shape(functools.partial(model.init, train=False),
                          {"params": jax.random.key(0), "dropout": jax.random.key(1)},
                          *ref.mixed_batch())
  return model, shapes["params"]


def _random_model(seed=0, **overrides):
  model, shapes = _shapes(ref.small_model_config(**overrides))
  return model, ref.randomize(shapes, seed)


def _key(seed):
  """A PRNG key of the "rbg" kind: the model is key-agnostic, and XLA on CPU
  compiles rbg's sampling several times faster than threefry's."""
  return jax.random.key(seed, impl="rbg")


def _init(cfg):
  """Real initialisation (jitted: one compile instead of one per op)."""
  model = FAME(cfg=cfg, num_items=N)
  init = jax.jit(functools.partial(model.init, train=False))
  return model, init({"params": _key(0), "dropout": _key(1)}, *ref.mixed_batch())["params"]


def _apply(model, params, items, positions, segments, **kwargs):
  return model.apply({"params": params}, jnp.asarray(items), jnp.asarray(positions),
                     jnp.asarray(segments), **kwargs)


def _shape_tree(params):
  return jax.tree.map(lambda a: tuple(a.shape), params)


# ---------------------------------------------------------------- shapes, counts


def test_sasrec_param_tree_and_count():
  cfg = ref.small_model_config(num_experts=1, facet_heads=False)
  _, params = _shapes(cfg)
  d, hh, dh, inner, max_len = 16, 2, 8, 24, 8
  block = {
      "attention": {name: {"kernel": (d, hh, dh), "bias": (hh, dh)}
                    for name in ("query", "key", "value")},
      "out": {"kernel": (hh, dh, d), "bias": (d,)},
      "attention_norm": {"scale": (d,), "bias": (d,)},
      "ffn": {"dense_in": {"kernel": (d, inner), "bias": (inner,)},
              "dense_out": {"kernel": (inner, d), "bias": (d,)}},
      "ffn_norm": {"scale": (d,), "bias": (d,)},
  }
  assert _shape_tree(params) == {
      "item_emb": {"embedding": (N + 1, d)},
      "pos_emb": {"embedding": (max_len, d)},
      "embed_norm": {"scale": (d,), "bias": (d,)},
      "block_0": block,
      "fame_block": block,
  }
  per_block = 4 * (d * d + d) + 2 * (2 * d) + (d * inner + inner + inner * d + d)
  assert count_params(params) == (N + 1) * d + max_len * d + 2 * d + 2 * per_block


def test_fame_param_tree():
  _, params = _shapes(ref.small_model_config())
  d, hh, ee, dh = 16, 2, 3, 8
  fb = _shape_tree(params["fame_block"])
  assert fb == {
      "attention": {"query": {"kernel": (d, hh, ee, dh)}, "key": {"kernel": (d, hh, dh)},
                    "value": {"kernel": (d, hh, dh)}, "router": (hh, ee * dh, ee)},
      "residual_norm": {"scale": (dh,), "bias": (dh,)},
      "head_ffn": {"dense_in": {"kernel": (dh, dh), "bias": (dh,)},
                   "dense_out": {"kernel": (dh, dh), "bias": (dh,)}},
      "head_ffn_norm": {"scale": (dh,), "bias": (dh,)},
      "gate": {"kernel": (d, hh), "bias": (hh,)},
      "facet_proj": (hh, d, dh),
  }
  # The trunk stays a standard SASRec block unless moe_all_layers.
  assert "bias" in params["block_0"]["attention"]["query"]


@pytest.mark.parametrize("overrides,absent", [
    (dict(facet_item_proj="slice"), "facet_proj"),
    (dict(gate="uniform"), "gate"),
])
def test_optional_fame_params_absent(overrides, absent):
  _, params = _shapes(ref.small_model_config(**overrides))
  assert absent not in params["fame_block"]


def test_one_expert_has_no_router_param():
  _, params = _shapes(ref.small_model_config(num_experts=1))
  assert "router" not in params["fame_block"]["attention"]


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(facet_item_proj="slice", gate="uniform"),
    dict(num_experts=1),
    dict(moe_all_layers=True, num_layers=3),
    dict(facet_heads=False),
    dict(facet_heads=False, moe_all_layers=True),
    dict(num_heads=4, num_experts=2, num_layers=1),
    dict(num_experts=1, facet_item_proj="slice", gate="uniform", moe_all_layers=True),
])
def test_counted_difference_equals_extra_params_formula(overrides):
  fame_cfg = ref.small_model_config(**overrides)
  sasrec_cfg = ref.small_model_config(**{**overrides, "num_experts": 1, "facet_heads": False})
  extra = count_params(_shapes(fame_cfg)[1]) - count_params(_shapes(sasrec_cfg)[1])
  assert extra == extra_params_formula(fame_cfg, N)
  if overrides.get("facet_heads", True) or overrides.get("num_experts", 3) > 1:
    assert extra != 0  # A FAME variant really differs from SASRec.


def test_output_shapes():
  model, params = _random_model()
  items, positions, segments = ref.mixed_batch()
  u, inter = _apply(model, params, items, positions, segments, train=False)
  assert u.shape == (4, 6, 16) and u.dtype == jnp.float32
  assert inter["gate"].shape == (4, 6, 2)
  assert inter["router"].shape == (4, 6, 2, 3)
  assert inter["head_outputs"].shape == (4, 6, 2, 8)
  scores = score_items(u, params["item_emb"]["embedding"])
  assert scores.shape == (4, 6, N + 1)


def test_score_items_is_u_dot_table_with_pad_minus_inf():
  rng = np.random.default_rng(0)
  u = rng.normal(size=(3, 5, 8)).astype(np.float32)
  table = rng.normal(size=(N + 1, 8)).astype(np.float32)
  got = np.asarray(score_items(jnp.asarray(u), jnp.asarray(table)))
  assert np.isneginf(got[..., 0]).all()
  np.testing.assert_allclose(got[..., 1:], u @ table[1:].T, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- init


def test_init_values():
  cfg = ref.small_model_config(facet_proj_init="normal")  # The base starts W_f^h as selectors.
  _, params = _init(cfg)
  table = np.asarray(params["item_emb"]["embedding"])
  np.testing.assert_array_equal(table[0], 0.0)  # Pad row.
  assert 0.015 < table[1:].std() < 0.025  # N(0, 0.02).
  assert abs(np.asarray(params["fame_block"]["facet_proj"]).std() - 0.02) < 0.005
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = path[-1].key
    if name == "bias":
      np.testing.assert_array_equal(leaf, 0.0, err_msg=str(path))
    elif name == "scale":
      np.testing.assert_array_equal(leaf, 1.0, err_msg=str(path))


@pytest.mark.parametrize("overrides,norm", [
    (dict(num_experts=1, facet_heads=False), ("fame_block", "ffn_norm")),
    # A uniform gate: the learned one reads F^h, so it would change with the scale.
    (dict(gate="uniform"), ("fame_block", "head_ffn_norm")),
])
def test_output_norm_scale_sets_only_the_last_norm_and_scales_u(overrides, norm):
  cfg1 = ref.small_model_config(**overrides)
  cfg3 = ref.small_model_config(output_norm_scale=3.0, **overrides)
  _, p1 = _init(cfg1)
  _, p3 = _init(cfg3)
  changed = []
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(p1)[0], jax.tree.leaves(p3)):
    if not np.array_equal(a, b):
      changed.append(tuple(k.key for k in path))
      np.testing.assert_array_equal(b, 3.0 * np.asarray(a))
  assert changed == [norm + ("scale",)]
  # The norm ends the path to u (no bias at init): u is 3x.
  model, _ = _shapes(cfg3)
  batch = ref.mixed_batch()
  u1, _ = _apply(model, p1, *batch, train=False)
  u3, _ = _apply(model, p3, *batch, train=False)
  np.testing.assert_allclose(u3, 3.0 * np.asarray(u1), rtol=1e-5, atol=1e-6)


def test_selector_init_picks_chunks_and_starts_linear_equal_to_slice():
  cfg = ref.small_model_config(facet_proj_init="selector")
  _, params = _init(cfg)
  w = np.asarray(params["fame_block"]["facet_proj"])
  d, dh = 16, 8
  for h in range(2):
    for i in range(dh):
      assert w[h, h * dh + i, i] == 1.0  # The hand-off's layout.
  assert w.sum() == d
  np.testing.assert_array_equal(w, selector_init(None, (2, d, dh)))
  # Same weights otherwise: linear+selector and slice give the same u.
  model_lin, rand = _random_model(seed=4)
  rand["fame_block"]["facet_proj"] = jnp.asarray(w)
  model_slice, _ = _random_model(facet_item_proj="slice")
  sliced = {k: v for k, v in rand.items()}
  sliced["fame_block"] = {k: v for k, v in rand["fame_block"].items() if k != "facet_proj"}
  batch = ref.mixed_batch()
  u_lin, _ = _apply(model_lin, rand, *batch, train=False)
  u_slice, _ = _apply(model_slice, sliced, *batch, train=False)
  np.testing.assert_allclose(u_lin, u_slice, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize("overrides", [dict(), dict(num_experts=1, facet_heads=False),
                                       dict(moe_all_layers=True)])
def test_causality(overrides):
  # Every test batch is [4, 6]: eager ops compile once per shape.
  model, params = _random_model(**overrides)
  items, positions, segments = ref.mixed_batch()
  u0, _ = _apply(model, params, items, positions, segments, train=False)
  for t in range(5):
    changed = items.copy()
    changed[:, t + 1:] = (changed[:, t + 1:] % N) + 1  # Different items.
    u1, _ = _apply(model, params, changed, positions, segments, train=False)
    np.testing.assert_array_equal(u1[:, :t + 1], u0[:, :t + 1])
    assert np.abs(np.asarray(u1[0, t + 1:] - u0[0, t + 1:])).max() > 1e-4


def test_pad_content_does_not_leak():
  model, params = _random_model()
  items, positions, segments = ref.mixed_batch()
  u0, inter0 = _apply(model, params, items, positions, segments, train=False)
  pad = segments == 0
  changed_items = np.where(pad, (np.arange(items.size).reshape(items.shape) % N) + 1, items)
  changed_pos = np.where(pad, 7, positions)
  # Out-of-range ids and positions at pads (NaN embeddings) must not leak.
  changed_items[3, 0] = changed_items[1, -1] = N + 50
  changed_pos[1, -1] = 1000
  assert (changed_items != items).any()
  u1, inter1 = _apply(model, params, changed_items, changed_pos, segments, train=False)
  real = ~pad
  np.testing.assert_array_equal(np.asarray(u1)[real], np.asarray(u0)[real])
  np.testing.assert_array_equal(np.asarray(inter1["gate"])[real], np.asarray(inter0["gate"])[real])
  np.testing.assert_array_equal(np.asarray(u0)[pad], 0.0)  # u is zero at pads.


@pytest.mark.parametrize("overrides", [dict(), dict(num_experts=1, facet_heads=False)])
def test_fully_padded_row_is_finite(overrides):
  model, params = _random_model(**overrides)
  items, positions, segments = ref.mixed_batch()
  segments = segments.copy()
  segments[1] = 0
  items = np.where(segments == 0, 0, items)
  for train in (False, True):
    u, inter = _apply(model, params, items, positions, segments, train=train,
                      rngs={"dropout": _key(0)})
    assert np.isfinite(np.asarray(u)).all()
    for value in inter.values():
      assert np.isfinite(np.asarray(value)).all()


@pytest.mark.parametrize("overrides", [dict(), dict(num_experts=1, facet_heads=False),
                                       dict(moe_all_layers=True, facet_heads=False)])
def test_packed_row_equals_separate_rows(overrides):
  model, params = _random_model(**overrides)
  a, b = [3, 7, 1], [20, 19, 4]
  # Row 0: a and b packed; rows 1, 2: each alone; row 3: packed but with one
  # segment id, the control showing that the test can fail.
  items = np.array([a + b, a + [0] * 3, b + [0] * 3, a + b], np.int32)
  positions = np.array([[0, 1, 2, 0, 1, 2]] + [[0, 1, 2, 3, 4, 5]] * 3, np.int32)
  segments = np.array([[1, 1, 1, 2, 2, 2], [1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                       [1, 1, 1, 1, 1, 1]], np.int32)
  u, _ = _apply(model, params, items, positions, segments, train=False)
  u = np.asarray(u)
  np.testing.assert_allclose(u[0, :3], u[1, :3], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(u[0, 3:], u[2, :3], rtol=1e-6, atol=1e-6)
  assert np.abs(u[3, 3:] - u[2, :3]).max() > 1e-4


@pytest.mark.parametrize("overrides", [
    dict(), dict(num_experts=1, facet_heads=False), dict(facet_item_proj="slice"),
    dict(num_experts=1), dict(gate="uniform"), dict(facet_heads=False),
    dict(moe_all_layers=True), dict(moe_all_layers=True, facet_heads=False), dict(num_heads=1)])
def test_query_index_equals_that_row_of_the_full_model(overrides):
  # The evaluation and recommendation fast path: the last block computed at
  # one row per sequence (dropout off) must give that row of the full
  # computation, for every block kind (SASRec; FAME; MoE in every block, with
  # a FAME or a standard last block), at real and at pad rows.
  model, params = _random_model(**overrides)
  items, positions, segments = ref.mixed_batch()
  u, inter = _apply(model, params, items, positions, segments, train=False)
  for rows in ([5, 2, 0, 3], [0, 5, 4, 1]):
    index = jnp.asarray(rows, jnp.int32)
    u1, inter1 = _apply(model, params, items, positions, segments, train=False,
                        query_index=index)
    pick = np.arange(len(rows)), np.asarray(rows)
    assert u1.shape == (len(rows), 1, u.shape[-1])
    np.testing.assert_allclose(u1[:, 0], np.asarray(u)[pick], rtol=1e-5, atol=1e-6)
    for name, value in inter.items():
      np.testing.assert_allclose(inter1[name][:, 0], np.asarray(value)[pick], rtol=1e-5,
                                 atol=1e-6, err_msg=name)
  # Control: another row differs, so the comparison can fail.
  assert np.abs(np.asarray(u1[:, 0]) - np.asarray(u)[:, 2]).max() > 1e-4


# ---------------------------------------------------------------- gate, router


@pytest.mark.parametrize("gate", ["learned", "uniform"])
def test_gate_and_router_are_distributions(gate):
  model, params = _random_model(gate=gate)
  items, positions, segments = ref.mixed_batch()
  _, inter = _apply(model, params, items, positions, segments, train=False)
  for name in ("gate", "router"):
    w = np.asarray(inter[name])
    assert (w >= 0).all(), name
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
  if gate == "uniform":
    np.testing.assert_array_equal(np.asarray(inter["gate"]), 0.5)
  else:
    assert np.asarray(inter["gate"]).std() > 1e-3  # Not stuck at uniform.


# ---------------------------------------------------------------- gradients, dropout


def _ce_loss(model, params, batch, targets, rng):
  items, positions, segments = batch
  u, _ = model.apply({"params": params}, items, positions, segments, train=True,
                     rngs={"dropout": rng})
  logp = jax.nn.log_softmax(score_items(u, params["item_emb"]["embedding"]), axis=-1)
  nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  weights = (segments != 0).astype(jnp.float32)
  return (nll * weights).sum() / weights.sum()


def test_gradients_finite_and_nonzero_for_every_param():
  # The default config holds every parameter kind (standard trunk block,
  # MoE attention with router, FFN', both LayerNorm(d'), gate, facet_proj).
  model, params = _init(ref.small_model_config())
  items, positions, segments = ref.mixed_batch()
  # Garbage (out-of-range ids and positions) at pads must not reach gradients.
  items = np.where(segments == 0, N + 50, items)
  positions = np.where(segments == 0, 1000, positions)
  batch = tuple(jnp.asarray(a) for a in (items, positions, segments))
  targets = jnp.asarray(np.random.default_rng(0).integers(1, N + 1, size=batch[0].shape))
  grads = jax.jit(jax.grad(functools.partial(_ce_loss, model)))(
      params, batch, targets, _key(3))
  for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
    g = np.asarray(g)
    assert np.isfinite(g).all(), path
    assert np.abs(g).max() > 0, path
  # The pad row never takes part: its gradient is exactly zero.
  np.testing.assert_array_equal(np.asarray(grads["item_emb"]["embedding"])[0], 0.0)


def test_dropout_only_in_train_mode():
  model, params = _random_model()
  batch = ref.mixed_batch()
  real = batch[2] != 0
  eval1, _ = _apply(model, params, *batch, train=False)
  eval2, _ = _apply(model, params, *batch, train=False)
  np.testing.assert_array_equal(eval1, eval2)
  tr1, _ = _apply(model, params, *batch, train=True, rngs={"dropout": _key(1)})
  tr2, _ = _apply(model, params, *batch, train=True, rngs={"dropout": _key(2)})
  assert np.abs(np.asarray(tr1 - tr2))[real].max() > 1e-3
  model0, _ = _random_model(dropout=0.0)
  tr0, _ = _apply(model0, params, *batch, train=True, rngs={"dropout": _key(1)})
  np.testing.assert_allclose(tr0, eval1, rtol=1e-6, atol=1e-6)


def test_fame_block_dropout_is_model_dropout():
  # The FAME block's dropout is model.dropout: with a one-layer model (no
  # trunk) and a rate of 0, train equals eval; at any other rate it does not.
  model, params = _random_model(num_layers=1, dropout=0.0)
  batch = ref.mixed_batch()
  ev, _ = _apply(model, params, *batch, train=False)
  tr, _ = _apply(model, params, *batch, train=True, rngs={"dropout": _key(1)})
  np.testing.assert_allclose(tr, ev, rtol=1e-6, atol=1e-6)
  model_on, _ = _random_model(num_layers=1, dropout=0.3)
  tr_on, _ = _apply(model_on, params, *batch, train=True, rngs={"dropout": _key(1)})
  assert np.abs(np.asarray(tr_on - ev)).max() > 1e-3


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("overrides", [
    dict(hidden_size=15), dict(facet_item_proj="linar"), dict(gate="softmax"),
    dict(facet_proj_init="eye"), dict(num_experts=0),
])
def test_invalid_config_raises(overrides):
  with pytest.raises(ValueError, match="model"):
    model_settings(ref.small_model_config(**overrides))


def test_choice_errors_come_from_the_option_schema():
  # The model checks choices against fame_jax.options, the list validation
  # reads too: the message names the key and the schema's allowed values.
  with pytest.raises(ValueError, match=re.escape(
      f"config.model.gate='softmax': must be one of {options.choices('model.gate')}")):
    model_settings(ref.small_model_config(gate="softmax"))


def test_sequence_longer_than_position_table_raises():
  model = FAME(cfg=ref.small_model_config(max_len=4), num_items=N)
  with pytest.raises(ValueError, match="max_len"):
    jax.eval_shape(functools.partial(model.init, train=False),
                   {"params": jax.random.key(0)}, *ref.mixed_batch())


# ---------------------------------------------------------------- one attention module


class _OldMultiHeadAttention(nn.Module):
  """SASRec's attention as fame_jax had it before it became the ``E = 1``
  case of :class:`layers.MoEAttention` (code kept by the git tag
  ``variant-study-archive``): Q, K, V with biases, no expert axis."""
  num_heads: int

  @nn.compact
  def __call__(self, x, mask):
    d = x.shape[-1]
    dh = d // self.num_heads
    proj = lambda name: nn.DenseGeneral((self.num_heads, dh), name=name)  # noqa: E731
    q, k, v = proj("query")(x), proj("key")(x), proj("value")(x)
    logits = jnp.einsum("bqhk,bshk->bhqs", q, k) / jnp.sqrt(dh).astype(x.dtype)
    probs = layers.masked_softmax(logits, mask[:, None])
    return jnp.einsum("bhqs,bshk->bqhk", probs, v)


def test_sasrec_attention_is_the_one_expert_moe_attention():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 6, 16)), jnp.float32)
  mask = layers.attention_mask(jnp.asarray(ref.mixed_batch()[2]))
  sasrec = layers.MoEAttention(2, 1, 0.0, 0.02, sasrec=True)
  shapes = jax.eval_shape(functools.partial(sasrec.init, train=False), jax.random.key(0), x, mask)
  params = ref.randomize(shapes["params"], seed=2)
  # The same parameter tree (names and shapes) as the old module: SASRec
  # checkpoints still load.
  old_shapes = jax.eval_shape(_OldMultiHeadAttention(2).init, jax.random.key(0), x, mask)
  assert _shape_tree(params) == _shape_tree(old_shapes["params"])
  heads, router = sasrec.apply({"params": params}, x, mask, False)
  want = _OldMultiHeadAttention(2).apply({"params": params}, x, mask)
  np.testing.assert_allclose(heads, want, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(router, 1.0)
  # The FAME layout at E = 1 (no biases, query [d, H, 1, d']) computes the
  # same thing as SASRec's layout with zero biases.
  moe = layers.MoEAttention(2, 1, 0.0, 0.02)
  moe_params = {name: {"kernel": params[name]["kernel"]} for name in ("key", "value")}
  moe_params["query"] = {"kernel": params["query"]["kernel"][:, :, None, :]}
  assert _shape_tree(moe_params) == _shape_tree(
      jax.eval_shape(functools.partial(moe.init, train=False), jax.random.key(0), x, mask)["params"])
  no_bias = jax.tree.map(lambda a: a, params)
  for name in ("query", "key", "value"):
    no_bias[name]["bias"] = jnp.zeros_like(params[name]["bias"])
  np.testing.assert_allclose(moe.apply({"params": moe_params}, x, mask, False)[0],
                             _OldMultiHeadAttention(2).apply({"params": no_bias}, x, mask),
                             rtol=1e-6, atol=1e-6)
  # Control: the biases matter, so the first comparison could fail.
  assert np.abs(np.asarray(want) - np.asarray(
      _OldMultiHeadAttention(2).apply({"params": no_bias}, x, mask))).max() > 1e-3
  with pytest.raises(ValueError, match="num_experts=2"):
    layers.MoEAttention(2, 2, 0.0, 0.02, sasrec=True).init(jax.random.key(0), x, mask, False)


# ---------------------------------------------------------------- committed runs

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Items of each dataset after preprocessing (docs/protocol.md §6).
_DATASET_ITEMS = {"beauty": 12101, "sports": 18357, "ml1m": 3416}


def test_committed_runs_rebuild_with_their_parameter_counts_and_labels():
  # Every committed run whose stored config the code can still build (the
  # others set a deleted option and are refused, tests/test_configs.py):
  # the model its config.json builds has exactly the results.json parameter
  # count, and model_variant gives the label it was stored with. So the
  # deletions and the attention merge left the trained models' parameter
  # trees, and their checkpoints, as they were.
  groups: dict[str, list[tuple[str, dict]]] = {}
  for path in sorted(glob.glob(os.path.join(_ROOT, "results", "*", "*", "config.json")) +
                     glob.glob(os.path.join(_ROOT, "results", "*", "gpu_h200", "*", "config.json"))):
    run = os.path.dirname(path)
    with open(path) as f:
      stored = json.load(f)
    try:
      stored = with_added_defaults(stored)
    except ValueError:
      continue
    with open(os.path.join(run, "results.json")) as f:
      groups.setdefault(json.dumps(stored["model"], sort_keys=True), []).append(
          (stored["data"]["name"], json.load(f)))
  assert sum(len(runs) for runs in groups.values()) >= 100
  x = jnp.zeros((1, 2), jnp.int32)
  for key, runs in groups.items():
    cfg = ml_collections.ConfigDict(json.loads(key))
    counts = {}  # One model per config and dataset: the other seeds share it.
    for dataset, results in runs:
      if dataset not in counts:
        model = FAME(cfg=cfg, num_items=_DATASET_ITEMS[dataset])
        shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                                x, x, x + 1)
        counts[dataset] = count_params(shapes["params"])
      assert counts[dataset] == results["num_params"], (dataset, key)
      if "model_variant" in results:
        assert model_variant(cfg) == results["model_variant"]
