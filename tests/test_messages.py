"""What training tells its user: honest stop messages, divergence warnings,
what preprocessing dropped, the last validation in the progress bar, and
plain lines (no tqdm frames) when the output is not a terminal."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import tiny
from fame_jax.data import preprocess
from fame_jax.data.readers import Interactions
from fame_jax.data.split import leave_one_out
from fame_jax.training import loop

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train_py(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
  """train.py on configs/tiny.py, stdout and stderr pipes (not a terminal).

  One layer and one expert: the train step, compiled once per run, is what
  these runs spend their time on (a third of tiny's two layers and two experts).
  """
  env = dict(os.environ, PYTHONPATH=str(ROOT), FAME_JAX_HUGEPAGES="0")
  env.pop("FAME_JAX_VERBOSE", None)
  return subprocess.run(
      [sys.executable, "train.py", "--config", "configs/tiny.py", f"--workdir={tmp_path / 'run'}",
       "--config.model.num_layers=1", "--config.model.num_experts=1", *overrides],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _s3rec_file(path: pathlib.Path) -> pathlib.Path:
  """60 ordinary users over items 1..20, plus: user 61 with 2 interactions (the
  split drops it), user 62 with the only use of item 50 (a 2-core drops the
  item), user 63 with 1 interaction (a 2-core drops the user)."""
  rng = np.random.default_rng(0)
  lines = [" ".join(map(str, [u, *rng.integers(1, 21, size=rng.integers(4, 9))])) for u in range(1, 61)]
  lines += ["61 1 2", "62 1 2 3 50", "63 4"]
  path.write_text("\n".join(lines) + "\n")
  return path


def test_redirected_output_is_plain_lines_with_drops_and_a_divergence_warning(tmp_path):
  data = _s3rec_file(tmp_path / "log.txt")
  # learning_rate 3 on the tiny model: the loss explodes to ~1e3 but stays finite.
  out = _train_py(tmp_path, "--config.data.format=s3rec", f"--config.data.path={data}",
                  "--config.data.kcore=2", "--config.train.learning_rate=3.0",
                  "--config.train.max_epochs=2", "--config.train.eval_every_epochs=2",
                  "--config.train.progress=True")
  assert out.returncode == 0, out.stderr
  text = out.stdout + out.stderr
  assert "\r" not in text  # No tqdm frames although train.progress=True.
  lines = out.stdout.splitlines()
  assert any(l.startswith("data: read: 63 users, 21 items") for l in lines), lines
  kcore = [l for l in lines if l.startswith("data: kcore(2): ")]
  assert len(kcore) == 1 and kcore[0].startswith(
      "data: kcore(2): dropped 1 user, 1 item, 2 interactions"), kcore
  split = [l for l in lines if l.startswith("data: leave-one-out split: ")]
  assert split == ["data: leave-one-out split: dropped 1 user with fewer than 3 interactions "
                   "(no training item besides the validation and test targets); kept 61 users"]
  epoch1 = [l for l in lines if l.startswith("epoch 1/2: loss ")]
  epoch2 = [l for l in lines if l.startswith("epoch 2/2: loss ")]
  assert len(epoch1) == 1 and "valid" not in epoch1[0] and "nan" not in epoch1[0]
  assert len(epoch2) == 1 and "valid NDCG@10 " in epoch2[0]
  warnings = [l for l in lines if l.startswith("warning: epoch ")]
  assert warnings and all(f"3 x ln(20 items) = {3 * math.log(20):.2f}" in w for w in warnings)
  assert all("train.learning_rate (now 3)" in w for w in warnings)


def test_nan_stop_without_a_checkpoint_says_none_was_saved(tmp_path):
  out = _train_py(tmp_path, "--config.train.learning_rate=1e10", "--config.train.max_epochs=1")
  assert out.returncode == 1, out.stderr
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("train.py: error: non-finite training loss at step 1 (epoch 1)"), last
  assert "before any checkpoint was saved" in last and "train.learning_rate (now 1e+10)" in last
  assert "None" not in out.stderr and "Traceback" not in out.stderr


def test_divergence_message_names_a_saved_checkpoint_only():
  cfg = tiny.get_config().train
  saved = loop.divergence_message(812, 5, 4, "/r/checkpoints", cfg)
  assert "The last good checkpoint, of epoch 4, is kept in /r/checkpoints/latest" in saved
  assert "step 812 (epoch 5)" in saved and "train.learning_rate (now 0.01)" in saved
  none = loop.divergence_message(3, 1, None, "/r/checkpoints", cfg)
  assert "before any checkpoint was saved" in none and "None" not in none
  assert "\n" not in saved + none


def test_loss_warning_rule():
  cfg = tiny.get_config().train
  limit = loop.LOSS_WARNING_FACTOR * math.log(1000)
  assert loop.loss_warning(1, math.log(1000), 1000, cfg) is None  # A uniform guess.
  assert loop.loss_warning(1, limit * 0.99, 1000, cfg) is None
  assert loop.loss_warning(1, float("nan"), 1000, cfg) is None  # Non-finite: the stop's job.
  line = loop.loss_warning(7, limit * 1.01, 1000, cfg)
  assert line.startswith("warning: epoch 7 mean training loss") and f"{limit:.2f}" in line


def test_plateau_warning_rule():
  cfg = tiny.get_config().train
  pop = 7.46
  edge = (1 - loop.PLATEAU_MARGIN) * pop
  assert loop.plateau_warning(loop.PLATEAU_EPOCHS - 1, 7.47, pop, cfg) is None  # Too early to say.
  assert loop.plateau_warning(loop.PLATEAU_EPOCHS, edge - 1e-3, pop, cfg) is None  # Learning.
  line = loop.plateau_warning(loop.PLATEAU_EPOCHS, edge + 1e-3, pop, cfg)
  assert line.startswith(f"warning: epoch {loop.PLATEAU_EPOCHS} mean training loss ")
  assert "7.46, the loss of predicting the next item from its popularity alone" in line
  assert "set train.warmup_steps (now 0), e.g. 500" in line and "\n" not in line
  cfg.warmup_steps = 200
  assert "lengthen train.warmup_steps (now 200)" in loop.plateau_warning(20, 9.0, pop, cfg)


def test_popularity_loss_is_the_least_cross_entropy_without_history():
  targets = np.array([1, 1, 1, 2, 2, 3, 5, 5, 5, 5])
  counts = np.bincount(targets, minlength=6).astype(float)
  p = counts / counts.sum()
  assert loop.popularity_loss(targets) == pytest.approx(-sum(q * math.log(q) for q in p if q > 0))

  def ce(q):  # Mean cross-entropy of one fixed distribution over these targets.
    return float(-np.mean(np.log(q[targets])))
  assert ce(p) == pytest.approx(loop.popularity_loss(targets))
  rng = np.random.default_rng(0)
  for _ in range(20):  # Any other fixed distribution does worse.
    q = p + rng.uniform(0, 0.2, size=p.shape)
    q[0] = 0
    assert ce(q / q.sum()) > loop.popularity_loss(targets)


@pytest.mark.parametrize("examples,packing", [("all_positions", True), ("all_positions", False),
                                              ("prefix_last", False)])
def test_target_items_are_an_epochs_weighted_targets(examples, packing):
  from fame_jax.data import batching
  rng = np.random.default_rng(1)
  train = [rng.integers(1, 30, size=rng.integers(1, 15)) for _ in range(40)]
  b = batching.make_batcher(train, examples=examples, max_len=6, batch_size=8, packing=packing)
  seen = []
  for batch in b.epoch(0, 1):
    seen.append(np.asarray(batch["targets"])[np.asarray(batch["weights"]) > 0])
  assert sorted(np.concatenate(seen).tolist()) == sorted(b.target_items().tolist())
  assert len(b.target_items()) == b.num_targets


_DATA = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (_DATA / "ml-1m" / "ml-1m.txt").exists(),
                    reason="needs ../shared/data (the benchmark files are not in the repository)")
def test_plateau_rule_fires_on_the_stuck_run_and_no_other_committed_run(monkeypatch):
  """Calibration on every committed run with a training loss: only SASRec d 128
  L4 on ML-1M, which never left the popularity level, would have warned."""
  import json

  import ml_collections

  from fame_jax.data import batching
  from fame_jax.data.loading import load_data
  from fame_jax.training import config_check
  monkeypatch.chdir(ROOT)
  pop_losses, fired = {}, []
  runs = sorted(p.parent for p in (ROOT / "results").rglob("metrics.jsonl"))
  for run in runs:
    if not (run / "config.json").exists():
      continue
    # Read as stored: some runs set model options deleted since (only data and
    # train are used here).
    with open(run / "config.json") as f:
      stored = config_check.with_added_defaults(json.load(f), keep_deleted=True)
    data, train = ml_collections.ConfigDict(stored["data"]), ml_collections.ConfigDict(stored["train"])
    key = (json.dumps(stored["data"], sort_keys=True), train.examples)
    if key not in pop_losses:
      _, split = load_data(ml_collections.ConfigDict({"data": data}))
      b = batching.make_batcher(split.train, examples=train.examples, max_len=data.max_len,
                                batch_size=64, packing=False)
      pop_losses[key] = loop.popularity_loss(b.target_items())
    with open(run / "metrics.jsonl") as f:
      rows = [json.loads(line) for line in f if line.strip()]
    if any(loop.plateau_warning(r["epoch"], r["loss"], pop_losses[key], train)
           for r in rows if "loss" in r):
      fired.append(str(run.relative_to(ROOT)))
  assert len(runs) > 100
  assert fired == ["results/ml1m/size/sasrec_d128_l4_seed0"]


def test_training_warns_once_when_the_loss_stays_at_popularity(tmp_path, monkeypatch, capsys):
  """The loop's wiring: the popularity loss of the epoch's targets is computed
  once, and the warning is logged once, at the first epoch that qualifies. The
  rule and its numbers are the tests above; here the popularity loss is set
  to 0 (every loss is "at" it) and the plateau to epoch 1, so that tiny's
  already-compiled run serves."""
  seen = []

  def fake_popularity_loss(targets):
    seen.append(len(targets))
    return 0.0
  monkeypatch.setattr(loop, "popularity_loss", fake_popularity_loss)
  monkeypatch.setattr(loop, "PLATEAU_EPOCHS", 1)
  config = tiny.get_config()
  config.train.max_epochs = 3
  config.train.progress = False
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  out = capsys.readouterr().out.splitlines()
  warnings = [l for l in out if l.startswith("warning: epoch ")]
  assert len(warnings) == 1 and warnings[0].startswith("warning: epoch 1 mean training loss "), out
  assert "from its popularity alone" in warnings[0]
  assert len(seen) == 1 and seen[0] > 0


def test_progress_postfix_shows_the_last_validation_not_nan():
  rows = [{"epoch": 1, "loss": 5.0},
          {"epoch": 2, "loss": 4.0, "valid/NDCG@10": 0.0712},
          {"epoch": 3, "loss": 3.5}]
  assert loop.progress_postfix(rows, {"best_epoch": 2}) == {
      "loss": "3.5000", "ndcg10": "0.0712@ep2", "best": "ep2"}
  assert loop.progress_postfix(rows[:1], {"best_epoch": 0}) == {
      "loss": "5.0000", "ndcg10": "-", "best": "-"}


@pytest.mark.parametrize("tty,setting,shown", [
    (True, True, True), (False, True, False), (True, False, False)])
def test_progress_bars_only_on_a_terminal(monkeypatch, tty, setting, shown):
  monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
  config = tiny.get_config()
  config.train.progress = setting
  assert loop._show_progress(config) is shown  # pylint: disable=protected-access


def test_console_lines_count_every_drop():
  inter = Interactions(name="x", source="f.txt",
                       users=np.asarray(["a"] * 3 + ["b"] + ["c"] * 3 + ["d"] * 2, dtype=object),
                       items=np.asarray([1, 2, 3, 9, 1, 2, 3, 1, 2]), timestamps=None)
  ds = preprocess.preprocess(inter, kcore=2)
  split = leave_one_out(ds.sequences)
  lines = preprocess.console_lines(ds.report, split.dropped_users, len(split.users))
  assert lines[0] == "data: read: 4 users, 4 items, 9 interactions (from f.txt)"
  assert lines[1] == ("data: kcore(2): dropped 1 user, 1 item, 1 interaction (passes 2); "
                      "kept 3 users, 3 items, 8 interactions")
  assert lines[-1].startswith("data: leave-one-out split: dropped 1 user with fewer than 3")
  assert lines[-1].endswith("kept 2 users")
  assert len(lines) == len(ds.report) + 1
