"""The columnar reader (fame_jax/data/tabular.py) on small generated files.

Each rule of the module docstring is checked against a literal reference:
preprocess.preprocess on the same rows, the csv-module reader, np.lexsort, or
a Python loop for the dedup modes.
"""

from __future__ import annotations

import datetime
import gzip

import numpy as np
import pytest

from fame_jax.data import preprocess as pp
from fame_jax.data import readers
from fame_jax.data import tabular
from fame_jax.data.errors import DataError

ML = {"user": "userId", "item": "movieId", "time": "timestamp"}


def _write(path, text: str):
  path.write_text(text, encoding="utf-8")
  return path


def _rows(table):
  """(raw user, raw item, time) per row, in the table's order."""
  ts = table.timestamps if table.timestamps is not None else [None] * len(table)
  return [(u, i, t) for u, i, t in zip(
      table.user_ids[table.user_index].tolist(),
      table.item_ids[table.item_index].tolist(), list(ts))]


def _assert_same_dataset(a, b):
  assert a.name == b.name
  assert a.num_items == b.num_items
  assert len(a.sequences) == len(b.sequences)
  for x, y in zip(a.sequences, b.sequences):
    assert x.dtype == y.dtype == np.int32
    np.testing.assert_array_equal(x, y)
  assert a.user_raw_ids.tolist() == b.user_raw_ids.tolist()
  assert a.item_raw_ids.tolist() == b.item_raw_ids.tolist()
  assert a.item_meta == b.item_meta
  assert a.report == b.report


def _random_log(rng, n, users=30, items=40, time_span=50):
  """Random integer rows with many equal times and repeated pairs."""
  return (rng.integers(1, users + 1, n), rng.integers(1, items + 1, n),
          rng.integers(0, time_span, n) * 1000 + 978_300_000)


def _csv(path, header, rows, sep=","):
  lines = [sep.join(header)] + [sep.join(str(v) for v in r) for r in rows]
  return _write(path, "\n".join(lines) + "\n")


# ------------------------------------------------------------------ ids, times


def test_string_ids_and_iso_times(tmp_path):
  f = _write(tmp_path / "log.csv", "\n".join([
      "user_id,item_id,timestamp",
      "alice,B00X,2020-01-01T00:00:10Z",
      "bob,A17,2020-01-01 00:00:05",        # No zone: read as UTC.
      "alice,A17,2020-01-01T01:00:00+01:00",  # = 00:00:00Z
      "bob,007,2020-01-02",                 # Date only: midnight UTC.
      "carol,B00X,2020-01-01T00:00:00.25Z",
  ]) + "\n")
  table, report = tabular.read_table(f)
  epoch = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
  assert _rows(table) == [
      ("alice", "B00X", epoch + 10), ("bob", "A17", epoch + 5),
      ("alice", "A17", epoch), ("bob", "007", epoch + 86400),
      ("carol", "B00X", epoch + 0.25)]
  assert table.user_ids.tolist() == ["alice", "bob", "carol"]  # First row order.
  assert table.item_ids.tolist() == ["007", "A17", "B00X"]  # Ascending.
  assert report["user_id_type"] == report["item_id_type"] == "str"
  assert report["time_format"] == "iso8601"
  assert "not a number" in report["time_format_rule"]
  assert report["rows_read"] == report["rows"] == 5
  ds = tabular.preprocess_table(table)
  assert [s.tolist() for s in ds.sequences] == [[2, 3], [2, 1], [3]]
  _assert_same_dataset(ds, pp.preprocess(table.to_interactions()))


def test_integer_ids_only_when_canonical(tmp_path):
  f = _csv(tmp_path / "a.csv", ["user_id", "item_id", "timestamp"],
           [(10, 5, 1), (-3, 12, 2), (10, 0, 3)])
  table, report = tabular.read_table(f)
  assert table.user_ids.dtype == np.int64 and table.item_ids.dtype == np.int64
  assert table.item_ids.tolist() == [0, 5, 12]  # Numeric, not text, order.
  assert report["user_id_type"] == "int"
  # Leading zeros would not survive int(): the whole column stays text.
  f = _csv(tmp_path / "b.csv", ["user_id", "item_id", "timestamp"],
           [(1, "010", 1), (2, 9, 2)])
  table, report = tabular.read_table(f)
  assert report["item_id_type"] == "str"
  assert table.item_ids.tolist() == ["010", "9"]


