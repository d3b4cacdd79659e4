"""The evaluation protocol (docs/protocol.md §7): the one place it lives.

Full ranking over all ``N`` items, never sampled negatives (docs/protocol.md trap 1). The
device side turns scores into integer ranks in chunks of users; the numpy side
turns ranks into HR@K / NDCG@K (docs/protocol.md trap 12). Peak memory is bounded by one chunk
of ``[B, N + 1]`` scores whatever the number of users.

Rank rule, shared by every function here::

  rank = #{ j in 1..N : j != target, j not excluded, score_j >= score_target }

i.e. items scoring strictly higher plus ties counted against the target
(pessimistic, docs/protocol.md trap 3: a constant-score model gets rank ``N - 1`` without
history masking, hence HR@10 = 0). Excluded items are the pad item 0 and, with
``mask_history=True``, every item of the user's whole history except the
target itself. Excluding an item is implemented as removing it from the
candidate set; for any finite target score that is exactly "give it -inf"
(docs/protocol.md §7), and it also keeps a masked item from tying with a target whose own
score is -inf.

Implementation note: instead of scattering -inf into a copy of the score
matrix, ranks are computed as "count over all items" minus "count over the
de-duplicated history". Both counts read the very same score values, so the
result is exact integer arithmetic, and the full-matrix pass is one fused
compare-and-reduce with no extra ``[B, N + 1]`` buffer.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fame_jax import parallel

ScoreFn = Callable[..., object]


# ----------------------------------------------------------------------------
# Device side: ranks.
# ----------------------------------------------------------------------------


def _unique_history(history: jax.Array, targets: jax.Array) -> jax.Array:
  """Zeroes repeats, the target and pad in each history row.

  Args:
    history: ``[B, H]`` int32 item ids, 0 = pad. May contain repeats.
    targets: ``[B]`` int32.

  Returns:
    ``[B, H]`` int32: each excluded item exactly once, everything else 0
    (sorted order; the order does not matter to the counts).
  """
  h = jnp.sort(history, axis=1)
  # A repeat equals its left neighbour once sorted; keep only the first copy
  # so an item bought twice is subtracted once.
  dup = jnp.concatenate([jnp.zeros_like(h[:, :1], dtype=bool), h[:, 1:] == h[:, :-1]], axis=1)
  # The target is never excluded, even when the user had it before (docs/protocol.md §7).
  keep = (~dup) & (h != targets[:, None]) & (h > 0)
  return jnp.where(keep, h, 0)


def compute_ranks(scores: jax.Array, targets: jax.Array, history: jax.Array,
                  mask_history: bool = True) -> jax.Array:
  """Pessimistic full-ranking rank of each target (0 = best).

  Jittable (``mask_history`` static).

  Args:
    scores: ``[B, N + 1]`` float scores; column 0 is the pad item and is
      never ranked.
    targets: ``[B]`` int32 target item ids in ``1..N``.
    history: ``[B, H]`` int32 items to exclude (the user's whole history),
      zero-padded. Repeats and the target itself are handled.
    mask_history: exclude ``history`` items from the candidates.

  Returns:
    ``[B]`` int32: ``#{j != target, j >= 1, j not excluded : s_j >= s_target}``;
    ``N`` where the target's score is NaN.
  """
  targets = targets.astype(jnp.int32)
  t = jnp.take_along_axis(scores, targets[:, None], axis=1)  # [B, 1]
  col = jax.lax.broadcasted_iota(jnp.int32, scores.shape, 1)
  # One fused pass over the catalog: pad column and the target itself are
  # not competitors; everything else that reaches the target's score is.
  beats = (scores >= t) & (col != 0) & (col != targets[:, None])
  rank = jnp.sum(beats, axis=1, dtype=jnp.int32)
  if mask_history:
    uniq = _unique_history(history.astype(jnp.int32), targets)
    hs = jnp.take_along_axis(scores, uniq, axis=1)  # [B, H], same values as above
    rank = rank - jnp.sum((uniq > 0) & (hs >= t), axis=1, dtype=jnp.int32)
  return _nan_is_worst(rank, t[:, 0], scores.shape[1] - 1)


def _nan_is_worst(rank: jax.Array, t: jax.Array, num_items: int) -> jax.Array:
  """A NaN target score compares false with everything, which would read as
  rank 0 (a perfect hit); rank it ``N`` (below every cut-off) instead."""
  return jnp.where(jnp.isnan(t), jnp.int32(num_items), rank)


def compute_ranks_from_user_vectors(u: jax.Array, item_table: jax.Array, targets: jax.Array,
                                    history: jax.Array, mask_history: bool = True,
                                    item_chunk: int = 8192) -> jax.Array:
  """``compute_ranks(u @ item_table.T, ...)`` without the ``[B, N + 1]`` matrix.

  For catalogs too large to score at once (docs/protocol.md §9): tiles over items and adds
  per-tile counts; never sorts. Two passes over the tiles: the first reads the
  target's score out of the tile that holds it, so the threshold is bitwise the
  value the counting pass compares against (a separate ``u . e_target`` dot
  may round differently and flip ties); the second counts. Memory is
  ``O(B x item_chunk)``. Jittable (``mask_history`` and ``item_chunk`` static).

  Args:
    u: ``[B, d]`` user vectors.
    item_table: ``[N + 1, d]`` item embeddings, row 0 = pad.
    targets: ``[B]`` int32 in ``1..N``.
    history: ``[B, H]`` int32, zero-padded items to exclude.
    mask_history: exclude ``history`` items.
    item_chunk: items per tile; ``N + 1`` need not be a multiple.

  Returns:
    ``[B]`` int32 ranks, equal to ``compute_ranks`` on the full scores.
  """
  return ranks_on_rows(u, item_table, targets, history, jnp.int32(0), item_table.shape[0],
                       mask_history, item_chunk)


def ranks_on_rows(u: jax.Array, item_table: jax.Array, targets: jax.Array, history: jax.Array,
                  offset: jax.Array, n1: int, mask_history: bool, item_chunk: int,
                  axis_name: str | None = None) -> jax.Array:
  """The ranks of :func:`compute_ranks_from_user_vectors` from rows ``offset ..`` of the table.

  With ``axis_name`` (inside ``shard_map``, ``item_table`` being this
  device's rows of a row-sharded table starting at global id ``offset``) the
  target scores and the counts are summed over the axis: each shard counts
  its own candidates, and nothing but ``[B]`` vectors crosses devices.

  Args:
    u: ``[B, d]`` user vectors (the same on every device).
    item_table: ``[rows, d]``.
    targets: ``[B]`` int32 in ``1..N``.
    history: ``[B, H]`` int32 items to exclude, zero-padded.
    offset: int32 scalar global id of row 0.
    n1: ``N + 1``; rows at or past it are padding, never ranked.
    mask_history: exclude ``history`` items (static).
    item_chunk: items per tile (static).
    axis_name: mesh axis the table is sharded over, or None.

  Returns:
    ``[B]`` int32 ranks.
  """
  targets = targets.astype(jnp.int32)
  uniq = (_unique_history(history.astype(jnp.int32), targets) if mask_history
          else jnp.zeros((u.shape[0], 1), jnp.int32))
  total = (lambda x: jax.lax.psum(x, axis_name)) if axis_name else (lambda x: x)
  t = total(target_scores(u, item_table, targets, offset, item_chunk, axis_name))
  rank = total(count_at_or_above(u, item_table, targets, uniq, t, offset, n1, item_chunk,
                                 axis_name))
  return _nan_is_worst(rank, t, n1 - 1)


def _score_tiles(item_table: jax.Array, item_chunk: int):
  """``(tiles [K, C, d], C, rows)``: the table zero-padded to whole tiles."""
  rows, d = item_table.shape
  chunk = int(min(item_chunk, rows))
  num_tiles = -(-rows // chunk)
  tiles = jnp.pad(item_table, ((0, num_tiles * chunk - rows), (0, 0))).reshape(num_tiles, chunk, d)
  return tiles, chunk, rows


def target_scores(u: jax.Array, item_table: jax.Array, targets: jax.Array, offset: jax.Array,
                  item_chunk: int, axis_name: str | None = None) -> jax.Array:
  """``[B]`` scores ``u_b . e_{target_b}`` read out of the score tiles.

  The rows of ``item_table`` are global items ``offset ..``; a target outside
  them reads 0, so over the shards of a row-sharded table the per-shard
  results add up to the target's score exactly (one nonzero term). Read out of
  the same ``[B, C]`` tile products the counting pass compares, the threshold
  is bitwise the value counted against (a separate ``u . e_target`` dot may
  round differently and flip ties).
  """
  tiles, chunk, _ = _score_tiles(item_table, item_chunk)
  local = jnp.arange(chunk, dtype=jnp.int32)

  def find_target(k, t):
    ids = offset + k * chunk + local
    hit = ids[None, :] == targets[:, None]
    # Exactly one tile/column (of one shard) holds each target: a copy.
    return t + jnp.sum(jnp.where(hit, u @ tiles[k].T, 0), axis=1)

  init = parallel.vary(jnp.zeros((u.shape[0],), u.dtype), axis_name)
  return jax.lax.fori_loop(0, tiles.shape[0], find_target, init)


def count_at_or_above(u: jax.Array, item_table: jax.Array, targets: jax.Array, uniq: jax.Array,
                      t: jax.Array, offset: jax.Array, n1: int, item_chunk: int,
                      axis_name: str | None = None) -> jax.Array:
  """``[B]`` int32 count of this table's candidates scoring ``>= t`` (the rank rule).

  Candidates are the rows whose global id (``offset + row``) is in ``1..N``
  (``n1 = N + 1``; rows past it are a sharded table's padding), minus the
  target and the de-duplicated history ``uniq`` (:func:`_unique_history`).
  Counts of the shards of a row-sharded table add up to the rank.
  """
  tiles, chunk, rows = _score_tiles(item_table, item_chunk)
  local = jnp.arange(chunk, dtype=jnp.int32)
  t = t[:, None]

  def count(k, rank):
    s = u @ tiles[k].T  # [B, C]
    start = offset + k * chunk
    ids = start + local
    ok = ((k * chunk + local < rows) & (ids != 0) & (ids < n1))[None, :] & (
        ids[None, :] != targets[:, None])
    rank = rank + jnp.sum((s >= t) & ok, axis=1, dtype=jnp.int32)
    # History items in this tile: gather their (identical) scores by local id.
    # History ids are real items (< n1), so they never hit padding rows.
    in_tile = (uniq > 0) & (uniq >= start) & (uniq < start + chunk) & (uniq - offset < rows)
    hs = jnp.take_along_axis(s, jnp.clip(uniq - start, 0, chunk - 1), axis=1)
    return rank - jnp.sum(in_tile & (hs >= t), axis=1, dtype=jnp.int32)

  init = parallel.vary(jnp.zeros((u.shape[0],), jnp.int32), axis_name)
  return jax.lax.fori_loop(0, tiles.shape[0], count, init)


_compute_ranks_jit = jax.jit(compute_ranks, static_argnames=("mask_history",))


# ----------------------------------------------------------------------------
# Host side: metrics.
# ----------------------------------------------------------------------------


def per_user_metrics(ranks: np.ndarray, ks: Sequence[int] = (5, 10, 20)) -> dict[str, np.ndarray]:
  """Per-user HR@K and NDCG@K (for export).

  Args:
    ranks: ``[U]`` int ranks (0 = best).
    ks: cut-offs.

  Returns:
    ``{"HR@K": [U] float64, "NDCG@K": [U] float64, ...}``.
  """
  ranks = np.asarray(ranks, dtype=np.int64)
  gain = 1.0 / np.log2(ranks.astype(np.float64) + 2.0)
  out = {}
  for k in ks:
    hit = ranks < k
    out[f"HR@{k}"] = hit.astype(np.float64)
    out[f"NDCG@{k}"] = np.where(hit, gain, 0.0)
  return out


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = (5, 10, 20)) -> dict[str, float]:
  """HR@K and NDCG@K averaged over all users (docs/protocol.md §7).

  Args:
    ranks: ``[U]`` int ranks (0 = best).
    ks: cut-offs.

  Returns:
    ``{"HR@5": float, "NDCG@5": float, ...}`` in the order of ``ks``.
  """
  per_user = per_user_metrics(ranks, ks)
  if len(np.asarray(ranks)) == 0:
    raise ValueError("metrics_from_ranks: no users to average over")
  return {name: float(v.mean()) for name, v in per_user.items()}


def popularity_scores(train_sequences: Sequence[np.ndarray], num_items: int) -> np.ndarray:
  """Interaction counts per item, a popularity baseline's scores.

  Args:
    train_sequences: per user, the training items (int ids in ``1..N``).
    num_items: ``N``.

  Returns:
    ``[N + 1]`` float32 counts; entry 0 (pad) is 0.
  """
  flat = (np.concatenate([np.asarray(s, np.int64) for s in train_sequences])
          if len(train_sequences) else np.zeros((0,), np.int64))
  counts = np.bincount(flat, minlength=num_items + 1).astype(np.float32)
  if len(counts) > num_items + 1:
    raise ValueError(f"popularity_scores: item id {int(flat.max())} > num_items={num_items}")
  counts[0] = 0.0
  return counts


# ----------------------------------------------------------------------------
# The evaluation loop.
# ----------------------------------------------------------------------------


def next_pow2(n: int) -> int:
  """Smallest power of two >= ``n`` (1 for ``n <= 1``): the width buckets of evaluation."""
  return 1 << max(0, int(n) - 1).bit_length()


class _Histories:
  """Ragged histories as one flat array plus offsets; chunks built vectorised.

  Holds no more memory than the input lists, so nothing grows beyond the data
  itself with the number of users.
  """

  def __init__(self, histories: Sequence[np.ndarray]):
    lens = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    self.starts = np.zeros(len(histories), np.int64)
    np.cumsum(lens[:-1], out=self.starts[1:])
    self.lens = lens
    total = int(lens.sum())
    self.flat = (np.concatenate([np.asarray(h, np.int32).reshape(-1) for h in histories])
                 if total else np.zeros((0,), np.int32))
    # One trailing 0 so clipped gathers of out-of-row columns read pad.
    self.flat = np.concatenate([self.flat, np.zeros((1,), np.int32)])
    self.total = total

  def window(self, rows: np.ndarray, width: int, last: bool) -> np.ndarray:
    """``[len(rows), width]`` int32, right-padded with 0.

    ``last=True`` takes the last ``width`` items of each history (model input);
    ``last=False`` takes whole histories (``width`` must cover them).
    """
    lens = self.lens[rows]
    n = np.minimum(lens, width) if last else lens
    first = self.starts[rows] + lens - n
    col = np.arange(width, dtype=np.int64)[None, :]
    valid = col < n[:, None]
    idx = np.where(valid, first[:, None] + col, self.total)
    return self.flat[idx]

  def padded_chunk(self, lo: int, hi: int, size: int, max_len: int, width: int):
    """Users ``lo .. hi-1`` as a fixed-size chunk of ``size`` rows (static shapes).

    Returns ``(rows [size], real [size] bool, lengths [size] int32, inputs
    [size, max_len], history [size, width])``: the model window (last
    ``max_len`` items), its real length, and the whole history (``width`` 0 =
    a ``[size, 1]`` zero column, for no history masking). Pad rows (``real``
    False) are all zeros; ``rows`` points them at user ``0``.
    """
    rows = np.zeros(size, np.int64)
    rows[:hi - lo] = np.arange(lo, hi)
    real = np.arange(size) < hi - lo
    lengths = np.where(real, np.minimum(self.lens[rows], max_len), 0).astype(np.int32)
    inputs = self.window(rows, max_len, last=True)
    inputs[~real] = 0
    full = self.window(rows, width, last=False) if width else np.zeros((size, 1), np.int32)
    full[~real] = 0
    return rows, real, lengths, inputs, full


def evaluate(score_fn: ScoreFn, histories: Sequence[np.ndarray], targets: np.ndarray,
             num_items: int, *, batch_size: int = 512, mask_history: bool = True,
             ks: Sequence[int] = (5, 10, 20), max_len: int = 50, progress: bool = False,
             return_ranks: bool = False, pass_user_index: bool = False,
             rank_fn: Callable | None = None):
  """Full-ranking HR@K / NDCG@K of ``score_fn`` over all users (docs/protocol.md §7).

  Users are processed in chunks of ``batch_size``; the last chunk is padded to
  the full size so the shapes are static (one compile of the model and of the
  ranking for each history-width bucket), and the pad rows' results are
  dropped. Ranks are computed on device; only the ``[B]`` int32 ranks come
  back to the host. Results do not depend on ``batch_size`` (docs/protocol.md trap 11).

  ``score_fn`` contract:

  * default: ``score_fn(inputs, lengths) -> scores`` with ``inputs`` ``[B, L]``
    int32 (the last ``max_len`` history items, right-padded: items at columns
    ``0..n-1``, pad 0 after), ``lengths`` ``[B]`` int32 (``n``; 0 on pad rows)
    and ``scores`` ``[B, N + 1]`` (the scores at position ``n - 1``; numpy or
    jax arrays; column 0 is ignored).
  * ``pass_user_index=True``: ``score_fn(inputs, lengths, user_index)`` with
    ``user_index`` ``[B]`` int32 positions into ``histories`` (pad rows get
    0), for callers whose scores come from precomputed per-user state (e.g.
    the eval benchmark's user-vector table).

  * ``rank_fn`` given: ``score_fn`` is unused (pass None) and
    ``rank_fn(inputs, lengths, targets [B], history [B, W]) -> [B]`` int32
    computes the ranks itself from the same chunk (``history`` zero-padded,
    or ``[B, 1]`` zeros without masking), following the rank rule above:
    e.g. a row-sharded item table's per-shard counts
    (``fame_jax.sharded_table``), where a ``[B, N + 1]`` score matrix is
    never formed.

  Args:
    score_fn: see above.
    histories: per user, the whole history (int ids, chronological); the
      model sees the last ``max_len`` items, masking uses all of them.
    targets: ``[U]`` int target ids in ``1..N``.
    num_items: ``N``.
    batch_size: users per chunk (memory bound: one ``[B, N + 1]`` matrix).
      512 measured fastest on CPU at Beauty size (1024 falls out of cache and
      was ~2x slower); accelerators may prefer more.
    mask_history: exclude history items from the candidates.
    ks: cut-offs.
    max_len: model input width ``L``.
    progress: show a tqdm bar.
    return_ranks: also return the ``[U]`` int32 ranks.
    pass_user_index: call ``score_fn`` with a third ``user_index`` argument.

  Returns:
    ``metrics`` (``{"HR@5": ..., "NDCG@5": ..., ...}``), or
    ``(metrics, ranks)`` when ``return_ranks``.
  """
  targets = np.asarray(targets, np.int32).reshape(-1)
  num_users = len(histories)
  if len(targets) != num_users:
    raise ValueError(f"evaluate: {num_users} histories but {len(targets)} targets")
  if num_users == 0:
    raise ValueError("evaluate: no users to evaluate")
  if targets.min() < 1 or targets.max() > num_items:
    raise ValueError(f"evaluate: targets must be item ids in 1..{num_items}, got range "
                     f"[{targets.min()}, {targets.max()}]")
  if batch_size < 1 or max_len < 1:
    raise ValueError(f"evaluate: batch_size and max_len must be >= 1, got {batch_size}, {max_len}")

  hist = _Histories(histories)
  bsz = int(min(batch_size, num_users))  # No point padding beyond the user count.
  starts = range(0, num_users, bsz)
  if progress:
    from tqdm.auto import tqdm
    starts = tqdm(starts, desc="eval", unit="chunk", leave=False)

  # Users go through in order of history length, so each chunk holds similar
  # lengths: narrow history-mask widths here, and narrow model windows in
  # score functions that trim padding columns (steps.make_score_fn). Results
  # do not depend on chunk composition; ranks return in the callers' order.
  order = np.argsort(hist.lens, kind="stable")
  device_ranks = []
  for lo in starts:
    hi = min(lo + bsz, num_users)
    # Pad rows repeat user index 0's slot but get empty inputs and are dropped.
    rows = np.zeros(bsz, np.int64)
    rows[:hi - lo] = order[lo:hi]
    real = np.arange(bsz) < hi - lo
    lengths = np.where(real, np.minimum(hist.lens[rows], max_len), 0).astype(np.int32)
    inputs = hist.window(rows, max_len, last=True)
    inputs[~real] = 0
    tgt = np.where(real, targets[rows], 1).astype(np.int32)
    if mask_history:
      width = next_pow2(max(1, int(hist.lens[rows[real]].max())))
      full = hist.window(rows, width, last=False)
      full[~real] = 0
    else:
      full = np.zeros((bsz, 1), np.int32)
    if rank_fn is not None:
      r = rank_fn(inputs, lengths, tgt, full)
    else:
      if pass_user_index:
        scores = score_fn(inputs, lengths, rows.astype(np.int32))
      else:
        scores = score_fn(inputs, lengths)
      if tuple(scores.shape) != (bsz, num_items + 1):
        raise ValueError(f"evaluate: score_fn returned shape {tuple(scores.shape)}, expected "
                         f"{(bsz, num_items + 1)} (batch, num_items + 1 with column 0 = pad)")
      r = _compute_ranks_jit(jnp.asarray(scores), jnp.asarray(tgt), jnp.asarray(full),
                             mask_history=mask_history)
    # Keep ranks on device until the end so dispatch of the next chunk
    # overlaps this one's compute; only [B] ints per chunk are held.
    device_ranks.append((r, hi - lo))

  ranks = np.empty(num_users, np.int32)
  ranks[order] = np.concatenate([np.asarray(r)[:n] for r, n in device_ranks])
  metrics = metrics_from_ranks(ranks, ks)
  return (metrics, ranks) if return_ranks else metrics
