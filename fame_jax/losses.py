"""Full-softmax cross-entropy over the item catalog (docs/protocol.md §4 and §9).

The loss is almost all of the training work (the ``[T, d] x [d, N]`` product),
so it lives here with interchangeable implementations of one signature::

  ce(h [T, d], item_table [N + 1, d], targets [T] int32, weights [T] float32)
      -> (loss_sum scalar, weight_sum scalar)

``loss_sum = sum_t w_t * (logsumexp_{j in 1..N} h_t . e_j  -  h_t . e_{y_t})``
and ``weight_sum = sum_t w_t``, where ``w_t`` is forced to 0 for pad targets
(``y_t = 0``). The pad item (row 0) never takes part in the normaliser (its
logit is -inf, docs/protocol.md trap 4), and a pad target's logit is never used. Callers
divide ``loss_sum / weight_sum`` so that sums over devices or micro-batches
stay exact.

* ``dense``: the reference; materialises ``[T, N + 1]`` logits.
* ``chunked``: tiles over items with an online logsumexp and a
  ``jax.custom_vjp`` whose backward pass recomputes each tile's logits, so
  memory is ``O(T x chunk)`` (plus the ``[N + 1, d]`` gradient that any
  implementation must return) instead of ``O(T x N)``.

The tiled logsumexp also serves one shard of a row-sharded table
(:func:`masked_logsumexp` with the shard's first item id;
``fame_jax.sharded_table`` combines the shards' pieces).

"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from fame_jax import options, parallel

LossFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def _effective_weights(targets: jax.Array, weights: jax.Array) -> jax.Array:
  """``[T]`` float32 weights with pad targets zeroed."""
  return jnp.where(targets > 0, weights.astype(jnp.float32), 0.0)


def _target_logits(h: jax.Array, item_table: jax.Array, targets: jax.Array) -> jax.Array:
  """``[T]`` float32 ``h_t . e_{y_t}`` via a gather (no catalog-sized buffer).

  Pad targets read row 1 instead of the pad row (their weight is 0 anyway), so
  whatever sits in row 0, even inf, never reaches the loss or its gradient.
  """
  e = jnp.take(item_table, jnp.where(targets > 0, targets, 1), axis=0)
  return jnp.sum(h.astype(jnp.float32) * e.astype(jnp.float32), axis=-1)


def reduce_terms(lse: jax.Array, tgt: jax.Array, targets: jax.Array,
                 weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(loss_sum, weight_sum)`` from the per-target ``lse [T]`` and target logit ``tgt [T]``."""
  w = _effective_weights(targets, weights)
  # where, not w * x: a zero-weight row must add exactly 0 even if x is inf.
  return jnp.sum(jnp.where(w > 0, w * (lse - tgt), 0.0)), jnp.sum(w)


