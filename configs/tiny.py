"""Tiny config for tests: a small synthetic world and a small model (seconds).

  python train.py --config configs/tiny.py --workdir /tmp/tiny
"""

from configs.base import get_base_config


def get_config():
  c = get_base_config()
  c.data.name = "synthetic_tiny"
  c.data.max_len = 20  # Short window keeps tests fast.
  c.model.max_len = 20  # Position table covers the window.
  c.data.synthetic.num_users = 400  # Small world.
  c.data.synthetic.num_items = 120
  c.data.synthetic.min_length = 6
  c.data.synthetic.max_length = 20
  c.model.hidden_size = 16  # Tiny model.
  c.model.num_experts = 2
  c.model.ffn_inner = 32
  c.model.dropout = 0.1
  c.model.facet_proj_init = "normal"  # The protocol default, so tests cover the random W_f^h.
  c.train.batch_size = 64
  c.train.learning_rate = 1e-2  # Few steps: learn fast.
  c.train.max_epochs = 20  # ~7 steps an epoch.
  c.train.eval_every_epochs = 5  # Four validations a run.
  c.train.patience_evals = 100  # Never stop early in tests.
  c.train.progress = False  # Quiet tests.
  c.eval.batch_size = 128
  c.pretrain.facets = ("genre", "brand")
  c.pretrain.steps = 60
  c.pretrain.batch_size = 64
  return c
