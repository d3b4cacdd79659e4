"""Using a trained model: top-k recommendations from a ``train.py`` workdir.

::

  from fame_jax import Recommender
  r = Recommender.load("runs/beauty")
  recs = r.recommend(histories=[["B0001", "B0002"]], k=10)   # raw item ids in and out
  recs.ids, recs.scores                                      # [1, 10] each
  r.recommend_users(["A2CZ..."], k=10)   # next items after each user's whole history

A :class:`Recommender` needs only the workdir: its ``config.json`` (the model),
``vocab.json`` (raw ids of users and items), ``histories.npz`` (every user's
whole history: train, validation and test items) and the best checkpoint.

Scores are the evaluator's (:func:`fame_jax.training.steps.make_score_fn`):
the same user vector ``u`` at each history's last position, ``u . item_emb``
for every item, the pad item never a candidate, and (``exclude="history"``,
the default) the history's items set to ``-inf`` just as the evaluator masks
them (docs/protocol.md §7). ``tests/test_recommender.py`` ranks the
evaluator's validation and test histories both ways and compares.

Speed: one jitted function scores a chunk of users and takes its top ``k`` on
device (:func:`top_k`), so only ``[B, k]`` comes back to the host. Users go
through in order of history length; each chunk is padded to a bucket of rows
(a power of two) and the model runs on the narrowest width bucket
(:func:`width_bucket`, two a doubling) that holds the chunk's longest
window. Only the last block runs at just the scored row (the model's
``query_index``, as the evaluator's). Two chunks run at once, from two
threads. Each (rows, width, history width, k) bucket compiles once per
process.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fame_jax import evaluation
from fame_jax import workdir as workdir_lib
from fame_jax.errors import CheckpointError, UserError
from fame_jax.models import FAME, score_items
from fame_jax.training import checkpoints as ckpt_lib
from fame_jax.training import steps as steps_lib

# Users per chunk. Measured on the 2-core CPU (bench/recommend_speed.py): with
# two chunks in flight 128 beat 256 and 512 (its [128, N + 1] scores stay in
# cache between the matmul, the history mask and the top-k).
_CHUNK_USERS = 128
# Chunks run at once, each from its own thread: XLA's CPU runtime leaves
# cores idle in one program's narrow steps that a second program fills
# (~20 % less wall time than one at a time on 2 cores).
_IN_FLIGHT = 2
# Smallest row bucket, so one-user calls and a few-user calls share a compile.
_MIN_ROWS = 8
# Items per group of the two-stage top-k (:func:`top_k`).
_TOPK_GROUP = 32

UNKNOWN_CHOICES = ("error", "skip")


class RecommendError(UserError, ValueError):
  """Bad input to the :class:`Recommender`; its message is one line naming the problem."""


class UnknownIdsError(RecommendError):
  """Raw item or user ids that the model's vocabulary does not hold."""

  def __init__(self, kind: str, ids: Sequence[Any], where: str = ""):
    self.ids = list(ids)
    shown = ", ".join(repr(i) for i in self.ids[:10])
    more = f" and {len(self.ids) - 10} more" if len(self.ids) > 10 else ""
    super().__init__(f"unknown {kind} id{'s' if len(self.ids) != 1 else ''}{where}: {shown}{more} "
                     f"(not in the model's vocab.json)")


@dataclasses.dataclass
class Recommendations:
  """Top-``k`` items per query, best first.

  Attributes:
    ids: ``[B, k]`` object array of raw item ids. Where fewer than ``k`` items
      remain after exclusion, the tail holds ``None``.
    scores: ``[B, k]`` float32 ``u . item_emb`` of those items (``-inf`` where
      ``ids`` is ``None``).
    unknown: per query, the raw history ids that were not in the vocabulary
      and were skipped (``unknown="skip"``; empty lists otherwise).
    users: the raw user ids of :meth:`Recommender.recommend_users`, else
      ``None``.
  """

  ids: np.ndarray
  scores: np.ndarray
  unknown: list[list[Any]]
  users: list[Any] | None = None

  def __len__(self) -> int:
    return len(self.ids)

  def rows(self) -> Iterable[dict[str, Any]]:
    """One JSON-ready dict per query: ``{"user"?, "ids", "scores", "unknown"?}``."""
    for b in range(len(self.ids)):
      keep = [i is not None for i in self.ids[b]]
      row: dict[str, Any] = {}
      if self.users is not None:
        row["user"] = self.users[b]
      row["ids"] = [i for i, ok in zip(self.ids[b], keep) if ok]
      row["scores"] = [float(s) for s, ok in zip(self.scores[b], keep) if ok]
      if self.unknown[b]:
        row["unknown"] = list(self.unknown[b])
      yield row


