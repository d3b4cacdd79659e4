"""Readers, preprocessing and the split on small hand-written files."""

from __future__ import annotations

import gzip
import json

import ml_collections
import numpy as np
import pytest

from fame_jax.data import DataError, load_dataset
from fame_jax.data import preprocess as pp
from fame_jax.data import readers
from fame_jax.data.split import leave_one_out


def _cfg(**kw) -> ml_collections.ConfigDict:
  base = {"format": "s3rec", "name": "t", "path": "", "item_text_path": "",
          "item_text_id_field": "item_id", "attributes_path": "",
          "attribute_names_path": "", "metadata_path": "", "kcore": 0}
  base.update({k: str(v) if hasattr(v, "parent") else v for k, v in kw.items()})
  return ml_collections.ConfigDict(base)


def _write(path, text: str):
  path.write_text(text, encoding="utf-8")
  return path


def _seqs(ds):
  return [s.tolist() for s in ds.sequences]


# ------------------------------------------------------------------ s3rec


def test_s3rec_keeps_ids_and_order(tmp_path):
  f = _write(tmp_path / "a.txt", "1 1 2 3\n2 3 1 2 4\n")
  ds = load_dataset(_cfg(path=f))
  assert _seqs(ds) == [[1, 2, 3], [3, 1, 2, 4]]
  assert ds.num_items == 4
  assert list(ds.user_raw_ids) == ["1", "2"]
  assert list(ds.item_raw_ids) == ["<pad>", "1", "2", "3", "4"]
  assert [r["step"] for r in ds.report] == ["read", "renumber_items"]
  assert ds.report[-1]["ids_changed"] == 0


def test_renumber_preserves_ascending_integer_order(tmp_path):
  f = _write(tmp_path / "a.txt", "7 50 10 30\n3 30 50\n")
  ds = load_dataset(_cfg(path=f))
  # Raw 10 < 30 < 50 -> 1, 2, 3; users stay in file order.
  assert _seqs(ds) == [[3, 1, 2], [2, 3]]
  assert list(ds.item_raw_ids) == ["<pad>", "10", "30", "50"]
  assert list(ds.user_raw_ids) == ["7", "3"]


@pytest.mark.parametrize("text,line,problem", [
    ("", None, "empty file"),
    ("1 1 2\n2\n", 2, "malformed line"),
    ("1 1 2\n2 x 3\n", 2, "non-integer item id"),
    ("1 1 2\nu 2 3\n", 2, "non-integer user id"),
    ("1 1 2\n2 3 0\n", 2, "not positive"),
    ("1 1 2\n2 -4 3\n", 2, "not positive"),
    ("1 1 2\n\n2 3 4\n", 2, "malformed line"),
    ("1 1 2\n2 3 4\n1 5 6\n", 3, "appears again"),
])
def test_s3rec_bad_input(tmp_path, text, line, problem):
  f = _write(tmp_path / "bad_s3.txt", text)
  with pytest.raises(DataError) as e:
    load_dataset(_cfg(path=f))
  msg = str(e.value)
  assert "bad_s3.txt" in msg and problem in msg
  if line is not None:
    assert f"line {line}:" in msg
  assert e.value.line == line


# ------------------------------------------------------------------ csv


def test_csv_sorts_by_timestamp_stably(tmp_path):
  f = _write(tmp_path / "i.csv",
             "user,item,timestamp\n1,5,30\n1,6,10\n2,5,1\n1,7,10\n2,6,0\n")
  ds = load_dataset(_cfg(format="csv", path=f))
  # User 1: t=10 (6, then 7 by file order), t=30 (5). Ids 5,6,7 -> 1,2,3.
  assert _seqs(ds) == [[2, 3, 1], [2, 1]]
  # The columnar reader's report first, then the shared preprocessing steps.
  assert [r["step"] for r in ds.report] == ["read_table", "read", "sort_by_timestamp",
                                            "renumber_items"]
  assert ds.report[0]["columns"] == {"user": "user", "item": "item", "time": "timestamp"}
  assert ds.report[2]["interactions_moved"] > 0


def test_csv_string_ids_and_iso_times(tmp_path):
  f = _write(tmp_path / "i.csv", "user_id,item_id,timestamp\nuser_196,B7,2021-03-01T10:00:00Z\n"
             "user_196,A3,2021-02-01\nuser_2,A3,2021-01-05T00:00:00+01:00\n")
  ds = load_dataset(_cfg(format="csv", path=f))
  assert _seqs(ds) == [[1, 2], [1]]
  assert list(ds.user_raw_ids) == ["user_196", "user_2"]
  assert list(ds.item_raw_ids) == ["<pad>", "A3", "B7"]
  assert ds.report[1]["user_id_type"] == ds.report[1]["item_id_type"] == "str"


