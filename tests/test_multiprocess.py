"""Training over several processes (JAX multi-controller, gloo on CPU).

Two processes on 127.0.0.1 with one CPU device each must give the per-step
losses and the metrics of one process with two devices (the same global mesh
and batches); so must two processes killed in the middle of an epoch and
started again (slow: -m slow, with the replicated and the row-sharded item
table). These launch several Python processes that each compile the
model, 50-140 s a test on 2 cores, so they are marked slow
(`pytest -m slow tests/test_multiprocess.py`); the settings and batch-split
tests run in CI. The processes run tests/multiprocess_check.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from fame_jax import distributed
from fame_jax.errors import ConfigError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from multiprocess_check_config import multiprocess_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, "tests", "multiprocess_check.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(workdir: str, num_processes: int, kill_at_step: int = 0, sharded: bool = False,
           devices: int = 2) -> list[subprocess.Popen]:
  port = _free_port()
  env = dict(os.environ, FAME_JAX_HUGEPAGES="0", MULTIPROCESS_CHECK_DEVICES=str(devices))
  return [subprocess.Popen([sys.executable, CHECK, workdir, str(num_processes), str(i), str(port),
                            str(kill_at_step), str(int(sharded))], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
          for i in range(num_processes)]


def _wait(procs: list[subprocess.Popen], expect_kill: bool = False) -> list[int]:
  """Waits for a run's processes; their exit codes (a failure shows their logs)."""
  codes, logs = [], []
  for p in procs:
    try:
      out, _ = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
    codes.append(p.returncode)
    logs.append(out)
  if not expect_kill and any(codes):
    raise AssertionError("a process failed:\n" + "\n----\n".join(l[-3000:] for l in logs))
  return codes