def _restore_params(config: ml_collections.ConfigDict, workdir: str, num_items: int,
                    checkpoint: str) -> Any:
  """Params of a workdir's checkpoint, on the default device
  (:func:`fame_jax.training.checkpoints.restore_params`, whose target is abstract).

  The config is the workdir's own, so it fits its checkpoints by
  construction; a checkpoint of another item count fails the restore with a
  :class:`~fame_jax.errors.CheckpointError` naming its folder.
  """
  if checkpoint not in ("best", "latest") and not str(checkpoint).isdigit():
    raise RecommendError(f"checkpoint must be 'best', 'latest' or an epoch number, got "
                         f"{checkpoint!r}")
  if checkpoint == "latest":
    ckpts = ckpt_lib.Checkpoints(os.path.join(workdir, "checkpoints"))
    try:
      if ckpts.latest_epoch() is None:
        raise CheckpointError(f"no checkpoint under {ckpts.directory}/latest: train first")
    finally:
      ckpts.close()
  return ckpt_lib.restore_params(config, workdir, num_items, checkpoint)


def id_key(raw: Any) -> str:
  """Lookup key of a raw id: its text, so ``12`` and ``"12"`` name the same item.

  Readers keep raw ids as read (CSV ids are strings), while a JSON caller may
  well send numbers; keying on the text accepts both.
  """
  return raw if isinstance(raw, str) else str(raw)


def make_index(raw_ids: Sequence[Any], first: int = 0) -> dict[str, int]:
  """``{id_key(raw): position}`` over ``raw_ids[first:]``.

  Raises:
    ValueError: two raw ids with the same text (``12`` and ``"12"``).
  """
  index = {id_key(r): i for i, r in enumerate(raw_ids) if i >= first}
  if len(index) != len(raw_ids) - first:
    raise ValueError("raw ids that differ only in type (e.g. 12 and '12') cannot be told apart")
  return index


