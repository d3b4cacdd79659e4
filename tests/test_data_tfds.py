"""tfds builders: build, read back with tfds.data_source, equal to direct read."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

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


def test_builders_are_registered_for_tfds_build():
  # `tfds build NAME --imports fame_jax.data.tfds_builders` imports the module
  # and then looks NAME up with tfds.builder_cls.
  for name, cls in list(tfds_builders._BENCHMARKS.items()) + [
      ("fame_synthetic", tfds_builders.FameSynthetic)]:
    assert tfds.builder_cls(name) is cls, name
  # Without --file_format a build must still be readable by tfds.data_source.
  builder = tfds.builder_cls("fame_ml1m")(data_dir="/nonexistent")
  assert builder.info.file_format.value == "array_record"


def _tiny_ml1m_files(manual: pathlib.Path) -> None:
  """Four users, six items, in the files and id field of the ML-1M builder."""
  manual.mkdir()
  (manual / "ml-1m_item5_3416.txt").write_text("1 1 2 3 4\n2 2 3 4 5\n3 1 3 5 6\n4 6 5 4\n")
  with open(manual / "ml-1m_item_text.jsonl", "w") as f:
    for i in range(1, 7):
      f.write(json.dumps({"item5_3416_id": i, "title": f"Film {i}", "year": 1990 + i,
                          "genres": ["Drama"] if i % 2 else ["Comedy", "War"]}) + "\n")


def test_command_line_build_round_trip(tmp_path, assert_same_dataset):
  manual, data_dir = tmp_path / "manual", tmp_path / "tfds"
  _tiny_ml1m_files(manual)
  repo = pathlib.Path(__file__).resolve().parents[1]
  env = {**os.environ, "PYTHONPATH": str(repo)}  # Also without `pip install -e .`.
  out = subprocess.run(
      [sys.executable, "-m", "fame_jax.data.tfds_builders", "fame_ml1m",
       "--manual_dir", str(manual), "--data_dir", str(data_dir)],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().splitlines()[-1] == str(data_dir / "fame_ml1m" / "1.0.0")
  direct = load_dataset(tfds_builders.benchmark_data_cfg("fame_ml1m", str(manual)))
  back = load_dataset(_tfds_cfg("fame_ml1m", data_dir))
  assert back.num_items == 6 and len(back.sequences) == 4
  assert_same_dataset(direct, back)
  # A missing file: one line naming it, exit status 2, no traceback.
  bad = subprocess.run(
      [sys.executable, "-m", "fame_jax.data.tfds_builders", "fame_beauty",
       "--manual_dir", str(manual), "--data_dir", str(tmp_path / "other")],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1] == (
      f"error: {manual / 'Beauty.txt'}: missing file for tfds dataset 'beauty' "
      f"(manual_dir={manual})")


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
