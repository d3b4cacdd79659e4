"""A fast columnar reader for any tabular interaction log (CSV, TSV, Parquet).

:func:`read_table` reads a headed CSV/TSV (optionally gzipped) or a Parquet
file with pyarrow, maps three of its columns to user, item and time, and
returns an :class:`InteractionTable`: integer codes per row plus the raw-id
vocabularies, rows in file order. :func:`preprocess_table` turns it into the
same :class:`~fame_jax.data.dataset.Dataset` that
:func:`fame_jax.data.preprocess.preprocess` builds from
:meth:`InteractionTable.to_interactions` (proven equal by
tests/test_tabular.py), without ever holding one Python object per row: a
20 M-row ML-20M-shaped CSV is read and preprocessed in seconds
(bench/read_tabular.py, results/bench/read_tabular.jsonl).

Rules (each choice is also written into the report that :func:`read_table`
returns):

* Format (``fmt="auto"``): by suffix, ignoring a trailing ``.gz``: ``.csv``
  -> csv, ``.tsv``/``.tab`` -> tsv, ``.parquet``/``.pq`` -> parquet;
  otherwise a file starting with Parquet's magic ``PAR1`` is Parquet, and a
  text file whose first line has a tab and no comma is TSV, else CSV. CSV
  follows RFC 4180 quoting; TSV has no quoting (as the RecBole/attribute
  readers). The first line is the header (names stripped of spaces); empty
  lines are skipped; gzip content is detected by its magic bytes.
* Columns: ``columns`` maps each role to a header column; a role mapped to
  ``""`` takes the first header column whose name (ignoring case) is one of
  :data:`AUTO_COLUMNS`'s names for it, and no such column is an error that
  lists the header. The report's ``columns`` holds the names used and
  ``columns_rule`` how each was chosen.
* Ids: a column is read as text; if every distinct value is a canonical
  decimal integer (``0``, ``-7``, ``123``; no sign ``+``, no leading zeros,
  fits int64) the raw ids are int64, else they stay strings -- so ``007``
  keeps its zeros and a raw id round-trips to the file's text. Parquet
  integer columns are int64 ids; Parquet string columns follow the text rule.
  An empty id is an error.
* Time (``time_format``): ``"numeric"`` = any number pyarrow parses
  (``978300760``, ``1.5e9``), used as is; ``"iso8601"`` = ``YYYY-MM-DD`` with
  optional ``[T ]hh[:mm[:ss[.fff]]]`` and optional zone ``Z``/``+hh:mm``,
  converted to Unix seconds (a time without a zone is taken as UTC);
  ``"auto"`` = the first data row decides: numeric if its value parses as a
  number, else ISO-8601; every row must then be of that kind. NaN and
  infinite times are errors. Times become float64 seconds, the type
  :class:`~fame_jax.data.readers.Interactions` holds (exact for integers up
  to 2**53; sub-microsecond ISO digits may tie). Parquet timestamp/date
  columns are converted the same way. Without a ``"time"`` mapping the file
  order is the time order.
* Dedup (``dedup``): ``"keep"`` keeps every row; ``"exact"`` drops a row equal
  to an earlier row in user, item and time (other columns, e.g. a rating, are
  not compared), keeping the first in file order; ``"user_item"`` drops
  repeated (user, item) pairs, keeping the first occurrence in time order
  (equal times: the earlier line). The kept rows stay in file order.
* Ties: rows of one user with equal times keep file order in every sort here
  and in :func:`preprocess_table` (stable sorts only).

Errors are :class:`~fame_jax.data.errors.DataError` on one line, naming the
file, the 1-based line (header = line 1) and the column, e.g.
``ratings.csv, line 1234: column 'timestamp': 'abc' is not a number or
ISO-8601 time``. Parquet has no lines, so its errors name the 1-based data row.
Locating the line takes a second pass over the file that runs only after an
error, so reading a good file pays nothing for it.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import pathlib
import re
import time
from typing import Any, Iterator

import numpy as np

from fame_jax.data import preprocess as preprocess_lib
from fame_jax.data.dataset import Dataset
from fame_jax.data.errors import DataError
from fame_jax.data.readers import Interactions

PathLike = str | os.PathLike[str]

FORMATS = ("auto", "csv", "tsv", "parquet")
DEDUP_MODES = ("keep", "exact", "user_item")
TIME_FORMATS = ("auto", "numeric", "iso8601")
DEFAULT_COLUMNS = {"user": "user_id", "item": "item_id", "time": "timestamp"}
# A role mapped to "" takes the first header column (in header order) whose
# name, ignoring case, is one of these: the names common interaction logs use
# (MovieLens, Amazon reviews, RecBole atomic files, Kaggle-style exports).
AUTO_COLUMNS = {
    "user": ("user_id", "user", "userId", "uid", "reviewerID", "customer_id",
             "visitor_id", "visitorid", "user_id:token"),
    "item": ("item_id", "item", "itemId", "iid", "movieId", "movie_id", "asin",
             "product_id", "productId", "business_id", "track_id",
             "article_id", "item_id:token"),
    "time": ("timestamp", "time", "ts", "unixReviewTime", "datetime", "date",
             "event_time", "created_at", "timestamp:float"),
}

# Canonical decimal integers only: "007" or "+7" would not print back as read.
_CANONICAL_INT = r"^(0|-?[1-9][0-9]{0,18})$"
# A zone designator after a time part ("...T12:00Z", "... 12:00+02:00"); a bare
# date ends in "-01", which is not a zone.
_ZONED = r"[T ][0-9:.]+(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"


@dataclasses.dataclass
class InteractionTable:
  """Interactions as integer codes plus raw-id vocabularies, in file order.

  Attributes:
    name: dataset name for logs.
    source: the file read (used in error messages).
    user_index: ``[M]`` int32, row -> index into ``user_ids``; users are
      numbered in order of their first row.
    item_index: ``[M]`` int32, row -> index into ``item_ids``; items are
      numbered in ascending raw-id order.
    timestamps: ``[M]`` float64 seconds, or ``None`` (file order is time order).
    user_ids: ``[U]`` raw user ids, int64 or str (numpy ``U``).
    item_ids: ``[I]`` raw item ids, ascending, int64 or str (numpy ``U``).
  """

  name: str
  source: str
  user_index: np.ndarray
  item_index: np.ndarray
  timestamps: np.ndarray | None
  user_ids: np.ndarray
  item_ids: np.ndarray

  def __len__(self) -> int:
    return len(self.user_index)

  def to_interactions(self) -> Interactions:
    """The same rows as :class:`Interactions` (one Python str per user row).

    Users become str as every reader gives them; items keep int64 or str.
    Meant for small tables and tests; :func:`preprocess_table` needs no copy.
    """
    user_str = np.asarray([str(u) for u in self.user_ids.tolist()],
                          dtype=object)
    return Interactions(
        name=self.name,
        source=self.source,
        users=user_str[self.user_index],
        items=self.item_ids[self.item_index],
        timestamps=(None if self.timestamps is None
                    else self.timestamps.copy()),
        integer_users=self.user_ids.dtype.kind in "iu",
    )


# --------------------------------------------------------------------- reading


def read_table(path: PathLike,
               columns: dict[str, str] | None = None,
               fmt: str = "auto",
               dedup: str = "keep",
               time_format: str = "auto",
               name: str = "") -> tuple[InteractionTable, dict[str, Any]]:
  """Reads an interaction log into codes and vocabularies (module rules apply).

  Args:
    path: a CSV/TSV file with a header (gzip allowed) or a Parquet file.
    columns: ``{"user": name, "item": name[, "time": name]}``, the file's
      column for each role, ``""`` = found by name (:data:`AUTO_COLUMNS`);
      default ``user_id``, ``item_id``, ``timestamp``.
    fmt: "auto", "csv", "tsv" or "parquet".
    dedup: "keep", "exact" or "user_item" (see the module docstring).
    time_format: "auto", "numeric" or "iso8601".
    name: dataset name; "" = the file name without suffixes.

  Returns:
    ``(table, report)``: the rows kept, in file order, and a dict with every
    choice made (format, id types, time format and the rule that chose it,
    dedup mode) and the counts (rows read, duplicates dropped, rows, users,
    items), plus the seconds taken.

  Raises:
    DataError: a missing file or column, an empty file, a malformed row (file,
      line and column in one line).
    ValueError: an unknown option.
  """
  t0 = time.perf_counter()
  columns = dict(DEFAULT_COLUMNS if columns is None else columns)
  _check_options(columns, fmt, dedup, time_format)
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(path, "file not found")
  if path.stat().st_size == 0:
    raise DataError(path, "empty file")
  fmt, fmt_rule = _detect_format(path, fmt)
  report: dict[str, Any] = {
      "source": str(path), "format": fmt, "format_rule": fmt_rule,
      "columns": columns, "dedup": dedup}
  roles = [r for r in ("user", "item", "time") if r in columns]
  if fmt == "parquet":
    cols, time_kind, time_rule = _read_parquet(path, columns, roles,
                                               time_format, report)
  else:
    cols, time_kind, time_rule = _read_text(path, fmt, columns, roles,
                                            time_format, report)
  n_rows = len(cols["user"])
  if n_rows == 0:  # Text files stopped earlier, at the header.
    raise DataError(path, "no rows")
  report["rows_read"] = n_rows

  locate = _Locator(path, fmt, report.get("header"))
  user_index, user_ids, user_type = _encode_ids(
      cols["user"], columns["user"], locate, first_appearance=True)
  item_index, item_ids, item_type = _encode_ids(
      cols["item"], columns["item"], locate, first_appearance=False)
  item_index, item_ids = _sorted_vocabulary(item_index, item_ids)
  timestamps = None
  if "time" in cols:
    timestamps = _to_seconds(cols["time"], time_kind, columns["time"],
                             time_format, locate)
  del cols
  report.update({"user_id_type": user_type, "item_id_type": item_type,
                 "time_format": time_kind, "time_format_rule": time_rule})

  keep = _dedup_mask(dedup, user_index, item_index, timestamps)
  dropped = 0
  if keep is not None:
    dropped = int(len(keep) - np.count_nonzero(keep))
    if dropped:
      user_index, item_index = user_index[keep], item_index[keep]
      timestamps = None if timestamps is None else timestamps[keep]
      # Dropping a user's first row can move its first appearance.
      user_index, user_ids = _first_appearance(user_index, user_ids)
  report.update({
      "duplicates_dropped": dropped,
      "rows": int(len(user_index)),
      "users": int(len(user_ids)),
      "items": int(len(item_ids)),
      "seconds": round(time.perf_counter() - t0, 3),
  })
  table = InteractionTable(
      name=name or pathlib.Path(path.name.removesuffix(".gz")).stem,
      source=str(path),
      user_index=user_index,
      item_index=item_index,
      timestamps=timestamps,
      user_ids=user_ids,
      item_ids=item_ids,
  )
  return table, report


def _check_options(columns: dict[str, str], fmt: str, dedup: str,
                   time_format: str) -> None:
  unknown = sorted(set(columns) - {"user", "item", "time"})
  if unknown or "user" not in columns or "item" not in columns:
    raise ValueError("columns maps 'user', 'item' and optionally 'time' to "
                     f"column names; got {columns}")
  if fmt not in FORMATS:
    raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
  if dedup not in DEDUP_MODES:
    raise ValueError(f"dedup must be one of {DEDUP_MODES}, got {dedup!r}")
  if time_format not in TIME_FORMATS:
    raise ValueError(f"time_format must be one of {TIME_FORMATS}, got "
                     f"{time_format!r}")


def _is_gzip(path: pathlib.Path) -> bool:
  with open(path, "rb") as f:
    return f.read(2) == b"\x1f\x8b"


def _detect_format(path: pathlib.Path, fmt: str) -> tuple[str, str]:
  if fmt != "auto":
    return fmt, "given"
  suffixes = [s.lower() for s in path.suffixes]
  if suffixes and suffixes[-1] == ".gz":
    suffixes = suffixes[:-1]
  last = suffixes[-1] if suffixes else ""
  by_suffix = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
               ".parquet": "parquet", ".pq": "parquet"}
  if last in by_suffix:
    return by_suffix[last], f"suffix {last}"
  with open(path, "rb") as f:
    if f.read(4) == b"PAR1":
      return "parquet", "Parquet magic bytes"
  first = next(_text_lines(path), (1, ""))[1]
  if "\t" in first and "," not in first:
    return "tsv", "first line has tabs and no comma"
  return "csv", "default (first line is not tab-separated)"


def _text_lines(path: pathlib.Path) -> Iterator[tuple[int, str]]:
  """Yields ``(1-based line, text with its newline)``; a bad byte names its line."""
  opener = gzip.open if _is_gzip(path) else open
  try:
    with opener(path, "rb") as f:
      for i, raw in enumerate(f, start=1):
        try:
          text = raw.decode("utf-8-sig" if i == 1 else "utf-8")
        except UnicodeDecodeError as e:
          raise DataError(path, f"not valid UTF-8 text ({e.reason} at byte "
                          f"{e.start} of the line)", i) from None
        yield i, text
  except (OSError, EOFError) as e:  # Truncated or corrupt gzip.
    raise DataError(path, f"cannot read file ({e})") from None


def _records(path: pathlib.Path, fmt: str) -> Iterator[tuple[int, list[str]]]:
  """Yields ``(first line of the record, fields)``, empty lines skipped.

  The Python csv module, dialect matching the pyarrow read: only used on the
  header and, after an error, to find the line of a row.
  """
  lines = _text_lines(path)
  line_of = {"n": 0}

  def texts():
    for i, text in lines:
      line_of["n"] = i
      yield text

  if fmt == "tsv":
    reader = csv.reader(texts(), delimiter="\t", quoting=csv.QUOTE_NONE)
  else:
    reader = csv.reader(texts(), delimiter=",")
  start = 1
  try:
    for row in reader:
      if row:
        yield start, row
      start = line_of["n"] + 1
  except csv.Error as e:
    raise DataError(path, f"malformed {fmt.upper()} ({e})", start) from None


class _Locator:
  """Turns a 0-based data-row index into a ``DataError`` location (slow path)."""

  def __init__(self, path: pathlib.Path, fmt: str, header: list[str] | None):
    self.path, self.fmt, self.header = path, fmt, header

  def error(self, row: int, problem: str) -> DataError:
    if self.fmt == "parquet":
      return DataError(self.path, f"row {row + 1}: {problem}")
    for i, (line, _) in enumerate(_records(self.path, self.fmt)):
      if i == row + 1:  # Record 0 is the header.
        return DataError(self.path, problem, line)
    return DataError(self.path, f"data row {row + 1}: {problem}")


def _one_line(text: str) -> str:
  return " ".join(str(text).split())


def _resolve_columns(path: pathlib.Path, header: list[str],
                     columns: dict[str, str], report: dict[str, Any],
                     line: int | None) -> None:
  """Fills each role mapped to ``""`` in place (see :data:`AUTO_COLUMNS`)."""
  rules = {}
  for role, given in columns.items():
    if given:
      rules[role] = "given"
      continue
    names = {n.lower() for n in AUTO_COLUMNS[role]}
    found = [h for h in header if h.lower() in names]
    if not found:
      raise DataError(
          path, f"no {role} column found by name (looked for "
          f"{', '.join(AUTO_COLUMNS[role])}); the header's columns are "
          f"{header}; name it with data.columns.{role}", line)
    columns[role] = found[0]
    rules[role] = (f"auto: first header column named like a {role} id"
                   if role != "time" else
                   "auto: first header column named like a time")
  report["columns_rule"] = rules


def _read_text(path, fmt, columns, roles, time_format, report):
  """pyarrow.csv read of the mapped columns; returns (columns, kind, rule)."""
  import pyarrow as pa
  import pyarrow.csv as pacsv

  records = _records(path, fmt)
  try:
    _, header = next(records)
  except StopIteration:
    raise DataError(path, "empty file") from None
  header = [h.strip() for h in header]
  report["header"] = header
  _resolve_columns(path, header, columns, report, line=1)
  wanted = {role: columns[role] for role in roles}
  missing = [f"{c!r} ({role})" for role, c in wanted.items() if c not in header]
  if missing:
    raise DataError(path, f"missing column(s) {', '.join(missing)}; the "
                    f"header's columns are {header}", 1)
  for role, c in wanted.items():
    if header.count(c) > 1:
      raise DataError(path, f"column {c!r} ({role}) appears "
                      f"{header.count(c)} times in the header", 1)
  first = next(records, None)
  if first is None:
    raise DataError(path, "no data rows after the header", 1)
  records.close()

  time_kind, time_rule = None, None
  if "time" in wanted:
    line, row = first
    at = header.index(wanted["time"])
    time_kind, time_rule = _time_kind(row[at] if at < len(row) else "",
                                      f"line {line}", time_format)

  def read(types, newlines_in_values):
    source = path
    if _is_gzip(path):
      source = pa.input_stream(str(path), compression="gzip")
    return pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
        parse_options=pacsv.ParseOptions(
            delimiter="\t" if fmt == "tsv" else ",",
            quote_char=False if fmt == "tsv" else '"',
            newlines_in_values=newlines_in_values),
        convert_options=pacsv.ConvertOptions(
            include_columns=list(dict.fromkeys(wanted.values())),
            column_types=types,
            null_values=[], strings_can_be_null=False,
            quoted_strings_can_be_null=False))

  text_types = {c: pa.string() for c in wanted.values()}
  fast_types = dict(text_types)
  if time_kind == "numeric":
    fast_types[wanted["time"]] = pa.float64()
  try:
    table = read(fast_types, newlines_in_values=False)
    report["reader"] = f"pyarrow.csv {pa.__version__}"
  except pa.ArrowInvalid as fast_error:
    # A value that is no number, a row of the wrong width or a quoted newline
    # across pyarrow's blocks: read all as text with newlines allowed; the
    # conversions below then find the bad value's row.
    try:
      table = read(text_types, newlines_in_values=True)
    except pa.ArrowInvalid:
      _raise_first_malformed(path, fmt, header, fast_error)
    report["reader"] = (f"pyarrow.csv {pa.__version__}, second pass as text "
                        f"after: {_one_line(fast_error)}")
  return ({role: table.column(c) for role, c in wanted.items()}, time_kind,
          time_rule)


def _raise_first_malformed(path, fmt, header, arrow_error) -> None:
  """Slow path after pyarrow failed: the first record of the wrong width."""
  for i, (line, row) in enumerate(_records(path, fmt)):
    if i and len(row) != len(header):  # Record 0 is the header.
      raise DataError(path, f"{len(row)} fields, the header has "
                      f"{len(header)}", line)
  raise DataError(path, f"cannot parse as {fmt.upper()} "
                  f"({_one_line(arrow_error)})")


def _parses_as_number(text: str) -> bool:
  import pyarrow as pa
  import pyarrow.compute as pc
  try:
    pc.cast(pa.array([text]), pa.float64())
    return True
  except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
    return False


def _time_kind(value: str, where: str, time_format: str) -> tuple[str, str]:
  """The time kind and the rule that chose it, from the first row's value."""
  if time_format != "auto":
    return time_format, "given"
  if _parses_as_number(value):
    return "numeric", f"auto: first data row ({where}) {value!r} is a number"
  return "iso8601", (f"auto: first data row ({where}) {value!r} is not a "
                     "number")


