"""Training loop: learns, resumes exactly, compiles once, packs exactly, 1 == 8 devices."""

import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from fame_jax import evaluation, losses, parallel
from fame_jax.data import batching
from fame_jax import sweep
from fame_jax.models import score_items
from fame_jax.training import loop, state as state_lib, steps as steps_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**overrides):
  """configs/tiny.py with dotted-key overrides (the sweep's own setter)."""
  return sweep.point_config(tiny.get_config(), list(overrides.items()))


@pytest.fixture(scope="module")
def tiny_run(tiny_trained_run):
  """The shared uninterrupted tiny run (tests/conftest.py)."""
  return tiny_trained_run


def _metrics_rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(l) for l in f]


def _assert_beats_popularity(config, results):
  """Test HR@10 well above popularity ranking on the same split and protocol."""
  dataset, split = loop.load_data(config)
  pop = evaluation.popularity_scores(split.train, dataset.num_items)
  histories, targets = split.eval_examples("test")
  pop_metrics = evaluation.evaluate(
      lambda inputs, lengths: np.tile(pop, (len(inputs), 1)), histories, targets, dataset.num_items,
      batch_size=64, max_len=config.data.max_len)
  assert results["test/HR@10"] > 1.5 * pop_metrics["HR@10"], (results["test/HR@10"], pop_metrics)
  return dataset


def test_tiny_run_learns_and_beats_popularity(tiny_run):
  config, workdir, results = tiny_run
  rows = _metrics_rows(workdir)
  assert [r["epoch"] for r in rows] == list(range(1, 21))
  assert rows[-1]["loss"] < rows[0]["loss"] - 0.3
  for name in ("results.json", "config.json", "training_curves.png"):
    assert os.path.exists(os.path.join(workdir, name)), name
  for k in (5, 10, 20):
    assert f"test/HR@{k}" in results and f"valid/NDCG@{k}" in results
  assert results["protocol"]["mask_history"] is True
  _assert_beats_popularity(config, results)


def test_finished_workdir_is_not_retrained(tiny_run):
  config, workdir, results = tiny_run
  mtime = os.path.getmtime(os.path.join(workdir, "metrics.jsonl"))
  again = loop.train_and_evaluate(config, workdir)
  assert again == results
  assert os.path.getmtime(os.path.join(workdir, "metrics.jsonl")) == mtime


def test_resume_equals_uninterrupted(tiny_run, tmp_path):
  config, workdir, results = tiny_run
  resumed_dir = str(tmp_path / "resumed")
  first = loop.train_and_evaluate(_config(**{"train.stop_after_epoch": 7}), resumed_dir)
  assert first == {"stopped_after_epoch": 7}
  assert not os.path.exists(os.path.join(resumed_dir, "results.json"))
  resumed = loop.train_and_evaluate(config, resumed_dir)
  a, b = _metrics_rows(workdir), _metrics_rows(resumed_dir)
  assert [r["epoch"] for r in b] == list(range(1, 21))
  for ra, rb in zip(a, b):
    assert abs(ra["loss"] - rb["loss"]) <= 1e-6, (ra, rb)
    assert abs(ra.get("valid/NDCG@10", 0) - rb.get("valid/NDCG@10", 0)) <= 1e-6
  for k, v in results.items():
    if k.startswith(("valid/", "test/")):
      assert abs(v - resumed[k]) <= 1e-6, k


def test_resume_with_another_validation_interval_trains_the_same(tiny_run, tmp_path):
  # A probe validated every 2 epochs, continued with the run's own interval (5):
  # validation does not change training, so every loss, and every validation
  # both runs made, is the uninterrupted run's.
  config, workdir, results = tiny_run
  assert config.train.eval_every_epochs == 5
  probe_dir = str(tmp_path / "probe")
  probe = _config(**{"train.eval_every_epochs": 2, "train.stop_after_epoch": 6})
  assert loop.train_and_evaluate(probe, probe_dir) == {"stopped_after_epoch": 6}
  resumed = loop.train_and_evaluate(config, probe_dir)
  a, b = _metrics_rows(workdir), _metrics_rows(probe_dir)
  assert [r["epoch"] for r in b] == list(range(1, 21))
  assert [r["epoch"] for r in b if "valid/NDCG@10" in r] == [2, 4, 6, 10, 15, 20]
  for ra, rb in zip(a, b):
    assert abs(ra["loss"] - rb["loss"]) <= 1e-6, (ra, rb)
    if "valid/NDCG@10" in ra and "valid/NDCG@10" in rb:
      assert abs(ra["valid/NDCG@10"] - rb["valid/NDCG@10"]) <= 1e-6
  if results["best_epoch"] in (10, 15, 20) and resumed["best_epoch"] == results["best_epoch"]:
    assert abs(resumed["test/NDCG@10"] - results["test/NDCG@10"]) <= 1e-6


