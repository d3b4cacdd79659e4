"""Readers on the staged benchmark files in ../shared/data (skipped if absent)."""

from __future__ import annotations

import json

import ml_collections
import pytest

from fame_jax.data import load_dataset
from fame_jax.data.split import leave_one_out


def _cfg(path, item_text="", attrs="", names="", id_field="item_id"):
  return ml_collections.ConfigDict({
      "format": "s3rec", "name": "x", "path": str(path),
      "item_text_path": str(item_text), "item_text_id_field": id_field,
      "attributes_path": str(attrs), "attribute_names_path": str(names),
      "metadata_path": "", "kcore": 0})


def test_beauty(shared_data_dir):
  d = shared_data_dir / "beauty"
  ds = load_dataset(_cfg(d / "Beauty.txt", d / "Beauty_item_text.jsonl",
                         d / "Beauty_item2attributes.json",
                         d / "Beauty_attribute_names.tsv"))
  assert (ds.num_users, ds.num_items, ds.num_interactions) == (
      22_363, 12_101, 198_502)
  assert ds.item_meta["title"][1].startswith("OPI Nail Lacquer")
  assert ds.item_meta["asin"][1] == "B004756YJA"
  assert ds.item_meta["attribute_names"][1] == ["OPI", "Makeup", "Nails",
                                                "Nail Polish"]
  assert all(t is not None for t in ds.item_meta["title"][1:])
  assert ds.report[-1]["ids_changed"] == 0  # S3-Rec ids kept exactly.
  assert leave_one_out(ds.sequences).dropped_users == 0  # 5-core.


def test_sports(shared_data_dir):
  d = shared_data_dir / "sports"
  ds = load_dataset(_cfg(d / "Sports_and_Outdoors.txt",
                         d / "Sports_and_Outdoors_item_text.jsonl",
                         d / "Sports_and_Outdoors_item2attributes.json",
                         d / "Sports_and_Outdoors_attribute_names.tsv"))
  assert (ds.num_users, ds.num_items, ds.num_interactions) == (
      35_598, 18_357, 296_337)
  assert ds.item_meta["brand"][1] == "Ghost"


def test_ml1m_maps_metadata_by_item5_3416_id(shared_data_dir):
  d = shared_data_dir / "ml-1m"
  text = d / "ml-1m_item_text.jsonl"
  ds = load_dataset(_cfg(d / "ml-1m_item5_3416.txt", text,
                         id_field="item5_3416_id"))
  assert (ds.num_users, ds.num_items, ds.num_interactions) == (
      6_040, 3_416, 999_611)
  rows = [json.loads(l) for l in text.read_text().splitlines()]
  # A movie whose compact id differs from its 3,416-space id: the title must
  # follow item5_3416_id, not item_id.
  row = next(r for r in rows if r["item5_3416_id"] not in (None, r["item_id"]))
  assert ds.item_meta["title"][row["item5_3416_id"]] == row["title"]
  assert ds.item_meta["item5_3416_id"][1:] == list(range(1, 3_417))
  assert all(t is not None for t in ds.item_meta["title"][1:])


def test_ml1m_wrong_id_field_is_an_error(shared_data_dir):
  from fame_jax.data import DataError
  d = shared_data_dir / "ml-1m"
  # item_id runs to 3,706: rows for unknown items reveal the mismatch.
  with pytest.raises(DataError, match=r"ml-1m_item_text\.jsonl, line \d+: "
                     r"metadata for unknown item 3417"):
    load_dataset(_cfg(d / "ml-1m_item5_3416.txt", d / "ml-1m_item_text.jsonl"))