def width_bucket(n: int, max_len: int) -> int:
  """The model width for a chunk whose longest window is ``n``: ``n`` up to 4,
  then rounded up to half of its power-of-two octave (6, 8, 12, 16, 24, 32,
  48, ...), at most ``max_len``.

  Every padded column costs a whole position of the forward pass (the
  trunk's attention and FFN), and most histories are short: over Beauty's
  users (chunks of 128 in length order) power-of-two widths ran 38 % more
  positions than there are items (9 items on 16 columns), these buckets
  16 %. Quarter-octave buckets (10, 12, 14, ...) ran 6 % but compiled 16
  programs for one pass over every user instead of 9, for no measurable
  gain in speed.
  """
  n = max(1, int(n))
  step = max(1, evaluation.next_pow2(n) // 4)
  return min(max_len, -(-n // step) * step)


def top_k(scores: jax.Array, k: int, group: int = _TOPK_GROUP) -> tuple[jax.Array, jax.Array]:
  """``jax.lax.top_k(scores, k)``, in two cheaper passes over a wide catalogue.

  The items are cut into groups of ``group``; the ``k`` best items lie in the
  ``k`` groups with the highest maxima (any other group's best is beaten by
  ``k`` items), so ``top_k`` runs over the ``[B, G]`` group maxima and then
  over the ``k * group`` items of the chosen groups, instead of over all
  ``N + 1``. The groups are gathered in item order, so equal scores come out
  lowest index first, as ``jax.lax.top_k`` gives them (a tied group left out
  comes after ``k`` tied groups taken, each holding an item of that score).
  With fewer than ``4 k`` groups it is ``jax.lax.top_k``.

  Args:
    scores: ``[B, n]`` float.
    k: ``1 .. n``.
    group: items per group.

  Returns:
    ``(values [B, k], indices [B, k] int32)``, best first.
  """
  b, n = scores.shape
  groups = -(-n // group)
  if groups < 4 * k:
    return jax.lax.top_k(scores, k)
  tiles = jnp.pad(scores, ((0, 0), (0, groups * group - n)),
                  constant_values=-jnp.inf).reshape(b, groups, group)
  _, best = jax.lax.top_k(jnp.max(tiles, axis=2), k)
  best = jnp.sort(best, axis=1)  # Item order: ties resolve as in one top_k.
  values, pos = jax.lax.top_k(
      jnp.take_along_axis(tiles, best[:, :, None], axis=1).reshape(b, k * group), k)
  index = jnp.take_along_axis(best, pos // group, axis=1) * group + pos % group
  return values, index.astype(jnp.int32)


# --------------------------------------------------------------------- ragged rows


def _rows_of(flat: np.ndarray, starts: np.ndarray, lens: np.ndarray, width: int,
             last: bool) -> np.ndarray:
  """``[B, width]`` int32, right-padded with 0: each row's last ``width`` items
  (``last=True``, the model window) or the whole row (``width`` covers it)."""
  n = np.minimum(lens, width) if last else lens
  first = starts + lens - n
  col = np.arange(width, dtype=np.int64)[None, :]
  # Out-of-row columns read the trailing 0 of ``flat``.
  idx = np.where(col < n[:, None], first[:, None] + col, len(flat) - 1)
  return flat[idx]


class _Ragged:
  """Histories as one flat int32 array plus starts/lengths (plus a trailing pad 0)."""

  def __init__(self, flat: np.ndarray, starts: np.ndarray, lens: np.ndarray):
    self.flat = np.concatenate([np.asarray(flat, np.int32), np.zeros(1, np.int32)])
    self.starts = np.asarray(starts, np.int64)
    self.lens = np.asarray(lens, np.int64)

  @classmethod
  def from_lists(cls, rows: Sequence[np.ndarray]) -> "_Ragged":
    lens = np.fromiter((len(r) for r in rows), np.int64, len(rows))
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    flat = (np.concatenate([np.asarray(r, np.int32) for r in rows]) if lens.sum()
            else np.zeros(0, np.int32))
    return cls(flat, starts, lens)

  def __len__(self) -> int:
    return len(self.lens)


# --------------------------------------------------------------------- the recommender


class Recommender:
  """A trained model ready to recommend, built by :meth:`load`.

  Attributes:
    workdir: the workdir it was loaded from.
    config: the resolved config the model was trained with.
    model: the :class:`fame_jax.models.FAME` module.
    params: the restored parameters (on device).
    user_ids: raw user ids; position = user index of ``histories.npz``.
    item_ids: raw item ids; position = item index, ``item_ids[0]`` the pad
      (``None``).
  """

  def __init__(self, config: ml_collections.ConfigDict, params: Any, user_ids: Sequence[Any],
               item_ids: Sequence[Any], offsets: np.ndarray, items: np.ndarray,
               workdir: str = ""):
    self.workdir = workdir
    self.config = config
    self.num_items = len(item_ids) - 1
    self.max_len = int(config.data.max_len)
    self.examples = str(config.train.examples)
    self.model = FAME(cfg=config.model, num_items=self.num_items)
    self.params = params
    self.user_ids = list(user_ids)
    self.item_ids = list(item_ids)
    self._item_index = make_index(self.item_ids, first=1)
    self._user_index = make_index(self.user_ids)
    self._item_array = np.asarray(self.item_ids, dtype=object)
    offsets = np.asarray(offsets, np.int64)
    if len(offsets) != len(self.user_ids) + 1:
      raise RecommendError(f"histories.npz has {len(offsets) - 1} users, vocab.json "
                       f"{len(self.user_ids)}")
    self._user_histories = _Ragged(items, offsets[:-1], np.diff(offsets))
    self._user_vectors = steps_lib.make_user_vector_fn(self.model, self.examples, self.max_len)
    self._topk = jax.jit(self._topk_impl, static_argnames=("k",))

  # ------------------------------------------------------------------ loading
  @classmethod
  def load(cls, workdir: str, checkpoint: str = "best") -> "Recommender":
    """Loads a ``train.py`` workdir.

    Args:
      workdir: holds ``config.json``, ``vocab.json``, ``histories.npz`` and
        ``checkpoints/``.
      checkpoint: ``"best"`` (the one the results report), ``"latest"`` or an
        epoch number of a kept best checkpoint.

    Raises:
      WorkdirError: a file of the workdir is missing or malformed (named).
      CheckpointError: no such checkpoint.
      ValueError: the checkpoint does not fit the stored config or vocabulary.
    """
    workdir = os.path.abspath(workdir)
    config = workdir_lib.load_config(workdir)
    vocab = workdir_lib.load_vocab(workdir)
    histories = workdir_lib.load_histories(workdir)
    params = _restore_params(config, workdir, vocab.num_items, checkpoint)
    return cls(config, params, vocab.users, vocab.items, histories.offsets, histories.items,
               workdir=workdir)

  @classmethod
  def from_dataset(cls, config: ml_collections.ConfigDict, dataset: Any, params: Any
                   ) -> "Recommender":
    """A model in memory (e.g. just trained or freshly initialised) over a
    :class:`fame_jax.data.dataset.Dataset`: the vocabulary and whole histories
    are those ``train.py`` would write to the workdir."""
    vocab, histories = workdir_lib.vocab_of(dataset), workdir_lib.histories_of(dataset)
    return cls(config, params, vocab["users"], vocab["items"], histories["offsets"],
               histories["items"])

  # ------------------------------------------------------------------ id mapping
  def item_indices(self, history: Sequence[Any], unknown: str = "error",
                   where: str = "") -> tuple[np.ndarray, list[Any]]:
    """Raw item ids -> item indices ``[n]`` int32, and the unknown raw ids.

    Raises:
      UnknownIdsError: ``unknown="error"`` and some ids are not in the vocabulary.
    """
    if unknown not in UNKNOWN_CHOICES:
      raise RecommendError(f"unknown must be one of {UNKNOWN_CHOICES}, got {unknown!r}")
    if isinstance(history, (str, bytes)) or not isinstance(history, Iterable):
      raise RecommendError(f"a history must be a list of raw item ids, got {type(history).__name__}"
                           f"{where}")
    idx, missing = [], []
    for raw in history:
      i = self._item_index.get(id_key(raw))
      if i is None:
        missing.append(raw)
      else:
        idx.append(i)
    if missing and unknown == "error":
      raise UnknownIdsError("item", missing, where)
    return np.asarray(idx, np.int32), missing

  def _histories_from_raw(self, histories: Sequence[Sequence[Any]], unknown: str
                          ) -> tuple[_Ragged, list[list[Any]]]:
    rows, unknowns = [], []
    for b, h in enumerate(histories):
      where = f" in history {b}" if len(histories) > 1 else ""
      idx, missing = self.item_indices(h, unknown, where)
      if len(idx) == 0:
        why = " (all of its ids are unknown)" if missing else ""
        raise RecommendError(f"history {b} is empty{why}: nothing to recommend from")
      rows.append(idx)
      unknowns.append(missing)
    return _Ragged.from_lists(rows), unknowns

  def _user_rows(self, user_ids: Sequence[Any] | None) -> tuple[_Ragged, list[Any]]:
    if user_ids is None:
      return self._user_histories, self.user_ids
    if isinstance(user_ids, (str, bytes)):
      raise RecommendError("user_ids must be a list of raw user ids, not one string")
    user_ids = list(user_ids)
    rows = [self._user_index.get(id_key(u)) for u in user_ids]
    missing = [u for u, r in zip(user_ids, rows) if r is None]
    if missing:
      raise UnknownIdsError("user", missing)
    rows = np.asarray(rows, np.int64)
    h = self._user_histories
    # The vocabulary's raw ids: "12" from a command line names user 12 and reports it as 12.
    return _Ragged(h.flat[:-1], h.starts[rows], h.lens[rows]), [self.user_ids[r] for r in rows]

  def _banned(self, exclude: Any) -> tuple[bool, np.ndarray]:
    """``(mask each history, [N + 1] bool items never recommended)``."""
    banned = np.zeros(self.num_items + 1, bool)
    if exclude is None:
      return False, banned
    if isinstance(exclude, str):
      if exclude != "history":
        raise RecommendError(f"exclude must be 'history', None or a list of raw item ids, got "
                             f"{exclude!r}")
      return True, banned
    idx, _ = self.item_indices(list(exclude), "error", " in exclude")
    banned[idx] = True
    return False, banned

  # ------------------------------------------------------------------ device side
  def _topk_impl(self, params, inputs, lengths, history, banned, k: int):
    """``(scores [B, k], item indices [B, k])`` of one chunk, best first.

    ``inputs [B, W]`` right-padded windows and ``lengths [B]`` as the
    evaluator's ``score_fn`` takes them; ``history [B, H]`` items set to
    ``-inf`` (0 = pad, whose column is ``-inf`` already); ``banned [N + 1]``
    bool or ``None``.
    """
    u = self._user_vectors(params, inputs, lengths)
    scores = score_items(u, params["item_emb"]["embedding"])
    if banned is not None:  # A separate program: no extra pass over [B, N + 1] without a list.
      scores = jnp.where(banned[None, :], -jnp.inf, scores)
    rows = jnp.arange(scores.shape[0])[:, None]
    scores = scores.at[rows, history].set(-jnp.inf)
    return top_k(scores, k)

  def _chunks(self, hist: _Ragged, mask_history: bool, chunk_users: int):
    """Yields ``(positions, inputs, lengths, history)`` chunks in length order.

    ``positions [n]`` are the chunk's rows of ``hist``; the arrays have a
    bucketed row count (pad rows empty) and bucketed widths.
    """
    order = np.argsort(hist.lens, kind="stable")
    for lo in range(0, len(order), chunk_users):
      pos = order[lo:lo + chunk_users]
      n = len(pos)
      size = max(_MIN_ROWS, min(chunk_users, evaluation.next_pow2(n)))
      starts = np.zeros(size, np.int64)
      lens = np.zeros(size, np.int64)
      starts[:n], lens[:n] = hist.starts[pos], hist.lens[pos]
      longest = int(lens.max(initial=1))
      width = width_bucket(min(longest, self.max_len), self.max_len)
      inputs = _rows_of(hist.flat, starts, lens, width, last=True)
      lengths = np.minimum(lens, self.max_len).astype(np.int32)
      if mask_history:
        full = _rows_of(hist.flat, starts, lens, evaluation.next_pow2(longest), last=False)
      else:
        full = np.zeros((size, 1), np.int32)
      yield pos, inputs, lengths, full

  def _recommend(self, hist: _Ragged, k: int, exclude: Any, chunk_users: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= self.num_items:
      raise RecommendError(f"k must be an integer in 1..{self.num_items} (the item count), got {k!r}")
    if len(hist) and hist.lens.min() == 0:
      raise RecommendError(f"history {int(np.argmin(hist.lens))} is empty: nothing to recommend from")
    mask_history, banned = self._banned(exclude)
    banned = jnp.asarray(banned) if banned.any() else None
    scores = np.full((len(hist), k), -np.inf, np.float32)
    index = np.zeros((len(hist), k), np.int32)

    def run(pos, inputs, lengths, full):
      s, i = self._topk(self.params, inputs, lengths, full, banned, k=int(k))
      scores[pos], index[pos] = np.asarray(s)[:len(pos)], np.asarray(i)[:len(pos)]

    # The next chunks are cut on this thread while the pool's threads run
    # earlier ones; each chunk writes its own rows.
    with concurrent.futures.ThreadPoolExecutor(_IN_FLIGHT) as pool:
      done = [pool.submit(run, *chunk) for chunk in self._chunks(hist, mask_history, chunk_users)]
    for future in done:
      future.result()  # Re-raises a chunk's error.
    ids = self._item_array[index]
    ids[~np.isfinite(scores)] = None  # Excluded items and the pad are never recommended.
    return ids, scores

  # ------------------------------------------------------------------ public API
  def recommend(self, histories: Sequence[Sequence[Any]], k: int = 10,
                exclude: Any = "history", unknown: str = "error",
                chunk_users: int = _CHUNK_USERS) -> Recommendations:
    """Top-``k`` next items after each history.

    Args:
      histories: per query, raw item ids in chronological order (the model
        reads the last ``max_len``; exclusion uses all of them).
      k: items per query, ``1 .. N``.
      exclude: ``"history"`` (default; the evaluator's rule) removes each
        query's own history items; ``None`` removes nothing; a list of raw item
        ids removes those items (and only those) from every query; an id of
        the list the model does not know raises :class:`UnknownIdsError`.
      unknown: ``"error"`` raises :class:`UnknownIdsError` naming the history
        ids the model does not know; ``"skip"`` drops them and lists them in
        ``Recommendations.unknown``.
      chunk_users: queries scored at once (memory: ``[chunk, N + 1]`` floats).

    Returns:
      :class:`Recommendations` with ``ids`` / ``scores`` ``[B, k]``.

    Raises:
      RecommendError: bad arguments, or a history that is empty (after
        skipping unknown ids).
    """
    if isinstance(histories, (str, bytes)) or not isinstance(histories, Iterable):
      raise RecommendError("histories must be a list of histories (lists of raw item ids)")
    hist, unknowns = self._histories_from_raw(list(histories), unknown)
    ids, scores = self._recommend(hist, k, exclude, chunk_users)
    return Recommendations(ids=ids, scores=scores, unknown=unknowns)

  def recommend_users(self, user_ids: Sequence[Any] | None = None, k: int = 10,
                      exclude: Any = "history", chunk_users: int = _CHUNK_USERS
                      ) -> Recommendations:
    """Top-``k`` next items after each known user's whole history.

    The history is every item of the user in the training data (train,
    validation and test items, ``histories.npz``).

    Args:
      user_ids: raw user ids (``vocab.json``); ``None`` = every user, in
        vocabulary order.
      k, exclude, chunk_users: as :meth:`recommend`.

    Raises:
      UnknownIdsError: user ids that are not in the vocabulary.
    """
    hist, users = self._user_rows(user_ids)
    ids, scores = self._recommend(hist, k, exclude, chunk_users)
    return Recommendations(ids=ids, scores=scores, unknown=[[] for _ in users], users=list(users))

  def histories(self, user_ids: Sequence[Any] | None = None) -> list[list[Any]]:
    """Whole histories (raw item ids, oldest first) of ``user_ids`` (``None`` = all)."""
    hist, _ = self._user_rows(user_ids)
    return [[self.item_ids[i] for i in hist.flat[s:s + n]] for s, n in zip(hist.starts, hist.lens)]

  def item_embeddings(self) -> tuple[list[Any], np.ndarray]:
    """``(raw item ids [N], item embeddings [N, d])``: the rows ``u`` is scored against.

    The pad row is left out; ``score = user_vector . embedding``.
    """
    table = np.asarray(self.params["item_emb"]["embedding"])
    return self.item_ids[1:], table[1:]

  def user_vectors(self, histories: Sequence[Sequence[Any]] | None = None, *,
                   user_ids: Sequence[Any] | None = None, unknown: str = "error",
                   chunk_users: int = _CHUNK_USERS) -> tuple[list[Any], np.ndarray]:
    """The model's user vector ``u`` after each history, ``score = u . item_emb``.

    Give exactly one of ``histories`` (raw item ids; the returned ids are the
    query positions ``0..B-1``) or ``user_ids`` (whole histories from the
    workdir; ``None`` for both = every user).

    Returns:
      ``(ids, [B, d] float32)``.
    """
    if histories is not None and user_ids is not None:
      raise RecommendError("give histories or user_ids, not both")
    if histories is not None:
      hist, _ = self._histories_from_raw(list(histories), unknown)
      ids: list[Any] = list(range(len(hist)))
    else:
      hist, ids = self._user_rows(user_ids)
    out = np.zeros((len(hist), self.config.model.hidden_size), np.float32)
    for pos, inputs, lengths, _ in self._chunks(hist, False, chunk_users):
      out[pos] = np.asarray(self._user_vectors(self.params, inputs, lengths))[:len(pos)]
    return ids, out

  def compiled_shapes(self) -> int:
    """How many shape buckets the top-k function has compiled (for tests)."""
    return self._topk._cache_size()
