"""Row-sharded item table (``train.shard_item_table``, docs/protocol.md §9).

For very large catalogs the ``[N + 1, d]`` item table and its two Adam
moments are the biggest arrays of the train state, and the full-softmax loss
over them is almost all of the work. With this option every device of the
``"data"`` mesh axis holds ``1 / D`` of the table's rows (and of the moments)
instead of a copy, and everything that reads the table runs per shard:

* the input embedding lookup: each device looks up the ids that fall in its
  rows (zeros elsewhere) and the ``[B, L, d]`` pieces are summed over devices;
* the loss: each device computes the logsumexp piece of its rows
  (``losses.masked_logsumexp``, by item tiles of ``train.loss_chunk_items``
  with ``loss_impl="chunked"``, one tile with ``"dense"``); the pieces are
  combined with a collective max and sum, and the target logit is summed from
  the one device that holds the target's row;
* ranking: each device counts its candidates scoring at or above the target
  (``evaluation.ranks_on_rows``) and the counts are summed.

Only ``[T]`` / ``[B]`` vectors and the small ``[B, L, d]`` / ``[T, d]``
activations cross devices; the table is never gathered and the catalog never
sorted. Each device scores all ``T`` targets of the global batch against its
rows, so a loss tile takes ``T x chunk`` per device where the replicated
table's data-parallel loss takes ``T / D x chunk``: lower
``train.loss_chunk_items`` about ``D``-fold when turning the option on
(bench/scale.py measured the difference at ML-20M size). The model's score is linear in the item embedding (``u . e_v``,
``models.fame``), which is what lets a shard score its own rows alone.

The table has ``R`` rows, ``N + 1`` padded up to a multiple of the device
count. Padding rows start at zero, are never scored, ranked or looked up
(logit -inf, excluded from counts), so they get zero gradient and stay zero.
The model that reads the padded table is a copy of the ``N``-item model with
``R - 1`` items (Flax checks parameter shapes); initialisation and the
pre-training hand-off act on the unpadded ``N + 1`` rows first, so a sharded
run starts from exactly the unsharded run's parameters. A sharded run's
checkpoints hold the padded table, so they fit a run with the same option and
device count.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fame_jax import evaluation, losses
from fame_jax.models import FAME
from fame_jax.parallel import DATA_AXIS

# Rows of the table (and of its Adam moments) split over the mesh axis.
TABLE_SPEC = P(DATA_AXIS, None)


def padded_rows(num_rows: int, num_shards: int) -> int:
  """``num_rows`` rounded up to a multiple of ``num_shards``."""
  return -(-num_rows // num_shards) * num_shards


@dataclasses.dataclass(frozen=True)
class TableLayout:
  """How the item table is split: ``N`` real items over the devices of ``mesh``.

  Attributes:
    mesh: the 1-D ``"data"`` mesh.
    num_items: ``N``; rows ``0..N`` are the pad item and the catalog.
  """
  mesh: Mesh
  num_items: int

  @property
  def num_shards(self) -> int:
    return int(self.mesh.devices.size)

  @property
  def rows(self) -> int:
    """``R``: ``N + 1`` padded to a multiple of the device count."""
    return padded_rows(self.num_items + 1, self.num_shards)

  @property
  def rows_per_shard(self) -> int:
    return self.rows // self.num_shards


def layout_for(config: ml_collections.ConfigDict, num_items: int, mesh: Mesh) -> TableLayout | None:
  """The table layout of a run, or None when ``train.shard_item_table`` is off."""
  if not config.train.get("shard_item_table", False):
    return None
  return TableLayout(mesh=mesh, num_items=int(num_items))


def pad_params(params: Any, rows: int) -> Any:
  """``params`` with ``item_emb/embedding`` zero-padded to ``rows`` rows."""
  table = params["item_emb"]["embedding"]
  if table.shape[0] == rows:
    return params
  if table.shape[0] > rows:
    raise ValueError(f"item table has {table.shape[0]} rows, more than the {rows} to pad to")
  padded = jnp.pad(table, ((0, rows - table.shape[0]), (0, 0)))
  return {**params, "item_emb": {**params["item_emb"], "embedding": padded}}


def padded_model(model: FAME, layout: TableLayout) -> FAME:
  """The ``R - 1``-item copy of ``model`` whose parameters hold the padded table."""
  return FAME(cfg=model.cfg, num_items=layout.rows - 1)


def _is_table(path, leaf, layout: TableLayout) -> bool:
  # The table and its Adam moments: leaves under an "item_emb" key with R rows.
  keys = {getattr(k, "key", getattr(k, "name", None)) for k in path}
  return ("item_emb" in keys and getattr(leaf, "ndim", 0) == 2
          and leaf.shape[0] == layout.rows)


def state_shardings(tree: Any, mesh: Mesh, layout: TableLayout | None) -> Any:
  """Shardings for a state (or params) pytree: table rows split, the rest replicated."""
  rep = NamedSharding(mesh, P())
  if layout is None:
    return jax.tree_util.tree_map(lambda _: rep, tree)
  rows = NamedSharding(mesh, TABLE_SPEC)
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: rows if _is_table(path, leaf, layout) else rep, tree)


def put_state(tree: Any, mesh: Mesh, layout: TableLayout | None) -> Any:
  """Moves a state onto the mesh: replicated, or with the table rows sharded."""
  return jax.device_put(tree, state_shardings(tree, mesh, layout))


def _offset(layout: TableLayout) -> jax.Array:
  """Global item id of this device's first row (inside ``shard_map``)."""
  return jax.lax.axis_index(DATA_AXIS) * layout.rows_per_shard


