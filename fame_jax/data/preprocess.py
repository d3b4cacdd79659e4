"""Preprocessing shared by every reader (docs/protocol.md §6).

Raw :class:`~fame_jax.data.readers.Interactions` -> :class:`Dataset`:
chronological stable sort per user (when timestamps exist), optional iterative
k-core on users and items, renumbering of items to ``1..N`` in ascending raw-id
order, and metadata mapped through the renumbering. Each step appends one entry
to ``Dataset.report`` with users/items/interactions before and after, so a run's
log says exactly what was dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fame_jax.data.dataset import Dataset
from fame_jax.data.errors import DataError
from fame_jax.data.readers import Interactions

PAD_RAW_ID = "<pad>"


def _counts(user_codes: np.ndarray, item_codes: np.ndarray) -> dict[str, int]:
  return {
      "users": int(len(np.unique(user_codes))),
      "items": int(len(np.unique(item_codes))),
      "interactions": int(len(user_codes)),
  }


def _step(name: str, before: dict[str, int], after: dict[str, int],
          **extra: Any) -> dict[str, Any]:
  out: dict[str, Any] = {"step": name}
  for key in ("users", "items", "interactions"):
    out[f"{key}_before"] = before[key]
    out[f"{key}_after"] = after[key]
  out.update(extra)
  return out


def id_types(integer_users: bool, integer_items: bool) -> dict[str, str]:
  """The "read" step's record of the raw id types ("int" or "str")."""
  return {"user_id_type": "int" if integer_users else "str",
          "item_id_type": "int" if integer_items else "str"}


def kcore_mask(user_codes: np.ndarray, item_codes: np.ndarray,
               k: int) -> tuple[np.ndarray, int]:
  """Iterative k-core: keeps interactions whose user and item both have >= k.

  Removing a sparse item can push a user below ``k`` and vice versa, so the
  filter repeats until nothing changes.

  Args:
    user_codes: ``[M]`` int user index per interaction.
    item_codes: ``[M]`` int item index per interaction.
    k: minimum interactions per user and per item.

  Returns:
    ``([M] bool keep mask, number of passes)``.
  """
  keep = np.ones(len(user_codes), dtype=bool)
  if len(user_codes) == 0:
    return keep, 0
  nu, ni = int(user_codes.max()) + 1, int(item_codes.max()) + 1
  passes = 0
  while True:
    passes += 1
    u, i = user_codes[keep], item_codes[keep]
    ucount = np.bincount(u, minlength=nu)
    icount = np.bincount(i, minlength=ni)
    ok = (ucount[user_codes] >= k) & (icount[item_codes] >= k) & keep
    if ok.sum() == keep.sum():
      return keep, passes
    keep = ok


def preprocess(inter: Interactions, kcore: int = 0) -> Dataset:
  """Turns raw interactions into a :class:`Dataset`.

  Args:
    inter: what a reader returned.
    kcore: iterative k-core threshold on users and items; 0 = off.

  Returns:
    The dataset: users in order of first appearance in the file, sequences in
    chronological order (ties keep file order), items ``1..N``.

  Raises:
    DataError: if nothing is left after filtering.
  """
  report = []
  # Users in order of first appearance: S3-Rec files keep their line order.
  _, first, user_codes = np.unique(inter.users, return_index=True,
                                   return_inverse=True)
  rank = np.empty(len(first), dtype=np.int64)
  rank[np.argsort(first, kind="stable")] = np.arange(len(first))
  user_codes = rank[user_codes.reshape(-1)]
  user_names = inter.users[np.sort(first)]
  # np.unique sorts, so item codes already follow ascending raw-id order.
  item_raw, item_codes = np.unique(inter.items, return_inverse=True)
  item_codes = item_codes.reshape(-1)
  file_order = np.arange(len(user_codes))

  counts = _counts(user_codes, item_codes)
  report.append(_step("read", counts, counts, source=inter.source,
                      **id_types(inter.integer_users, inter.integer_items)))

  if inter.timestamps is not None:
    # lexsort: last key is primary; file order breaks timestamp ties (stable).
    order = np.lexsort((file_order, inter.timestamps, user_codes))
    moved = int((order != np.lexsort((file_order, user_codes))).sum())
    report.append(_step("sort_by_timestamp", counts, counts,
                        interactions_moved=moved))
  else:
    order = np.lexsort((file_order, user_codes))
  user_codes, item_codes = user_codes[order], item_codes[order]

  if kcore > 0:
    keep, passes = kcore_mask(user_codes, item_codes, kcore)
    user_codes, item_codes = user_codes[keep], item_codes[keep]
    after = _counts(user_codes, item_codes) if len(user_codes) else {
        "users": 0, "items": 0, "interactions": 0}
    report.append(_step(f"kcore({kcore})", counts, after, passes=passes))
    counts = after
  if len(user_codes) == 0:
    raise DataError(inter.source,
                    f"dataset empty after filtering (kcore={kcore})")

  # Renumber: surviving item codes, ascending, become 1..N.
  kept_items = np.unique(item_codes)
  new_id = np.zeros(len(item_raw), dtype=np.int32)
  new_id[kept_items] = np.arange(1, len(kept_items) + 1, dtype=np.int32)
  item_ids = new_id[item_codes]
  kept_raw = item_raw[kept_items]
  changed = int((kept_raw != np.arange(1, len(kept_raw) + 1)).sum()
                ) if inter.integer_items else len(kept_raw)
  report.append(_step("renumber_items", counts, counts, ids_changed=changed))

  # Group per user (codes are sorted, so users are contiguous runs).
  users, starts = np.unique(user_codes, return_index=True)
  sequences = [s.astype(np.int32) for s in np.split(item_ids, starts[1:])]

  num_items = len(kept_raw)
  item_raw_ids = np.empty(num_items + 1, dtype=object)
  item_raw_ids[0] = PAD_RAW_ID
  item_raw_ids[1:] = [str(r) for r in kept_raw.tolist()]
  return Dataset(
      name=inter.name,
      sequences=sequences,
      num_items=num_items,
      user_raw_ids=np.asarray([str(u) for u in user_names[users]], dtype=object),
      item_raw_ids=item_raw_ids,
      item_meta=map_item_meta(inter.item_meta, kept_raw.tolist()),
      report=report,
  )


