"""A trained workdir's self-description: what a model needs without the config file or the data.

Training writes, at the start of a run (each file atomically: a temporary
name, then a rename, so a reader never sees half a file):

* ``config.json``: the resolved config (``training.loop._prepare_workdir``).
* ``vocab.json``: ``{"format_version": 1, "users": [raw id of user index 0,
  1, ...], "items": [null, raw id of item index 1, ..., N]}``; item index 0 is
  the padding id. Raw ids are JSON ints where the file's ids were integers
  and JSON strings otherwise, exactly as read.
* ``histories.npz``: every user's whole chronological history (train,
  validation and test items) in CSR form: ``offsets`` int64 ``[U + 1]`` and
  ``items`` int32 ``[sum of lengths]`` (item indices); user ``u``'s history
  is ``items[offsets[u]:offsets[u + 1]]``.
* ``preprocessing.json``: how the data was read and filtered: the reader and
  every choice (columns, dedup, time format, k-core), the counts before and
  after each step, and what was dropped and why.

A resumed run compares the data it loads with these files and stops, naming
the file, if the data changed (:func:`write_or_check_data_files`). Readers
here (:func:`load_config`, :func:`load_vocab`, :func:`load_histories`,
:func:`load_report`) are what evaluation, export and serving read; no file is
pickled. :func:`load_run_data` rebuilds a run's dataset and split from them,
so a workdir is evaluated without its data files (runs made before these
files existed fall back to the data named by their config).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Iterable, Sequence

import ml_collections
import numpy as np

from fame_jax.data import loading
from fame_jax.data.dataset import Dataset
from fame_jax.data.preprocess import PAD_RAW_ID
from fame_jax.data.split import Split, leave_one_out
from fame_jax.errors import WorkdirError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
HISTORIES_FILE = "histories.npz"
REPORT_FILE = "preprocessing.json"

# Report keys that describe the machine or the file's location, not the data:
# left out when a resumed run compares its report with the stored one (the
# data may move: data.path is a resumable difference).
_VOLATILE_REPORT_KEYS = frozenset({"seconds", "source", "path", "library"})
_CANONICAL_INT = re.compile(r"^(0|-?[1-9][0-9]{0,18})$")


# ----------------------------------------------------------------------------
# Writing.
# ----------------------------------------------------------------------------


def write_json_atomic(path: str, obj: Any) -> None:
  """Writes ``obj`` as indented JSON to ``path`` through a temporary file."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


def _write_npz_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "wb") as f:  # A file object: np.savez would append ".npz" to a name.
    np.savez(f, **arrays)
  os.replace(tmp, path)


def _id_type(dataset: Dataset, role: str) -> str:
  """"int" or "str": the raw id type the reader recorded, else inferred.

  Readers record it in the report's "read" step; a dataset without that
  record (the synthetic world, an older tfds build) has int ids exactly when
  every raw id is a canonical decimal integer.
  """
  key = f"{role}_id_type"
  for step in dataset.report:
    if key in step:
      return step[key]
  raw = dataset.user_raw_ids if role == "user" else dataset.item_raw_ids[1:]
  return "int" if all(_CANONICAL_INT.match(str(r)) for r in raw) else "str"


def _json_ids(raw: Iterable[Any], kind: str) -> list[Any]:
  return [int(r) for r in raw] if kind == "int" else [str(r) for r in raw]


def vocab_of(dataset: Dataset) -> dict[str, Any]:
  """The ``vocab.json`` content of ``dataset`` (see the module docstring)."""
  return {
      "format_version": FORMAT_VERSION,
      "users": _json_ids(dataset.user_raw_ids, _id_type(dataset, "user")),
      "items": [None] + _json_ids(dataset.item_raw_ids[1:], _id_type(dataset, "item")),
  }