def _rows(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def _results(workdir: str) -> dict:
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def _assert_same_run(two: str, ref: str, exact: bool = True) -> None:
  """The 2-process workdir ``two`` trained and evaluated as the 1-process ``ref``.

  ``exact``: ``ref`` ran on 2 devices (the same mesh): equal losses and
  metrics. Else ``ref`` ran on 1 device: the losses differ by float32
  rounding, which may move one user's rank across a tie (a metric moves by at
  most 1 / users).
  """
  rtol, atol = (1e-6, 1e-9) if exact else (1e-5, 1.0 / 400 + 1e-9)  # 400 users (tiny).
  ref_rows, ref_results = _rows(ref), _results(ref)
  rows, results = _rows(two), _results(two)
  assert [r["epoch"] for r in rows] == [r["epoch"] for r in ref_rows] == [1, 2, 3, 4]
  for got, want in zip(rows, ref_rows):
    assert got["step"] == want["step"]
    # The same global batches on the same 2-device mesh: the same losses
    # (one device instead of two changes them by float32 rounding only).
    np.testing.assert_allclose(got["step_losses"], want["step_losses"], rtol=rtol, atol=0)
    for k in ("valid/NDCG@10", "valid/HR@10"):
      assert (k in got) == (k in want)
      if k in want:
        assert got[k] == pytest.approx(want[k], abs=atol)
  for k, v in ref_results.items():
    if k.startswith(("valid/", "test/")):
      assert results[k] == pytest.approx(v, abs=atol), k
  assert results["best_epoch"] == ref_results["best_epoch"]
  assert results["num_params"] == ref_results["num_params"]
  assert results["devices"].endswith("in 2 processes")
  # evaluate.py over the 2 processes: the same test metrics in each.
  for i in range(2):
    with open(os.path.join(two, f"evaluate_process{i}.json")) as f:
      evaluated = json.load(f)
    assert evaluated == {k: v for k, v in results.items() if k.startswith("test/")}


@pytest.mark.slow  # 50-60 s on 2 cores, most of it compiling in each process.
@pytest.mark.parametrize("reference_devices", [2, 1])
def test_two_processes_equal_one_process(tmp_path, reference_devices):
  """Replicated item table; the reference, one process with 2 devices (the
  same global mesh: bit for bit) or with 1 (float32 rounding), trains beside
  the two processes."""
  ref, two = str(tmp_path / "one_process"), str(tmp_path / "two_processes")
  reference, pair = _start(ref, 1, devices=reference_devices), _start(two, 2)
  _wait(pair)
  _wait(reference)
  _assert_same_run(two, ref, exact=reference_devices == 2)


@pytest.mark.slow  # Three launches, 70-140 s on 2 cores.
@pytest.mark.parametrize("sharded", [False, True], ids=["replicated_table", "row_sharded_table"])
def test_two_processes_killed_mid_epoch_resume_to_the_one_process_result(tmp_path, sharded):
  """Replicated item table, and row-sharded over the 2 processes' devices,
  its Orbax checkpoints then split between them."""
  sys.path.insert(0, ROOT)
  from configs.tiny import get_config
  from fame_jax.data import batching
  from fame_jax.data.loading import load_data
  config = multiprocess_config(get_config(), shard_item_table=sharded)
  _, split = load_data(config)
  batcher = batching.make_batcher(split.train, examples=config.train.examples,
                                  max_len=config.data.max_len, batch_size=config.train.batch_size,
                                  packing=config.train.packing, row_multiple=2)
  per_epoch = [len(batcher.epoch(config.train.seed, e)) for e in (1, 2, 3)]
  # Killed in the middle of epoch 3: the checkpoint of epoch 2 (or 1) is
  # what the restart finds; the metrics file holds no row of epoch 3.
  kill_at = per_epoch[0] + per_epoch[1] + per_epoch[2] // 2
  ref, two = str(tmp_path / "one_process"), str(tmp_path / "two_processes")
  reference, killed = _start(ref, 1, sharded=sharded), _start(two, 2, kill_at, sharded)
  codes = _wait(killed, expect_kill=True)
  _wait(reference)
  ref_rows = _rows(ref)
  assert ref_rows[1]["step"] < kill_at < ref_rows[2]["step"]
  assert codes == [-9, -9], codes
  assert not os.path.exists(os.path.join(two, "results.json"))
  assert [r["epoch"] for r in _rows(two)] in ([1, 2], [1])
  _wait(_start(two, 2, sharded=sharded))  # The same command again: resumes and finishes.
  _assert_same_run(two, ref)


# ---------------------------------------------------------------- settings


def test_no_settings_is_one_process():
  assert distributed.resolve(environ={}) is None
  assert distributed.resolve(environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None


def test_flags_win_over_the_environment():
  env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.9:1", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
  s = distributed.resolve("10.0.0.1:1234", 2, 1, environ=env)
  assert (s.coordinator_address, s.num_processes, s.process_id, s.source) == (
      "10.0.0.1:1234", 2, 1, "flags")
  s = distributed.resolve(environ=env)
  assert (s.coordinator_address, s.num_processes, s.process_id, s.source) == (
      "10.0.0.9:1", 4, 3, "environment")


def test_slurm_is_left_to_jax():
  s = distributed.resolve(environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_PROCID": "2"})
  assert s.slurm and (s.num_processes, s.process_id) == (4, 2)


@pytest.mark.parametrize("args, env, needle", [
    (("10.0.0.1:1234", None, 0), {}, "--num_processes not set"),
    ((None, 2, None), {}, "--coordinator_address, --process_id not set"),
    ((None, None, None), {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"},
     "JAX_COORDINATOR_ADDRESS not set"),
    (("10.0.0.1:1234", 2, 2), {}, "--process_id=2 must be in 0 .. 1"),
    (("10.0.0.1", 2, 0), {}, "must be host:port"),
    ((None, None, None), {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two",
                          "JAX_PROCESS_ID": "0"}, "JAX_NUM_PROCESSES='two' is not an integer"),
])
def test_partial_or_bad_settings_are_named(args, env, needle):
  with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
    distributed.resolve(*args, environ=env)


def test_one_process_given_explicitly_initialises_nothing():
  assert distributed.resolve("127.0.0.1:1", 1, 0, environ={}) is None


# ---------------------------------------------------------------- batches


@pytest.mark.parametrize("packing, examples", [(True, "all_positions"), (False, "all_positions"),
                                               (False, "prefix_last")])
def test_process_rows_put_together_are_the_global_batch(packing, examples):
  from fame_jax.data import batching
  rng = np.random.default_rng(0)
  train = [rng.integers(1, 50, size=rng.integers(2, 30)).astype(np.int32) for _ in range(60)]
  b = batching.make_batcher(train, examples=examples, max_len=16, batch_size=8, packing=packing,
                            row_multiple=4)
  whole = list(b.epoch(3, 2))
  r = b.rows_per_batch
  parts = [list(b.epoch(3, 2, rows=(i * r // 4, (i + 1) * r // 4))) for i in range(4)]
  assert len(whole) > 3 and all(len(p) == len(whole) for p in parts)
  for k, batch in enumerate(whole):
    for key, value in batch.items():
      np.testing.assert_array_equal(np.concatenate([p[k][key] for p in parts]), value)
