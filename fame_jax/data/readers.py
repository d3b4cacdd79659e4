"""Readers: one per file format, each returning raw :class:`Interactions`.

A reader only parses; ordering, k-core and renumbering live in
:mod:`fame_jax.data.preprocess` so every format gets the same protocol
(docs/protocol.md §6). Every problem in a file is a :class:`DataError` naming the
file, the 1-based line and the problem; nothing is skipped silently.

Tabular logs (``csv``, ``tsv``, ``parquet``) are read by the columnar reader
:mod:`fame_jax.data.tabular` instead; :func:`read_csv` here is only its
literal reference in tests and benchmarks.

Id rules:
  * ``s3rec``, ``movielens`` and the reference ``read_csv`` ids must be positive integers (0 is
    the padding id downstream, so a 0 in a file is almost surely an off-by-one
    in whatever wrote it). Integer item ids are renumbered in ascending order,
    so S3-Rec files (already ``1..N``) keep their ids exactly.
  * ``amazon`` and ``recbole`` ids are opaque string tokens (ASINs, RecBole
    tokens), renumbered in ascending string order.

Metadata rule (which metadata rows may name items without interactions):
  * Catalog files (``movies.dat``/``movies.csv``, Amazon metadata, RecBole
    ``.item``) describe a whole catalog -- MovieLens ships movies nobody rated,
    Amazon meta covers items outside the 5-core -- so extra rows are allowed
    and dropped.
  * Files aligned to one interaction file's id space (the item-text JSONL and
    ``*_item2attributes.json`` of ../shared/data) must only name items of the
    interactions: a row for an unknown id means the wrong file or the wrong
    ``item_text_id_field`` was given, so it is an error. Rows whose id field is
    null are not in this id space at all (e.g. movies dropped from
    ``ml-1m_item5_3416.txt``) and are left out.
  The check is against the items as read, before k-core, so items removed by
  filtering never make metadata invalid.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import gzip
import io
import json
import os
import pathlib
import re
from typing import Any, Iterator

import numpy as np

from fame_jax.data.errors import DataError

PathLike = str | os.PathLike[str]


@dataclasses.dataclass
class Interactions:
  """Raw interactions as read, before ordering, filtering and renumbering.

  Attributes:
    name: dataset name for logs.
    source: the interactions file (used in error messages).
    users: ``[M]`` raw user id (str) of each interaction.
    items: ``[M]`` raw item id of each interaction: int64 for integer-id
      formats, str otherwise.
    timestamps: ``[M]`` float64, or ``None`` when the file is already in
      chronological order per user (S3-Rec lines).
    item_meta: raw item id -> {field: value}.
    integer_users: whether the file's user ids are integers (``users`` holds
      them as str either way); recorded so a workdir's vocab.json gives each
      raw id the type it had in the file.
  """

  name: str
  source: str
  users: np.ndarray
  items: np.ndarray
  timestamps: np.ndarray | None
  item_meta: dict[Any, dict[str, Any]] = dataclasses.field(default_factory=dict)
  integer_users: bool = False

  @property
  def integer_items(self) -> bool:
    return self.items.dtype.kind in "iu"


# --------------------------------------------------------------------- helpers


def _open_text(path: PathLike, encoding: str = "utf-8") -> io.TextIOBase:
  """Opens a text file, transparently un-gzipping ``.gz`` or gzip content."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(path, "file not found")
  with open(path, "rb") as f:
    magic = f.read(2)
  if magic == b"\x1f\x8b":
    return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding)
  return open(path, "r", encoding=encoding, newline="")


