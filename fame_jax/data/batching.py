"""Training batches: padding, packing and the two example regimes (docs/protocol.md §4).

Every batch is a dict of int32/float32 numpy arrays of one static shape per
regime, so the jitted train step compiles once:

* ``items``     ``[R, L]`` input item ids (0 = pad),
* ``positions`` ``[R, L]`` index into the position table,
* ``segments``  ``[R, L]`` example id within the row (0 = pad); attention never
  crosses segments, which is what makes packing exact,
* ``targets``   ``[R, L]`` next-item target at each position (0 = none),
* ``weights``   ``[R, L]`` 1.0 where the position carries a loss term.

Regimes:

* ``all_positions`` (default): one example per user per epoch, input
  ``train[:-1]``, targets ``train[1:]``, the last ``max_len`` positions,
  positions counted from the start of the window. Unpacked, each example is one
  right-padded row; packed, several examples share a row (next-fit over a fixed
  number of rows per batch, so shapes stay static).
* ``prefix_last``: every prefix of ``train`` is an example with its next item as
  the single target at the last column; rows are left-padded so the most recent
  item always sits in column ``L - 1`` and position ``L - 1``. Examples are
  bucketed by length and each batch is trimmed to its bucket width (positions
  counted from the end stay aligned), so a few static shapes cover an epoch.

Data order depends only on ``(seed, epoch)``, which is what lets a resumed run
replay exactly the batches an uninterrupted run would have seen. ``epoch()``
returns a lazy sequence: the epoch's plan (which examples go where) is made up
front from lengths alone, but each batch's arrays are built only when it is
read, so host memory is one batch, not one epoch (ML-20M scale: ~0.5 GB).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import math
from typing import Any, Callable

import numpy as np

from fame_jax import options

Batch = dict[str, np.ndarray]


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
  """The data-order generator of one epoch (a pure function of seed, epoch)."""
  return np.random.default_rng([int(seed), int(epoch), 0xFA3E])


class LazyBatches(collections.abc.Sequence):
  """The batches of one epoch, each assembled when it is read.

  A ``Sequence``: ``len``, iteration, indexing and slicing (a slice gives a
  list) work as on a list of batches; nothing is cached.
  """

  def __init__(self, plan: list[Any], assemble: Callable[..., Batch]):
    self._plan = plan
    self._assemble = assemble

  def __len__(self) -> int:
    return len(self._plan)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self._build(p) for p in self._plan[i]]
    return self._build(self._plan[i])

  def _build(self, p) -> Batch:
    return self._assemble(*p) if isinstance(p, tuple) else self._assemble(p)


@dataclasses.dataclass
class _Example:
  inputs: np.ndarray  # [n] int32
  targets: np.ndarray  # [n] int32


def all_positions_examples(train: list[np.ndarray], max_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """Per user ``(inputs, targets)`` = ``(train[:-1], train[1:])``, last ``max_len``.

  Users whose training part has fewer than two items give no example (there
  is no next item to predict inside the training part).
  """
  out = []
  for seq in train:
    if len(seq) < 2:
      continue
    out.append((seq[:-1][-max_len:], seq[1:][-max_len:]))
  return out


class AllPositionsBatcher:
  """Batches for the ``all_positions`` regime, packed or unpacked.

  Args:
    train: per-user training items (``Split.train``).
    max_len: row length ``L``.
    batch_size: sequences per batch (unpacked: rows; packed: the row budget is
      sized so a batch holds about ``batch_size`` sequences on average).
    packing: pack several examples per row.
    row_multiple: the number of rows per batch is rounded up to a multiple of
      this (the data-parallel device count).
  """

  def __init__(self, train: list[np.ndarray], max_len: int, batch_size: int,
               packing: bool, row_multiple: int = 1):
    self.examples = all_positions_examples(train, max_len)
    if not self.examples:
      raise ValueError("no training examples: every user has fewer than 2 training items")
    self.max_len = max_len
    self.packing = packing
    self.batch_size = batch_size
    self.lengths = np.array([len(x) for x, _ in self.examples], dtype=np.int64)
    if packing:
      # Rows per batch so that, on average, a batch holds ~batch_size examples.
      rows = math.ceil(batch_size * float(self.lengths.mean()) / max_len)
    else:
      rows = batch_size
    self.rows_per_batch = int(math.ceil(rows / row_multiple) * row_multiple)

  @property
  def num_targets(self) -> int:
    return int(self.lengths.sum())

  def target_items(self) -> np.ndarray:
    """Every training target of an epoch (each counted once, weight 1), int64."""
    return np.concatenate([y for _, y in self.examples]).astype(np.int64)

  def epoch(self, seed: int, epoch: int, rows: tuple[int, int] | None = None) -> LazyBatches:
    """All batches of one epoch, in order (deterministic in seed and epoch).

    ``rows=(lo, hi)``: only rows ``lo .. hi - 1`` of each batch (one process's
    share of a global batch, ``fame_jax.distributed``); the plan is the same.
    """
    order = epoch_rng(seed, epoch).permutation(len(self.examples))
    groups = self._pack(order) if self.packing else self._unpacked(order)
    lo, hi = rows if rows is not None else (0, self.rows_per_batch)
    return LazyBatches(groups, functools.partial(self._assemble, lo=lo, hi=hi))

  def _unpacked(self, order: np.ndarray) -> list[list[list[int]]]:
    groups = []
    for start in range(0, len(order), self.rows_per_batch):
      groups.append([[int(i)] for i in order[start:start + self.rows_per_batch]])
    return groups

  def _pack(self, order: np.ndarray) -> list[list[list[int]]]:
    """First-fit of examples, in shuffled order, into rows_per_batch rows.

    A batch closes when the next example fits in none of its rows; that
    example opens the next batch. Order inside the epoch is preserved, so the
    same examples land in the same batch on every replay.
    """
    groups: list[list[list[int]]] = []
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
      n = int(self.lengths[i])
      placed = False
      for r, f in enumerate(free):
        if f >= n:
          rows[r].append(int(i))
          free[r] -= n
          placed = True
          break
      if not placed:
        if len(rows) < self.rows_per_batch:
          rows.append([int(i)])
          free.append(self.max_len - n)
        else:
          groups.append(rows)
          rows, free = [[int(i)]], [self.max_len - n]
    if rows:
      groups.append(rows)
    return groups

  def _assemble(self, rows: list[list[int]], lo: int = 0, hi: int | None = None) -> Batch:
    hi = self.rows_per_batch if hi is None else hi
    r_, l_ = hi - lo, self.max_len
    b = {k: np.zeros((r_, l_), np.int32) for k in ("items", "positions", "segments", "targets")}
    b["weights"] = np.zeros((r_, l_), np.float32)
    for r, ex_ids in enumerate(rows[lo:hi]):
      col = 0
      for seg, i in enumerate(ex_ids, start=1):
        x, y = self.examples[i]
        n = len(x)
        b["items"][r, col:col + n] = x
        b["targets"][r, col:col + n] = y
        b["positions"][r, col:col + n] = np.arange(n)
        b["segments"][r, col:col + n] = seg
        b["weights"][r, col:col + n] = 1.0
        col += n
    return b


class PrefixLastBatcher:
  """Batches for the ``prefix_last`` regime (every prefix, loss at the end).

  Args:
    train: per-user training items.
    max_len: the longest window ``L``.
    batch_size: examples per batch.
    row_multiple: batch size must be a multiple of this (device count).
  """

  def __init__(self, train: list[np.ndarray], max_len: int, batch_size: int,
               row_multiple: int = 1):
    if batch_size % row_multiple:
      raise ValueError(f"train.batch_size={batch_size} is not divisible by the {row_multiple} devices")
    users, ends = [], []
    for u, seq in enumerate(train):
      for k in range(1, len(seq)):
        users.append(u)
        ends.append(k)
    if not users:
      raise ValueError("no training examples: every user has fewer than 2 training items")
    self.train = train
    self.users = np.asarray(users, np.int64)
    self.ends = np.asarray(ends, np.int64)
    self.lengths = np.minimum(self.ends, max_len)
    self.max_len = max_len
    self.batch_size = batch_size
    # Bucket widths: powers of two below max_len, then max_len itself.
    widths = [w for w in (2 ** np.arange(0, 12)) if w < max_len] + [max_len]
    self.widths = np.asarray(widths)
    self.bucket = np.searchsorted(self.widths, self.lengths)
    self.rows_per_batch = batch_size

  @property
  def num_targets(self) -> int:
    return len(self.users)

  def target_items(self) -> np.ndarray:
    """Every training target of an epoch (each counted once, weight 1), int64."""
    return np.concatenate([seq[1:] for seq in self.train if len(seq) > 1]).astype(np.int64)

  def epoch(self, seed: int, epoch: int, rows: tuple[int, int] | None = None) -> LazyBatches:
    """Batches of one epoch: shuffled within buckets, buckets interleaved.

    ``rows=(lo, hi)``: only rows ``lo .. hi - 1`` of each batch.
    """
    rng = epoch_rng(seed, epoch)
    chunks = []
    for b in range(len(self.widths)):
      idx = np.flatnonzero(self.bucket == b)
      if not len(idx):
        continue
      idx = idx[rng.permutation(len(idx))]
      for s in range(0, len(idx), self.batch_size):
        chunks.append((b, idx[s:s + self.batch_size]))
    order = rng.permutation(len(chunks))
    lo, hi = rows if rows is not None else (0, self.batch_size)
    return LazyBatches([chunks[i] for i in order], functools.partial(self._assemble, lo=lo, hi=hi))

  def _assemble(self, bucket: int, idx: np.ndarray, lo: int = 0, hi: int | None = None) -> Batch:
    w = int(self.widths[bucket])
    hi = self.batch_size if hi is None else hi
    idx = idx[lo:hi]
    r_ = hi - lo
    b = {k: np.zeros((r_, w), np.int32) for k in ("items", "positions", "segments", "targets")}
    b["weights"] = np.zeros((r_, w), np.float32)
    # Positions counted from the end: column j of a width-w batch is position
    # max_len - w + j, so the last column is always position max_len - 1.
    b["positions"][:] = np.arange(self.max_len - w, self.max_len)[None, :]
    for r, i in enumerate(idx):
      seq, k = self.train[self.users[i]], int(self.ends[i])
      x = seq[max(0, k - self.max_len):k][-w:]
      n = len(x)
      b["items"][r, w - n:] = x
      b["segments"][r, w - n:] = 1
      b["targets"][r, w - 1] = seq[k]
      b["weights"][r, w - 1] = 1.0
    return b


def make_batcher(train: list[np.ndarray], *, examples: str, max_len: int, batch_size: int,
                 packing: bool, row_multiple: int = 1):
  """The batcher for ``train.examples`` (``all_positions`` or ``prefix_last``)."""
  if options.check_choice("train.examples", examples) == "prefix_last":
    return PrefixLastBatcher(train, max_len, batch_size, row_multiple)
  if not packing and batch_size % row_multiple:
    raise ValueError(
        f"train.batch_size={batch_size} is not divisible by the {row_multiple} devices")
  return AllPositionsBatcher(train, max_len, batch_size, packing, row_multiple)


def eval_inputs(histories: list[np.ndarray], max_len: int, left_pad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Model inputs for evaluation users: the last ``max_len`` items of each history.

  Returns ``(items [B, L], positions [B, L], segments [B, L])``; right-padded
  with positions from the window start for ``all_positions`` models, or
  left-padded with positions counted from the end for ``prefix_last`` models
  (``left_pad=True``), matching how each regime was trained.
  """
  b = len(histories)
  items = np.zeros((b, max_len), np.int32)
  segments = np.zeros((b, max_len), np.int32)
  positions = np.tile(np.arange(max_len, dtype=np.int32), (b, 1))
  for r, h in enumerate(histories):
    x = np.asarray(h[-max_len:], np.int32)
    n = len(x)
    if left_pad:
      items[r, max_len - n:] = x
      segments[r, max_len - n:] = 1
    else:
      items[r, :n] = x
      segments[r, :n] = 1
  return items, positions, segments
