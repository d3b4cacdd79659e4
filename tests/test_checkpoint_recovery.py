"""Damaged checkpoints: a resume falls back to the previous good one and replays
exactly; when nothing restores, or the best checkpoint is damaged, one error
names the folder and what to do.

The damage is what a full disk, a killed copy or a partial sync leaves:
truncated files, a missing manifest or data file, an empty step folder. Every
case starts from a copy of the shared uninterrupted tiny run
(tests/conftest.py: 20 epochs, ``train.keep_checkpoints`` 2, so ``latest``
holds epochs 19 and 20) with ``results.json`` removed, i.e. a run interrupted
after its last epoch; falling back to epoch 19 replays epoch 20 and the final
evaluation, which must equal the uninterrupted run's.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from fame_jax import sweep
from fame_jax.errors import CheckpointError, UserError
from fame_jax.training import checkpoints as ckpt_lib
from fame_jax.training import loop
from fame_jax.training import state as state_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def reference(tiny_trained_run):
  """The shared uninterrupted run: ``(config, workdir, results, metric rows)``."""
  config, workdir, results = tiny_trained_run
  return config, workdir, results, _rows(workdir)


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _interrupted_copy(workdir, tmp_path):
  """A copy of ``workdir`` as if interrupted before writing ``results.json``."""
  run = str(tmp_path / "run")
  shutil.copytree(workdir, run)
  os.remove(os.path.join(run, "results.json"))
  return run


def _files(folder):
  return sorted(p for p in glob.glob(os.path.join(folder, "**"), recursive=True) if os.path.isfile(p))


def _truncate_every_other_file(folder):
  for path in _files(folder)[::2]:
    os.truncate(path, os.path.getsize(path) // 2)


def _delete_ocdbt_manifest(folder):
  os.remove(os.path.join(folder, "state", "manifest.ocdbt"))


def _delete_largest_data_file(folder):
  data = [p for p in _files(folder) if f"{os.sep}d{os.sep}" in p]
  os.remove(max(data, key=os.path.getsize))


def _empty_the_folder(folder):
  shutil.rmtree(folder)
  os.makedirs(folder)


DAMAGE = {"truncated files": _truncate_every_other_file, "missing manifest": _delete_ocdbt_manifest,
          "missing data file": _delete_largest_data_file, "empty folder": _empty_the_folder}


def _steps(folder):
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit())


def test_the_two_newest_latest_checkpoints_are_kept(reference):
  _, workdir, _, _ = reference
  assert _steps(os.path.join(workdir, "checkpoints", "latest")) == [19, 20]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_and_replays_exactly(reference, tmp_path, capsys, damage):
  config, workdir, results, rows = reference
  run = _interrupted_copy(workdir, tmp_path)
  latest = os.path.join(run, "checkpoints", "latest")
  DAMAGE[damage](os.path.join(latest, "20"))

  resumed = loop.train_and_evaluate(config, run)

  out = capsys.readouterr().out
  assert re.search(rf"^warning: checkpoint {re.escape(latest)}/20 cannot be restored \(\w+.*\)$",
                   out, re.M), out
  assert f"warning: resuming from the previous good checkpoint {latest}/19 (epoch 19)" in out
  assert f"{run}/checkpoints/{ckpt_lib.SET_ASIDE_DIR}/latest-20 (cannot be restored)" in out
  assert f"resuming {run} after epoch 19" in out
  # Epoch 20 was replayed: every loss and validation is the uninterrupted run's.
  replayed = _rows(run)
  assert [r["epoch"] for r in replayed] == [r["epoch"] for r in rows]
  for a, b in zip(rows, replayed):
    assert abs(a["loss"] - b["loss"]) <= 1e-6, (a, b)
    assert abs(a.get("valid/NDCG@10", 0) - b.get("valid/NDCG@10", 0)) <= 1e-6, (a, b)
  for k, v in results.items():
    if k.startswith(("valid/", "test/")):
      assert abs(v - resumed[k]) <= 1e-6, k
  assert (resumed["best_epoch"], resumed["epochs_run"]) == (results["best_epoch"], 20)
  # The damaged folder is set aside (with a best checkpoint of epoch 20, which
  # the replay saved again); latest holds two good checkpoints again.
  set_aside = os.path.join(run, "checkpoints", ckpt_lib.SET_ASIDE_DIR)
  assert sorted(os.listdir(set_aside)) == sorted(
      ["latest-20"] + (["best-20"] if results["best_epoch"] == 20 else []))
  assert _steps(latest) == [19, 20]
  assert _steps(os.path.join(run, "checkpoints", "best")) == [results["best_epoch"]]


def test_killed_between_the_best_and_the_latest_save_replays_the_epoch(reference, tmp_path, capsys):
  """A run killed after epoch 20's best checkpoint was written but before its
  latest one: the resume starts from epoch 19, sets the newer best aside, and
  the replay saves it again (no 'step already exists')."""
  config, workdir, results, rows = reference
  assert results["best_epoch"] == 20  # The tiny run still improves at its end.
  run = _interrupted_copy(workdir, tmp_path)
  shutil.rmtree(os.path.join(run, "checkpoints", "latest", "20"))
  resumed = loop.train_and_evaluate(config, run)
  out = capsys.readouterr().out
  assert f"{run}/checkpoints/{ckpt_lib.SET_ASIDE_DIR}/best-20 (newer than epoch 19" in out
  assert "cannot be restored" not in out
  for k, v in results.items():
    if k.startswith(("valid/", "test/")):
      assert abs(v - resumed[k]) <= 1e-6, k
  assert resumed["best_epoch"] == 20
  assert _steps(os.path.join(run, "checkpoints", "best")) == [20]


def test_no_restorable_checkpoint_is_one_error_naming_each_and_the_folder_to_remove(reference, tmp_path):
  config, workdir, _, _ = reference
  run = _interrupted_copy(workdir, tmp_path)
  latest = os.path.join(run, "checkpoints", "latest")
  _truncate_every_other_file(os.path.join(latest, "20"))
  _empty_the_folder(os.path.join(latest, "19"))

  with pytest.raises(CheckpointError) as info:
    loop.train_and_evaluate(config, run)

  message = str(info.value)
  assert isinstance(info.value, UserError)  # train.py prints it as one line.
  assert "\n" not in message
  assert message.startswith(f"no checkpoint under {latest} can be restored (tried {latest}/20: ")
  assert f"; {latest}/19: " in message and "the folder holds no files" in message
  assert message.endswith(f"To restart this run from scratch, remove its checkpoints: "
                          f"rm -r {run}/checkpoints")
  assert _steps(latest) == [19, 20]  # Nothing moved or trained.
  assert not os.path.exists(os.path.join(run, "checkpoints", ckpt_lib.SET_ASIDE_DIR))


def _damage_best(run):
  best = os.path.join(run, "checkpoints", "best")
  (epoch,) = _steps(best)
  folder = os.path.join(best, str(epoch))
  _truncate_every_other_file(folder)
  return folder


def test_damaged_best_checkpoint_at_the_final_evaluation_is_one_error(reference, tmp_path):
  config, workdir, _, _ = reference
  run = _interrupted_copy(workdir, tmp_path)
  folder = _damage_best(run)
  with pytest.raises(CheckpointError,
                     match=rf"^best checkpoint {re.escape(folder)} cannot be restored \(\w+: .+\); "
                           r"evaluate another checkpoint \(evaluate.py --checkpoint latest\) or "
                           r"retrain in a new --workdir$"):
    loop.train_and_evaluate(config, run)


def test_damaged_latest_checkpoint_asked_for_by_evaluation_is_one_error(reference, tmp_path):
  config, workdir, _, _ = reference
  run = str(tmp_path / "run")
  shutil.copytree(workdir, run)
  folder = os.path.join(run, "checkpoints", "latest", "20")
  _delete_ocdbt_manifest(folder)
  with pytest.raises(CheckpointError,
                     match=rf"^latest checkpoint {re.escape(folder)} cannot be restored \(ValueError: "
                           r"NOT_FOUND: .*\); evaluate the best one instead \(evaluate.py "
                           r"--checkpoint best\)$"):
    ckpt_lib.restore_params(config, run, 120, "latest")


def test_evaluate_cli_on_a_damaged_best_prints_one_line_and_exits_1(reference, tmp_path):
  # A subprocess, so what Orbax's abandoned reads print up to interpreter
  # exit ("Exception ignored ...") is seen too.
  _, workdir, _, _ = reference
  run = str(tmp_path / "run")
  shutil.copytree(workdir, run)
  folder = _damage_best(run)
  out = subprocess.run(
      [sys.executable, "evaluate.py", "--config", "configs/tiny.py", "--workdir", run],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 1, out.stderr[-3000:]
  lines = [l for l in out.stderr.splitlines() if not l.startswith("WARNING:")]  # JAX's CPU notice.
  assert len(lines) == 1, out.stderr[-3000:]
  assert lines[0].startswith(f"evaluate.py: error: best checkpoint {folder} cannot be restored (")
  assert "--checkpoint latest" in lines[0]
  assert out.stdout == ""


def test_a_shape_the_config_fields_miss_is_reported_as_not_fitting_not_as_damage(reference):
  # A restore that failed on a checkpoint whose metadata reads whole and
  # disagrees with the target's shapes is a misfit (a config field outside the
  # compared ones), not damage. The target's shapes come from jax.eval_shape.
  config, workdir, _, _ = reference
  other = sweep.point_config(config, [("model.hidden_size", 32)])
  params = jax.eval_shape(lambda: state_lib.create_train_state(other, 120, jax.random.key(0))[1]).params
  best = os.path.join(workdir, "checkpoints", "best")
  item = os.path.join(best, str(_steps(best)[0]), "params")
  failed = CheckpointError("checkpoint ... cannot be restored (ValueError: shape)")
  with pytest.raises(CheckpointError, match=(rf"^checkpoint {re.escape(os.path.dirname(item))} does "
                                             r"not fit this config \(120 items, hidden_size 32\): "
                                             r"params \[.*checkpoint has \(.*16")):
    ckpt_lib._raise_if_misfit(failed, item, None, params, other, 120)
  same = jax.eval_shape(lambda: state_lib.create_train_state(config, 120, jax.random.key(0))[1]).params
  ckpt_lib._raise_if_misfit(failed, item, None, same, config, 120)  # Same shapes: not a misfit.


def test_damaged_pretraining_checkpoint_names_the_folder_to_remove(tmp_path):
  tree = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "step": np.int32(4)}
  ckpts = ckpt_lib.StepCheckpoints(str(tmp_path / "pretrain" / "checkpoints"))
  ckpts.save(4, jax.tree_util.tree_map(jax.numpy.asarray, tree))
  ckpts.close()
  _delete_largest_data_file(str(tmp_path / "pretrain" / "checkpoints" / "4"))
  ckpts = ckpt_lib.StepCheckpoints(str(tmp_path / "pretrain" / "checkpoints"))
  try:
    with pytest.raises(CheckpointError, match=(
        rf"^pre-training checkpoint {re.escape(ckpts.directory)}/4 cannot be restored \(.+\); "
        rf"to redo pre-training from scratch remove it: rm -r {re.escape(ckpts.directory)}$")):
      ckpts.restore_latest(jax.tree_util.tree_map(jax.numpy.asarray, tree))
  finally:
    ckpts.close()
