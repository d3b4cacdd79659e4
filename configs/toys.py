"""FAME on Amazon Toys_and_Games (S3-Rec 5-core file, 19,412 users, 11,924 items; the file may be absent).

  python train.py --config configs/toys.py --workdir runs/toys
  python train.py --config configs/sasrec.py:toys --workdir runs/toys_sasrec   # SASRec

Data is read from ../shared/data (override with --config.data.path=...). The
configs/base.py settings, not tuned on this dataset.
"""

from configs.base import get_base_config

_ROOT = "../shared/data/toys"


def get_config():
  c = get_base_config()
  c.data.format = "s3rec"  # `user item item ...` lines, chronological.
  c.data.name = "toys"
  c.data.path = f"{_ROOT}/Toys_and_Games.txt"
  # Titles, categories, brand attribute id.
  c.data.item_text_path = f"{_ROOT}/Toys_and_Games_item_text.jsonl"
  c.data.attributes_path = f"{_ROOT}/Toys_and_Games_item2attributes.json"
  c.data.attribute_names_path = f"{_ROOT}/Toys_and_Games_attribute_names.tsv"
  c.pretrain.facets = ("category", "brand_attribute_id")  # FAME+ facets, one per head.
  return c
