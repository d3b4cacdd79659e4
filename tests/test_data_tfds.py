"""tfds builders: build, read back with tfds.data_source, equal to direct read."""

from __future__ import annotations

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from configs.base import get_base_config  # noqa: E402
from fame_jax.data import load_dataset  # noqa: E402
from fame_jax.data import tfds_builders  # noqa: E402

tfds.disable_progress_bar()


def _tfds_cfg(name, data_dir):
  cfg = get_base_config().data
  cfg.format, cfg.tfds_name, cfg.tfds_data_dir = "tfds", name, str(data_dir)
  return cfg


def test_synthetic_round_trip(tmp_path, assert_same_dataset):
  cfg = get_base_config().data
  cfg.synthetic.num_users, cfg.synthetic.num_items = 120, 90
  tfds_builders.build("fame_synthetic", str(tmp_path),
                      synthetic_cfg=cfg.synthetic)
  # tfds.data_source reads the array_record files without TensorFlow.
  src = tfds.data_source("fame_synthetic", data_dir=str(tmp_path))
  assert len(src["users"]) == 120 and len(src["items"]) == 90
  direct = load_dataset(cfg)
  back = load_dataset(_tfds_cfg("fame_synthetic", tmp_path))
  assert_same_dataset(direct, back)
  assert isinstance(back.ground_truth["user_preferred_values"][0], np.ndarray)


def test_not_built_is_a_clear_error(tmp_path):
  from fame_jax.data import DataError
  with pytest.raises(DataError, match="cannot read tfds dataset 'fame_beauty'"):
    load_dataset(_tfds_cfg("fame_beauty", tmp_path))


@pytest.mark.slow  # ~20 s on 2 shared cores (build 7 s + read 5 s + direct).
def test_beauty_round_trip(tmp_path, shared_data_dir, assert_same_dataset):
  manual = shared_data_dir / "beauty"
  tfds_builders.build("fame_beauty", str(tmp_path), manual_dir=str(manual))
  direct = load_dataset(tfds_builders.benchmark_data_cfg("fame_beauty",
                                                         str(manual)))
  back = load_dataset(_tfds_cfg("fame_beauty", tmp_path))
  assert back.num_users == 22_363 and back.num_items == 12_101
  assert_same_dataset(direct, back)
