"""Every committed config loads through train.py's flag machinery and validates."""

import glob
import os

import pytest
from absl import flags
from ml_collections import config_flags

from fame_jax.training.config_check import validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if not p.endswith("__init__.py") and not p.endswith("base.py"))


def _load(spec):
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=fv)
  cwd = os.getcwd()
  os.chdir(ROOT)
  try:
    fv(["prog", f"--config={spec}"])
    return fv.config
  finally:
    os.chdir(cwd)


@pytest.mark.parametrize("path", CONFIGS)
def test_config_loads_and_validates(path):
  config = _load(path)
  validate_config(config)
  assert config.model.max_len >= config.data.max_len


@pytest.mark.parametrize("dataset", ["beauty", "ml1m", "tiny"])
def test_sasrec_config_is_the_dataset_config_with_a_plain_last_block(dataset):
  sas, base = _load(f"configs/sasrec.py:{dataset}"), _load(f"configs/{dataset}.py")
  assert sas.model.num_experts == 1 and not sas.model.facet_heads
  sas.model.num_experts, sas.model.facet_heads = base.model.num_experts, base.model.facet_heads
  assert sas.to_dict() == base.to_dict()


def test_sasrec_config_rejects_unknown_dataset():
  with pytest.raises(Exception, match="unknown dataset"):
    _load("configs/sasrec.py:nope")


def test_stats_load_config_takes_file_and_arg():
  from fame_jax.data import stats
  c = stats.load_config("configs/sasrec.py:beauty", ["--config.train.seed=3"])
  assert (c.model.num_experts, c.model.facet_heads, c.data.name, c.train.seed) == (1, False, "beauty", 3)
  assert stats.load_config("configs/beauty.py", []).model.num_experts == 4