@pytest.mark.parametrize("text,line,problem", [
    ("user,item\n1,2\n", 1, "no time column found by name"),
    ("user,item,timestamp\n", 1, "no data rows"),
    ("user,item,timestamp\n1,2,3\n1,2\n", 3, "2 fields, the header has 3"),
    ("user,item,timestamp\n1,2,3\n1,2,soon\n", 3, "column 'timestamp': 'soon' is not a number"),
    ("user,item,timestamp\n1,,3\n", 2, "column 'item': empty id"),
])
def test_csv_bad_input(tmp_path, text, line, problem):
  f = _write(tmp_path / "bad.csv", text)
  with pytest.raises(DataError, match=rf"bad\.csv, line {line}: .*{problem}"):
    load_dataset(_cfg(format="csv", path=f))


# ------------------------------------------------------------------ movielens


def test_movielens_dat_with_movies(tmp_path):
  _write(tmp_path / "ratings.dat",
         "1::20::5::300\n1::10::3::100\n2::10::4::50\n2::30::4::60\n")
  # Movie 40 was never rated: allowed (catalog file).
  (tmp_path / "movies.dat").write_bytes(
      "10::Toy Story (1995)::Animation|Comedy\n20::Caf\xe9 (2001)::Drama\n"
      "30::No Year::(no genres listed)\n40::Unrated (1990)::Drama\n"
      .encode("latin-1"))
  ds = load_dataset(_cfg(format="movielens", path=tmp_path))
  assert _seqs(ds) == [[1, 2], [1, 3]]
  assert ds.item_meta["title"] == [None, "Toy Story (1995)", "Caf\xe9 (2001)",
                                   "No Year"]
  assert ds.item_meta["genres"][1] == ["Animation", "Comedy"]
  assert ds.item_meta["genres"][3] == []
  assert ds.item_meta["year"] == [None, 1995, 2001, None]


def test_movielens_csv(tmp_path):
  _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n"
         "5,2,4.0,20\n5,1,3.5,10\n")
  _write(tmp_path / "movies.csv", 'movieId,title,genres\n'
         '1,"Heat, The (1995)",Action|Crime\n2,Up (2009),Animation\n')
  ds = load_dataset(_cfg(format="movielens", path=tmp_path / "ratings.csv"))
  assert _seqs(ds) == [[1, 2]]
  assert ds.item_meta["title"][1] == "Heat, The (1995)"
  assert ds.item_meta["year"][1] == 1995


@pytest.mark.parametrize("fname,text,line,problem", [
    ("ratings.dat", "1::2::3\n", 1, "malformed line"),
    ("ratings.dat", "1::2::3::4\n1::b::3::4\n", 2, "non-integer movie id"),
    ("movies.dat", "2::A (1999)\n", 1, "malformed line"),
    ("movies.dat", "2::A (1999)::Drama\n2::B (1999)::Drama\n", 2, "duplicate"),
])
def test_movielens_bad_input(tmp_path, fname, text, line, problem):
  _write(tmp_path / "ratings.dat", "1::2::3::4\n")
  _write(tmp_path / "movies.dat", "2::A (1999)::Drama\n")
  _write(tmp_path / fname, text)
  with pytest.raises(DataError, match=rf"{fname}, line {line}: .*{problem}"):
    load_dataset(_cfg(format="movielens", path=tmp_path))


# ------------------------------------------------------------------ amazon


def test_amazon_gz_reviews_and_literal_meta(tmp_path):
  reviews = [
      {"reviewerID": "U2", "asin": "B", "unixReviewTime": 5},
      {"reviewerID": "U1", "asin": "C", "unixReviewTime": 9},
      {"reviewerID": "U1", "asin": "A", "unixReviewTime": 3},
  ]
  with gzip.open(tmp_path / "r.json.gz", "wt") as f:
    f.write("\n".join(json.dumps(r) for r in reviews) + "\n")
  _write(tmp_path / "meta.json",
         # 2014 meta: Python literal with single quotes; 'Z' is unreviewed.
         "{'asin': 'A', 'title': 'Lipstick', 'categories': "
         "[['Beauty', 'Makeup'], ['Beauty', 'Lips']], 'brand': 'X'}\n"
         '{"asin": "B", "title": "Brush", "price": 3.5}\n'
         "{'asin': 'Z', 'title': 'Other'}\n")
  ds = load_dataset(_cfg(format="amazon", path=tmp_path / "r.json.gz",
                         metadata_path=tmp_path / "meta.json"))
  assert list(ds.user_raw_ids) == ["U2", "U1"]
  assert _seqs(ds) == [[2], [1, 3]]  # A, B, C -> 1, 2, 3; U1 sorted by time.
  assert ds.item_meta["title"] == [None, "Lipstick", "Brush", None]
  assert ds.item_meta["categories"][1] == ["Beauty", "Makeup", "Lips"]
  assert ds.item_meta["price"][2] == "3.5"