def _read_parquet(path, columns, roles, time_format, report):
  try:
    import pyarrow.parquet as pq
  except ImportError:  # pragma: no cover - pyarrow is pinned.
    raise DataError(path, "reading Parquet needs pyarrow (pip install "
                    "pyarrow)") from None
  import pyarrow as pa
  try:
    schema = pq.read_schema(path)
  except (pa.ArrowException, OSError) as e:
    raise DataError(path, f"not a readable Parquet file ({_one_line(e)})"
                    ) from None
  names = list(schema.names)
  report["header"] = names
  _resolve_columns(path, names, columns, report, line=None)
  wanted = {role: columns[role] for role in roles}
  missing = [f"{c!r} ({role})" for role, c in wanted.items() if c not in names]
  if missing:
    raise DataError(path, f"missing column(s) {', '.join(missing)}; the "
                    f"file's columns are {names}")
  table = pq.read_table(path, columns=list(dict.fromkeys(wanted.values())))
  report["reader"] = f"pyarrow.parquet {pa.__version__}"
  cols = {role: table.column(c) for role, c in wanted.items()}
  time_kind, time_rule = None, None
  if "time" in cols:
    t = cols["time"].type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
      time_kind, time_rule = "iso8601", f"Parquet type {t}"
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
      time_kind, time_rule = "numeric", f"Parquet type {t}"
    elif len(cols["time"]) == 0:
      time_kind, time_rule = "numeric", "empty column"
    else:
      time_kind, time_rule = _time_kind(str(cols["time"][0].as_py()),
                                        "row 1", time_format)
    if time_format != "auto" and time_kind != time_format:
      raise DataError(path, f"column {wanted['time']!r}: time_format="
                      f"{time_format!r} but the column holds {t} values")
  return cols, time_kind, time_rule


