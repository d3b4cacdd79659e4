"""FAME on Amazon Toys_and_Games (S3-Rec 5-core file, 19,412 users, 11,924 items; the file may be absent here).

  python train.py --config configs/toys.py --workdir runs/toys
  # SASRec baseline (same code path):
  python train.py --config configs/toys.py --workdir runs/toys_sasrec \
      --config.model.num_experts=1 --config.model.facet_heads=False

Data is read from ../shared/data (override with --config.data.path=...).
SPEC section 4 defaults, plus the one setting the Beauty variant study found
clearly better (below); not yet verified on this dataset.
"""

from configs.base import get_base_config

_ROOT = "../shared/data/toys"


def get_config():
  c = get_base_config()
  c.data.format = "s3rec"  # `user item item ...` lines, chronological.
  c.data.name = "toys"
  c.data.path = f"{_ROOT}/Toys_and_Games.txt"
  c.data.item_text_path = f"{_ROOT}/Toys_and_Games_item_text.jsonl"  # Titles, categories, brand attribute id.
  c.data.attributes_path = f"{_ROOT}/Toys_and_Games_item2attributes.json"
  c.data.attribute_names_path = f"{_ROOT}/Toys_and_Games_attribute_names.tsv"
  c.model.dropout = 0.5  # SPEC default for Amazon.
  # Selector init of W_f^h: on Beauty it doubled early validation NDCG@10 over
  # the normal init (results/beauty/probe8: 0.0441 vs 0.0239 at epoch 8).
  c.model.facet_proj_init = "selector"
  c.pretrain.facets = ("category", "brand_attribute_id")  # One facet per head.
  return c