@pytest.mark.parametrize("text,line,problem", [
    ('{"reviewerID": "U", "asin": "A"}\n', 1, "missing required field 'unixReviewTime'"),
    ('{"reviewerID": "U", "asin": "A", "unixReviewTime": 1}\nnot json\n', 2,
     "malformed line"),
    ("__import__('os').system('true')\n", 1, "malformed line"),
])
def test_amazon_bad_input(tmp_path, text, line, problem):
  f = _write(tmp_path / "rev.json", text)
  with pytest.raises(DataError, match=rf"rev\.json, line {line}: .*{problem}"):
    load_dataset(_cfg(format="amazon", path=f))


# ------------------------------------------------------------------ recbole


def test_recbole_inter_and_item(tmp_path):
  d = tmp_path / "toy"
  d.mkdir()
  _write(d / "toy.inter", "user_id:token\titem_id:token\trating:float\t"
         "timestamp:float\nu1\ti2\t5\t20\nu1\ti1\t4\t10\nu2\ti2\t3\t1\n")
  _write(d / "toy.item", "item_id:token\ttitle:token_seq\tprice:float\n"
         "i1\tred hat\t2.5\ni2\tblue shoe\t\ni9\tunused\t1\n")
  ds = load_dataset(_cfg(format="recbole", path=d))
  assert _seqs(ds) == [[1, 2], [2]]
  assert ds.item_meta["title"] == [None, ["red", "hat"], ["blue", "shoe"]]
  assert ds.item_meta["price"] == [None, 2.5, None]


def test_recbole_missing_column(tmp_path):
  f = _write(tmp_path / "x.inter", "user_id:token\tts:float\nu\t1\n")
  with pytest.raises(DataError, match=r"x\.inter, line 1: missing required "
                     r"column\(s\) \['item_id'\]"):
    load_dataset(_cfg(format="recbole", path=f))


# ------------------------------------------------------------------ item text / attributes


def _s3(tmp_path):
  return _write(tmp_path / "s.txt", "1 1 2 3\n2 2 3\n")


def test_item_text_and_attributes(tmp_path):
  text = _write(tmp_path / "t.jsonl", "".join(
      json.dumps({"item_id": i, "other_id": o, "title": f"T{i}",
                  "attribute_ids": a}) + "\n"
      for i, o, a in [(1, 3, [7]), (2, None, [8, 7]), (3, 1, [])]))
  attrs = _write(tmp_path / "a.json", json.dumps(
      {"1": [7], "2": [8, 7], "3": []}))
  names = _write(tmp_path / "n.tsv", "attribute_id\tname\n7\tRed \"x\"\n8\tBig\n")
  ds = load_dataset(_cfg(path=_s3(tmp_path), item_text_path=text,
                         attributes_path=attrs, attribute_names_path=names))
  assert ds.item_meta["title"] == [None, "T1", "T2", "T3"]
  assert ds.item_meta["other_id"] == [None, 3, None, 1]  # Verbatim keys.
  assert ds.item_meta["attribute_ids"] == [None, ["7"], ["8", "7"], []]
  assert ds.item_meta["attribute_names"][2] == ["Big", 'Red "x"']
  # Another id field: null rows are not in that id space and are left out.
  ds = load_dataset(_cfg(path=_s3(tmp_path), item_text_path=text,
                         item_text_id_field="other_id"))
  assert ds.item_meta["title"] == [None, "T3", None, "T1"]


@pytest.mark.parametrize("kind,content,line,problem", [
    ("text", '{"item_id": 1}\n{"item_id": 9}\n', 2, "metadata for unknown item 9"),
    ("text", '{"item_id": 1}\n{"title": "x"}\n', 2, "missing required field 'item_id'"),
    ("text", '{"item_id": 1}\n{"item_id": 1}\n', 2, "duplicate metadata"),
    ("text", '{"item_id": 1}\n{"item_id": 0}\n', 2, "not positive"),
    ("text", '{"item_id": 1}\n{oops\n', 2, "malformed JSON"),
    ("attrs", '{"1": [1], "4": [2]}', 1, "metadata for unknown item 4"),
    ("attrs", '{"1": [1], "x": [2]}', 1, "non-integer"),
])
def test_metadata_bad_input(tmp_path, kind, content, line, problem):
  f = _write(tmp_path / f"meta_{kind}.json", content)
  key = "item_text_path" if kind == "text" else "attributes_path"
  with pytest.raises(DataError, match=rf"meta_{kind}\.json, line {line}: .*{problem}"):
    load_dataset(_cfg(path=_s3(tmp_path), **{key: f}))