def test_resume_with_a_different_config_is_refused(tiny_run):
  _, workdir, _ = tiny_run
  os.rename(os.path.join(workdir, "results.json"), os.path.join(workdir, "results.json.bak"))
  try:
    with pytest.raises(ValueError, match="model.hidden_size"):
      loop.train_and_evaluate(_config(**{"model.hidden_size": 32}), workdir)
  finally:
    os.rename(os.path.join(workdir, "results.json.bak"), os.path.join(workdir, "results.json"))


def test_finished_workdir_with_a_different_config_is_refused(tiny_run):
  # Not the stored results of another config: the difference is named.
  _, workdir, _ = tiny_run
  with pytest.raises(ValueError, match="model.hidden_size"):
    loop.train_and_evaluate(_config(**{"model.hidden_size": 32}), workdir)


def test_finished_run_continues_only_where_it_would_have_trained_on():
  cfg = _config(**{"train.patience_evals": 3}).train  # max_epochs 20, validation every 5.
  assert cfg.max_epochs == 20
  # A 12-epoch probe validated at 5, 10 and its last epoch 12, best at 10: one
  # validation since the best.
  rows = [{"epoch": e, **({"valid/NDCG@10": 0.1} if e in (5, 10, 12) else {})} for e in range(1, 13)]
  go, why = loop.finished_run_continues({"epochs_run": 12, "best_epoch": 10}, rows, cfg)
  assert go and "12 of train.max_epochs 20" in why and "1 validations" in why
  # The same run, asked for 12 epochs only: done.
  go, why = loop.finished_run_continues(
      {"epochs_run": 12, "best_epoch": 10}, rows,
      _config(**{"train.max_epochs": 12, "train.patience_evals": 3}).train)
  assert not go and "train.max_epochs 12" in why
  # Validated every 2 epochs and best at 6: stopped early (3 validations since),
  # whatever max_epochs says; a larger patience lets it go on.
  rows = [{"epoch": e, **({"valid/NDCG@10": 0.1} if e % 2 == 0 else {})} for e in range(1, 13)]
  go, why = loop.finished_run_continues({"epochs_run": 12, "best_epoch": 6}, rows, cfg)
  assert not go and "stopped early (3 validations" in why
  go, _ = loop.finished_run_continues(
      {"epochs_run": 12, "best_epoch": 6}, rows, _config(**{"train.patience_evals": 4}).train)
  assert go


def test_finished_probe_continued_with_more_epochs_equals_uninterrupted(tiny_run, tmp_path):
  # A 12-epoch probe that finished (results.json written) goes on to the
  # full run's 20 epochs from its epoch-12 checkpoint: every loss and every
  # validation both made is the uninterrupted run's.
  config, workdir, results = tiny_run
  probe_dir = str(tmp_path / "probe")
  probe = loop.train_and_evaluate(_config(**{"train.max_epochs": 12}), probe_dir)
  assert probe["epochs_run"] == 12
  broken = str(tmp_path / "no_latest")  # A copy without its latest checkpoint.
  shutil.copytree(probe_dir, broken)
  shutil.rmtree(os.path.join(broken, "checkpoints", "latest"))
  with pytest.raises(ValueError, match="cannot continue the finished run.*latest checkpoint is None"):
    loop.train_and_evaluate(config, broken)
  continued = loop.train_and_evaluate(config, probe_dir)
  assert continued["epochs_run"] == 20
  a, b = _metrics_rows(workdir), _metrics_rows(probe_dir)
  assert [r["epoch"] for r in b] == list(range(1, 21))
  assert [r["epoch"] for r in b if "valid/NDCG@10" in r] == [5, 10, 12, 15, 20]
  for ra, rb in zip(a, b):
    assert abs(ra["loss"] - rb["loss"]) <= 1e-6, (ra, rb)
    if "valid/NDCG@10" in ra and "valid/NDCG@10" in rb:
      assert abs(ra["valid/NDCG@10"] - rb["valid/NDCG@10"]) <= 1e-6
  if continued["best_epoch"] == results["best_epoch"]:
    assert abs(continued["test/NDCG@10"] - results["test/NDCG@10"]) <= 1e-6
  with open(os.path.join(probe_dir, "results.json")) as f:
    assert json.load(f) == continued
  # Now finished at 20: the same command returns it without training.
  mtime = os.path.getmtime(os.path.join(probe_dir, "metrics.jsonl"))
  assert loop.train_and_evaluate(config, probe_dir) == continued
  assert os.path.getmtime(os.path.join(probe_dir, "metrics.jsonl")) == mtime


