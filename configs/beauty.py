"""FAME on Amazon Beauty (S3-Rec 5-core file, 22,363 users, 12,101 items).

  python train.py --config configs/beauty.py --workdir runs/beauty
  python train.py --config configs/sasrec.py:beauty --workdir runs/beauty_sasrec   # SASRec

Data is read from ../shared/data (override with --config.data.path=...). Each
setting that differs from configs/base.py links the finding that chose it
(on validation NDCG@10).
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
  c.model.hidden_size = 128  # Better for every Beauty model, SASRec too; docs/findings.md#width
  c.model.num_heads = 4  # 4 facet heads beat 2 seed for seed; docs/findings.md#facet-heads
  c.model.facet_item_proj = "slice"  # Beats the learned W_f^h; docs/findings.md#slice-projection
  c.model.output_norm_scale = 4.0  # = H, undoes the gate's 1/H; docs/findings.md#output-norm-scale
  c.model.gate = "uniform"  # The learned gate collapses onto one head; docs/findings.md#uniform-gate
  c.model.moe_all_layers = True  # Beat the last layer only on every seed; docs/findings.md#moe-all-layers
  c.train.learning_rate = 2.5e-4  # Best at d 128 for every Beauty model; docs/findings.md#learning-rate
  c.pretrain.facets = ("leaf_category", "brand")  # FAME+ facets, one per head (configs/beauty_text.py).
  return c
