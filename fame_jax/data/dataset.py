"""The one in-memory dataset every reader produces.

Every reader in :mod:`fame_jax.data.readers` and the synthetic generator return a
:class:`Dataset`; everything downstream (split, batching, pre-training, export)
reads only this structure, so a new file format only needs a new reader.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass
class Dataset:
  """Chronological interaction sequences plus item metadata.

  Attributes:
    name: short name used in logs and results (e.g. ``"beauty"``).
    sequences: one int32 array per user, item ids in ``1..num_items`` in
      chronological order (the last item is the test target, the one before it
      the validation target).
    num_items: ``N``; item ids are ``1..N`` and ``0`` is padding.
    user_raw_ids: ``[U]`` array (object/str) of the raw user id of each row of
      ``sequences``.
    item_raw_ids: ``[N + 1]`` array (object/str), raw id of each item id;
      entry 0 is ``"<pad>"``.
    item_meta: field name -> list of length ``N + 1`` (entry 0 is ``None``).
      Values are ``str``, ``int``, ``list[str]`` (multi-valued facet fields) or
      ``None`` when missing. Holds text fields (``title``, ...) and facet label
      fields (``category``, ``brand``, ...).
    report: one dict per preprocessing step, e.g. ``{"step": "kcore(5)",
      "users_before": ..., "users_after": ..., "items_before": ...,
      "items_after": ..., "interactions_before": ..., "interactions_after": ...}``.
    ground_truth: synthetic data only (else ``None``): ``"user_dominant_facet"``
      ``[U]`` int, ``"item_facets"`` ``[N + 1, F]`` int (row 0 = -1),
      ``"facet_names"`` list of ``F`` names, ``"user_preferred_values"``.
  """

  name: str
  sequences: list[np.ndarray]
  num_items: int
  user_raw_ids: np.ndarray
  item_raw_ids: np.ndarray
  item_meta: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
  report: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  ground_truth: dict[str, Any] | None = None

  @property
  def num_users(self) -> int:
    return len(self.sequences)

  @property
  def num_interactions(self) -> int:
    return int(sum(len(s) for s in self.sequences))

  def statistics(self) -> dict[str, Any]:
    """Users, items, interactions, average/min/max length and the drop report."""
    lengths = np.array([len(s) for s in self.sequences], dtype=np.int64)
    return {
        "name": self.name,
        "users": self.num_users,
        "items": self.num_items,
        "interactions": self.num_interactions,
        "avg_length": float(lengths.mean()) if len(lengths) else 0.0,
        "min_length": int(lengths.min()) if len(lengths) else 0,
        "max_length": int(lengths.max()) if len(lengths) else 0,
        "density": (self.num_interactions / max(1, self.num_users * self.num_items)),
        "preprocessing": self.report,
    }
