"""Evaluates a trained workdir with full ranking and prints the metrics as JSON.

  python evaluate.py --workdir runs/default --split test
  python evaluate.py ... --checkpoint latest        # or an epoch number
  python evaluate.py ... --split valid --export DIR  # + arrays/plots of that split and checkpoint

The workdir holds what evaluation needs: its config.json, the data it was
trained on (vocab.json, histories.npz) and its checkpoints. A --config given
anyway (with overrides) must agree with config.json except in settings that
do not change what was trained (eval.batch_size, data paths); a differing key
is an error naming it.

Bad data, config, workdir or checkpoint: one line on stderr and exit 2
(flags, config) or 1 (the rest); add --verbose for the traceback.
"""

import json

if __name__ == "__main__":  # Before JAX loads: re-runs once with malloc on huge pages.
  from fame_jax import runtime
  runtime.use_huge_pages()

from absl import flags
from ml_collections import config_flags

from fame_jax import cli, distributed

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Optional: default = the workdir's config.json; a given config file "
    "(configs/*.py, with overrides) is checked against it.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by train.py.")
_SPLIT = flags.DEFINE_enum("split", "test", ["valid", "test"], "Which split to rank.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "'best', 'latest' or an epoch number.")
_EXPORT = flags.DEFINE_string("export", None, "Also export arrays and plots to this directory.")
distributed.define_flags()
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  distributed.initialize_from_flags()  # Several processes: each ranks its share of users.
  from fame_jax.training import evaluate_workdir  # JAX loads after the flags are checked.
  metrics = evaluate_workdir(_CONFIG.value, _WORKDIR.value, _SPLIT.value, _CHECKPOINT.value)
  if not distributed.is_main():
    return  # Every process computed the same metrics; process 0 prints them.
  print(json.dumps(metrics, sort_keys=True))
  if _EXPORT.value:
    from fame_jax import export
    # The export ranks the same split from the same checkpoint as the metrics above.
    export.export_run(_CONFIG.value, _WORKDIR.value, _EXPORT.value, split=_SPLIT.value,
                      checkpoint=_CHECKPOINT.value)


if __name__ == "__main__":
  cli.run(main)  # A user's error ends as one line on stderr (fame_jax/cli.py); --verbose: traceback.