def map_item_meta(raw_meta: dict[Any, dict[str, Any]],
                  raw_ids: list[Any]) -> dict[str, list[Any]]:
  """Maps raw-id metadata to per-field lists indexed by new item id.

  Args:
    raw_meta: raw item id -> {field: value}.
    raw_ids: raw id of new items ``1..N`` in order.

  Returns:
    field -> list of length ``N + 1`` (entry 0 and missing values ``None``).
    Fields are sorted by name so the result does not depend on file order.
  """
  fields = sorted({f for m in raw_meta.values() for f in m})
  out = {f: [None] * (len(raw_ids) + 1) for f in fields}
  for new, raw in enumerate(raw_ids, start=1):
    for f, v in raw_meta.get(raw, {}).items():
      out[f][new] = v
  return out


def console_lines(report: list[dict[str, Any]], split_dropped_users: int | None = None,
                  split_users: int | None = None) -> list[str]:
  """One console line per preprocessing step: what it kept and what it dropped.

  The report (``Dataset.report``) holds the same counts for the workdir; these
  lines put them where a user looks, so a user or item that a step drops (a
  k-core, the split's users with fewer than 3 interactions) is never dropped
  silently.

  Args:
    report: ``Dataset.report``, one dict per step with ``users_before``,
      ``users_after`` etc. (steps without counts are shown by their fields).
    split_dropped_users: users the leave-one-out split dropped
      (``Split.dropped_users``); ``None`` = no split line.
    split_users: users the split kept (``len(Split.users)``).

  Returns:
    Lines such as ``"data: kcore(5): dropped 12 users, 30 items, 410
    interactions (3 passes); kept 1,988 users, 1,203 items, 30,112
    interactions"``.
  """
  kinds = ("users", "items", "interactions")
  count = lambda n, noun: f"{n:,} {noun if n != 1 else noun[:-1]}"  # "1 user", "2 users".
  lines = []
  for step in report:
    name = step.get("step", "?")
    # The counts a step records besides before/after (passes, rows_read, ...);
    # its settings and rules stay in the report.
    details = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in step.items()
                        if isinstance(v, int) and not isinstance(v, bool)
                        and not k.endswith(("_before", "_after")))
    if "source" in step:
      details = f"{details}, from {step['source']}" if details else f"from {step['source']}"
    if not all(f"{k}_before" in step and f"{k}_after" in step for k in kinds):
      lines.append(f"data: {name}: {details}")
      continue
    kept = ", ".join(count(step[f"{k}_after"], k) for k in kinds)
    if name == "read" or name.startswith("generate"):
      lines.append(f"data: {name}: {kept}" + (f" ({details})" if details else ""))
      continue
    dropped = [count(step[f"{k}_before"] - step[f"{k}_after"], k) for k in kinds
               if step[f"{k}_before"] != step[f"{k}_after"]]
    if dropped:
      lines.append(f"data: {name}: dropped {', '.join(dropped)}" + (f" ({details})" if details else "")
                   + f"; kept {kept}")
    else:  # A step that only reorders or renames.
      lines.append(f"data: {name}: {details or 'nothing dropped'}")
  if split_dropped_users is not None:
    kept = f"; kept {count(split_users, 'users')}" if split_users is not None else ""
    lines.append(f"data: leave-one-out split: dropped {count(split_dropped_users, 'users')} with fewer than "
                 f"3 interactions (no training item besides the validation and test targets){kept}")
  return lines
