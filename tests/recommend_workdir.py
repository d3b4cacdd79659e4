"""A workdir of configs/tiny.py's model with freshly initialised weights, in seconds.

Used by tests/test_recommender.py and tests/test_serving.py: they check that
the recommender and the serving artifact compute what the evaluator computes,
which any weights show; training one (tests/conftest.py's shared run) would
cost a minute of compiles for nothing these tests look at. The files are the
ones training writes: config.json, data_summary.json, vocab.json,
histories.npz (fame_jax.workdir) and a ``best`` checkpoint.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from configs import tiny
from fame_jax import workdir as workdir_lib
from fame_jax.data.loading import load_data
from fame_jax.models import FAME
from fame_jax.training import checkpoints as ckpt_lib
from fame_jax.training import state as state_lib


def make_workdir(path: str, seed: int = 0):
  """Writes the workdir; returns ``(config, dataset, split, params)``."""
  config = tiny.get_config()
  dataset, split = load_data(config)
  model = FAME(cfg=config.model, num_items=dataset.num_items)
  params = jax.jit(lambda key: state_lib.init_params(model, config, key))(jax.random.key(seed))
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(json.loads(config.to_json_best_effort()), f)
  with open(os.path.join(path, "data_summary.json"), "w") as f:
    json.dump({"items": dataset.num_items}, f)
  workdir_lib.write_json_atomic(os.path.join(path, workdir_lib.VOCAB_FILE),
                                workdir_lib.vocab_of(dataset))
  np.savez(os.path.join(path, workdir_lib.HISTORIES_FILE), **workdir_lib.histories_of(dataset))
  ckpts = ckpt_lib.Checkpoints(os.path.join(path, "checkpoints"))
  ckpts.save_best(1, params, {"epoch": 1})
  ckpts.close()
  return config, dataset, split, params
