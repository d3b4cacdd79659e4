"""FAME+ on Beauty: text-enhanced facet-aware pre-training, then FAME training.

  python train.py --config configs/beauty_text.py --workdir runs/beauty_text
  python train.py --config configs/sasrec.py:beauty_text --workdir runs/beauty_sasrec_text   # SASRec+text

Stage 1 encodes every item's text once with the Flax MiniLM encoder (cached in
pretrain.text_cache_dir), trains one projection head per facet with
alternating supervised contrastive learning, and hands the heads' outputs to
FAME as its item embeddings (head h starts on facet h). Stage 2 is
configs/beauty.py's training (d 128, slice projection, F^h LayerNorm at 4,
uniform gate, MoE in every layer, lr 2.5e-4; docs/findings.md#text-pretraining)
with the head count below. To run stage 2 from an existing stage-1 workdir:
  --config.pretrain.enabled=False --config.init.item_embeddings_from=<workdir>
"""

from configs import beauty


def get_config():
  c = beauty.get_config()
  c.pretrain.enabled = True  # Run stage 1 inside train.py.
  c.pretrain.text_cache_dir = "runs/text_cache/beauty"  # Encode once per dataset.
  c.model.num_heads = 2  # One head per pre-training facet; docs/findings.md#facet-heads
  return c
