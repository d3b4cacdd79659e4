"""Transformer building blocks shared by the SASRec trunk and the FAME block.

Every layer keeps heads (and experts) as stacked weight axes and runs them in
one einsum, so there is no Python loop over heads or experts. Letters used in
the einsums:

  b batch, q query position, s key position, d model width, h head,
  e expert, k per-head width d', f flattened E * d', i FFN inner width.

Attention masks are boolean ``[B, L, L]`` (``True`` = may attend) built by
:func:`attention_mask`; masked logits are replaced, not added to, so a fully
masked query row (a pad position) stays finite.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

# Replaces masked logits. Finite so that a row with no allowed key gives a
# uniform (finite) softmax instead of 0/0 = NaN; far enough below any real
# logit that exp() underflows to exactly 0 next to one allowed key.
MASK_VALUE = -1e9


def normal_init(std: float) -> nn.initializers.Initializer:
  """N(0, std) for weights and embeddings (docs/protocol.md §4, RecBole)."""
  return nn.initializers.normal(stddev=std)


def gelu(x: jax.Array) -> jax.Array:
  """Exact (erf) GELU, as RecBole SASRec; the tanh form differs by ~1e-3."""
  return jax.nn.gelu(x, approximate=False)


def attention_mask(segments: jax.Array) -> jax.Array:
  """Causal and same-segment mask.

  A query at row index ``q`` may attend to the key at row index ``s`` iff
  ``s <= q`` and both carry the same nonzero segment id. Segment 0 is padding,
  so pad keys are never attended to; several users packed into one row (ids
  1, 2, ...) never see each other.

  Args:
    segments: ``[B, L]`` int, 0 = pad.

  Returns:
    ``[B, L, L]`` bool, indexed ``[batch, query, key]``.
  """
  length = segments.shape[-1]
  causal = jnp.tril(jnp.ones((length, length), dtype=bool))
  same = segments[:, :, None] == segments[:, None, :]
  key_real = (segments != 0)[:, None, :]
  return causal[None] & same & key_real


def masked_softmax(logits: jax.Array, mask: jax.Array) -> jax.Array:
  """Softmax over the last axis with disallowed entries removed.

  Args:
    logits: ``[..., Q, S]``.
    mask: bool, broadcastable to ``logits``.

  Returns:
    Probabilities, same shape as ``logits``; finite even for rows where
    ``mask`` is all ``False``.
  """
  return jax.nn.softmax(jnp.where(mask, logits, MASK_VALUE), axis=-1)


def take_rows(x: jax.Array, index: jax.Array | None) -> jax.Array:
  """``x[b, index[b]]`` kept as a length-1 axis: ``[B, L, ...] -> [B, 1, ...]``.

  Identity when ``index`` is None. Used to compute a block only at the rows
  that are scored (each user's last position at evaluation): keys and values
  still come from every row, so the outputs equal those rows of the full
  computation.
  """
  if index is None:
    return x
  idx = index.astype(jnp.int32).reshape((-1, 1) + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, idx, axis=1)


class FeedForward(nn.Module):
  """Point-wise ``width -> inner -> width`` GELU FFN with biases.

  Used as the trunk FFN (width d) and as FAME's FFN' (width d', applied to
  all heads at once: the same weights act on every ``[..., h, :]`` slice,
  which is what "shared across heads" means).

  Attributes:
    inner: inner width.
    init_std: std of the weight init.
  """
  inner: int
  init_std: float

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies ``W_2 gelu(W_1 x + b_1) + b_2``.

    Args:
      x: ``[..., width]``.

    Returns:
      ``[..., width]``.
    """
    width = x.shape[-1]
    h = nn.Dense(self.inner, kernel_init=normal_init(self.init_std), name="dense_in")(x)
    return nn.Dense(width, kernel_init=normal_init(self.init_std), name="dense_out")(gelu(h))


class MoEAttention(nn.Module):
  """FAME multi-query-expert attention (docs/protocol.md §2, steps 1-3).

  Per head ``h``: shared ``K^h = X W_K^h`` and ``V^h = X W_V^h``; ``E`` expert
  queries ``Q^{h,n} = X W_Q^{h,n}`` (grouped-query attention with ``H``
  key/value groups and ``H * E`` query heads); expert outputs
  ``f^{h,n} = softmax(Q^{h,n} K^hT / sqrt(d')) V^h``; a dense router
  ``beta^h = softmax([f^{h,1} || ... || f^{h,E}] W_exp^h)`` and the mixture
  ``f^h = sum_n beta^h_n f^{h,n}``. No biases (docs/protocol.md §4).

  Params: ``query [d, H, E, d']``, ``key [d, H, d']``, ``value [d, H, d']``
  (each ``{"kernel": ...}``) and, only when ``E > 1``, ``router [H, E*d', E]``
  (with one expert the router is the constant 1 and would get no gradient).

  SASRec's standard multi-head attention is the ``E = 1`` case with biases on
  Q, K and V (RecBole): ``sasrec=True`` builds it with RecBole's parameter
  layout, ``query``, ``key`` and ``value`` each ``{"kernel": [d, H, d'],
  "bias": [H, d']}`` (no expert axis), which is the layout of every SASRec
  checkpoint. The computation is the same code path.

  Attributes:
    num_heads: ``H``.
    num_experts: ``E`` (1 with ``sasrec=True``).
    dropout_rate: dropout on the attention probabilities.
    init_std: std of the weight init.
    sasrec: SASRec's standard attention (biases, no expert axis).
  """
  num_heads: int
  num_experts: int
  dropout_rate: float
  init_std: float
  sasrec: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, train: bool,
               query_index: jax.Array | None = None):
    """Mixes the experts' attention outputs per head.

    Args:
      x: ``[B, L, d]``.
      mask: ``[B, L, L]`` bool from :func:`attention_mask`.
      train: enables dropout.
      query_index: optional ``[B]`` int: compute only query row
        ``query_index[b]`` of each sequence (``Q = 1`` below).

    Returns:
      ``(heads, router)``: ``heads [B, Q, H, d']`` the mixtures ``f^h``,
      ``router [B, Q, H, E]`` the weights ``beta^h`` (ones for one expert);
      ``Q = L`` without ``query_index``.
    """
    d = x.shape[-1]
    hh, ee = self.num_heads, self.num_experts
    if self.sasrec and ee != 1:
      raise ValueError(f"SASRec attention has one query per head, got num_experts={ee}")
    dh = d // hh
    init = normal_init(self.init_std)
    dense = lambda features, name: nn.DenseGeneral(  # noqa: E731
        features, use_bias=self.sasrec, kernel_init=init, name=name)
    xq = take_rows(x, query_index)
    if self.sasrec:
      q = dense((hh, dh), "query")(xq)[..., None, :]  # [B, Q, H, 1, d']
    else:
      q = dense((hh, ee, dh), "query")(xq)  # [B, Q, H, E, d']
    k, v = dense((hh, dh), "key")(x), dense((hh, dh), "value")(x)  # [B, L, H, d']
    logits = jnp.einsum("bqhek,bshk->bheqs", q, k) / jnp.sqrt(dh).astype(x.dtype)
    probs = masked_softmax(logits, take_rows(mask, query_index)[:, None, None])
    probs = nn.Dropout(self.dropout_rate)(probs, deterministic=not train)
    experts = jnp.einsum("bheqs,bshk->bqhek", probs, v)  # f^{h,n}: [B, Q, H, E, d']
    if ee == 1:
      return experts[..., 0, :], jnp.ones(experts.shape[:-1], experts.dtype)
    w_exp = self.param("router", init, (hh, ee * dh, ee))
    # Expert-major concatenation [f^{h,1} || ... || f^{h,E}] along d'.
    concat = experts.reshape(experts.shape[:3] + (ee * dh,))
    router = jax.nn.softmax(jnp.einsum("bqhf,hfe->bqhe", concat, w_exp), axis=-1)
    heads = jnp.einsum("bqhe,bqhek->bqhk", router, experts)
    return heads, router


