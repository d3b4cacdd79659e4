"""Trains FAME (or SASRec / an ablation) with one command.

  python train.py --config configs/default.py --workdir runs/default
  python train.py --config configs/beauty.py --workdir runs/beauty --config.train.seed=1
  python train.py --config configs/sasrec.py:beauty --workdir runs/beauty_sasrec
  python train.py --config configs/beauty.py --print_config   # Resolved config, no training.

Bad data, config, workdir or checkpoint: one line on stderr and exit 2
(flags, config) or 1 (the rest); add --verbose for the traceback.

Re-running the same command on an interrupted workdir resumes it; re-running
a finished one with a larger --config.train.max_epochs continues it.

Several processes (hosts): start the same command in each, with
--coordinator_address=HOST:PORT --num_processes=N --process_id=I (or the
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID variables, or
inside SLURM's srun with nothing); see fame_jax/distributed.py.
"""

if __name__ == "__main__":  # Before JAX loads: re-runs once with malloc on huge pages.
  from fame_jax import runtime
  runtime.use_huge_pages()

from absl import flags
from ml_collections import config_flags

from fame_jax import cli, config_tools, distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, results).")
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the resolved config and its differences from configs/base.py, then "
    "exit without training (no --workdir needed).")
distributed.define_flags()
flags.mark_flag_as_required("config")
flags.register_multi_flags_validator(
    ["workdir", "print_config"], lambda f: bool(f["workdir"]) or f["print_config"],
    message="--workdir is required (except with --print_config)")


def main(argv):
  del argv
  if _PRINT_CONFIG.value:
    from configs.base import get_base_config
    print(config_tools.describe(_CONFIG.value, get_base_config(), name=flags.FLAGS["config"].config_filename))
    return
  distributed.initialize_from_flags()  # Several processes: join them before JAX computes.
  from fame_jax.training import train_and_evaluate  # JAX loads only when training.
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)  # A user's error ends as one line on stderr (fame_jax/cli.py); --verbose: traceback.