def test_evaluate_reproduces_results_and_rejects_mismatched_config(tiny_run):
  config, workdir, results = tiny_run
  test = loop.evaluate_workdir(config, workdir, "test")
  for k, v in test.items():
    assert v == pytest.approx(results[k], abs=1e-7), k
  # A given config must agree with the workdir's config.json (fame_jax/workdir.py).
  with pytest.raises(ValueError, match="differs from .*config.json.*model.hidden_size: 16 -> 32"):
    loop.evaluate_workdir(_config(**{"model.hidden_size": 32}), workdir, "test")
  with pytest.raises(ValueError, match="data.synthetic.num_items: 120 -> 150"):
    loop.evaluate_workdir(_config(**{"data.synthetic.num_items": 150}), workdir, "test")


def test_workdir_from_before_an_added_or_deleted_config_key_still_resumes_and_evaluates(tiny_run):
  # A config.json written before model.output_norm_scale existed lacks the
  # key (it means the default), and one written before the diagnostic options
  # were deleted holds them at their no-op values: evaluation and resumption
  # accept both. A deleted option at another value is refused, naming the git
  # tag that keeps its code.
  config, workdir, results = tiny_run
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    original = f.read()
  stored = json.loads(original)
  del stored["model"]["output_norm_scale"]
  stored["model"].update(head_mix=False, mix="logits", facet_proj_scale=1.0, fame_dropout=-1.0)
  try:
    with open(path, "w") as f:
      json.dump(stored, f)
    test = loop.evaluate_workdir(config, workdir, "test")
    assert test["test/NDCG@10"] == pytest.approx(results["test/NDCG@10"], abs=1e-7)
    loop._prepare_workdir(config, workdir)  # The resume check: accepted, no ValueError.
    stored["model"]["head_mix"] = True
    with open(path, "w") as f:
      json.dump(stored, f)
    with pytest.raises(ValueError, match="(?s)model.head_mix=True.*variant-study-archive"):
      loop.evaluate_workdir(config, workdir, "test")
    with pytest.raises(ValueError, match="(?s)model.head_mix=True.*variant-study-archive"):
      loop._prepare_workdir(config, workdir)
  finally:
    with open(path, "w") as f:
      f.write(original)


