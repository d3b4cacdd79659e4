"""FAME+ on Beauty: text-enhanced facet-aware pre-training, then FAME training.

  python train.py --config configs/beauty_text.py --workdir runs/beauty_text

Stage 1 encodes every item's text once with the Flax MiniLM encoder (cached
in pretrain.text_cache_dir, shared by all runs of this dataset), trains one
projection head per facet with alternating supervised contrastive learning,
and hands the heads' outputs to FAME as its item embeddings (head h starts
on facet h). Stage 2 is configs/beauty.py's FAME training. To run stage 2 from
an existing stage-1 workdir instead:
  --config.pretrain.enabled=False --config.init.item_embeddings_from=<workdir>
"""

from configs import beauty


def get_config():
  c = beauty.get_config()
  c.pretrain.enabled = True  # Run stage 1 inside train.py.
  c.pretrain.text_cache_dir = "runs/text_cache/beauty"  # Encode once per dataset.
  return c