def dense_ce(h: jax.Array, item_table: jax.Array, targets: jax.Array,
             weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Reference full-softmax CE; materialises ``[T, N + 1]`` logits.

  Args:
    h: ``[T, d]`` hidden states (one per target position).
    item_table: ``[N + 1, d]`` item embeddings, row 0 = pad.
    targets: ``[T]`` int32 in ``0..N`` (0 = no target).
    weights: ``[T]`` float32 per-position weights.

  Returns:
    ``(loss_sum, weight_sum)`` float32 scalars.
  """
  targets = targets.astype(jnp.int32)
  return reduce_terms(dense_logsumexp(h, item_table), _target_logits(h, item_table, targets),
                 targets, weights)


def dense_logsumexp(h: jax.Array, item_table: jax.Array) -> jax.Array:
  """``[T]`` float32 ``logsumexp_{j in 1..N} h_t . e_j`` from ``[T, N + 1]`` logits."""
  logits = jnp.dot(h, item_table.T, preferred_element_type=jnp.float32)  # [T, N + 1]
  col = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 1)
  return jax.nn.logsumexp(jnp.where(col == 0, -jnp.inf, logits), axis=-1)


def _tiles(item_table: jax.Array, chunk: int) -> tuple[jax.Array, int]:
  """``[num_tiles, chunk, d]`` zero-padded view of the table, and ``N + 1``."""
  n1, d = item_table.shape
  num_tiles = -(-n1 // chunk)
  padded = jnp.pad(item_table, ((0, num_tiles * chunk - n1), (0, 0)))
  return padded.reshape(num_tiles, chunk, d), n1


def _tile_logits(h: jax.Array, tile: jax.Array, k: jax.Array, chunk: int, rows: int,
                 offset: jax.Array, n1: int) -> jax.Array:
  """``[T, chunk]`` float32 logits of tile ``k``; pad item and padding rows -inf.

  The tile holds local rows ``k * chunk ..`` of a table of ``rows`` rows whose
  row 0 is global item ``offset`` (0 unless the table is one shard of a
  row-sharded catalog). Masked: local tile padding (``>= rows``), the pad item
  (global id 0) and rows past the catalog (global id ``>= n1 = N + 1``, the
  padding that makes a sharded table divide the device count).
  """
  local = k * chunk + jnp.arange(chunk)
  ids = offset + local
  logits = jnp.dot(h, tile.T, preferred_element_type=jnp.float32)
  return jnp.where((local >= rows) | (ids == 0) | (ids >= n1), -jnp.inf, logits)


def _masked_lse_fwd_impl(h: jax.Array, item_table: jax.Array, offset: jax.Array, chunk: int,
                         n1: int, axis_name: str | None) -> jax.Array:
  tiles, rows = _tiles(item_table, chunk)
  t = h.shape[0]
  # Start from the most negative finite value rather than -inf so that a
  # tile with no real item (e.g. chunk=1 and the pad tile) rescales by
  # exp(0) instead of exp(-inf - -inf) = NaN.
  neg = jnp.finfo(jnp.float32).min

  def step(carry, xs):
    m, s = carry
    tile, k = xs
    logits = _tile_logits(h, tile, k, chunk, rows, offset, n1)
    m_new = jnp.maximum(m, jnp.max(logits, axis=-1))
    s = s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(logits - m_new[:, None]), axis=-1)
    return (m_new, s), None

  init = parallel.vary((jnp.full((t,), neg, jnp.float32), jnp.zeros((t,), jnp.float32)),
                       axis_name)
  (m, s), _ = jax.lax.scan(step, init, (tiles, jnp.arange(tiles.shape[0])))
  # s = 0 (a table shard holding only padding rows) gives -inf.
  return m + jnp.log(s)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def masked_logsumexp(h: jax.Array, item_table: jax.Array, offset: jax.Array, chunk: int,
                     n1: int, axis_name: str | None = None) -> jax.Array:
  """``[T]`` float32 ``logsumexp`` of ``h_t . e_j`` over the real items among the rows.

  The rows of ``item_table`` are global items ``offset .. offset + rows - 1``;
  the pad item 0 and ids ``>= n1`` take no part. With ``offset = 0`` and
  ``n1 = rows`` this is the logsumexp over items ``1..N`` of a whole table
  (:func:`chunked_logsumexp`); on one shard of a row-sharded table it is that
  shard's piece, ``-inf`` where the shard holds no real item
  (``fame_jax.sharded_table`` combines the pieces over devices).

  Args:
    h: ``[T, d]``.
    item_table: ``[rows, d]``.
    offset: int32 scalar, the global id of row 0 (may be traced).
    chunk: items per tile (static); ``rows`` need not be a multiple.
    n1: ``N + 1`` (static), the catalog's real rows.
    axis_name: inside ``shard_map``, the mesh axis the table's rows are
      split over (``h`` must then be the same on every device); None outside.
  """
  return _masked_lse_fwd_impl(h, item_table, offset, chunk, n1, axis_name)


def _masked_lse_fwd(h, item_table, offset, chunk, n1, axis_name):
  lse = _masked_lse_fwd_impl(h, item_table, offset, chunk, n1, axis_name)
  # Residuals are O(T d + N d): the logits are recomputed, never stored.
  return lse, (h, item_table, offset, lse)


def _masked_lse_bwd(chunk, n1, axis_name, res, g):
  h, item_table, offset, lse = res
  tiles, rows = _tiles(item_table, chunk)
  g = g.astype(jnp.float32)
  # A -inf piece (no real item here) has all-masked logits: use 0 so that
  # exp(-inf - 0) = 0 rather than exp(-inf - -inf) = NaN.
  lse = jnp.where(jnp.isfinite(lse), lse, 0.0)

  def step(dh, xs):
    tile, k = xs
    logits = _tile_logits(h, tile, k, chunk, rows, offset, n1)
    # d lse / d logit = softmax; masked entries give exp(-inf) = 0.
    p = jnp.exp(logits - lse[:, None]) * g[:, None]  # [T, C]
    dh = dh + jnp.dot(p, tile.astype(jnp.float32))
    dtile = jnp.dot(p.T, h.astype(jnp.float32))  # [C, d]
    return dh, dtile

  dh, dtiles = jax.lax.scan(step, parallel.vary(jnp.zeros(h.shape, jnp.float32), axis_name),
                            (tiles, jnp.arange(tiles.shape[0])))
  dtable = dtiles.reshape(-1, item_table.shape[1])[:rows]
  if axis_name is not None:
    # h is the same on every device; its gradient is the sum of the shards' parts.
    dh = jax.lax.psum(dh, axis_name)
  # The offset is an integer: no cotangent.
  return dh.astype(h.dtype), dtable.astype(item_table.dtype), None


masked_logsumexp.defvjp(_masked_lse_fwd, _masked_lse_bwd)


def chunked_logsumexp(h: jax.Array, item_table: jax.Array, chunk: int) -> jax.Array:
  """``[T]`` float32 ``logsumexp_{j in 1..N} h_t . e_j`` by item tiles.

  Args:
    h: ``[T, d]``.
    item_table: ``[N + 1, d]``, row 0 = pad (excluded).
    chunk: items per tile (static); ``N + 1`` need not be a multiple.
  """
  return masked_logsumexp(h, item_table, jnp.int32(0), chunk, item_table.shape[0])


def _chunk_size(chunk_items: int, item_table: jax.Array) -> int:
  """The static tile: ``chunk_items`` clipped to ``1..N + 1``."""
  return int(max(1, min(chunk_items, item_table.shape[0])))


def chunked_ce(h: jax.Array, item_table: jax.Array, targets: jax.Array, weights: jax.Array,
               chunk_items: int = 8192) -> tuple[jax.Array, jax.Array]:
  """Full-softmax CE by item tiles; same value and gradients as ``dense_ce``.

  Args:
    h: ``[T, d]`` hidden states.
    item_table: ``[N + 1, d]`` item embeddings, row 0 = pad.
    targets: ``[T]`` int32 in ``0..N`` (0 = no target).
    weights: ``[T]`` float32.
    chunk_items: items per tile; memory is ``O(T x chunk_items)``.

  Returns:
    ``(loss_sum, weight_sum)`` float32 scalars.
  """
  targets = targets.astype(jnp.int32)
  lse = chunked_logsumexp(h, item_table, _chunk_size(chunk_items, item_table))
  # The target logit is a plain gather-dot, differentiated by autodiff.
  return reduce_terms(lse, _target_logits(h, item_table, targets), targets, weights)


def get_loss_fn(name: str, chunk_items: int = 8192) -> LossFn:
  """Returns the CE implementation ``name`` (``"dense"`` or ``"chunked"``).

  Args:
    name: implementation (``config.train.loss_impl``, one of
      ``options.choices("train.loss_impl")``).
    chunk_items: item tile for ``"chunked"`` (``config.train.loss_chunk_items``).

  Returns:
    ``ce(h, item_table, targets, weights) -> (loss_sum, weight_sum)``.
  """
  options.check_choice("train.loss_impl", name)
  if name == "dense":
    return dense_ce
  if chunk_items < 1:
    raise ValueError(f"loss_chunk_items must be >= 1, got {chunk_items}")
  return functools.partial(chunked_ce, chunk_items=int(chunk_items))
