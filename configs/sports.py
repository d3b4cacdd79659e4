"""FAME on Amazon Sports_and_Outdoors (S3-Rec 5-core file, 35,598 users, 18,357 items).

  python train.py --config configs/sports.py --workdir runs/sports
  python train.py --config configs/sasrec.py:sports --workdir runs/sports_sasrec   # SASRec

Data is read from ../shared/data (override with --config.data.path=...). Each
setting that differs from configs/base.py links the finding that chose it
(on validation NDCG@10).
"""

from configs.base import get_base_config

_ROOT = "../shared/data/sports"


def get_config():
  c = get_base_config()
  c.data.format = "s3rec"  # `user item item ...` lines, chronological.
  c.data.name = "sports"
  c.data.path = f"{_ROOT}/Sports_and_Outdoors.txt"
  # Short phrase, brand, attribute names (no titles).
  c.data.item_text_path = f"{_ROOT}/Sports_and_Outdoors_item_text.jsonl"
  c.data.attributes_path = f"{_ROOT}/Sports_and_Outdoors_item2attributes.json"
  c.data.attribute_names_path = f"{_ROOT}/Sports_and_Outdoors_attribute_names.tsv"
  c.model.hidden_size = 128  # Better for every Sports model, SASRec too; docs/findings.md#width
  c.model.num_heads = 4  # 4 facet heads beat 2 seed for seed; docs/findings.md#facet-heads
  c.model.facet_item_proj = "slice"  # Beats the learned W_f^h; docs/findings.md#slice-projection
  c.model.output_norm_scale = 4.0  # = H, undoes the gate's 1/H; docs/findings.md#output-norm-scale
  c.model.gate = "uniform"  # The learned gate routes hard onto one head; docs/findings.md#uniform-gate
  c.train.learning_rate = 2.5e-4  # Best at d 128 for every Sports model; docs/findings.md#learning-rate
  c.pretrain.facets = ("category", "brand")  # FAME+ facets, one per head (configs/sports_text.py).
  return c
