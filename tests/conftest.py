"""Shared pytest fixtures for fame_jax tests."""

from __future__ import annotations

import os
import pathlib
import tempfile

import jax
import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# The suite's cost is mostly compiling (each tiny program takes 3-20 s on 2
# cores), not running. LLVM at -O1 instead of XLA's default -O3 compiles the
# CPU programs 2-3x faster and still runs them a little faster than -O0 (on
# the 2-core CPU: a jitted tiny-model gradient compiled in 4.5 s against 12 s;
# the text pre-training facet test took 47 s at -O1, 56 s at -O0, 68 s at -O3).
# The HLO optimisations (fusion, layout) and the Eigen matmuls are unchanged.
# Set before the backend starts; subprocesses inherit it. Run the suite with
# XLA_FLAGS=--xla_backend_optimization_level=3 for the shipped code generation.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_backend_optimization_level=1").strip()


def without_device_count(xla_flags: str) -> str:
  """``XLA_FLAGS`` less any simulated-device count (a subprocess sets its own)."""
  return " ".join(f for f in xla_flags.split() if "xla_force_host_platform_device_count" not in f)


# Many tests train the same tiny programs (training fixture, resume halves,
# export, sweep points, subprocesses). A persistent compilation cache, fresh
# for each test session, compiles each distinct program once; results are
# unchanged (same executables). Subprocesses inherit it through the env var.
_CACHE_DIR = tempfile.mkdtemp(prefix="fame_jax_xla_cache_")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE_DIR)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
  """``../shared/data`` next to the repo (licensed data, never copied in)."""
  path = (REPO_ROOT / ".." / "shared" / "data").resolve()
  if not path.is_dir():
    pytest.skip(f"shared benchmark data not found at {path} (it lives outside "
                "the repo for licence reasons; see docs)")
  return path


def _same_value(a, b) -> bool:
  if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
    return np.array_equal(np.asarray(a), np.asarray(b))
  if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
    return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
  if isinstance(a, dict) and isinstance(b, dict):
    return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
  return type(a) is type(b) and a == b


@pytest.fixture(scope="session")
def assert_same_dataset():
  """Returns ``check(a, b)`` asserting two Datasets hold identical content."""

  def check(a, b):
    assert a.name == b.name
    assert a.num_items == b.num_items
    assert len(a.sequences) == len(b.sequences)
    for sa, sb in zip(a.sequences, b.sequences):
      assert sa.dtype == sb.dtype == np.int32
      np.testing.assert_array_equal(sa, sb)
    assert list(a.user_raw_ids) == list(b.user_raw_ids)
    assert list(a.item_raw_ids) == list(b.item_raw_ids)
    assert sorted(a.item_meta) == sorted(b.item_meta)
    for field in a.item_meta:
      assert _same_value(a.item_meta[field], b.item_meta[field]), field
    assert _same_value(a.report, b.report)
    assert (a.ground_truth is None) == (b.ground_truth is None)
    if a.ground_truth is not None:
      assert _same_value(a.ground_truth, b.ground_truth)

  return check


@pytest.fixture(scope="session")
def eight_devices(tmp_path_factory):
  """tests/eight_device_check.py, run once on 8 simulated CPU devices:
  ``(its JSON result, its workdir)``."""
  import json
  import subprocess
  import sys
  root = tmp_path_factory.mktemp("eight_devices")
  env = {**os.environ, "XLA_FLAGS": without_device_count(os.environ.get("XLA_FLAGS", ""))}
  out = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "eight_device_check.py"), str(root)],
                       capture_output=True, text=True, timeout=900, cwd=REPO_ROOT, env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["devices"] == 8
  return result, root


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory):
  """One uninterrupted ``configs/tiny.py`` run shared by the training and
  export tests: ``(config, workdir, results)``."""
  from configs import tiny
  from fame_jax.training import loop
  workdir = str(tmp_path_factory.mktemp("tiny_run"))
  config = tiny.get_config()
  results = loop.train_and_evaluate(config, workdir)
  return config, workdir, results


# The suite runs on pytest-xdist workers (pytest.ini: ``-n auto``), one test
# module to a worker at a time, so that module-scoped fixtures are built once.
# The modules that use ``eight_devices`` form one unit: its subprocess (about
# 30 s of compiling) then runs once for the whole suite.
EIGHT_DEVICE_MODULES = ("tests/test_sharded_checkpoints.py", "tests/test_sharded_table.py",
                        "tests/test_training.py")


def _module(nodeid: str) -> str:
  """``tests/test_x.py`` of ``tests/test_x.py::test_y[...]``."""
  return nodeid.split("::", 1)[0]


@pytest.fixture(autouse=True)
def _eight_device_modules_are_listed(request):
  module = _module(request.node.nodeid)
  if "eight_devices" in request.fixturenames and module not in EIGHT_DEVICE_MODULES:
    pytest.fail(f"{module} uses the eight_devices fixture: add it to EIGHT_DEVICE_MODULES in "
                "tests/conftest.py", pytrace=False)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
  from xdist.scheduler import LoadScopeScheduling

  class ModuleScheduling(LoadScopeScheduling):
    """Test modules as work units, with the 8-device modules as one unit."""

    def _split_scope(self, nodeid):
      module = _module(nodeid)
      return "eight_devices" if module in EIGHT_DEVICE_MODULES else module

  return ModuleScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
  """``-n auto``: a worker per CPU this process may use, at most 8 (each
  worker compiles its own programs and holds its own JAX runtime)."""
  cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return max(1, min(8, cpus or 1))
