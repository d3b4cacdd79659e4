"""Trains FAME (or SASRec / an ablation) with one command.

  python train.py --config configs/default.py --workdir runs/default
  python train.py --config configs/beauty.py --workdir runs/beauty \
      --config.model.num_experts=1 --config.model.facet_heads=False   # SASRec

Re-running the same command on an interrupted workdir resumes it; re-running
a finished one with a larger --config.train.max_epochs continues it.
"""

if __name__ == "__main__":  # Before JAX loads: re-runs once with malloc on huge pages.
  from fame_jax import runtime
  runtime.use_huge_pages()

from absl import app, flags, logging
from ml_collections import config_flags

from fame_jax.training import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, results).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