# --------------------------------------------------------------------- columns


def _first_bad(chunked, convert) -> tuple[int, Any] | None:
  """First row whose value ``convert`` rejects: per chunk, then bisection."""
  import pyarrow as pa
  offset = 0
  for chunk in chunked.chunks:
    try:
      convert(chunk)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
      lo, hi = 0, len(chunk)  # The first bad row is in [lo, hi).
      while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
          convert(chunk.slice(lo, mid - lo))
          lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
          hi = mid
      return offset + lo, chunk[lo].as_py()
    offset += len(chunk)
  return None


def _encode_ids(col, name: str, locate: _Locator, first_appearance: bool
                ) -> tuple[np.ndarray, np.ndarray, str]:
  """Dictionary-encodes an id column.

  Args:
    col: the column as read (text or integers).
    name: its name, for errors.
    locate: turns a row into an error location.
    first_appearance: number codes in order of first appearance (users);
      else in whatever order the hash gives (items are sorted afterwards).

  Returns:
    ``([M] int32 codes, vocabulary, "int" | "str")``.
  """
  import pyarrow as pa
  import pyarrow.compute as pc

  if col.null_count:
    row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
    raise locate.error(row, f"column {name!r}: missing id")
  t = col.type
  if not (pa.types.is_integer(t) or pa.types.is_string(t)
          or pa.types.is_large_string(t)):
    raise locate.error(0, f"column {name!r}: ids must be integers or "
                       f"strings, the column holds {t}")
  encoded = col.dictionary_encode()
  chunks = encoded.chunks
  if not chunks:
    return np.zeros(0, np.int32), np.zeros(0, np.int64), "int"
  vocab = chunks[-1].dictionary
  # The hash kernel gives every chunk the final dictionary; check, cheaply.
  if any(len(c.dictionary) != len(vocab) for c in chunks):
    encoded = col.combine_chunks().dictionary_encode()
    chunks, vocab = [encoded], encoded.dictionary
  codes = np.concatenate([c.indices.to_numpy() for c in chunks]
                         ).astype(np.int32, copy=False)
  if pa.types.is_integer(t):
    values, kind = vocab.cast(pa.int64()).to_numpy(), "int"
  else:
    empty = pc.equal(vocab, "").to_numpy(zero_copy_only=False)
    if empty.any():
      row = int(np.flatnonzero(codes == int(np.flatnonzero(empty)[0]))[0])
      raise locate.error(row, f"column {name!r}: empty id")
    canonical = pc.all(pc.match_substring_regex(vocab, _CANONICAL_INT)).as_py()
    values, kind = None, "str"
    if canonical:
      try:
        values, kind = pc.cast(vocab, pa.int64()).to_numpy(), "int"
      except pa.ArrowInvalid:  # Beyond int64: keep the text.
        values = None
    if values is None:
      values = np.asarray(vocab.to_numpy(zero_copy_only=False).astype(str))
  if first_appearance:
    codes, values = _first_appearance(codes, values)
  return codes, values, kind