def histories_of(dataset: Dataset) -> dict[str, np.ndarray]:
  """The ``histories.npz`` arrays of ``dataset``: ``offsets`` [U + 1], ``items``."""
  lengths = np.fromiter((len(s) for s in dataset.sequences), np.int64, len(dataset.sequences))
  offsets = np.zeros(len(lengths) + 1, np.int64)
  np.cumsum(lengths, out=offsets[1:])
  items = (np.concatenate(dataset.sequences).astype(np.int32) if dataset.sequences
           else np.zeros(0, np.int32))
  return {"offsets": offsets, "items": items}


def report_of(data_cfg: Any, dataset: Dataset, split: Split) -> dict[str, Any]:
  """The ``preprocessing.json`` content: choices, steps, drops and result.

  Args:
    data_cfg: the config's ``data`` section.
    dataset: the loaded dataset (its ``report`` holds the steps).
    split: its leave-one-out split (users too short to evaluate are dropped).
  """
  fmt = data_cfg.format
  read_table = next((s for s in dataset.report if s.get("step") == loading.READ_TABLE_STEP), None)
  steps = [dict(s) for s in dataset.report if s is not read_table]
  if read_table is not None:
    reader = {k: v for k, v in read_table.items() if k not in ("step", "reader")}
    reader["function"] = "fame_jax.data.tabular.read_table"
    reader["library"] = read_table.get("reader", "")  # pyarrow version (and a second pass).
  elif fmt == "synthetic":
    reader = {"function": "fame_jax.data.synthetic.generate_facet_world"}
  elif fmt == "tfds":
    reader = {"function": "fame_jax.data.tfds_builders.load_tfds",
              "tfds_name": data_cfg.get("tfds_name", "")}
  else:
    reader = {"function": f"fame_jax.data.readers.read_{fmt}"}
  choices = {"format": fmt, "name": data_cfg.get("name", ""), "path": data_cfg.get("path", ""),
             "kcore": int(data_cfg.get("kcore", 0))}
  if fmt in loading.TABULAR_FORMATS:
    cols = data_cfg.get("columns", None)
    choices.update({
        "columns": {r: (cols.get(r, "") if cols is not None else "")
                    for r in ("user", "item", "time")},
        "columns_used": (read_table or {}).get("columns"),
        "dedup": data_cfg.get("dedup", "keep"),
        "time_format": data_cfg.get("time_format", "auto"),
        "time_format_used": (read_table or {}).get("time_format"),
    })
  dropped = []
  if read_table is not None and read_table.get("duplicates_dropped"):
    dropped.append({
        "step": f"dedup({read_table['dedup']})", "interactions": read_table["duplicates_dropped"],
        "why": ("same user, item and time as an earlier row" if read_table["dedup"] == "exact"
                else "the user met the item earlier")})
  for s in steps:
    if s.get("step", "").startswith("kcore("):
      dropped.append({
          "step": s["step"],
          **{k: s[f"{k}_before"] - s[f"{k}_after"] for k in ("users", "items", "interactions")},
          "why": (f"fewer than {data_cfg.kcore} interactions per user or per item "
                  f"(iterated {s.get('passes', 0)} times)")})
  dropped.append({
      "step": "leave_one_out", "users": int(split.dropped_users),
      "why": "fewer than 3 interactions: no training item besides the validation and test targets"})
  return {
      "format_version": FORMAT_VERSION,
      "choices": choices,
      "reader": reader,
      "steps": steps,
      "dropped": dropped,
      "result": {"name": dataset.name, "users": dataset.num_users, "items": dataset.num_items,
                 "interactions": dataset.num_interactions,
                 "evaluated_users": int(len(split.users))},
  }


def _jsonable(obj: Any) -> Any:
  """``obj`` as it reads back from JSON (tuples -> lists, numpy -> Python)."""
  return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _without_volatile(obj: Any) -> Any:
  if isinstance(obj, dict):
    return {k: _without_volatile(v) for k, v in obj.items() if k not in _VOLATILE_REPORT_KEYS}
  if isinstance(obj, list):
    return [_without_volatile(v) for v in obj]
  return obj