def test_numeric_times_and_auto_rule(tmp_path):
  f = _csv(tmp_path / "a.csv", ["user_id", "item_id", "timestamp"],
           [(1, 1, "1.5e9"), (1, 2, "978300760"), (2, 1, "-5.25")])
  table, report = tabular.read_table(f)
  assert table.timestamps.tolist() == [1.5e9, 978300760.0, -5.25]
  assert report["time_format"] == "numeric"
  assert report["time_format_rule"].startswith("auto: first data row (line 2)")


def test_without_time_column_file_order_is_time_order(tmp_path):
  f = _csv(tmp_path / "a.csv", ["u", "i"], [(2, 9), (1, 8), (2, 7), (1, 9)])
  table, report = tabular.read_table(f, columns={"user": "u", "item": "i"})
  assert table.timestamps is None and report["time_format"] is None
  ds = tabular.preprocess_table(table)
  assert [s.tolist() for s in ds.sequences] == [[3, 1], [2, 3]]
  _assert_same_dataset(ds, pp.preprocess(table.to_interactions()))


# ------------------------------------------------------------------ ties, sort


def test_equal_times_keep_file_order(tmp_path):
  f = _csv(tmp_path / "a.csv", ["user_id", "item_id", "timestamp"],
           [(1, 30, 5), (1, 10, 5), (1, 20, 4), (1, 40, 5), (2, 10, 1)])
  ds = tabular.preprocess_table(tabular.read_table(f)[0])
  # Time 4 first, then the three time-5 rows in line order.
  assert [ds.item_raw_ids[s].tolist() for s in ds.sequences] == [
      ["20", "30", "10", "40"], ["10"]]


@pytest.mark.parametrize("times", ["integer", "fraction", "wide"])
def test_user_time_order_is_stable_lexsort(times):
  # "integer" takes the packed-key numpy sort, the others pyarrow's sort.
  rng = np.random.default_rng(0)
  n = 5000
  users = rng.integers(0, 300, n).astype(np.int32)
  t = rng.integers(0, 20, n).astype(np.float64)  # Many ties.
  if times == "fraction":
    t = t / 4
  elif times == "wide":
    t = t * 2.0**50  # Too wide to pack next to the user code.
  np.testing.assert_array_equal(tabular.user_time_order(users, t),
                                np.lexsort((np.arange(n), t, users)))
  np.testing.assert_array_equal(tabular.user_time_order(users, None),
                                np.lexsort((np.arange(n), users)))


# ------------------------------------------------------------------ dedup


def test_dedup_modes_on_a_small_file(tmp_path):
  f = _csv(tmp_path / "a.csv", ["user_id", "item_id", "timestamp", "rating"], [
      (1, 7, 50, 4),   # line 2
      (1, 7, 50, 3),   # exact duplicate of line 2 in user, item, time
      (1, 7, 20, 5),   # same pair, earlier in time
      (2, 7, 10, 1),
      (1, 8, 30, 2),
      (2, 7, 10, 1),   # exact duplicate of line 5
  ])
  expect = {
      "keep": [(1, 7, 50), (1, 7, 50), (1, 7, 20), (2, 7, 10), (1, 8, 30),
               (2, 7, 10)],
      "exact": [(1, 7, 50), (1, 7, 20), (2, 7, 10), (1, 8, 30)],
      "user_item": [(1, 7, 20), (2, 7, 10), (1, 8, 30)],
  }
  for mode, rows in expect.items():
    table, report = tabular.read_table(f, dedup=mode)
    assert _rows(table) == [(u, i, float(t)) for u, i, t in rows], mode
    assert report["dedup"] == mode
    assert report["duplicates_dropped"] == 6 - len(rows)
    assert report["rows_read"] == 6 and report["rows"] == len(rows)


