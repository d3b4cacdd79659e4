"""FAME+ on Sports: text-enhanced facet-aware pre-training, then FAME training.

  python train.py --config configs/sports_text.py --workdir runs/sports_text
  python train.py --config configs/sasrec.py:sports_text --workdir runs/sports_sasrec_text   # SASRec+text

Stage 1 encodes every item's text once with the Flax MiniLM encoder (cached in
pretrain.text_cache_dir), trains one projection head per facet with
alternating supervised contrastive learning, and hands the heads' outputs to
FAME as its item embeddings (head h starts on facet h). Stage 2 is
configs/sports.py's training (Beauty's FAME+ recipe: d 128, slice projection,
F^h LayerNorm at 4, uniform gate, lr 2.5e-4; MoE in the last layer only;
docs/findings.md#text-pretraining) with the head count below. To run stage 2
from an existing stage-1 workdir:
  --config.pretrain.enabled=False --config.init.item_embeddings_from=<workdir>
"""

from configs import sports


def get_config():
  c = sports.get_config()
  c.pretrain.enabled = True  # Run stage 1 inside train.py.
  c.pretrain.text_cache_dir = "runs/text_cache/sports"  # Encode once per dataset.
  c.model.num_heads = 2  # One head per pre-training facet; docs/findings.md#facet-heads
  return c