def _first_difference(stored: Any, current: Any, where: str = "") -> str | None:
  """Where two JSON values first differ, in words, or ``None``."""
  if isinstance(stored, dict) and isinstance(current, dict):
    for k in sorted(set(stored) | set(current), key=str):
      if k not in stored or k not in current:
        return f"{where}{k} is {'new' if k not in stored else 'gone'}"
      d = _first_difference(stored[k], current[k], f"{where}{k}.")
      if d:
        return d
    return None
  if isinstance(stored, list) and isinstance(current, list):
    if len(stored) != len(current):
      return f"{where.rstrip('.')} has {len(current)} entries, the stored {len(stored)}"
    for i, (a, b) in enumerate(zip(stored, current)):
      d = _first_difference(a, b, f"{where}{i}.")
      if d:
        return d
    return None
  if stored != current:
    return f"{where.rstrip('.')}: stored {stored!r}, now {current!r}"
  return None


def _holds_training(workdir: str) -> bool:
  """Whether ``workdir`` holds a checkpoint or results: something to resume or continue."""
  if os.path.exists(os.path.join(workdir, "results.json")):
    return True
  ckpt = os.path.join(workdir, "checkpoints")
  return any(os.path.isdir(os.path.join(ckpt, d)) and os.listdir(os.path.join(ckpt, d))
             for d in ("latest", "best"))


def write_or_check_data_files(workdir: str, data_cfg: Any, dataset: Dataset, split: Split) -> None:
  """Writes vocab.json, histories.npz and preprocessing.json, or checks them.

  A fresh run writes them. A workdir with a checkpoint or results (a run
  that resumes or continues) keeps its files and must load the same data:
  the same raw ids, the same histories and the same preprocessing choices
  and counts (times and paths aside); otherwise the model would go on
  training on data it was not started on.

  Raises:
    WorkdirError: a resumed run's data differs; names the file and the first
      difference.
  """
  current = {
      VOCAB_FILE: vocab_of(dataset),
      HISTORIES_FILE: histories_of(dataset),
      REPORT_FILE: _jsonable(report_of(data_cfg, dataset, split)),
  }
  paths = {name: os.path.join(workdir, name) for name in current}
  if _holds_training(workdir) and all(os.path.exists(p) for p in paths.values()):
    for name, path in paths.items():
      problem = _data_difference(name, path, current[name])
      if problem:
        raise WorkdirError(
            f"the data changed since {workdir} was started: {path} differs from the data "
            f"loaded now ({problem}); restore the data it was trained on, or train in a new "
            "--workdir")
    return
  for name, path in paths.items():
    if name == HISTORIES_FILE:
      _write_npz_atomic(path, current[name])
    else:
      write_json_atomic(path, current[name])


def _data_difference(name: str, path: str, current: Any) -> str | None:
  if name == HISTORIES_FILE:
    stored = _read_histories_arrays(path)
    if not np.array_equal(stored["offsets"], current["offsets"]):
      return (f"{len(current['offsets']) - 1} users or their history lengths differ from the "
              f"stored {len(stored['offsets']) - 1}")
    if not np.array_equal(stored["items"], current["items"]):
      first = int(np.flatnonzero(stored["items"] != current["items"])[0])
      user = int(np.searchsorted(stored["offsets"], first, side="right") - 1)
      return f"user index {user}'s history differs"
    return None
  stored = _read_json(path)
  if name == REPORT_FILE:
    stored, current = _without_volatile(stored), _without_volatile(current)
  return _first_difference(stored, current)


# ----------------------------------------------------------------------------
# Reading.
# ----------------------------------------------------------------------------