def test_evaluate_cli_prints_the_same_metrics(tiny_run, tmp_path):
  config, workdir, results = tiny_run
  export_dir = str(tmp_path / "export")
  out = subprocess.run(
      [sys.executable, "evaluate.py", "--config", "configs/tiny.py", "--workdir", workdir,
       "--split", "valid", "--export", export_dir],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  json_lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
  assert len(json_lines) == 1, out.stdout  # The export's summary lines follow it.
  printed = json.loads(json_lines[0])
  assert printed["valid/NDCG@10"] == pytest.approx(results["valid/NDCG@10"], abs=1e-7)
  # The export ranks the split that was asked for (it once always ranked test).
  with open(os.path.join(export_dir, "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["split"] == "valid"
  assert manifest["metrics"]["valid/NDCG@10"] == pytest.approx(results["valid/NDCG@10"], abs=1e-6)


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
  real = steps_lib.make_train_step

  def poisoned(*args):
    step = real(*args)

    def wrapped(state, batch, rng):
      state, m = step(state, batch, rng)
      bad = jnp.where(state.step > 12, jnp.nan, 0.0)
      return state, {**m, "loss_sum": m["loss_sum"] + bad}
    return wrapped

  monkeypatch.setattr(steps_lib, "make_train_step", poisoned)
  workdir = str(tmp_path / "nan")
  with pytest.raises(FloatingPointError, match=r"step 12 \(epoch 2\).* last good checkpoint, of epoch 1,"):
    loop.train_and_evaluate(_config(**{"train.max_epochs": 3}), workdir)
  ck = os.listdir(os.path.join(workdir, "checkpoints", "latest"))
  assert ck, "last good checkpoint must stay"


def _model_state_batches(config):
  dataset, split = loop.load_data(config)
  mesh = parallel.make_mesh()
  model, state = state_lib.create_train_state(config, dataset.num_items, jax.random.key(0))
  return dataset, split, mesh, model, state


def test_train_step_compiles_once_per_epoch():
  config = _config()
  dataset, split, mesh, model, state = _model_state_batches(config)
  batcher = batching.make_batcher(split.train, examples="all_positions", max_len=config.data.max_len,
                                  batch_size=config.train.batch_size, packing=True)
  step = steps_lib.make_train_step(model, config, mesh)
  state = jax.device_put(state, parallel.replicated(mesh))  # As the loop does.
  for epoch in (1, 2):
    for b in batcher.epoch(0, epoch):
      state, _ = step(state, parallel.put_batch(b, mesh), jax.random.key(1))
  assert step._cache_size() == 1


def test_packed_loss_equals_unpacked_loss():
  config = _config()
  dataset, split, mesh, model, state = _model_state_batches(config)
  L = config.data.max_len
  packed = batching.make_batcher(split.train, examples="all_positions", max_len=L, batch_size=32,
                                 packing=True)
  batch = packed.epoch(0, 1)[0]
  assert (batch["segments"].max(axis=1) >= 2).any(), "the batch must really be packed"
  # The same examples, one per row.
  rows = []
  for r in range(batch["items"].shape[0]):
    for s in np.unique(batch["segments"][r]):
      if s:
        m = batch["segments"][r] == s
        rows.append((batch["items"][r][m], batch["targets"][r][m]))
  unpacked = {k: np.zeros((len(rows), L), np.int32) for k in ("items", "positions", "segments", "targets")}
  unpacked["weights"] = np.zeros((len(rows), L), np.float32)
  for i, (x, y) in enumerate(rows):
    n = len(x)
    unpacked["items"][i, :n], unpacked["targets"][i, :n] = x, y
    unpacked["positions"][i, :n], unpacked["segments"][i, :n], unpacked["weights"][i, :n] = np.arange(n), 1, 1

  ce = losses.get_loss_fn("dense", 0)

  @jax.jit
  def loss_sums(params, b):
    u, _ = model.apply({"params": params}, b["items"], b["positions"], b["segments"], train=False)
    return ce(u.reshape(-1, u.shape[-1]), params["item_emb"]["embedding"],
              b["targets"].reshape(-1), b["weights"].reshape(-1))

  def loss(b):
    s, w = loss_sums(state.params, b)
    return float(s / w), float(w)

  (lp, wp), (lu, wu) = loss(batch), loss(unpacked)
  assert wp == wu
  assert abs(lp - lu) < 1e-5, (lp, lu)



def test_prefix_last_loss_at_the_last_column_equals_the_loss_over_all_positions():
  """The prefix_last step scores only the last column; value and gradient must
  equal the literal loss over every [B, W] position with zero weights elsewhere.

  One layer (the FAME block, run at the last column only): the check is of
  the loss path, and each layer adds ~10 s of eager op compiles on 2 cores."""
  config = _config(**{"train.examples": "prefix_last", "model.num_layers": 1})
  dataset, split, mesh, model, state = _model_state_batches(config)
  batcher = batching.make_batcher(split.train, examples="prefix_last", max_len=config.data.max_len,
                                  batch_size=16, packing=False)
  batches = [b for b in batcher.epoch(0, 1) if b["items"].shape[1] > 2][:2]
  assert batches, "need batches wider than 2 columns"
  full = steps_lib.make_loss_fn(model, _config(**{"train.examples": "all_positions",
                                                   "model.num_layers": 1}))
  last = steps_lib.make_loss_fn(model, config)
  rng = jax.random.key(5)
  for b in batches:
    w = b["weights"]
    assert (w[:, :-1] == 0).all() and (w[:, -1] > 0).any(), "targets sit in the last column"
    (v_full, aux_full), g_full = jax.value_and_grad(full, has_aux=True)(state.params, b, rng)
    (v_last, aux_last), g_last = jax.value_and_grad(last, has_aux=True)(state.params, b, rng)
    assert float(aux_full[1]) == float(aux_last[1]) == float(w.sum())
    np.testing.assert_allclose(float(v_last), float(v_full), rtol=1e-6)
    for a, c in zip(jax.tree_util.tree_leaves(g_last), jax.tree_util.tree_leaves(g_full)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-4, atol=1e-7)


def test_one_device_equals_eight_devices(eight_devices):
  """The first 4 data-parallel steps of configs/tiny.py (one layer) on one device here and
  on 8 (tests/eight_device_check.py, the same function)."""
  import eight_device_check
  one = eight_device_check.train_steps(parallel.make_mesh(jax.devices()[:1]))
  eight = eight_devices[0]["train_steps"]
  assert one["devices"] == 1 and eight["devices"] == 8
  np.testing.assert_allclose(one["losses"], eight["losses"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("examples", ["all_positions", "prefix_last"])
def test_tiled_ranking_from_user_vectors_equals_full_scores(examples):
  """The large-catalog path (user vectors + item tiles, docs/protocol.md §9) ranks like the dense scorer."""
  config = _config()
  dataset, split, mesh, model, state = _model_state_batches(config)
  hist, tgt = split.eval_examples("test")
  hist, tgt = hist[:50], np.asarray(tgt[:50], np.int32)
  L = config.data.max_len
  inputs, _, _ = batching.eval_inputs(hist, L, left_pad=False)
  lengths = np.minimum([len(h) for h in hist], L).astype(np.int32)
  width = max(len(h) for h in hist)
  full = np.zeros((len(hist), width), np.int32)
  for r, h in enumerate(hist):
    full[r, :len(h)] = h
  scores = steps_lib.make_score_fn(model, state.params, examples, L)(inputs, lengths)
  dense = evaluation.compute_ranks(scores, tgt, full)
  u = steps_lib.make_user_vector_fn(model, examples)(state.params, inputs, lengths)
  table = state.params["item_emb"]["embedding"]
  for chunk in (7, 64, 10_000):
    tiled = evaluation.compute_ranks_from_user_vectors(u, table, tgt, full, item_chunk=chunk)
    np.testing.assert_array_equal(np.asarray(tiled), np.asarray(dense))
  assert len(np.unique(np.asarray(dense))) > 5  # Real, varied ranks.


@pytest.mark.parametrize("examples", ["all_positions", "prefix_last"])
def test_score_fn_on_trimmed_windows_equals_full_window(examples):
  """make_score_fn runs short histories on narrow windows; scores must equal the full width's."""
  config = _config()
  dataset, split, mesh, model, state = _model_state_batches(config)
  L = config.data.max_len
  hist, _ = split.eval_examples("test")
  score_fn = steps_lib.make_score_fn(model, state.params, examples, L)
  full_width = steps_lib.make_user_vector_fn(model, examples, L)
  table = state.params["item_emb"]["embedding"]
  for n in (1, 2, 3, 5, 9, L):  # Widths 1, 2, 4, 8, 16 and L.
    h = [x[-n:] for x in hist[:4] if len(x) >= n]
    inputs, _, _ = batching.eval_inputs(h, L, left_pad=False)
    lengths = np.full(len(h), n, np.int32)
    got = np.asarray(score_fn(inputs, lengths))
    want = np.asarray(score_items(full_width(state.params, inputs, lengths), table))
    np.testing.assert_allclose(got[:, 1:], want[:, 1:], rtol=1e-5, atol=1e-5)


def test_repeated_evaluations_reuse_one_compiled_scorer():
  """A validation per epoch must not recompile the scorer (one compile per width, ever)."""
  config = _config()
  dataset, split, mesh, model, state = _model_state_batches(config)
  hist, tgt = split.eval_examples("valid")
  for _ in range(2):
    score_fn = steps_lib.make_score_fn(model, state.params, "all_positions", config.data.max_len)
    evaluation.evaluate(score_fn, hist, tgt, dataset.num_items, batch_size=64,
                        max_len=config.data.max_len)
  scores = steps_lib._jitted_scores(model, "all_positions", config.data.max_len)
  widths = {min(config.data.max_len, evaluation.next_pow2(min(len(h), config.data.max_len)))
            for h in hist}
  assert scores._cache_size() <= len(widths)


def test_device_memory_peak_mb_reads_accelerator_stats():
  from fame_jax import parallel

  class _Dev:
    def __init__(self, stats):
      self._stats = stats

    def memory_stats(self):
      if isinstance(self._stats, Exception):
        raise self._stats
      return self._stats

  # The CPU backend reports no statistics: None, not a made-up number.
  assert parallel.device_memory_peak_mb() is None
  assert parallel.device_memory_peak_mb([_Dev(None), _Dev(NotImplementedError())]) is None
  # Accelerators: the largest peak over the devices, in MiB.
  devs = [_Dev({"peak_bytes_in_use": 3 * 2**20}), _Dev({"peak_bytes_in_use": 5 * 2**20 + 2**19}),
          _Dev({"bytes_in_use": 7})]
  assert parallel.device_memory_peak_mb(devs) == 5.5