class TransformerBlock(nn.Module):
  """Post-LN block: attention, ``W_O``, residual + LN; FFN, residual + LN.

  With ``num_experts == 0`` the attention is SASRec's standard attention
  (:class:`MoEAttention` with ``sasrec=True``) and the block is exactly
  RecBole's SASRec ``TransformerLayer``; otherwise it is MoE attention
  (``moe_all_layers``, or the last layer with ``facet_heads=False``) followed
  by the same ``W_O`` and FFN.

  Attributes:
    num_heads: ``H``.
    num_experts: ``E`` for MoE attention; 0 = standard attention.
    ffn_inner: FFN inner width.
    dropout_rate: attention-probability and hidden dropout.
    layer_norm_eps: LayerNorm epsilon.
    init_std: std of the weight init.
    output_norm_scale: initial value of the output LayerNorm's scale
      (``model.output_norm_scale`` on the last block; 1 elsewhere).
  """
  num_heads: int
  num_experts: int
  ffn_inner: int
  dropout_rate: float
  layer_norm_eps: float
  init_std: float
  output_norm_scale: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, train: bool,
               query_index: jax.Array | None = None):
    """One block.

    Args:
      x: ``[B, L, d]``.
      mask: ``[B, L, L]`` bool.
      train: enables dropout.
      query_index: optional ``[B]`` int: outputs only at row
        ``query_index[b]`` (``Q = 1``), equal to that row of the full block.

    Returns:
      ``(y, intermediates)``: ``y [B, Q, d]``; ``intermediates`` holds
      ``router [B, Q, H, E]`` (ones for standard attention) and
      ``head_outputs [B, Q, H, d']`` (per-head attention outputs before W_O);
      ``Q = L`` without ``query_index``.
    """
    d = x.shape[-1]
    heads, router = MoEAttention(self.num_heads, max(self.num_experts, 1), self.dropout_rate,
                                 self.init_std, sasrec=not self.num_experts,
                                 name="attention")(x, mask, train, query_index)
    x = take_rows(x, query_index)
    out = nn.DenseGeneral(d, axis=(-2, -1), kernel_init=normal_init(self.init_std),
                          name="out")(heads)  # W_O, kernel [H, d', d]
    drop = nn.Dropout(self.dropout_rate)
    x = nn.LayerNorm(self.layer_norm_eps, name="attention_norm")(
        x + drop(out, deterministic=not train))
    ffn = FeedForward(self.ffn_inner, self.init_std, name="ffn")(x)
    y = nn.LayerNorm(self.layer_norm_eps, scale_init=nn.initializers.constant(self.output_norm_scale),
                     name="ffn_norm")(x + drop(ffn, deterministic=not train))
    return y, {"router": router, "head_outputs": heads}

