"""FAME on Amazon Toys_and_Games (S3-Rec 5-core file, 19,412 users, 11,924 items; the file may be absent).

  python train.py --config configs/toys.py --workdir runs/toys
  python train.py --config configs/sasrec.py:toys --workdir runs/toys_sasrec   # SASRec

Data is read from ../shared/data/toys, with the S3-Rec file names (override
with --config.data.path=...). Not tuned on Toys: each setting that differs
from configs/base.py is one that Beauty and Sports both chose (on validation
NDCG@10), with the finding that chose it; what only Beauty took (MoE in every
layer) is left at the base value.
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
  c.model.hidden_size = 128  # Better for every Beauty and Sports model, SASRec too; docs/findings.md#width
  c.model.num_heads = 4  # 4 facet heads beat 2 on Beauty and Sports; docs/findings.md#facet-heads
  c.model.facet_item_proj = "slice"  # Beats the learned W_f^h on both; docs/findings.md#slice-projection
  c.model.output_norm_scale = 4.0  # = H, undoes the gate's 1/H; docs/findings.md#output-norm-scale
  c.model.gate = "uniform"  # The learned gate routes onto one head on both; docs/findings.md#uniform-gate
  c.train.learning_rate = 2.5e-4  # Best at d 128 on Beauty, kept by Sports; docs/findings.md#learning-rate
  c.pretrain.facets = ("category", "brand_attribute_id")  # FAME+ facets, one per head.
  return c
