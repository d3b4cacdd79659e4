"""FAME on MovieLens-1M (6,040 users, 3,416 items with >= 5 ratings).

  python train.py --config configs/ml1m.py --workdir runs/ml1m
  python train.py --config configs/sasrec.py:ml1m --workdir runs/ml1m_sasrec   # SASRec

Uses ../shared/data/ml-1m/ml-1m_item5_3416.txt (the SASRec/S3-Rec statistics);
its item text rows are matched through the `item5_3416_id` field. Each setting
that differs from configs/base.py links the finding that chose it.
"""

from configs.base import get_base_config

_ROOT = "../shared/data/ml-1m"


def get_config():
  c = get_base_config()
  c.data.format = "s3rec"  # `user item item ...` lines, chronological.
  c.data.name = "ml1m"
  c.data.path = f"{_ROOT}/ml-1m_item5_3416.txt"
  c.data.item_text_path = f"{_ROOT}/ml-1m_item_text.jsonl"  # Title, year, genres.
  c.data.item_text_id_field = "item5_3416_id"  # Ids of the 3,416-item file.
  c.data.max_len = 200  # Long MovieLens histories (SASRec uses 200).
  c.model.max_len = 200  # Position table covers the window.
  c.model.dropout = 0.2  # Protocol default for MovieLens; docs/findings.md#dropout
  c.model.gate = "uniform"  # Beat the learned gate seed for seed; docs/findings.md#uniform-gate
  c.train.batch_size = 64  # 25 updates an epoch at 256 is too few; docs/findings.md#ml1m
  c.pretrain.facets = ("genres", "decade")  # FAME+ facets, one per head (configs/ml1m_text.py).
  return c
