"""SASRec baseline on any dataset config: the same code path as FAME with E=1
and no facet heads (SPEC section 1), everything else from the dataset config.

  python train.py --config configs/sasrec.py:beauty --workdir runs/beauty_sasrec
  python train.py --config configs/sasrec.py:ml1m --workdir runs/ml1m_sasrec
  python train.py --config configs/sasrec.py:beauty_text --workdir runs/beauty_sasrec_text

`<dataset>_text` is SASRec+text: the FAME+ config (its text pre-training and
training settings) with the plain last block, i.e. FAME+ minus its query
experts and facet heads -- the baseline that separates what the text brings
from what the facet heads bring (scripts/make_tables.py's SASRec+text row).

Beauty evidence (results/beauty/full/sasrec_seed*): with the SPEC section 4
settings it reproduces the spec's independent PyTorch SASRec (best epoch 26,
test HR@10 0.0914 / NDCG@10 0.0562 vs 0.0918 / 0.0560).
"""

import importlib

_DATASETS = ("beauty", "sports", "toys", "ml1m", "default", "tiny",
             "beauty_text", "sports_text", "ml1m_text")


def get_config(dataset: str = "beauty"):
  if dataset not in _DATASETS:
    raise ValueError(f"configs/sasrec.py:{dataset}: unknown dataset config; choose from {_DATASETS}")
  c = importlib.import_module(f"configs.{dataset}").get_config()
  c.model.num_experts = 1  # No query experts.
  c.model.facet_heads = False  # Concat heads + W_O: a standard transformer last block.
  return c