def _dedup_reference(rows, mode):
  """Literal loops: which rows each mode keeps, in file order."""
  if mode == "keep":
    return list(rows)
  seen, keep = set(), set()
  if mode == "exact":
    for j, r in enumerate(rows):
      if r not in seen:
        seen.add(r)
        keep.add(j)
  else:
    by_time = sorted(range(len(rows)), key=lambda j: (rows[j][2], j))
    for j in by_time:
      if rows[j][:2] not in seen:
        seen.add(rows[j][:2])
        keep.add(j)
  return [r for j, r in enumerate(rows) if j in keep]


@pytest.mark.parametrize("mode", ["keep", "exact", "user_item"])
def test_dedup_matches_reference_loop(tmp_path, mode):
  rng = np.random.default_rng(1)
  u, i, t = _random_log(rng, 3000, users=40, items=15, time_span=8)
  names = np.array([f"user{k:03d}" for k in range(50)])
  rows = list(zip(names[u].tolist(), i.tolist(), t.astype(float).tolist()))
  f = _csv(tmp_path / "a.csv", ["user_id", "item_id", "timestamp"],
           [(a, b, int(c)) for a, b, c in rows])
  table, report = tabular.read_table(f, dedup=mode)
  want = _dedup_reference(rows, mode)
  assert _rows(table) == want
  assert report["duplicates_dropped"] == len(rows) - len(want)
  # Users stay numbered by first kept row, as preprocess expects.
  firsts = list(dict.fromkeys(r[0] for r in want))
  assert table.user_ids.tolist() == firsts
  _assert_same_dataset(tabular.preprocess_table(table, kcore=2),
                       pp.preprocess(table.to_interactions(), kcore=2))


def test_user_item_dedup_can_move_a_users_first_row(tmp_path):
  # bob's first line is a later repeat of a pair he had earlier in time.
  f = _csv(tmp_path / "a.csv", ["user_id", "item_id", "timestamp"],
           [("bob", 1, 9), ("ann", 1, 1), ("bob", 2, 3), ("bob", 1, 2)])
  table, _ = tabular.read_table(f, dedup="user_item")
  assert table.user_ids.tolist() == ["ann", "bob"]
  assert _rows(table) == [("ann", 1, 1.0), ("bob", 2, 3.0), ("bob", 1, 2.0)]


# ------------------------------------------------------------------ formats


def test_column_mapping_and_extra_columns(tmp_path):
  f = _write(tmp_path / "r.csv", " when ,rating,who,what\n5,4.0,u1,i9\n"
             "3,2.5,u2,i8\n")  # Header names are stripped.
  table, report = tabular.read_table(
      f, columns={"user": "who", "item": "what", "time": "when"})
  assert _rows(table) == [("u1", "i9", 5.0), ("u2", "i8", 3.0)]
  assert report["header"] == ["when", "rating", "who", "what"]
  assert report["columns"] == {"user": "who", "item": "what", "time": "when"}


def test_tsv_by_suffix_and_by_content(tmp_path):
  text = 'user_id\titem_id\ttimestamp\n"a\tb"\t1\t5\n'
  with pytest.raises(DataError):  # TSV has no quoting: 4 fields on line 2.
    tabular.read_table(_write(tmp_path / "q.tsv", text))
  rows = [("u1", "x,y", 2), ("u2", "z", 1)]  # A comma is data in TSV.
  for name in ("a.tsv", "a.txt"):
    f = _csv(tmp_path / name, ["user_id", "item_id", "timestamp"], rows, "\t")
    table, report = tabular.read_table(f)
    assert report["format"] == "tsv", name
    assert _rows(table) == [("u1", "x,y", 2.0), ("u2", "z", 1.0)]


def test_gzip_csv(tmp_path):
  f = tmp_path / "a.csv.gz"
  with gzip.open(f, "wt") as g:
    g.write("user_id,item_id,timestamp\n1,2,3\n4,5,6\n")
  table, report = tabular.read_table(f)
  assert report["format"] == "csv"
  assert _rows(table) == [(1, 2, 3.0), (4, 5, 6.0)]


def test_crlf_line_ends_and_byte_order_mark(tmp_path):
  f = tmp_path / "a.csv"
  f.write_bytes("\ufeffuser_id,item_id,timestamp\r\n1,2,3\r\n4,5,x\r\n"
                .encode("utf-8"))
  assert _error(f) == (f"{f}, line 3: column 'timestamp': 'x' is not a number "
                       "or ISO-8601 time")
  f.write_bytes("\ufeffuser_id,item_id,timestamp\r\n1,2,3\r\n".encode())
  table, report = tabular.read_table(f)
  assert report["header"] == ["user_id", "item_id", "timestamp"]
  assert _rows(table) == [(1, 2, 3.0)]


