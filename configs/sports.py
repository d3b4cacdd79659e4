"""FAME on Amazon Sports_and_Outdoors (S3-Rec 5-core file, 35,598 users, 18,357 items).

  python train.py --config configs/sports.py --workdir runs/sports
  # SASRec baseline (same code path):
  python train.py --config configs/sports.py --workdir runs/sports_sasrec \
      --config.model.num_experts=1 --config.model.facet_heads=False

Data is read from ../shared/data (override with --config.data.path=...).
SPEC section 4 defaults, plus the one setting the Beauty variant study found
clearly better (below); not yet verified on this dataset.
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
  # Selector init of W_f^h: on Beauty it doubled early validation NDCG@10 over
  # the normal init (results/beauty/probe8: 0.0441 vs 0.0239 at epoch 8).
  c.model.facet_proj_init = "selector"
  c.pretrain.facets = ("category", "brand")  # One facet per head.
  return c
