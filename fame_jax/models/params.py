"""Parameter counting: measured (:func:`count_params`) and closed form."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from fame_jax.models.fame import model_settings


def count_params(params: Any) -> int:
  """Number of scalars in a parameter pytree.

  Args:
    params: any pytree of arrays (e.g. ``variables["params"]``).

  Returns:
    The total element count.
  """
  return int(sum(np.prod(np.shape(leaf), dtype=np.int64) for leaf in jax.tree.leaves(params)))


def extra_params_formula(cfg: Any, num_items: int) -> int:
  """Closed-form parameter count of FAME minus SASRec at the same sizes.

  SASRec here is the same config with ``num_experts = 1`` and
  ``facet_heads = False`` (same ``d``, ``H``, layers, ``ffn_inner``,
  ``max_len``, items), so embeddings and the shared parts cancel and
  ``num_items`` drops out. With ``d' = d / H`` and ``i = ffn_inner``,
  ``[c]`` = 1 if ``c`` else 0:

  A standard SASRec block has ``4(d^2 + d)`` (Q, K, V, W_O with biases)
  ``+ 2(2d)`` (two LayerNorms) ``+ 2di + i + d`` (FFN) parameters.

  MoE attention has ``E d^2 + 2 d^2`` (expert queries, shared K, V, no bias)
  ``+ [E > 1] H (E d') E = [E > 1] E^2 d`` (router ``W_exp^h``).

  The FAME block (``facet_heads=True``) has the MoE attention
  ``+ 2(2d')`` (the two shared LayerNorm(d'))
  ``+ 2d'^2 + 2d'`` (FFN' d' -> d' -> d' with biases)
  ``+ [gate = learned] (dH + H)`` (gate)
  ``+ [facet_item_proj = linear] H d d' = d^2`` (``W_f``).

  A non-facet MoE block (the last block with ``facet_heads=False`` and
  ``E > 1``, or each trunk block with ``moe_all_layers`` and ``E > 1``) is a
  standard block with the attention swapped, i.e. standard
  ``+ (E - 1) d^2 + E^2 d - 3d``.

  So ``extra = last - standard + (num_layers - 1) [moe_all_layers, E > 1]
  ((E - 1) d^2 + E^2 d - 3d)`` where ``last`` is the FAME block count (or the
  non-facet MoE / standard block count when ``facet_heads=False``).

  Args:
    cfg: ``config.model``.
    num_items: ``N`` (cancels; kept so the signature names what is compared).

  Returns:
    ``count_params(FAME) - count_params(SASRec)``.
  """
  del num_items  # Both models own the same item and position tables.
  s = model_settings(cfg)
  d, hh, ee, dh = s.hidden_size, s.num_heads, s.num_experts, s.head_size
  inner = s.ffn_inner
  standard = 4 * (d * d + d) + 4 * d + 2 * d * inner + inner + d
  moe_swap = (ee - 1) * d * d + ee * ee * d - 3 * d  # Only used when E > 1.
  if s.facet_heads:
    router = ee * ee * d if ee > 1 else 0
    last = ((ee + 2) * d * d + router + 4 * dh + 2 * dh * dh + 2 * dh
            + (d * hh + hh if s.gate == "learned" else 0)
            + (d * d if s.facet_item_proj == "linear" else 0))
  else:
    last = standard + (moe_swap if ee > 1 else 0)
  trunk_extra = (s.num_layers - 1) * moe_swap if s.trunk_experts else 0
  return last - standard + trunk_extra