def _first_appearance(codes: np.ndarray, vocab: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Renumbers codes so that code ``k`` is the ``k``-th distinct first row.

  pyarrow's hash encoding already numbers values in order of first
  appearance; this checks it in O(M) (a code is new exactly when it exceeds
  every earlier code by one) and renumbers only when it does not hold.
  """
  if len(codes) == 0:
    return codes, vocab[:0]
  running = np.maximum.accumulate(codes)
  ok = codes[0] == 0 and np.all(codes[1:] <= running[:-1] + 1)
  if ok and running[-1] == len(vocab) - 1:
    return codes, vocab
  _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
  rank = np.empty(len(first), dtype=np.int64)
  rank[np.argsort(first, kind="stable")] = np.arange(len(first))
  used = codes[np.sort(first)]
  return rank[inverse.reshape(-1)].astype(np.int32), vocab[used]


def _sorted_vocabulary(codes: np.ndarray, vocab: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Renumbers codes so the vocabulary is ascending (numbers or code points)."""
  order = np.argsort(vocab, kind="stable")
  rank = np.empty(len(order), dtype=np.int32)
  rank[order] = np.arange(len(order), dtype=np.int32)
  return rank[codes], vocab[order]


def _to_seconds(col, kind: str, name: str, time_format: str,
                locate: _Locator) -> np.ndarray:
  """``[M]`` float64 seconds from a numeric, text or timestamp column."""
  import pyarrow as pa
  import pyarrow.compute as pc

  if col.null_count:
    row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
    raise locate.error(row, f"column {name!r}: missing time")
  t = col.type
  if kind == "numeric":
    if pa.types.is_string(t) or pa.types.is_large_string(t):
      to_float = lambda a: pc.cast(a, pa.float64())  # noqa: E731
      bad = _first_bad(col, to_float)
      if bad is not None:
        row, value = bad
        raise locate.error(row, f"column {name!r}: "
                           + _time_problem(value, "numeric", time_format))
      col = to_float(col)
    seconds = col.cast(pa.float64()).to_numpy()
  else:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
      col = _parse_iso(col, name, time_format, locate)
    elif pa.types.is_date(t):
      col = col.cast(pa.timestamp("s"))
    # A timestamp without a zone is read as UTC, as ISO text without one.
    ns = col.cast(pa.timestamp("ns", tz=col.type.tz)).cast(pa.int64()
                                                           ).to_numpy()
    # Whole seconds and the fraction apart: float64(ns) / 1e9 would round
    # 1577836800.25 to 1577836800.2499998.
    whole, frac = np.divmod(ns, 10**9)
    seconds = whole.astype(np.float64) + frac / 1e9
  seconds = np.ascontiguousarray(seconds, dtype=np.float64)
  finite = np.isfinite(seconds)
  if not finite.all():
    row = int(np.flatnonzero(~finite)[0])
    raise locate.error(row, f"column {name!r}: {float(seconds[row])!r} is not a "
                       "finite time")
  return seconds


def _time_problem(value: Any, kind: str, time_format: str) -> str:
  """Why a time value was refused, saying which rule chose the kind."""
  if time_format != "auto":
    return (f"{value!r} is not "
            + ("a number" if kind == "numeric" else "an ISO-8601 time"))
  other_ok = (_parses_as_iso(str(value)) if kind == "numeric"
              else _parses_as_number(str(value)))
  if other_ok:
    first, other = (("a number", "an ISO-8601 time") if kind == "numeric"
                    else ("an ISO-8601 time", "a number"))
    return (f"{value!r} is {other}, but the first data row's time is {first} "
            "(time_format auto); a column holds one kind")
  return f"{value!r} is not a number or ISO-8601 time"


def _parses_as_iso(text: str) -> bool:
  import pyarrow as pa
  try:
    _iso_chunk(pa.array([text], pa.string()))
    return True
  except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
    return False


def _iso_chunk(chunk):
  """One text array -> timestamp[ns, UTC]; raises ArrowInvalid on bad text."""
  import pyarrow as pa
  import pyarrow.compute as pc

  utc = pa.timestamp("ns", tz="UTC")
  # pyarrow parses zoned text only as a zoned type and plain text only as a
  # naive one. A chunk is usually all one or the other: try both whole.
  for attempt in (utc, pa.timestamp("ns")):
    try:
      return pc.cast(chunk, attempt).cast(pa.int64()).cast(utc)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
      pass
  zoned = pc.match_substring_regex(chunk, _ZONED)
  null = pa.scalar(None, chunk.type)
  # Mixed: each half separately, plain text read as UTC.
  naive = pc.cast(pc.if_else(zoned, null, chunk), pa.timestamp("ns"))
  with_zone = pc.cast(pc.if_else(zoned, chunk, null), utc)
  return pc.coalesce(naive.cast(pa.int64()), with_zone.cast(pa.int64())
                     ).cast(utc)


def _parse_iso(col, name: str, time_format: str, locate: _Locator):
  """ISO-8601 text column -> timestamp[ns, UTC]; a bad value names its line."""
  import pyarrow as pa

  try:
    return pa.chunked_array([_iso_chunk(c) for c in col.chunks],
                            type=pa.timestamp("ns", tz="UTC"))
  except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
    bad = _first_bad(col, _iso_chunk)
    if bad is None:
      raise
    row, value = bad
    raise locate.error(row, f"column {name!r}: "
                       + _time_problem(value, "iso8601", time_format)) from None


# --------------------------------------------------------------------- sorting


def user_time_order(user_index: np.ndarray,
                    timestamps: np.ndarray | None) -> np.ndarray:
  """Stable order by user, then time: ``np.lexsort((timestamps, user_index))``.

  The same permutation, faster: when every time is an integer (Unix seconds)
  user and time pack into one int64 key for one stable numpy sort; otherwise
  pyarrow's stable multi-key sort. Ties keep file order either way.

  Args:
    user_index: ``[M]`` non-negative int code per row (a user, or any group
      such as a user-item pair).
    timestamps: ``[M]`` float64, or ``None`` (order by user only).

  Returns:
    ``[M]`` int64 row indices.
  """
  users = user_index.astype(np.int64, copy=False)
  if timestamps is None or len(users) == 0:
    return np.argsort(users, kind="stable")
  user_bits = int(users.max()).bit_length()
  t_min, t_max = float(timestamps.min()), float(timestamps.max())
  if max(abs(t_min), abs(t_max)) < 2.0**52:
    whole = timestamps.astype(np.int64)
    span_bits = (int(t_max) - int(t_min)).bit_length()
    if user_bits + span_bits <= 62 and np.array_equal(whole, timestamps):
      whole -= int(t_min)
      whole |= users << span_bits
      return np.argsort(whole, kind="stable")
  import pyarrow as pa
  import pyarrow.compute as pc
  table = pa.table({"u": users, "t": timestamps})
  return pc.sort_indices(table, sort_keys=[("u", "ascending"),
                                           ("t", "ascending")]
                         ).to_numpy().astype(np.int64)


def _dedup_mask(mode: str, user_index: np.ndarray, item_index: np.ndarray,
                timestamps: np.ndarray | None) -> np.ndarray | None:
  """``[M]`` bool rows to keep, or ``None`` for ``mode="keep"``.

  One stable sort by (user-item pair, time) puts every group of duplicates
  in a run, earliest time first and equal times in file order; the first row
  of each run is kept (runs of equal pair for "user_item", of equal pair and
  time for "exact").
  """
  if mode == "keep":
    return None
  n_items = int(item_index.max()) + 1 if len(item_index) else 1
  if len(user_index) and (int(user_index.max()) + 1) * n_items >= 2**62:
    raise ValueError("too many users x items to pack a pair into int64")
  pair = user_index.astype(np.int64) * n_items + item_index
  order = user_time_order(pair, timestamps)
  pair = pair[order]
  new_run = np.ones(len(pair), dtype=bool)
  new_run[1:] = pair[1:] != pair[:-1]
  if mode == "exact" and timestamps is not None:
    t = timestamps[order]
    new_run[1:] |= t[1:] != t[:-1]
  keep = np.zeros(len(pair), dtype=bool)
  keep[order[new_run]] = True
  return keep


# --------------------------------------------------------------------- preprocess


def _counts(user_index: np.ndarray, item_index: np.ndarray) -> dict[str, int]:
  return {
      "users": int(np.count_nonzero(np.bincount(user_index))),
      "items": int(np.count_nonzero(np.bincount(item_index))),
      "interactions": int(len(user_index)),
  }


def preprocess_table(table: InteractionTable, kcore: int = 0) -> Dataset:
  """:func:`fame_jax.data.preprocess.preprocess` on columns; same output.

  ``preprocess_table(t, k)`` equals ``preprocess.preprocess(
  t.to_interactions(), k)`` field by field, report included
  (tests/test_tabular.py), but sorts codes with one packed-key sort and
  counts with ``bincount`` instead of ``np.unique`` over Python objects.

  Args:
    table: what :func:`read_table` returned.
    kcore: iterative k-core threshold on users and items; 0 = off.

  Returns:
    The dataset: users in order of their first row, sequences in time order
    (ties keep file order), items ``1..N`` in ascending raw-id order.

  Raises:
    DataError: if nothing is left after filtering.
  """
  users = table.user_index
  items = table.item_index
  report = []
  counts = _counts(users, items)
  report.append(preprocess_lib._step(
      "read", counts, counts, source=table.source,
      **preprocess_lib.id_types(table.user_ids.dtype.kind in "iu",
                                table.item_ids.dtype.kind in "iu")))
  order = user_time_order(users, table.timestamps)
  if table.timestamps is not None:
    # Files grouped by user (as MovieLens ships) need no second sort here.
    grouped = bool(np.all(users[1:] >= users[:-1]))
    by_user = (np.arange(len(users)) if grouped
               else np.argsort(users, kind="stable"))
    moved = int(np.count_nonzero(order != by_user))
    del by_user
    report.append(preprocess_lib._step("sort_by_timestamp", counts, counts,
                                       interactions_moved=moved))
  users, items = users[order], items[order]
  del order

  if kcore > 0:
    keep, passes = preprocess_lib.kcore_mask(users, items, kcore)
    users, items = users[keep], items[keep]
    after = _counts(users, items) if len(users) else {
        "users": 0, "items": 0, "interactions": 0}
    report.append(preprocess_lib._step(f"kcore({kcore})", counts, after,
                                       passes=passes))
    counts = after
  if len(users) == 0:
    raise DataError(table.source,
                    f"dataset empty after filtering (kcore={kcore})")

  # Renumber: surviving item codes, ascending, become 1..N.
  kept_items = np.flatnonzero(np.bincount(items, minlength=len(table.item_ids)))
  new_id = np.zeros(len(table.item_ids), dtype=np.int32)
  new_id[kept_items] = np.arange(1, len(kept_items) + 1, dtype=np.int32)
  item_ids = new_id[items]
  kept_raw = table.item_ids[kept_items]
  integer = table.item_ids.dtype.kind in "iu"
  changed = (int(np.count_nonzero(kept_raw != np.arange(1, len(kept_raw) + 1)))
             if integer else len(kept_raw))
  report.append(preprocess_lib._step("renumber_items", counts, counts,
                                     ids_changed=changed))

  # Users are contiguous runs after the sort, in first-row order.
  starts = np.flatnonzero(np.diff(users)) + 1
  user_codes = users[np.concatenate([[0], starts])]
  sequences = np.split(item_ids, starts)

  item_raw_ids = np.empty(len(kept_raw) + 1, dtype=object)
  item_raw_ids[0] = preprocess_lib.PAD_RAW_ID
  item_raw_ids[1:] = [str(r) for r in kept_raw.tolist()]
  return Dataset(
      name=table.name,
      sequences=sequences,
      num_items=len(kept_raw),
      user_raw_ids=np.asarray(
          [str(u) for u in table.user_ids[user_codes].tolist()], dtype=object),
      item_raw_ids=item_raw_ids,
      item_meta={},
      report=report,
  )
