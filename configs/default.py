"""Default run: FAME on the embedded synthetic facet world (no downloads).

  python train.py --config configs/default.py --workdir runs/default

Runtime: about 1-2 minutes on a 2-core CPU. The generated world has users
driven by one dominant facet each, so FAME's facet heads have real structure
to find; expect test HR@10 far above the popularity ranking (printed at the
end; see README for the measured numbers).
"""

from configs.base import get_base_config


def get_config():
  c = get_base_config()
  c.data.format = "synthetic"  # The embedded facet-world generator.
  c.data.name = "synthetic"
  c.data.max_len = 50  # Window; synthetic sequences are at most 40 long.
  c.model.num_heads = 3  # One head per generated facet.
  c.model.hidden_size = 96  # d' = 32 per head.
  c.model.dropout = 0.2  # Synthetic data is clean; less regularisation.
  c.train.max_epochs = 30  # Keeps the default run within ~2 minutes.
  c.train.patience_evals = 5  # Early stopping patience (evaluations).
  c.train.eval_every_epochs = 2  # Validate every other epoch.
  c.pretrain.facets = ("genre", "brand", "price")  # Synthetic facet fields.
  return c