def test_attribute_names_missing_id(tmp_path):
  attrs = _write(tmp_path / "a.json", '{"1": [1, 5]}')
  names = _write(tmp_path / "names.tsv", "attribute_id\tname\n1\tRed\n")
  with pytest.raises(DataError, match=r"names\.tsv: no name for attribute id"):
    load_dataset(_cfg(path=_s3(tmp_path), attributes_path=attrs,
                      attribute_names_path=names))
  bad = _write(tmp_path / "bad.tsv", "id\tname\n1\tRed\n")
  with pytest.raises(DataError, match=r"bad\.tsv, line 1: missing required column"):
    load_dataset(_cfg(path=_s3(tmp_path), attributes_path=attrs,
                      attribute_names_path=bad))


# ------------------------------------------------------------------ k-core, split


def test_kcore_iterative_exact():
  # k=2: only item 40 has a single interaction; removing it leaves every user
  # and item with exactly 2, so the 2-core is everything else.
  users = ["A", "A", "A", "B", "B", "C", "C", "D", "D"]
  items = [10, 30, 40, 10, 20, 30, 50, 20, 50]
  inter = readers.Interactions("k", "mem", np.asarray(users, dtype=object),
                               np.asarray(items, dtype=np.int64), None)
  ds = pp.preprocess(inter, kcore=2)
  assert list(ds.user_raw_ids) == ["A", "B", "C", "D"]
  assert list(ds.item_raw_ids) == ["<pad>", "10", "20", "30", "50"]
  assert _seqs(ds) == [[1, 3], [1, 2], [3, 4], [2, 4]]
  # k=3: nothing has 3 -> empty after filtering is an error naming the file.
  with pytest.raises(DataError, match=r"mem: dataset empty after filtering"):
    pp.preprocess(inter, kcore=3)


def test_kcore_cascades():
  # k=2: item 9 occurs once -> U3 drops to 1 interaction -> U3 out -> item 7
  # (U1, U3) drops to 1 -> out -> U1 drops to 1 -> out -> item 5 (U1,U2,U4)
  # keeps 2. Result: U2 [5, 6], U4 [5, 6].
  users = ["U1", "U1", "U2", "U2", "U3", "U3", "U4", "U4"]
  items = [5, 7, 5, 6, 7, 9, 5, 6]
  inter = readers.Interactions("k", "mem", np.asarray(users, dtype=object),
                               np.asarray(items, dtype=np.int64), None)
  keep, passes = pp.kcore_mask(np.asarray([0, 0, 1, 1, 2, 2, 3, 3]),
                               np.asarray([0, 2, 0, 1, 2, 3, 0, 1]), 2)
  assert keep.tolist() == [False, False, True, True, False, False, True, True]
  # Four removing passes (9, U3, 7, U1) plus the one that finds no change: a
  # single-pass filter would wrongly keep U1 and item 7.
  assert passes == 5
  ds = pp.preprocess(inter, kcore=2)
  assert list(ds.user_raw_ids) == ["U2", "U4"]
  assert list(ds.item_raw_ids) == ["<pad>", "5", "6"]
  assert _seqs(ds) == [[1, 2], [1, 2]]
  step = ds.report[-2]
  assert step["step"] == "kcore(2)"
  assert (step["users_before"], step["users_after"]) == (4, 2)
  assert (step["items_before"], step["items_after"]) == (4, 2)
  assert (step["interactions_before"], step["interactions_after"]) == (8, 4)


def test_leave_one_out_exact(tmp_path):
  f = _write(tmp_path / "s.txt", "1 1 2 3 4 5\n2 6 7 3\n3 2 8 9\n")
  ds = load_dataset(_cfg(path=f))
  sp = leave_one_out(ds.sequences)
  assert sp.users.tolist() == [0, 1, 2] and sp.dropped_users == 0
  assert [t.tolist() for t in sp.train] == [[1, 2, 3], [6], [2]]
  assert sp.valid_targets.tolist() == [4, 7, 8]
  assert [t.tolist() for t in sp.test_inputs] == [[1, 2, 3, 4], [6, 7], [2, 8]]
  assert sp.test_targets.tolist() == [5, 3, 9]
  # Protocol leak check: no held-out target is a training target of its user.
  for u, train in enumerate(sp.train):
    assert sp.valid_targets[u] not in train
    assert sp.test_targets[u] not in train
  short = leave_one_out([np.array([1, 2], np.int32)] + list(ds.sequences))
  assert short.dropped_users == 1 and short.users.tolist() == [1, 2, 3]


def test_unknown_format():
  with pytest.raises(ValueError, match="data.format must be one of"):
    load_dataset(_cfg(format="xml", path="x"))