def _read_json(path: str) -> Any:
  if not os.path.exists(path):
    raise WorkdirError(f"{path} not found: is {os.path.dirname(path)} a workdir written by "
                       "train.py?")
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise WorkdirError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The workdir's ``config.json`` as the current code reads it (locked).

  Keys added after the run was made take the values that rebuild it
  (:func:`fame_jax.training.config_check.with_added_defaults`).

  Raises:
    WorkdirError: no readable ``config.json``.
  """
  from fame_jax.training.config_check import with_added_defaults
  stored = with_added_defaults(_read_json(os.path.join(workdir, CONFIG_FILE)))
  # JSON has no tuples; the configs hold these as tuples.
  for section, key in (("eval", "ks"), ("pretrain", "facets")):
    if isinstance(stored.get(section), dict) and isinstance(stored[section].get(key), list):
      stored[section][key] = tuple(stored[section][key])
  config = ml_collections.ConfigDict(stored)
  config.lock()
  return config


@dataclasses.dataclass(frozen=True)
class Vocab:
  """``vocab.json``: raw ids by index.

  Attributes:
    users: raw id of user index ``u`` (int or str, as in the file read).
    items: raw id of item index ``i``; ``items[0]`` is ``None`` (padding).
  """

  users: list[Any]
  items: list[Any]

  @property
  def num_items(self) -> int:
    return len(self.items) - 1

  def user_index(self) -> dict[Any, int]:
    """Raw user id -> user index."""
    return {u: i for i, u in enumerate(self.users)}

  def item_index(self) -> dict[Any, int]:
    """Raw item id -> item index (1..N)."""
    return {v: i for i, v in enumerate(self.items) if i > 0}


def load_vocab(workdir: str) -> Vocab:
  """Reads and checks ``vocab.json``.

  Raises:
    WorkdirError: missing, of another format version, or malformed.
  """
  path = os.path.join(workdir, VOCAB_FILE)
  obj = _read_json(path)
  if not isinstance(obj, dict) or obj.get("format_version") != FORMAT_VERSION:
    raise WorkdirError(f"{path}: format_version must be {FORMAT_VERSION}, got "
                       f"{obj.get('format_version') if isinstance(obj, dict) else obj!r}")
  users, items = obj.get("users"), obj.get("items")
  if not isinstance(users, list) or not isinstance(items, list) or not items or items[0] is not None:
    raise WorkdirError(f"{path}: needs lists 'users' and 'items' with items[0] = null (padding)")
  return Vocab(users=users, items=items)


@dataclasses.dataclass(frozen=True)
class Histories:
  """``histories.npz``: each user's chronological item indices, CSR.

  Attributes:
    offsets: ``[U + 1]`` int64; user ``u``'s items are
      ``items[offsets[u]:offsets[u + 1]]``.
    items: ``[sum of lengths]`` int32 item indices (``1..N``).
  """

  offsets: np.ndarray
  items: np.ndarray

  def __len__(self) -> int:
    return len(self.offsets) - 1

  def __getitem__(self, user: int) -> np.ndarray:
    """``[len]`` int32: user index ``user``'s whole history, oldest first."""
    return self.items[self.offsets[user]:self.offsets[user + 1]]

  def sequences(self) -> list[np.ndarray]:
    """One int32 array per user (views into ``items``), as ``Dataset.sequences``."""
    return np.split(self.items, self.offsets[1:-1])


def _read_histories_arrays(path: str) -> dict[str, np.ndarray]:
  if not os.path.exists(path):
    raise WorkdirError(f"{path} not found: is {os.path.dirname(path)} a workdir written by "
                       "train.py?")
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in ("offsets", "items")}
  except (KeyError, ValueError, OSError) as e:
    raise WorkdirError(f"{path}: not a histories file with 'offsets' and 'items' ({e})") from None


def load_histories(workdir: str) -> Histories:
  """Reads and checks ``histories.npz``.

  Raises:
    WorkdirError: missing or inconsistent arrays.
  """
  path = os.path.join(workdir, HISTORIES_FILE)
  arrays = _read_histories_arrays(path)
  offsets = arrays["offsets"].astype(np.int64, copy=False)
  items = arrays["items"].astype(np.int32, copy=False)
  if (offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(items)
      or np.any(np.diff(offsets) < 0)):
    raise WorkdirError(f"{path}: offsets must rise from 0 to len(items) = {len(items)}")
  return Histories(offsets=offsets, items=items)


def load_report(workdir: str) -> dict[str, Any]:
  """``preprocessing.json`` as a dict (see :func:`report_of`)."""
  return _read_json(os.path.join(workdir, REPORT_FILE))