def test_parquet_matches_csv(tmp_path):
  pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow")
  pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow")
  users = ["b", "a", "b", "c"]
  items = [3, 1, 2, 3]
  secs = [20, 10, 10, 5]
  f_csv = _csv(tmp_path / "a.csv", ["u", "i", "t"], zip(users, items, secs))
  cols = {"user": "u", "item": "i", "time": "t"}
  want, _ = tabular.read_table(f_csv, columns=cols)
  for t_col in (pa.array(secs, pa.int64()),
                pa.array([s * 10**6 for s in secs], pa.timestamp("us")),
                pa.array([f"1970-01-01T00:00:{s:02d}Z" for s in secs])):
    f = tmp_path / "a.parquet"
    pq.write_table(pa.table({"u": users, "i": pa.array(items, pa.int32()),
                             "t": t_col}), f)
    table, report = tabular.read_table(f, columns=cols)
    assert report["format"] == "parquet"
    assert _rows(table) == _rows(want), t_col.type
  pq.write_table(pa.table({"u": ["a", None], "i": [1, 2], "t": [1, 2]}), f)
  with pytest.raises(DataError, match=r"a.parquet: row 2: column 'u': missing id"):
    tabular.read_table(f, columns=cols)


# ------------------------------------------------------------------ errors


def _error(path, **kw) -> str:
  with pytest.raises(DataError) as e:
    tabular.read_table(path, **kw)
  text = str(e.value)
  assert "\n" not in text
  return text


def test_malformed_time_names_file_line_and_column(tmp_path):
  # A blank line and a quoted newline before the bad row: lines, not rows.
  f = _write(tmp_path / "ratings.csv", 'userId,movieId,timestamp,title\n'
             '1,2,100,"a"\n\n3,4,200,"two\nlines"\n5,6,abc,"c"\n7,8,300,"d"\n')
  assert _error(f, columns=ML) == (
      f"{f}, line 6: column 'timestamp': 'abc' is not a number or ISO-8601 "
      "time")
  assert _error(f, columns=ML, time_format="numeric") == (
      f"{f}, line 6: column 'timestamp': 'abc' is not a number")


def test_malformed_row_far_into_the_file(tmp_path):
  # Past pyarrow's first 1 MB block: the row is found across chunks.
  lines = ["u,i,t"] + [f"{k % 97},{k % 89},{k}" for k in range(150_000)]
  lines[120_001] = "5,5,1e"
  f = _write(tmp_path / "big.csv", "\n".join(lines) + "\n")
  assert _error(f, columns={"user": "u", "item": "i", "time": "t"}) == (
      f"{f}, line 120002: column 't': '1e' is not a number or ISO-8601 time")


def test_mixed_time_kinds_and_bad_values(tmp_path):
  head = "user_id,item_id,timestamp\n"
  f = _write(tmp_path / "a.csv", head + "1,1,5\n1,2,2020-01-01\n")
  assert _error(f) == (
      f"{f}, line 3: column 'timestamp': '2020-01-01' is an ISO-8601 time, but "
      "the first data row's time is a number (time_format auto); a column "
      "holds one kind")
  f = _write(tmp_path / "b.csv", head + "1,1,2020-01-01\n1,2,2020-13-01\n")
  assert _error(f) == (f"{f}, line 3: column 'timestamp': '2020-13-01' is not "
                       "a number or ISO-8601 time")
  assert _error(f, time_format="iso8601") == (
      f"{f}, line 3: column 'timestamp': '2020-13-01' is not an ISO-8601 time")
  f = _write(tmp_path / "c.csv", head + "1,1,5\n1,2,nan\n")
  assert _error(f) == f"{f}, line 3: column 'timestamp': nan is not a finite time"
  f = _write(tmp_path / "d.csv", head + "1,1,5\n1,2,\n")
  assert _error(f) == (f"{f}, line 3: column 'timestamp': '' is not a number "
                       "or ISO-8601 time")


