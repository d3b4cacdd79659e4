"""FAME+ on ML-1M: text-enhanced facet-aware pre-training, then FAME training.

  python train.py --config configs/ml1m_text.py --workdir runs/ml1m_text

Stage 1 encodes every item's text once with the Flax MiniLM encoder (cached in
pretrain.text_cache_dir), trains one projection head per facet with
alternating supervised contrastive learning, and hands the heads' outputs to
FAME as its item embeddings (head h starts on facet h). Stage 2 is
configs/ml1m.py's training with the gate below (docs/findings.md#text-pretraining).
To run stage 2 from an existing stage-1 workdir:
  --config.pretrain.enabled=False --config.init.item_embeddings_from=<workdir>
"""

from configs import ml1m


def get_config():
  c = ml1m.get_config()
  c.pretrain.enabled = True  # Run stage 1 inside train.py.
  c.pretrain.text_cache_dir = "runs/text_cache/ml1m"  # Encode once per dataset.
  c.model.gate = "learned"  # Uniform validated lower with text (seed 0); docs/findings.md#uniform-gate
  return c