def has_data_files(workdir: str) -> bool:
  """Whether ``workdir`` holds vocab.json and histories.npz (runs made since they exist)."""
  return all(os.path.exists(os.path.join(workdir, f)) for f in (VOCAB_FILE, HISTORIES_FILE))


# ----------------------------------------------------------------------------
# A run's config and data for evaluation and export.
# ----------------------------------------------------------------------------


def resolve_config(workdir: str, given: ml_collections.ConfigDict | None,
                   allowed_diffs: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """The config to evaluate ``workdir`` with: the stored one, or ``given`` if it agrees.

  Args:
    workdir: a training workdir (holds ``config.json``).
    given: a config from the command line, or ``None`` (use the stored one).
    allowed_diffs: dotted keys that may differ (settings that do not change
      what was trained, e.g. ``eval.batch_size`` or a moved ``data.path``).

  Returns:
    ``given`` when it matches the stored config outside ``allowed_diffs``,
    else the stored config.

  Raises:
    WorkdirError: ``given`` differs in another key; one line naming each
      differing key as ``key: stored -> given``.
  """
  stored = load_config(workdir)
  if given is None:
    return stored
  from fame_jax.training.config_check import config_differences, with_added_defaults
  given_dict = with_added_defaults(json.loads(given.to_json_best_effort()))
  diffs = [d for d in config_differences(json.loads(stored.to_json_best_effort()), given_dict)
           if d[0] not in allowed_diffs]
  if diffs:
    listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs)
    raise WorkdirError(
        f"the given config differs from {os.path.join(workdir, CONFIG_FILE)} (stored -> given): "
        f"{listed}; leave out --config to use the stored one")
  return given


def dataset_from_files(workdir: str, config: ml_collections.ConfigDict) -> Dataset:
  """The run's :class:`Dataset` rebuilt from vocab.json and histories.npz.

  Sequences and raw ids are those trained on; item metadata is not kept in a
  workdir (it is empty here). The synthetic world is regenerated from the
  config (no file needed) for its ground truth, and must give the same
  sequences.
  """
  vocab = load_vocab(workdir)
  histories = load_histories(workdir)
  path = os.path.join(workdir, HISTORIES_FILE)
  if len(histories) != len(vocab.users):
    raise WorkdirError(f"{path} has {len(histories)} users, {os.path.join(workdir, VOCAB_FILE)} "
                       f"{len(vocab.users)}")
  if len(histories.items) and not 1 <= int(histories.items.min()) <= int(histories.items.max()) \
      <= vocab.num_items:
    raise WorkdirError(f"{path}: item indices outside 1..{vocab.num_items} (vocab.json's items)")
  item_raw = np.empty(vocab.num_items + 1, dtype=object)
  item_raw[0] = PAD_RAW_ID
  item_raw[1:] = [str(v) for v in vocab.items[1:]]
  name = config.data.name
  if not name and os.path.exists(os.path.join(workdir, REPORT_FILE)):
    name = load_report(workdir).get("result", {}).get("name", "")  # The reader's default name.
  ds = Dataset(name=name, sequences=histories.sequences(),
               num_items=vocab.num_items,
               user_raw_ids=np.asarray([str(u) for u in vocab.users], dtype=object),
               item_raw_ids=item_raw)
  if config.data.format == "synthetic":
    world = loading.load_dataset(config.data)
    if len(world.sequences) != len(ds.sequences) or not all(
        np.array_equal(a, b) for a, b in zip(world.sequences, ds.sequences)):
      raise WorkdirError(f"{path} differs from the synthetic world of its config.json")
    ds.item_meta, ds.ground_truth = world.item_meta, world.ground_truth
  return ds


def load_run_data(config: ml_collections.ConfigDict, workdir: str) -> tuple[Dataset, Split]:
  """The dataset and split ``workdir`` was trained on.

  From the workdir's vocab.json and histories.npz when present (no data file
  needed); a run made before they existed loads the data its config names.
  """
  if has_data_files(workdir):
    dataset = dataset_from_files(workdir, config)
  else:
    dataset = loading.load_dataset(config.data)
  return dataset, leave_one_out(dataset.sequences)
