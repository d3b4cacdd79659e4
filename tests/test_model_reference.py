"""The Flax model against literal NumPy references (docs/protocol.md §1-3).

The loop reference (``model_reference_np.fame_scores_loop``) loops over heads,
experts, positions and items and scores per head; the model scores through the
u-vector. Agreement to 1e-5 on random weights checks the einsums, the masks,
the router, the head-wise residual, FFN', the gate and the facet projections
at once.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import model_reference_np as ref
from fame_jax.models import FAME, model_settings, score_items

jax.config.update("jax_default_matmul_precision", "highest")

TOL = dict(rtol=1e-5, atol=1e-5)


def _model_and_params(cfg, seed=0):
  """Model plus random (not init-valued) params for the mixed batch."""
  model = FAME(cfg=cfg, num_items=ref.NUM_ITEMS)
  # Shapes only (no init compile): the values are replaced anyway.
  shapes = jax.eval_shape(functools.partial(model.init, train=False),
                          {"params": jax.random.key(seed), "dropout": jax.random.key(1)},
                          *ref.mixed_batch())
  return model, ref.randomize(shapes["params"], seed)


def _real(segments):
  return np.asarray(segments) != 0


@pytest.mark.parametrize("facet_item_proj", ["linear", "slice"])
@pytest.mark.parametrize("facet_proj_init", ["normal", "selector"])
def test_fame_scores_equal_loop_reference(facet_item_proj, facet_proj_init):
  cfg = ref.small_model_config(facet_item_proj=facet_item_proj, facet_proj_init=facet_proj_init)
  model, params = _model_and_params(cfg)
  items, positions, segments = ref.mixed_batch()
  u, inter = model.apply({"params": params}, items, positions, segments, train=False)
  scores = np.asarray(score_items(u, params["item_emb"]["embedding"]))
  want, want_gate, want_router = ref.fame_scores_loop(params, items, positions, segments,
                                                      model_settings(cfg))
  real = _real(segments)
  assert np.isneginf(scores[..., 0]).all()
  np.testing.assert_allclose(scores[real][:, 1:], want[real][:, 1:], **TOL)
  np.testing.assert_allclose(np.asarray(inter["gate"])[real], want_gate[real], **TOL)
  np.testing.assert_allclose(np.asarray(inter["router"])[real], want_router[real], **TOL)


@pytest.mark.parametrize("overrides", [
    dict(gate="uniform", num_layers=3),
    dict(moe_all_layers=True, facet_proj_init="selector"),
    dict(num_experts=1, num_layers=1),
    dict(num_heads=1, num_experts=2),
    dict(num_heads=4, gate="uniform", facet_item_proj="slice", output_norm_scale=2.0),
], ids=["uniform_gate_3_layers", "moe_all_layers", "one_expert_one_layer", "one_head",
        "four_heads_uniform_slice_output_scale"])
def test_fame_variants_equal_loop_reference(overrides):
  cfg = ref.small_model_config(**overrides)
  model, params = _model_and_params(cfg, seed=3)
  items, positions, segments = ref.mixed_batch()
  u, _ = model.apply({"params": params}, items, positions, segments, train=False)
  scores = np.asarray(score_items(u, params["item_emb"]["embedding"]))
  want, _, _ = ref.fame_scores_loop(params, items, positions, segments, model_settings(cfg))
  real = _real(segments)
  np.testing.assert_allclose(scores[real][:, 1:], want[real][:, 1:], **TOL)


@pytest.mark.parametrize("facet_item_proj", ["linear", "slice"])
def test_u_vector_score_equals_gated_per_head_sum(facet_item_proj):
  # Uses the model's own gate and F^h, so this isolates the identity
  # <u_t, item_emb[v]> = sum_h g_h <F^h_t, x_v^h> that scoring relies on.
  cfg = ref.small_model_config(facet_item_proj=facet_item_proj)
  model, params = _model_and_params(cfg, seed=5)
  items, positions, segments = ref.mixed_batch()
  u, inter = model.apply({"params": params}, items, positions, segments, train=False)
  table = np.asarray(params["item_emb"]["embedding"], np.float64)
  gate = np.asarray(inter["gate"], np.float64)
  facets = np.asarray(inter["head_outputs"], np.float64)
  hh, dh = facets.shape[2], facets.shape[3]
  got = np.asarray(score_items(u, params["item_emb"]["embedding"]))
  batch, length = items.shape
  want = np.zeros_like(got, np.float64)
  for b in range(batch):
    for t in range(length):
      for v in range(1, table.shape[0]):
        for h in range(hh):
          if facet_item_proj == "linear":
            xv = table[v] @ np.asarray(params["fame_block"]["facet_proj"][h], np.float64)
          else:
            xv = table[v, h * dh:(h + 1) * dh]
          want[b, t, v] += gate[b, t, h] * facets[b, t, h] @ xv
  real = _real(segments)
  np.testing.assert_allclose(got[real][:, 1:], want[real][:, 1:], **TOL)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_sasrec_config_equals_independent_sasrec(num_layers):
  cfg = ref.small_model_config(num_experts=1, facet_heads=False, num_layers=num_layers)
  model, params = _model_and_params(cfg, seed=7)
  items, positions, segments = ref.mixed_batch()
  u, inter = model.apply({"params": params}, items, positions, segments, train=False)
  want = ref.sasrec_forward_matrix(params, items, positions, segments, cfg.num_heads,
                                   num_layers, cfg.layer_norm_eps)
  real = _real(segments)
  np.testing.assert_allclose(np.asarray(u)[real], want[real], **TOL)
  assert "gate" not in inter
  np.testing.assert_array_equal(np.asarray(inter["router"]), 1.0)


@pytest.mark.parametrize("moe_all_layers", [False, True])
def test_moe_without_facet_heads_equals_loop_reference(moe_all_layers):
  cfg = ref.small_model_config(facet_heads=False, moe_all_layers=moe_all_layers)
  model, params = _model_and_params(cfg, seed=9)
  items, positions, segments = ref.mixed_batch()
  u, _ = model.apply({"params": params}, items, positions, segments, train=False)
  want = ref.last_block_output_loop(params, items, positions, segments, model_settings(cfg))
  real = _real(segments)
  np.testing.assert_allclose(np.asarray(u)[real], want[real], **TOL)


def test_reference_detects_a_wrong_weight():
  # The comparisons above must be able to fail: perturb one FFN' weight the
  # reference reads and the scores must move by far more than the tolerance.
  cfg = ref.small_model_config()
  model, params = _model_and_params(cfg)
  items, positions, segments = ref.mixed_batch()
  u, _ = model.apply({"params": params}, items, positions, segments, train=False)
  got = np.asarray(score_items(u, params["item_emb"]["embedding"]))
  bad = jax.tree.map(lambda a: a, params)
  # One component only: a shift of all d' components would cancel in the
  # LayerNorm that follows.
  bad["fame_block"]["head_ffn"]["dense_out"]["bias"] = (
      jnp.asarray(bad["fame_block"]["head_ffn"]["dense_out"]["bias"]).at[0].add(0.1))
  want, _, _ = ref.fame_scores_loop(bad, items, positions, segments, model_settings(cfg))
  real = _real(segments)
  assert np.abs(got[real][:, 1:] - want[real][:, 1:]).max() > 1e-3
