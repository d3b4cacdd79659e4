"""The synthetic "facet world": a small dataset with known facets and order.

Why it exists: tests and the default run need data that (a) ships with the code
(the benchmarks are licensed and live outside the repo), (b) takes a minute or
two to train on a laptop CPU, and (c) rewards exactly what FAME models -- users
who choose items by one facet -- while also rewarding order, so a sequential
model beats popularity by a wide margin.

Generative story (all draws from one ``numpy.random.Generator(seed)``):
  * Items have ``num_facets`` categorical facets (``genre``, ``brand``,
    ``price``, ...), each uniform over ``values_per_facet`` values, and a global
    Zipf popularity (exponent ``popularity_alpha``, ranks randomly permuted).
  * Each value's items form a random cycle (a "chain"): the next item a fan of
    that value tends to pick after item ``i`` is ``i``'s successor in the chain.
    This is what puts signal in the ORDER: popularity cannot see it, a
    first-order Markov model or a transformer can.
  * Each user has one dominant facet and 1-3 preferred values within it. At
    each step the current value switches to another preferred value with
    probability ``_SWITCH_PROB``; then with probability ``noise`` the item is a
    popularity draw from the whole catalog, otherwise it is the chain successor
    of the previous item (probability ``_CHAIN_PROB``, when that previous item
    is in the current pool) or a popularity (Zipf) draw from the current pool.
  * No item repeats within a user (like the S3-Rec benchmark files).

Items carry text (``title``, ``text``) and one field per facet whose value is
the facet value's name plus two pseudo-words (``item_meta["genre"] ==
"genre_3 lobu tevi"``), so pre-training can use the facets as labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fame_jax.data.dataset import Dataset
from fame_jax.data.preprocess import PAD_RAW_ID

_FACET_NAMES = ("genre", "brand", "price", "color", "style", "size",
                "material", "origin")
_SYLLABLES = ("ba", "ko", "mi", "tu", "le", "ra", "vo", "si", "du", "ne", "pa",
              "zo", "ki", "lu", "fe", "go", "ti", "ma", "ro", "se")
_SWITCH_PROB = 0.15  # Per step: move to another of the user's preferred values.
_CHAIN_PROB = 0.5  # Per on-taste step: follow the value's item chain.


def facet_names(num_facets: int) -> list[str]:
  """Facet names: readable ones first, then ``facet<k>``."""
  return [(_FACET_NAMES[f] if f < len(_FACET_NAMES) else f"facet{f}")
          for f in range(num_facets)]


def _word(rng: np.random.Generator) -> str:
  return "".join(_SYLLABLES[j] for j in rng.integers(0, len(_SYLLABLES), 2))


def _draw(rng: np.random.Generator, items: np.ndarray, cum: np.ndarray,
          seen: set[int]) -> int | None:
  """Popularity draw from ``items`` (cumulative weights ``cum``), unseen only.

  Rejection is cheap because pools are much larger than a sequence; the exact
  fallback keeps tiny test worlds from looping forever.
  """
  for _ in range(20):
    j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    item = int(items[min(j, len(items) - 1)])
    if item not in seen:
      return item
  left = [int(i) for i in items if int(i) not in seen]
  if not left:
    return None
  return left[int(rng.integers(len(left)))]


def generate_facet_world(cfg: Any) -> Dataset:
  """Generates the synthetic facet world.

  Args:
    cfg: ``data.synthetic`` section: ``seed``, ``num_users``, ``num_items``,
      ``num_facets``, ``values_per_facet``, ``min_length``, ``max_length``,
      ``noise``, ``popularity_alpha``.

  Returns:
    A :class:`Dataset` named "synthetic" with ``num_users`` sequences over
    items ``1..num_items``, item_meta fields ``title``, ``text`` and one per
    facet, and ``ground_truth`` with ``user_dominant_facet`` ``[U]``,
    ``item_facets`` ``[N + 1, F]`` (row 0 = -1), ``facet_names`` and
    ``user_preferred_values`` (one int array per user).
  """
  num_users, n = int(cfg.num_users), int(cfg.num_items)
  nf, nv = int(cfg.num_facets), int(cfg.values_per_facet)
  lo, hi = int(cfg.min_length), int(cfg.max_length)
  noise = float(cfg.noise)
  if not (1 <= lo <= hi <= n):
    raise ValueError(f"need 1 <= min_length <= max_length <= num_items, got "
                     f"{lo}, {hi}, {n}")
  if nf < 1 or nv < 1 or num_users < 1:
    raise ValueError("num_facets, values_per_facet and num_users must be >= 1")
  rng = np.random.default_rng(int(cfg.seed))
  names = facet_names(nf)

  # Items (ids 1..n; row 0 is padding).
  item_facets = np.full((n + 1, nf), -1, dtype=np.int64)
  item_facets[1:] = rng.integers(0, nv, size=(n, nf))
  ranks = rng.permutation(n) + 1
  popularity = np.zeros(n + 1)
  popularity[1:] = 1.0 / ranks.astype(np.float64) ** float(cfg.popularity_alpha)
  all_items = np.arange(1, n + 1)
  all_cum = np.cumsum(popularity[1:])

  # Per (facet, value): pool, its cumulative popularity, and the chain.
  pools, cums, successor = {}, {}, np.zeros((nf, n + 1), dtype=np.int64)
  for f in range(nf):
    for v in range(nv):
      pool = np.flatnonzero(item_facets[:, f] == v)
      pools[f, v] = pool
      cums[f, v] = np.cumsum(popularity[pool]) if len(pool) else pool
      if len(pool):
        cycle = rng.permutation(pool)
        successor[f, cycle] = np.roll(cycle, -1)

  # Facet value names and item text.
  value_names = [[f"{names[f]}_{v} {_word(rng)} {_word(rng)}"
                  for v in range(nv)] for f in range(nf)]
  titles = [None] + [f"item {i} {_word(rng)} {_word(rng)}"
                     for i in range(1, n + 1)]
  item_meta: dict[str, list[Any]] = {"title": titles, "text": [None]}
  for f in range(nf):
    item_meta[names[f]] = [None] + [value_names[f][item_facets[i, f]]
                                    for i in range(1, n + 1)]
  for i in range(1, n + 1):
    item_meta["text"].append(
        titles[i] + ". " + ". ".join(item_meta[names[f]][i] for f in range(nf)))

  # Users.
  dominant = rng.integers(0, nf, size=num_users)
  preferred, sequences = [], []
  for u in range(num_users):
    f = int(dominant[u])
    k = int(rng.integers(1, min(3, nv) + 1))
    prefs = np.sort(rng.choice(nv, size=k, replace=False))
    preferred.append(prefs.astype(np.int64))
    length = int(rng.integers(lo, hi + 1))
    current = int(rng.integers(k))
    seq: list[int] = []
    seen: set[int] = set()
    while len(seq) < length:
      if k > 1 and rng.random() < _SWITCH_PROB:
        current = (current + int(rng.integers(1, k))) % k
      v = int(prefs[current])
      item = None
      if rng.random() >= noise and len(pools[f, v]):
        prev = seq[-1] if seq else 0
        if prev and item_facets[prev, f] == v and rng.random() < _CHAIN_PROB:
          nxt = int(successor[f, prev])
          for _ in range(len(pools[f, v])):  # Skip items already consumed.
            if nxt not in seen:
              item = nxt
              break
            nxt = int(successor[f, nxt])
        if item is None:
          item = _draw(rng, pools[f, v], cums[f, v], seen)
      if item is None:  # Noise step, or the user's pool is used up.
        item = _draw(rng, all_items, all_cum, seen)
      seq.append(item)
      seen.add(item)
    sequences.append(np.asarray(seq, dtype=np.int32))

  item_raw_ids = np.asarray([PAD_RAW_ID] + [str(i) for i in range(1, n + 1)],
                            dtype=object)
  ds = Dataset(
      name="synthetic",
      sequences=sequences,
      num_items=n,
      user_raw_ids=np.asarray([str(u) for u in range(1, num_users + 1)],
                              dtype=object),
      item_raw_ids=item_raw_ids,
      item_meta=item_meta,
      ground_truth={
          "user_dominant_facet": dominant.astype(np.int64),
          "item_facets": item_facets,
          "facet_names": names,
          "user_preferred_values": preferred,
      },
  )
  counts = {"users": ds.num_users, "items": n,
            "interactions": ds.num_interactions}
  ds.report.append({"step": "generate_facet_world", "seed": int(cfg.seed),
                    **{f"{k}_before": 0 for k in counts},
                    **{f"{k}_after": v for k, v in counts.items()}})
  return ds
