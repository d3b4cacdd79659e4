"""SASRec baseline on any dataset config: the same code path as FAME with one
expert and no facet heads (docs/protocol.md §1), the rest from the dataset config.

  python train.py --config configs/sasrec.py:beauty --workdir runs/beauty_sasrec
  python train.py --config configs/sasrec.py:beauty_text --workdir runs/beauty_sasrec_text

`<dataset>_text` is SASRec+text: the FAME+ config (its text pre-training and
training settings) with the plain last block, which separates what the text
brings from what the facet heads bring. With the protocol defaults this code
reproduces the reference PyTorch SASRec on Beauty (docs/findings.md#sasrec-reproduction).
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
  # Last LayerNorm at 1 (at 2 SASRec validated lower), 2 for SASRec+text on Beauty;
  # docs/findings.md#output-norm-scale
  c.model.output_norm_scale = 2.0 if dataset == "beauty_text" else 1.0
  if dataset == "sports":
    c.model.num_heads = 2  # 4 heads did not beat 2 on Sports; docs/findings.md#sasrec-heads
  return c