def lookup(table: jax.Array, ids: jax.Array, layout: TableLayout) -> jax.Array:
  """``table[ids]`` from a row-sharded ``table``: ``[..., d]``.

  Each device gathers the ids in its rows (zero for the others) and the pieces
  are summed; exactly one device contributes each row, so the sum is exact.
  When the leading axis divides the device count the sum is a reduce-scatter
  that leaves the result split along it (the batch layout of the encoder).

  Args:
    table: ``[R, d]``, sharded by rows.
    ids: int ``[B, ...]`` in ``0..N``.
    layout: the table's layout.
  """
  rps = layout.rows_per_shard
  scatter = ids.ndim > 0 and ids.shape[0] % layout.num_shards == 0

  def local(table, ids):
    loc = ids - _offset(layout)
    mine = (loc >= 0) & (loc < rps)
    x = jnp.where(mine[..., None], jnp.take(table, jnp.clip(loc, 0, rps - 1), axis=0), 0)
    if scatter:
      return jax.lax.psum_scatter(x, DATA_AXIS, scatter_dimension=0, tiled=True)
    return jax.lax.psum(x, DATA_AXIS)

  return jax.shard_map(local, mesh=layout.mesh, in_specs=(TABLE_SPEC, P()),
                       out_specs=P(DATA_AXIS) if scatter else P())(table, ids)


def apply_fn(model: FAME, layout: TableLayout) -> Callable:
  """``model.apply`` for padded, row-sharded params; its lookup runs per shard.

  The model's ``item_emb`` lookup (a Flax ``nn.Embed``) is intercepted and
  replaced by :func:`lookup`; everything else is the model unchanged.
  """
  padded = padded_model(model, layout)

  def intercept(next_fun, args, kwargs, context):
    m = context.module
    if (isinstance(m, nn.Embed) and m.name == "item_emb" and context.method_name == "__call__"
        and m.embedding.shape[0] == layout.rows):
      return lookup(m.embedding, args[0], layout)
    return next_fun(*args, **kwargs)

  def apply(*args, **kwargs):
    with nn.intercept_methods(intercept):
      return padded.apply(*args, **kwargs)

  return apply


def ce(h: jax.Array, table: jax.Array, targets: jax.Array, weights: jax.Array,
       layout: TableLayout, chunk_items: int) -> tuple[jax.Array, jax.Array]:
  """Full-softmax CE over a row-sharded table: the ``losses`` signature.

  Same value and gradients as ``losses.dense_ce(h, table[:N + 1], ...)``.
  Per device: the logsumexp piece of its rows by tiles of ``chunk_items``
  (clipped to the shard), combined as ``m + log(sum_d exp(piece_d - m))``
  with ``m`` the collective max (held constant: it only keeps ``exp`` in
  range and cancels from the value and its gradient); the target logit comes
  from the device holding the target's row. ``h`` is gathered over the batch
  (``[T, d]``, small); each device returns the gradient of its own rows.

  Args:
    h: ``[T, d]``.
    table: ``[R, d]``, sharded by rows.
    targets: ``[T]`` int32 in ``0..N`` (0 = no target).
    weights: ``[T]`` float32.
    layout: the table's layout.
    chunk_items: item tile within a shard.

  Returns:
    ``(loss_sum, weight_sum)`` float32 scalars.
  """
  rps = layout.rows_per_shard
  chunk = int(max(1, min(chunk_items, rps)))
  n1 = layout.num_items + 1

  def local(h, table, targets, weights):
    offset = _offset(layout)
    piece = losses.masked_logsumexp(h, table, offset, chunk, n1, DATA_AXIS)  # -inf: no real row
    m = jax.lax.pmax(jax.lax.stop_gradient(piece), DATA_AXIS)
    lse = m + jnp.log(jax.lax.psum(jnp.exp(piece - m), DATA_AXIS))
    loc = targets - offset
    mine = (targets > 0) & (loc >= 0) & (loc < rps)
    e = jnp.take(table, jnp.clip(loc, 0, rps - 1), axis=0)
    tgt = jnp.sum(h.astype(jnp.float32) * e.astype(jnp.float32), axis=-1)
    tgt = jax.lax.psum(jnp.where(mine, tgt, 0.0), DATA_AXIS)
    return losses.reduce_terms(lse, tgt, targets, weights)

  return jax.shard_map(local, mesh=layout.mesh, in_specs=(P(), TABLE_SPEC, P(), P()),
                       out_specs=(P(), P()))(h, table, targets.astype(jnp.int32), weights)


def ranks(u: jax.Array, table: jax.Array, targets: jax.Array, history: jax.Array,
          layout: TableLayout, mask_history: bool = True, item_chunk: int = 8192) -> jax.Array:
  """Full-ranking ranks over a row-sharded table (``evaluation`` rank rule).

  Equal to ``evaluation.compute_ranks(score_items(u, table[:N + 1]), ...)``:
  pessimistic ties, pad and padding rows never ranked, history masked.

  Args:
    u: ``[B, d]`` user vectors.
    table: ``[R, d]``, sharded by rows.
    targets: ``[B]`` int32 in ``1..N``.
    history: ``[B, H]`` int32 zero-padded items to exclude.
    layout: the table's layout.
    mask_history: exclude ``history`` items.
    item_chunk: item tile within a shard.

  Returns:
    ``[B]`` int32 ranks.
  """
  chunk = int(max(1, min(item_chunk, layout.rows_per_shard)))

  def local(u, table, targets, history):
    return evaluation.ranks_on_rows(u, table, targets, history, _offset(layout),
                                    layout.num_items + 1, mask_history, chunk, DATA_AXIS)

  return jax.shard_map(local, mesh=layout.mesh, in_specs=(P(), TABLE_SPEC, P(), P()),
                       out_specs=P())(u, table, targets.astype(jnp.int32), history)