def test_bad_ids_and_row_width(tmp_path):
  head = "user_id,item_id,timestamp\n"
  f = _write(tmp_path / "a.csv", head + "1,1,5\n,2,6\n")
  assert _error(f) == f"{f}, line 3: column 'user_id': empty id"
  f = _write(tmp_path / "b.csv", head + "1,1,5\n1,2\n")
  assert _error(f) == f"{f}, line 3: 2 fields, the header has 3"
  f = _write(tmp_path / "c.csv", head + "1,1,5\n1,2,3,4\n")
  assert _error(f) == f"{f}, line 3: 4 fields, the header has 3"


def test_columns_found_by_name(tmp_path):
  # "" = the first header column, in header order, with a usual name (any case).
  f = _write(tmp_path / "a.csv", "rating,UserID,asin,item_id,Timestamp\n5,u1,A,x,3\n4,u1,B,y,2\n")
  table, report = tabular.read_table(f, columns={"user": "", "item": "", "time": ""})
  assert report["columns"] == {"user": "UserID", "item": "asin", "time": "Timestamp"}
  assert report["columns_rule"]["user"].startswith("auto")
  assert _rows(table) == [("u1", "A", 3.0), ("u1", "B", 2.0)]
  _, report = tabular.read_table(f, columns={"user": "", "item": "item_id", "time": ""})
  assert report["columns"]["item"] == "item_id" and report["columns_rule"]["item"] == "given"
  f = _write(tmp_path / "b.csv", "who,what,when\n1,2,3\n")
  assert _error(f, columns={"user": "", "item": "what"}) == (
      f"{f}, line 1: no user column found by name (looked for "
      + ", ".join(tabular.AUTO_COLUMNS["user"]) + "); the header's columns are "
      "['who', 'what', 'when']; name it with data.columns.user")


def test_missing_column_empty_file_and_header_only(tmp_path):
  f = _write(tmp_path / "a.csv", "userId,movieId,rating\n1,2,3\n")
  assert _error(f, columns=ML) == (
      f"{f}, line 1: missing column(s) 'timestamp' (time); the header's "
      "columns are ['userId', 'movieId', 'rating']")
  assert _error(_write(tmp_path / "e.csv", "")) == f"{tmp_path / 'e.csv'}: empty file"
  assert _error(_write(tmp_path / "n.csv", "\n\n")) == f"{tmp_path / 'n.csv'}: empty file"
  f = _write(tmp_path / "h.csv", "user_id,item_id,timestamp\n")
  assert _error(f) == f"{f}, line 1: no data rows after the header"
  assert _error(tmp_path / "nope.csv").endswith("nope.csv: file not found")
  with pytest.raises(ValueError, match="dedup"):
    tabular.read_table(f, dedup="first")


# ------------------------------------------------------------------ equality


@pytest.mark.parametrize("kcore", [0, 3])
def test_same_as_csv_module_reader_and_preprocess(tmp_path, kcore):
  rng = np.random.default_rng(2)
  u, i, t = _random_log(rng, 2000, users=60, items=80, time_span=30)
  f = _csv(tmp_path / "log.csv", ["user", "item", "timestamp"], zip(u, i, t))
  want = pp.preprocess(readers.read_csv(f), kcore=kcore)
  table, _ = tabular.read_table(
      f, columns={"user": "user", "item": "item", "time": "timestamp"})
  got = tabular.preprocess_table(table, kcore=kcore)
  _assert_same_dataset(got, want)
  assert len(got.report) == (4 if kcore else 3)


def test_string_ids_same_as_preprocess_with_kcore(tmp_path):
  rng = np.random.default_rng(3)
  u, i, t = _random_log(rng, 1500, users=50, items=30, time_span=5)
  f = _csv(tmp_path / "log.csv", ["user_id", "item_id", "timestamp"],
           zip([f"U{x}" for x in u], [f"item-{x}" for x in i], t))
  table, _ = tabular.read_table(f)
  for k in (0, 2, 25):
    _assert_same_dataset(tabular.preprocess_table(table, kcore=k),
                         pp.preprocess(table.to_interactions(), kcore=k))
  with pytest.raises(DataError, match="dataset empty after filtering"):
    tabular.preprocess_table(table, kcore=10_000)