def _lines(path: PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
  """Yields ``(1-based line number, line without newline)``; errors if empty."""
  empty = True
  try:
    with _open_text(path, encoding) as f:
      for i, line in enumerate(f, start=1):
        empty = False
        yield i, line.rstrip("\r\n")
  except UnicodeDecodeError as e:
    raise DataError(path, f"not valid {encoding} text ({e.reason})") from e
  except (OSError, EOFError) as e:  # Truncated or corrupt gzip.
    raise DataError(path, f"cannot read file ({e})") from e
  if empty:
    raise DataError(path, "empty file")


def _positive_int(token: str, path: PathLike, line: int, what: str) -> int:
  """Parses a positive integer id or raises a DataError naming the problem."""
  try:
    value = int(token)
  except ValueError:
    raise DataError(path, f"non-integer {what} {token!r}", line) from None
  if value <= 0:
    raise DataError(
        path, f"{what} {value} is not positive (ids start at 1; 0 is padding)",
        line)
  return value


def _float(token: str, path: PathLike, line: int, what: str) -> float:
  try:
    return float(token)
  except ValueError:
    raise DataError(path, f"non-numeric {what} {token!r}", line) from None


def _finish(name: str, path: PathLike, users: list[str], items: list[Any],
            timestamps: list[float] | None, integer: bool) -> Interactions:
  if not users:
    raise DataError(path, "no interactions in file")
  return Interactions(
      name=name,
      source=str(path),
      users=np.asarray(users, dtype=object),
      items=np.asarray(items, dtype=np.int64 if integer else str),
      timestamps=(None if timestamps is None
                  else np.asarray(timestamps, dtype=np.float64)),
      integer_users=integer,
  )


def _strict_meta(inter: Interactions, path: PathLike,
                 rows: list[tuple[Any, int, dict[str, Any]]]) -> None:
  """Merges id-aligned metadata rows; unknown or duplicate ids are errors.

  Args:
    inter: interactions to attach to (``inter.item_meta`` is updated).
    path: metadata file for messages.
    rows: ``(raw item id, line, fields)``; the id already has the type of
      ``inter.items``.
  """
  known = set(np.unique(inter.items).tolist())
  seen = set()
  for raw, line, fields in rows:
    if raw not in known:
      raise DataError(
          path, f"metadata for unknown item {raw!r} (not in {inter.source}); "
          "is this the metadata of another interaction file or id field?", line)
    if raw in seen:
      raise DataError(path, f"duplicate metadata for item {raw!r}", line)
    seen.add(raw)
    inter.item_meta.setdefault(raw, {}).update(fields)


def _catalog_meta(inter: Interactions,
                  rows: dict[Any, dict[str, Any]]) -> None:
  """Merges catalog metadata; rows for items without interactions are dropped."""
  known = set(np.unique(inter.items).tolist())
  for raw, fields in rows.items():
    if raw in known:
      inter.item_meta.setdefault(raw, {}).update(fields)


def _meta_id(value: Any, inter: Interactions, path: PathLike, line: int,
             field: str) -> Any:
  """Converts a metadata id to the type of ``inter.items``."""
  if inter.integer_items:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
      raise DataError(path, f"{field} {value!r} is not an integer id", line)
    return _positive_int(str(value), path, line, field)
  return str(value)


# --------------------------------------------------------------------- s3rec


def read_s3rec(path: PathLike, name: str = "") -> Interactions:
  """Reads S3-Rec/SASRec ``user item item ...`` lines (already chronological).

  Args:
    path: text file, one user per line, whitespace-separated positive ints.
    name: dataset name.

  Returns:
    Interactions without timestamps (the line order is the time order).
  """
  users, items, seen = [], [], {}
  for ln, line in _lines(path):
    tokens = line.split()
    if len(tokens) < 2:
      raise DataError(
          path, "malformed line: expected 'user item [item ...]', got "
          f"{line!r}", ln)
    user = _positive_int(tokens[0], path, ln, "user id")
    if user in seen:
      raise DataError(
          path, f"user {user} appears again (first on line {seen[user]})", ln)
    seen[user] = ln
    for tok in tokens[1:]:
      items.append(_positive_int(tok, path, ln, "item id"))
    users.extend([str(user)] * (len(tokens) - 1))
  return _finish(name or pathlib.Path(path).stem, path, users, items, None,
                 integer=True)


# --------------------------------------------------------------------- csv


def read_csv(path: PathLike, name: str = "") -> Interactions:
  """The csv-module reference reader: header ``user,item,timestamp``.

  Not a ``data.format`` reader: ``csv``/``tsv``/``parquet`` logs are read by
  :func:`fame_jax.data.tabular.read_table`. This one-row-at-a-time loop stays
  as the slow literal reference that tests/test_tabular.py and
  bench/read_tabular.py compare the columnar reader with. Ids must be
  positive integers; timestamps any number (ties keep file order).
  """
  rows = _csv_rows(path, required=("user", "item", "timestamp"))
  users, items, ts = [], [], []
  for ln, row in rows:
    users.append(str(_positive_int(row["user"], path, ln, "user id")))
    items.append(_positive_int(row["item"], path, ln, "item id"))
    ts.append(_float(row["timestamp"], path, ln, "timestamp"))
  return _finish(name or pathlib.Path(path).stem, path, users, items, ts,
                 integer=True)


def _csv_rows(path: PathLike, required: tuple[str, ...], delimiter: str = ",",
              encoding: str = "utf-8") -> list[tuple[int, dict[str, str]]]:
  """Parses a headed CSV into ``(line, row)``; checks columns and row widths."""
  lines = list(_lines(path, encoding))
  # TSV names may hold stray quotes, so only real CSV gets quote handling.
  quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
  reader = csv.reader((l for _, l in lines), delimiter=delimiter,
                      quoting=quoting)
  try:
    header = [h.strip() for h in next(reader)]
    missing = [c for c in required if c not in header]
    if missing:
      raise DataError(
          path, f"missing required column(s) {missing} in header {header}", 1)
    if len(lines) == 1:
      raise DataError(path, "no data rows after the header", 1)
    out = []
    for (ln, _), row in zip(lines[1:], reader):
      if len(row) != len(header):
        raise DataError(
            path, f"malformed line: {len(row)} fields, header has "
            f"{len(header)}", ln)
      out.append((ln, dict(zip(header, row))))
  except csv.Error as e:
    raise DataError(path, f"malformed CSV ({e})") from e
  return out


# --------------------------------------------------------------------- movielens

_YEAR = re.compile(r"\((\d{4})\)\s*$")


def read_movielens(path: PathLike, metadata_path: PathLike = "",
                   name: str = "") -> Interactions:
  """Reads MovieLens ``ratings.dat`` (``::``) or ``ratings.csv`` plus movies.

  Args:
    path: a ratings file or a directory holding ``ratings.dat``/``ratings.csv``.
    metadata_path: ``movies.dat``/``movies.csv``; "" = the one next to the
      ratings file if present.
    name: dataset name.

  Returns:
    Interactions with timestamps; item_meta fields ``title``, ``genres``
    (list[str]) and ``year`` (int or None, from the title or a ``year``
    column). Movies nobody rated are allowed in the movies file.
  """
  path = pathlib.Path(path)
  if path.is_dir():
    found = [path / f for f in ("ratings.dat", "ratings.csv")
             if (path / f).is_file()]
    if not found:
      raise DataError(path, "no ratings.dat or ratings.csv in directory")
    path = found[0]
  users, items, ts = [], [], []
  if path.suffix == ".csv":
    for ln, row in _csv_rows(path, ("userId", "movieId", "timestamp")):
      users.append(str(_positive_int(row["userId"], path, ln, "user id")))
      items.append(_positive_int(row["movieId"], path, ln, "movie id"))
      ts.append(_float(row["timestamp"], path, ln, "timestamp"))
  else:
    for ln, line in _lines(path, "latin-1"):
      parts = line.split("::")
      if len(parts) != 4:
        raise DataError(
            path, "malformed line: expected UserID::MovieID::Rating::Timestamp",
            ln)
      users.append(str(_positive_int(parts[0], path, ln, "user id")))
      items.append(_positive_int(parts[1], path, ln, "movie id"))
      ts.append(_float(parts[3], path, ln, "timestamp"))
  inter = _finish(name or "movielens", path, users, items, ts, integer=True)
  if not metadata_path:
    for cand in ("movies.dat", "movies.csv"):
      if (path.parent / cand).is_file():
        metadata_path = path.parent / cand
        break
  if metadata_path:
    _catalog_meta(inter, read_movies(metadata_path))
  return inter


def read_movies(path: PathLike) -> dict[int, dict[str, Any]]:
  """Reads ``movies.dat`` (``MovieID::Title::Genres``) or a movies CSV.

  Returns:
    movie id -> {"title", "genres", "year"}.
  """
  path = pathlib.Path(path)
  out = {}

  def add(ln, movie, title, genres, year=None):
    mid = _positive_int(movie, path, ln, "movie id")
    if mid in out:
      raise DataError(path, f"duplicate movie id {mid}", ln)
    if year in (None, ""):
      m = _YEAR.search(title)
      year = int(m.group(1)) if m else None
    else:
      year = int(_float(year, path, ln, "year"))
    genre_list = ([] if genres in ("", "(no genres listed)")
                  else genres.split("|"))
    out[mid] = {"title": title, "genres": genre_list, "year": year}

  if path.suffix == ".csv":
    for ln, row in _csv_rows(path, ("movieId", "title", "genres")):
      add(ln, row["movieId"], row["title"], row["genres"], row.get("year"))
  else:
    for ln, line in _lines(path, "latin-1"):
      parts = line.split("::")
      if len(parts) != 3:
        raise DataError(path, "malformed line: expected MovieID::Title::Genres",
                        ln)
      add(ln, *parts)
  return out


# --------------------------------------------------------------------- amazon


def _json_or_literal(text: str, path: PathLike, ln: int) -> dict[str, Any]:
  """Parses one JSON line, or a Python-literal dict (Amazon 2014 meta).

  ``ast.literal_eval`` only builds literals, so a hostile file cannot run code.
  """
  try:
    obj = json.loads(text)
  except json.JSONDecodeError:
    try:
      obj = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
      raise DataError(path, "malformed line: neither JSON nor a Python dict",
                      ln) from None
  if not isinstance(obj, dict):
    raise DataError(path, f"malformed line: expected an object, got "
                    f"{type(obj).__name__}", ln)
  return obj


def _flatten_categories(value: Any) -> list[str]:
  """Amazon 2014 ``categories`` is a list of paths; keep unique names in order."""
  out: list[str] = []
  stack = [value]
  flat = []
  while stack:  # Depth-first, left to right.
    v = stack.pop()
    if isinstance(v, (list, tuple)):
      stack.extend(reversed(v))
    elif v is not None:
      flat.append(str(v))
  for v in flat:
    if v not in out:
      out.append(v)
  return out


def read_amazon(path: PathLike, metadata_path: PathLike = "",
                name: str = "") -> Interactions:
  """Reads Amazon 2014/2018 review JSON lines (optionally gzipped).

  Args:
    path: reviews with ``reviewerID``, ``asin``, ``unixReviewTime``.
    metadata_path: meta JSON lines (json or Python-literal dicts) keyed by
      ``asin``; "" = none. A catalog: asins without reviews are allowed.
    name: dataset name.

  Returns:
    Interactions with string ids; item_meta fields ``title``, ``brand``,
    ``categories`` (flattened unique list[str], from 2014 ``categories`` or
    2018 ``category``), ``description``, ``price`` (str) where present.
  """
  users, items, ts = [], [], []
  for ln, line in _lines(path):
    obj = _json_or_literal(line, path, ln)
    for key in ("reviewerID", "asin", "unixReviewTime"):
      if key not in obj or obj[key] in (None, ""):
        raise DataError(path, f"missing required field {key!r}", ln)
    users.append(str(obj["reviewerID"]))
    items.append(str(obj["asin"]))
    ts.append(_float(str(obj["unixReviewTime"]), path, ln, "unixReviewTime"))
  inter = _finish(name or "amazon", path, users, items, ts, integer=False)
  if metadata_path:
    _catalog_meta(inter, read_amazon_meta(metadata_path))
  return inter


def read_amazon_meta(path: PathLike) -> dict[str, dict[str, Any]]:
  """Reads Amazon metadata lines into asin -> fields (see :func:`read_amazon`)."""
  out = {}
  for ln, line in _lines(path):
    obj = _json_or_literal(line, path, ln)
    if not obj.get("asin"):
      raise DataError(path, "missing required field 'asin'", ln)
    asin = str(obj["asin"])
    if asin in out:
      raise DataError(path, f"duplicate metadata for asin {asin!r}", ln)
    fields: dict[str, Any] = {}
    for key in ("title", "brand", "main_cat"):
      if obj.get(key) not in (None, ""):
        fields[key] = str(obj[key])
    if "price" in obj and obj["price"] not in (None, ""):
      fields["price"] = str(obj["price"])
    if obj.get("description"):
      d = obj["description"]
      fields["description"] = " ".join(map(str, d)) if isinstance(d, list) else str(d)
    cats = obj.get("categories", obj.get("category"))
    if cats:
      fields["categories"] = _flatten_categories(cats)
    out[asin] = fields
  return out


# --------------------------------------------------------------------- recbole


def _recbole_header(path: PathLike, header: str) -> list[tuple[str, str]]:
  cols = []
  for col in header.split("\t"):
    if ":" not in col:
      raise DataError(path, f"header column {col!r} is not 'name:type'", 1)
    n, t = col.rsplit(":", 1)
    cols.append((n.strip(), t.strip()))
  return cols


def _recbole_rows(path: PathLike, required: tuple[str, ...]):
  """Yields ``(line, {name: (type, value)})`` for a RecBole atomic file."""
  it = _lines(path)
  _, header = next(it)
  cols = _recbole_header(path, header)
  names = [n for n, _ in cols]
  missing = [r for r in required if r not in names]
  if missing:
    raise DataError(path, f"missing required column(s) {missing} in header", 1)
  any_row = False
  for ln, line in it:
    parts = line.split("\t")
    if len(parts) != len(cols):
      raise DataError(path, f"malformed line: {len(parts)} fields, header has "
                      f"{len(cols)}", ln)
    any_row = True
    yield ln, {n: (t, v) for (n, t), v in zip(cols, parts)}
  if not any_row:
    raise DataError(path, "no data rows after the header", 1)


def read_recbole(path: PathLike, metadata_path: PathLike = "",
                 name: str = "") -> Interactions:
  """Reads a RecBole atomic ``.inter`` file and an optional ``.item`` file.

  Args:
    path: the ``.inter`` file, or a directory ``d`` holding ``d/<d name>.inter``.
    metadata_path: ``.item`` file; "" = the ``.item`` next to the ``.inter``
      if present. A catalog: items without interactions are allowed.
    name: dataset name.

  Returns:
    Interactions with string ids (RecBole ``token`` ids) and timestamps when a
    ``timestamp`` column exists. ``.item`` columns become item_meta fields:
    ``token_seq`` -> list[str], ``float`` -> float, others -> str.
  """
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / f"{path.name}.inter"
  users, items, ts = [], [], []
  has_ts = None
  for ln, row in _recbole_rows(path, ("user_id", "item_id")):
    if has_ts is None:
      has_ts = "timestamp" in row
    users.append(row["user_id"][1])
    items.append(row["item_id"][1])
    if has_ts:
      ts.append(_float(row["timestamp"][1], path, ln, "timestamp"))
    if not users[-1] or not items[-1]:
      raise DataError(path, "empty user_id or item_id", ln)
  inter = _finish(name or path.stem, path, users, items,
                  ts if has_ts else None, integer=False)
  if not metadata_path and path.with_suffix(".item").is_file():
    metadata_path = path.with_suffix(".item")
  if metadata_path:
    meta = {}
    for ln, row in _recbole_rows(metadata_path, ("item_id",)):
      iid = row.pop("item_id")[1]
      if iid in meta:
        raise DataError(metadata_path, f"duplicate item_id {iid!r}", ln)
      fields = {}
      for col, (typ, val) in row.items():
        if typ.endswith("_seq"):
          fields[col] = val.split()
        elif typ == "float" and val != "":
          fields[col] = _float(val, metadata_path, ln, col)
        else:
          fields[col] = val if val != "" else None
      meta[iid] = fields
    _catalog_meta(inter, meta)
  return inter


# --------------------------------------------------------------------- shared-data extras


def add_item_text(inter: Interactions, path: PathLike,
                  id_field: str = "item_id") -> None:
  """Adds an item-text JSONL (../shared/data ``*_item_text.jsonl``).

  Every key of a row becomes an item_meta field verbatim. The raw item id is
  ``row[id_field]``; a null id means the row's item is not in this id space
  and is left out. An id not in the interactions is an error (strict).
  """
  rows = []
  for ln, line in _lines(path):
    try:
      obj = json.loads(line)
    except json.JSONDecodeError as e:
      raise DataError(path, f"malformed JSON ({e.msg})", ln) from None
    if not isinstance(obj, dict):
      raise DataError(path, "malformed line: expected a JSON object", ln)
    if id_field not in obj:
      raise DataError(path, f"missing required field {id_field!r} "
                      "(data.item_text_id_field)", ln)
    if obj[id_field] is None:
      continue  # Not in this id space (see module docstring).
    raw = _meta_id(obj[id_field], inter, path, ln, id_field)
    rows.append((raw, ln, obj))
  _strict_meta(inter, path, rows)


def add_attributes(inter: Interactions, path: PathLike,
                   names_path: PathLike = "") -> None:
  """Adds ``*_item2attributes.json`` and optional ``*_attribute_names.tsv``.

  Sets item_meta ``attribute_ids`` (list[str]) and, with names,
  ``attribute_names`` (list[str], same order). An item-text JSONL may already
  carry ``attribute_ids``; they must agree, because two files disagreeing about
  an item's attributes means they were built for different id spaces.
  """
  try:
    with _open_text(path) as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise DataError(path, f"not valid utf-8 text ({e.reason})") from e
  if not text.strip():
    raise DataError(path, "empty file")
  try:
    obj = json.loads(text)
  except json.JSONDecodeError as e:
    raise DataError(path, f"malformed JSON ({e.msg})", e.lineno) from None
  if not isinstance(obj, dict):
    raise DataError(path, "expected a JSON object {item_id: [attr, ...]}", 1)
  names = read_attribute_names(names_path) if names_path else None
  rows = []
  for key, attrs in obj.items():
    # The file is one JSON object on one line; the line number is that of the
    # object, so the message names the key instead.
    raw = _meta_id(key, inter, path, 1, f"item id {key!r}")
    if not isinstance(attrs, list):
      raise DataError(path, f"item {key!r}: attributes must be a list", 1)
    ids = [str(a) for a in attrs]
    fields: dict[str, Any] = {"attribute_ids": ids}
    prev = inter.item_meta.get(raw, {}).get("attribute_ids")
    if prev is not None and [str(a) for a in prev] != ids:
      raise DataError(path, f"item {key!r}: attribute_ids {ids} disagree with "
                      f"the item-text file's {prev}", 1)
    if names is not None:
      unknown = [a for a in ids if a not in names]
      if unknown:
        raise DataError(names_path, f"no name for attribute id(s) {unknown} "
                        f"used by item {key!r} in {path}")
      fields["attribute_names"] = [names[a] for a in ids]
    rows.append((raw, 1, fields))
  _strict_meta(inter, path, rows)


def read_attribute_names(path: PathLike) -> dict[str, str]:
  """Reads ``attribute_id<TAB>name[<TAB>...]`` with a header -> {id: name}."""
  out = {}
  for ln, row in _csv_rows(path, ("attribute_id", "name"), delimiter="\t"):
    aid = row["attribute_id"].strip()
    if not aid:
      raise DataError(path, "empty attribute_id", ln)
    if aid in out:
      raise DataError(path, f"duplicate attribute_id {aid!r}", ln)
    out[aid] = row["name"]
  return out
