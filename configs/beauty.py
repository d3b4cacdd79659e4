"""FAME on Amazon Beauty (S3-Rec 5-core file, 22,363 users, 12,101 items).

  python train.py --config configs/beauty.py --workdir runs/beauty
  # SASRec baseline (same code path):
  python train.py --config configs/beauty.py --workdir runs/beauty_sasrec \
      --config.model.num_experts=1 --config.model.facet_heads=False

Data is read from ../shared/data (override with --config.data.path=...).
Settings are SPEC section 4 defaults until the variant study (issue 7) picks
tuned values on validation; see results/ and README for measured numbers.
"""

from configs.base import get_base_config

_ROOT = "../shared/data/beauty"


def get_config():
  c = get_base_config()
  c.data.format = "s3rec"  # `user item item ...` lines, chronological.
  c.data.name = "beauty"
  c.data.path = f"{_ROOT}/Beauty.txt"
  c.data.item_text_path = f"{_ROOT}/Beauty_item_text.jsonl"  # Titles, brand, categories.
  c.data.attributes_path = f"{_ROOT}/Beauty_item2attributes.json"
  c.data.attribute_names_path = f"{_ROOT}/Beauty_attribute_names.tsv"
  c.model.dropout = 0.5  # SPEC default for Amazon.
  c.pretrain.facets = ("leaf_category", "brand")  # One facet per head.
  return c
