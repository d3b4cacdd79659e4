"""Pure, jitted train and scoring steps over a data-parallel mesh.

``train_step(state, batch, rng) -> (state, metrics)`` is compiled once per
batch shape, donates the state, and draws dropout from ``fold_in(rng, step)``
so the randomness of step ``s`` is the same however the run was interrupted.
Metrics are sums and counts; the host divides at log time.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from fame_jax import evaluation, losses, parallel, sharded_table
from fame_jax.models import FAME, score_items
from fame_jax.sharded_table import TableLayout


def make_loss_fn(model: FAME, config: ml_collections.ConfigDict,
                 table: TableLayout | None = None) -> Callable:
  """``loss_fn(params, batch, dropout_rng) -> (mean loss, (loss_sum, weight_sum))``.

  Full-softmax CE at every position with ``weights > 0``. ``prefix_last``
  batches carry their one target per row in the last column (the batcher
  left-pads every prefix), so only that column's outputs go through the loss:
  the same value and gradient as the loss over all ``[B, W]`` positions with
  zero weights elsewhere, at ``1 / W`` of the ``[targets, d] x [d, N]`` cost
  (it was ~10x the all_positions loss work per Beauty epoch).

  With a ``table`` layout (``train.shard_item_table``) the params hold the
  padded, row-sharded table: the lookup and the loss run per shard
  (:mod:`fame_jax.sharded_table`); ``loss_impl="dense"`` is then one item
  tile per shard and ``"chunked"`` tiles of ``loss_chunk_items``.
  """
  if table is None:
    ce = losses.get_loss_fn(config.train.loss_impl, config.train.loss_chunk_items)
    apply = model.apply
  else:
    chunk = (table.rows_per_shard if config.train.loss_impl == "dense"
             else config.train.loss_chunk_items)
    ce = functools.partial(sharded_table.ce, layout=table, chunk_items=chunk)
    apply = sharded_table.apply_fn(model, table)
  last_only = config.train.examples == "prefix_last"

  def loss_fn(params, batch, dropout_rng):
    u, _ = apply({"params": params}, batch["items"], batch["positions"],
                       batch["segments"], train=True, rngs={"dropout": dropout_rng})
    targets, weights = batch["targets"], batch["weights"]
    if last_only:
      u, targets, weights = u[:, -1:], targets[:, -1:], weights[:, -1:]
    table = params["item_emb"]["embedding"]
    loss_sum, weight_sum = ce(u.reshape(-1, u.shape[-1]), table, targets.reshape(-1),
                              weights.reshape(-1))
    return loss_sum / jnp.maximum(weight_sum, 1.0), (loss_sum, weight_sum)

  return loss_fn


def make_train_step(model: FAME, config: ml_collections.ConfigDict, mesh: Mesh,
                    table: TableLayout | None = None) -> Callable:
  """Returns the jitted ``train_step(state, batch, rng) -> (state, metrics)``.

  The loss is full-softmax cross-entropy over all items at every position with
  ``weights > 0`` (docs/protocol.md §4): the mean over real targets in the global
  batch. ``metrics`` holds ``loss_sum`` and ``weight_sum``.

  The state is replicated, or, with a ``table`` layout, replicated except the
  item table and its optimiser moments, split by rows
  (``sharded_table.put_state``); the new state keeps the same layout.
  """
  loss_fn = make_loss_fn(model, config, table)

  def train_step(state, batch, rng):
    dropout_rng = jax.random.fold_in(rng, state.step)
    grads, (loss_sum, weight_sum) = jax.grad(loss_fn, has_aux=True)(state.params, batch, dropout_rng)
    state = state.apply_gradients(grads=grads)
    if table is not None:
      state = jax.lax.with_sharding_constraint(
          state, sharded_table.state_shardings(state, mesh, table))
    return state, {"loss_sum": loss_sum, "weight_sum": weight_sum}

  rep = parallel.replicated(mesh)
  # A sharded state is taken in the layout it arrives in (None = as placed).
  state_in = rep if table is None else None
  return jax.jit(train_step,
                 in_shardings=(state_in, parallel.batch_sharded(mesh), rep),
                 out_shardings=(state_in, rep),
                 donate_argnums=(0,))


def eval_model_inputs(inputs: jax.Array, lengths: jax.Array, left_pad: bool,
                      max_len: int | None = None):
  """Model inputs for evaluation users, the way their regime was trained.

  Args:
    inputs: ``[B, W]`` right-padded windows (the evaluator's layout), ``W``
      the model window ``L`` or a narrower width that still holds every row.
    lengths: ``[B]`` real items per row.
    left_pad: ``prefix_last`` models: shift rows right by ``W - length`` so
      the most recent item sits in the last column.
    max_len: the model window ``L`` (default ``W``). ``prefix_last`` counts
      positions from the end, so a width-``W`` row uses positions
      ``L - W .. L - 1`` exactly as a width-``W`` training bucket did;
      ``all_positions`` counts from the window start and ignores it.

  Returns:
    ``(items, positions, segments, last)``: the three ``[B, L]`` model inputs
    and ``last [B]``, the column whose output scores each user.
  """
  b, l = inputs.shape
  col = jnp.arange(l)[None, :]
  if left_pad:
    src = col - (l - lengths[:, None])  # Column j holds inputs[j - (L - n)].
    items = jnp.where(src >= 0, jnp.take_along_axis(inputs, jnp.clip(src, 0, l - 1), axis=1), 0)
    last = jnp.full((b,), l - 1)
  else:
    items = inputs
    last = jnp.maximum(lengths - 1, 0)
  segments = (items > 0).astype(jnp.int32)
  offset = (max_len - l) if (left_pad and max_len is not None) else 0
  positions = jnp.broadcast_to(col + offset, (b, l)).astype(jnp.int32)
  return items, positions, segments, last


def _user_outputs(model: FAME, params, inputs, lengths, left_pad: bool, max_len: int | None,
                  apply: Callable | None = None):
  """``u [B, d]`` at each user's scored row (``apply`` defaults to ``model.apply``)."""
  items, positions, segments, last = eval_model_inputs(inputs, lengths, left_pad, max_len)
  # The last block runs only at the scored row (FAME query_index).
  u, _ = (apply or model.apply)({"params": params}, items, positions, segments, train=False,
                     query_index=last)
  return u[:, 0]


def make_user_vector_fn(model: FAME, examples: str, max_len: int | None = None) -> Callable:
  """Jitted ``user_vectors(params, inputs [B, W], lengths [B]) -> u [B, d]``.

  The model's user vector at each user's last real position, from the
  evaluator's right-padded windows. ``prefix_last`` models were trained on
  left-padded rows with positions counted from the end, so their inputs are
  shifted right by ``L - length`` first. For catalogs too large to score at
  once, pair it with ``evaluation.compute_ranks_from_user_vectors``.
  ``max_len`` is the model window ``L`` (needed when ``W < L``, see
  :func:`eval_model_inputs`).
  """
  left_pad = examples == "prefix_last"

  @jax.jit
  def user_vectors(params, inputs, lengths):
    return _user_outputs(model, params, inputs, lengths, left_pad, max_len)

  return user_vectors


def _narrowed(inputs, lengths, max_len: int) -> tuple[np.ndarray, np.ndarray]:
  """A chunk's ``[B, L]`` windows cut to the narrowest power-of-two width (at
  most ``L``) that holds its longest one, and its int32 lengths: the columns
  cut are padding that no real position attends to (one compile per width)."""
  lengths = np.asarray(lengths, np.int32)
  width = min(max_len, evaluation.next_pow2(int(lengths.max(initial=1))))
  return np.asarray(inputs, np.int32)[:, :width], lengths


# One jitted scorer per (model, regime, window), shared by every evaluation of
# a run: a fresh jit per validation would recompile every width each epoch.
# The entry keeps its model alive, so the id in the key cannot be reused.
_SCORERS: dict[tuple[int, str, int], tuple[FAME, Callable]] = {}


def _jitted_scores(model: FAME, examples: str, max_len: int) -> Callable:
  key = (id(model), examples, max_len)
  if key not in _SCORERS:
    left_pad = examples == "prefix_last"

    @jax.jit
    def scores(params, inputs, lengths):
      u = _user_outputs(model, params, inputs, lengths, left_pad, max_len)
      return score_items(u, params["item_emb"]["embedding"])

    _SCORERS[key] = (model, scores)
  return _SCORERS[key][1]


def make_score_fn(model: FAME, params: Any, examples: str, max_len: int) -> Callable:
  """Scores for evaluation users from right-padded inputs.

  Returns ``score_fn(inputs [B, L] int32, lengths [B] int32) -> [B, N + 1]``:
  the model's scores (``score_items``) at each user's last real position
  (see :func:`make_user_vector_fn` for the ``prefix_last`` layout).

  The model runs on the narrowest power-of-two width (at most ``L``) that
  holds the chunk's longest window: columns past it are padding that no real
  position attends to, so the scores are those of the full width, at a
  fraction of the cost for short histories (the evaluator orders users by
  length, so most chunks are narrow). One compile per width.
  """
  scores = _jitted_scores(model, examples, max_len)

  def score_fn(inputs, lengths):
    inputs, lengths = _narrowed(inputs, lengths, max_len)
    return scores(params, jnp.asarray(inputs), jnp.asarray(lengths))

  return score_fn


# One jitted ranker per (model, regime, window, table layout, masking, tile),
# for the same reason as _SCORERS.
_RANKERS: dict[tuple, tuple[FAME, Callable]] = {}


def make_sharded_rank_fn(model: FAME, params: Any, config: ml_collections.ConfigDict,
                         table: TableLayout) -> Callable:
  """``evaluation.evaluate``'s ``rank_fn`` for a row-sharded item table.

  Returns ``rank_fn(inputs [B, L], lengths [B], targets [B], history [B, W])
  -> [B]`` int32: the user vectors (input lookup per shard), then each
  device counts its rows scoring at or above the target and the counts are
  summed (``sharded_table.ranks``, tiles of ``train.loss_chunk_items``); no
  ``[B, N + 1]`` matrix is formed. The model runs on the narrowest
  power-of-two width that holds the chunk, as in :func:`make_score_fn`.

  Args:
    model: the ``N``-item model.
    params: padded params (``table.rows`` rows), sharded or not.
    config: the run's config (``train.examples``, ``data.max_len``,
      ``eval.mask_history``, ``train.loss_chunk_items``).
    table: the table layout.
  """
  examples, max_len = config.train.examples, config.data.max_len
  mask_history, chunk = bool(config.eval.mask_history), int(config.train.loss_chunk_items)
  key = (id(model), examples, max_len, table, mask_history, chunk)
  if key not in _RANKERS:
    left_pad = examples == "prefix_last"
    apply = sharded_table.apply_fn(model, table)

    @jax.jit
    def rank(params, inputs, lengths, targets, history):
      u = _user_outputs(model, params, inputs, lengths, left_pad, max_len, apply)
      return sharded_table.ranks(u, params["item_emb"]["embedding"], targets, history, table,
                                 mask_history, chunk)

    _RANKERS[key] = (model, rank)
  rank = _RANKERS[key][1]

  def rank_fn(inputs, lengths, targets, history):
    inputs, lengths = _narrowed(inputs, lengths, max_len)
    return rank(params, jnp.asarray(inputs), jnp.asarray(lengths), jnp.asarray(targets),
                jnp.asarray(history))

  return rank_fn


def make_global_rank_fn(model: FAME, params: Any, config: ml_collections.ConfigDict, mesh: Mesh,
                        table: TableLayout | None = None) -> Callable:
  """``evaluation.evaluate``'s ``rank_fn`` over a mesh that spans processes.

  Every process holds the whole chunk on the host (the same users in the same
  order) and transfers only the rows of its own devices
  (``distributed.put_global``); the user vectors and the ranks are computed
  where the rows are (a replicated table: the scores of those rows and
  ``evaluation.compute_ranks``; a row-sharded one: ``sharded_table.ranks``,
  whose per-shard counts are summed across processes), and the ``[B]``
  integer ranks are gathered so that every process computes the same
  metrics. Rows are padded to a multiple of the device count. One process
  gives the same ranks as :func:`make_score_fn` / :func:`make_sharded_rank_fn`.
  """
  from fame_jax import distributed
  examples, max_len = config.train.examples, config.data.max_len
  mask_history, chunk = bool(config.eval.mask_history), int(config.train.loss_chunk_items)
  key = ("global", id(model), examples, max_len, table, mask_history, chunk, mesh)
  if key not in _RANKERS:
    left_pad = examples == "prefix_last"
    apply = None if table is None else sharded_table.apply_fn(model, table)

    def rank(params, inputs, lengths, targets, history):
      u = _user_outputs(model, params, inputs, lengths, left_pad, max_len, apply)
      emb = params["item_emb"]["embedding"]
      if table is None:
        return evaluation.compute_ranks(score_items(u, emb), targets, history, mask_history)
      return sharded_table.ranks(u, emb, targets, history, table, mask_history, chunk)

    rows = parallel.batch_sharded(mesh)
    _RANKERS[key] = (model, jax.jit(rank, out_shardings=rows))
  rank = _RANKERS[key][1]
  rows = parallel.batch_sharded(mesh)
  n_dev = mesh.devices.size

  def rank_fn(inputs, lengths, targets, history):
    inputs, lengths = _narrowed(inputs, lengths, max_len)
    b = len(lengths)
    pad = -b % n_dev
    host = [inputs, lengths, np.asarray(targets, np.int32), np.asarray(history, np.int32)]
    if pad:  # Empty rows (target 1) to fill every device; their ranks are dropped.
      host = [np.concatenate([x, (np.ones if i == 2 else np.zeros)((pad,) + x.shape[1:], np.int32)])
              for i, x in enumerate(host)]
    out = rank(params, *(distributed.put_global(x, rows) for x in host))
    return distributed.gather(out)[:b]

  return rank_fn
