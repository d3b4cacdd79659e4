"""FAME on Amazon Sports_and_Outdoors (S3-Rec 5-core file, 35,598 users, 18,357 items).

  python train.py --config configs/sports.py --workdir runs/sports
  # SASRec baseline (same code path):
  python train.py --config configs/sports.py --workdir runs/sports_sasrec \
      --config.model.num_experts=1 --config.model.facet_heads=False

Data is read from ../shared/data (override with --config.data.path=...).
Settings are SPEC section 4 defaults until the variant study (issue 7) picks
tuned values on validation; see results/ and README for measured numbers.
"""

from configs.base import get_base_config

_ROOT = "../shared/data/sports"


def get_config():
  c = get_base_config()
  c.data.format = "s3rec"  # `user item item ...` lines, chronological.
  c.data.name = "sports"
  c.data.path = f"{_ROOT}/Sports_and_Outdoors.txt"
  c.data.item_text_path = f"{_ROOT}/Sports_and_Outdoors_item_text.jsonl"  # Short phrase, brand, attribute names (no titles).
  c.data.attributes_path = f"{_ROOT}/Sports_and_Outdoors_item2attributes.json"
  c.data.attribute_names_path = f"{_ROOT}/Sports_and_Outdoors_attribute_names.tsv"
  c.model.dropout = 0.5  # SPEC default for Amazon.
  c.pretrain.facets = ("category", "brand")  # One facet per head.
  return c
