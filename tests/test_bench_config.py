"""bench/train_throughput.py measures the protocol's default model, not whatever configs/beauty.py became.

Its benchmark model once followed configs/beauty.py; after that file was tuned
(d 128, 4 heads, MoE in every layer) the benchmark measured a model twice as
costly under the old "d=64 H=2 E=4" label. These tests pin the model and the
label to the config actually measured.
"""

import importlib.util
import os

from configs import base, beauty

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench(monkeypatch):
  monkeypatch.setenv("FAME_JAX_HUGEPAGES", "0")  # Importing must not re-execute pytest.
  spec = importlib.util.spec_from_file_location("train_throughput", os.path.join(ROOT, "bench", "train_throughput.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_spec_model_is_spec_section_4_on_beauty_data(monkeypatch):
  bench = _bench(monkeypatch)
  config = bench.bench_config("spec")
  protocol = base.get_base_config().model.to_dict()
  protocol["facet_proj_init"] = "normal"  # The protocol's init; the base starts at the selector.
  assert config.model.to_dict() == protocol
  assert (config.model.hidden_size, config.model.num_heads, config.model.num_experts) == (64, 2, 4)
  assert not config.model.moe_all_layers
  assert (config.data.max_len, config.train.batch_size) == (50, 256)
  assert config.data.path == beauty.get_config().data.path  # Beauty's data all the same.
  assert bench.describe(config).startswith("FAME d=64 H=2 E=4 L=50 batch=256 moe_all_layers=False")


def test_committed_model_is_configs_beauty_and_says_so(monkeypatch):
  bench = _bench(monkeypatch)
  config = bench.bench_config("committed")
  committed = beauty.get_config()
  assert config.to_dict() == committed.to_dict()
  label = bench.describe(config)
  assert f"d={committed.model.hidden_size} H={committed.model.num_heads}" in label
  assert f"moe_all_layers={committed.model.moe_all_layers}" in label


def test_gpu_suite_runs_file_is_valid(tmp_path, monkeypatch):
  # bench/gpu_suite.sh hands bench/gpu_runs.txt (with @DEVDATA@ filled in) to
  # python -m fame_jax.sweep --runs: every line must load and validate now,
  # not fail on the lent GPU.
  from fame_jax import sweep
  with open(os.path.join(ROOT, "bench", "gpu_runs.txt")) as f:
    text = f.read().replace("@DEVDATA@", str(tmp_path))
  (tmp_path / "runs.txt").write_text(text)
  monkeypatch.chdir(ROOT)
  runs = sweep.parse_runs_file(str(tmp_path / "runs.txt"))
  assert {r.name for r in runs} >= {"beauty_sasrec", "beauty_fame", "beauty_fame_text"}
  text_runs = [r for r in runs if r.config.init.item_embeddings_from]
  assert text_runs and all(not r.config.pretrain.enabled for r in text_runs)
  assert all(r.config.init.item_embeddings_from.startswith(str(tmp_path)) for r in text_runs)
