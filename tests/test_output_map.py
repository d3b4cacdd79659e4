"""fame_jax/analysis/output_map.py: the map M from the last LayerNorm's normalised output to u.

Checked against the model itself: for two positions i, j the user vectors
must differ by M (n_i - n_j), where n = (F - beta) / gamma is recovered from
the model's own F^h (intermediates["head_outputs"]).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import model_reference_np as ref
from fame_jax.analysis import output_map
from fame_jax.models import FAME

jax.config.update("jax_default_matmul_precision", "highest")



@pytest.mark.parametrize("overrides", [
    dict(facet_item_proj="slice", gate="uniform"),
    dict(facet_item_proj="linear", gate="uniform"),
    dict(facet_item_proj="slice", gate="uniform", num_heads=4),
], ids=["slice", "linear", "slice_h4"])
def test_output_map_reproduces_the_user_vectors(overrides):
  cfg = ref.small_model_config(**overrides)
  model = FAME(cfg=cfg, num_items=ref.NUM_ITEMS)
  batch = ref.mixed_batch()
  shapes = jax.eval_shape(functools.partial(model.init, train=False),
                          {"params": jax.random.key(0), "dropout": jax.random.key(1)}, *batch)
  params = ref.randomize(shapes["params"], seed=3)
  u, inter = model.apply({"params": params}, *(jnp.asarray(a) for a in batch))
  block = params["fame_block"]
  h = cfg.num_heads
  gamma, beta = (np.tile(np.asarray(block["head_ffn_norm"][k]), h) for k in ("scale", "bias"))
  facets = np.asarray(inter["head_outputs"], np.float64)
  n = (facets.reshape(facets.shape[:2] + (-1,)) - beta) / gamma
  real = np.asarray(batch[2]) != 0
  u, n = np.asarray(u, np.float64)[real], n[real]
  m = output_map.output_map(params, cfg)
  assert m.shape == (cfg.hidden_size, cfg.hidden_size)
  np.testing.assert_allclose(u[1:] - u[0], (n[1:] - n[0]) @ m.T, rtol=1e-4, atol=1e-4)


def test_output_map_without_facet_heads_is_the_layernorm_scale():
  cfg = ref.small_model_config(facet_heads=False)
  model = FAME(cfg=cfg, num_items=ref.NUM_ITEMS)
  shapes = jax.eval_shape(functools.partial(model.init, train=False),
                          {"params": jax.random.key(0), "dropout": jax.random.key(1)},
                          *ref.mixed_batch())
  params = ref.randomize(shapes["params"], seed=4)
  gamma = np.asarray(params["fame_block"]["ffn_norm"]["scale"])
  np.testing.assert_array_equal(output_map.output_map(params, cfg), np.diag(gamma))
