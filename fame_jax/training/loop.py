"""``train_and_evaluate``: the one training entry point behind ``train.py``.

An epoch = one pass over the training examples in an order fixed by
``(seed, epoch)``; validation every ``eval_every_epochs``; early stopping on
validation NDCG@10 after ``patience_evals`` evaluations without a new best;
then the best checkpoint is evaluated on validation and test.

Workdir contents: ``config.json`` (resolved config), ``vocab.json``,
``histories.npz`` and ``preprocessing.json`` (the data as trained on, see
:mod:`fame_jax.workdir`), ``metrics.jsonl`` (one line per epoch),
``checkpoints/{latest,best}`` (Orbax), ``results.json`` and
``training_curves.png``. Re-running on an interrupted workdir resumes from the
latest checkpoint and replays exactly what an uninterrupted run would have
done; a finished workdir (``results.json`` present) is not retrained.

``train_and_evaluate`` runs these phases in order, each a function below:
``_finished_run`` (return a finished run's results, or note that it goes
on), ``_prepare_workdir``, ``_load_data``, ``_build_model_and_state``,
``_restore_or_init``, ``_fit``, ``_final_evaluation``, ``_write_results``.
Data loading lives in :mod:`fame_jax.data.loading` and checkpoint restores and
fit checks in :mod:`fame_jax.training.checkpoints`; ``load_data`` and
``restore_params`` are re-exported here for the scripts that import them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from fame_jax import distributed, evaluation, options, parallel, sharded_table
from fame_jax import workdir as workdir_lib
from fame_jax.data import batching
from fame_jax.data import preprocess as preprocess_lib
from fame_jax.data.dataset import Dataset
from fame_jax.data.errors import DataError
from fame_jax.data.loading import load_data
from fame_jax.data.split import Split
from fame_jax.errors import ConfigError, DivergedError
from fame_jax.models import FAME, count_params
from fame_jax.training import checkpoints as ckpt_lib
from fame_jax.training import state as state_lib
from fame_jax.training import steps as steps_lib
from fame_jax.training.config_check import (config_differences, validate_config,
                                             with_added_defaults)

# Config fields that may differ when resuming (they do not change the result
# of the epochs already run). Validation never touches the training state, the
# data order or the dropout keys, so a short run validated every 2 epochs
# resumes as a longer one validated every epoch (tests/test_training.py).
_RESUMABLE_DIFFS = ("train.max_epochs", "train.patience_evals", "train.log_every_steps",
                    "train.log_step_losses",
                    "train.eval_every_epochs",
                    "eval.batch_size", "data.path", "data.item_text_path", "data.attributes_path",
                    "data.attribute_names_path", "data.metadata_path", "data.tfds_data_dir",
                    "train.progress", "train.stop_after_epoch")


def _log(msg: str) -> None:
  """One console line, from process 0 only (``fame_jax.distributed``)."""
  if distributed.is_main():
    tqdm.write(msg)


def _show_progress(config: ml_collections.ConfigDict) -> bool:
  """tqdm bars only where a person watches a terminal: redirected to a file,
  their carriage-return frames would interleave with the log lines, so a
  non-TTY stderr gets the plain per-epoch lines of :func:`_fit` alone."""
  return (bool(config.train.get("progress", True)) and sys.stderr.isatty()
          and distributed.is_main())


# An epoch's mean training loss above this many times ln(num_items) warns that
# training diverges: a model that scores every item alike has loss ln(N), so
# 3 ln(N) is far worse than guessing. A healthy run starts near ln(N) and falls.
LOSS_WARNING_FACTOR = 3.0


def loss_warning(epoch: int, loss: float, num_items: int,
                 train_cfg: ml_collections.ConfigDict) -> str | None:
  """The warning line for a diverging epoch loss (see :data:`LOSS_WARNING_FACTOR`),
  or ``None`` when ``loss`` is below the limit."""
  limit = LOSS_WARNING_FACTOR * math.log(num_items)
  if not loss > limit:
    return None
  return (f"warning: epoch {epoch} mean training loss {loss:.4g} is above "
          f"{LOSS_WARNING_FACTOR:g} x ln({num_items} items) = {limit:.2f} (a uniform guess scores "
          f"{math.log(num_items):.2f}): training is diverging; lower train.learning_rate (now "
          f"{train_cfg.learning_rate:g}) or set train.grad_clip_norm (now {train_cfg.grad_clip_norm:g})")


# A training loss still within this fraction of the popularity loss (below)
# after PLATEAU_EPOCHS epochs warns that the model has not started to use the
# history. Healthy runs leave it within 2-6 epochs (Beauty and Sports by epoch
# 3, ML-1M FAME d 128 L4 at 6); a 4-block SASRec at lr 1e-3 from step 0 on
# ML-1M never did (docs/findings.md#ml1m-size).
PLATEAU_MARGIN = 0.01
PLATEAU_EPOCHS = 8


def popularity_loss(target_items: np.ndarray) -> float:
  """The mean training loss of predicting every target from item popularity
  alone: the entropy of the targets' item distribution, the lowest full-softmax
  cross-entropy that any model ignoring the history can reach."""
  counts = np.bincount(np.asarray(target_items, np.int64))
  p = counts[counts > 0] / counts.sum()
  return float(-(p * np.log(p)).sum())


def plateau_warning(epoch: int, loss: float, pop_loss: float,
                    train_cfg: ml_collections.ConfigDict) -> str | None:
  """The warning line for a run whose loss is still at the popularity level
  after :data:`PLATEAU_EPOCHS` epochs, or ``None``."""
  if epoch < PLATEAU_EPOCHS or loss < (1.0 - PLATEAU_MARGIN) * pop_loss:
    return None
  change = ("set train.warmup_steps (now 0), e.g. 500" if not train_cfg.warmup_steps else
            f"lengthen train.warmup_steps (now {train_cfg.warmup_steps})")
  return (f"warning: epoch {epoch} mean training loss {loss:.4g} is within {PLATEAU_MARGIN:.0%} of "
          f"{pop_loss:.4g}, the loss of predicting the next item from its popularity alone: the "
          f"model has not started to use the history. Deep post-LN stacks at the full learning "
          f"rate from step 0 can stay there for good (docs/findings.md#ml1m-size); if the loss does "
          f"not fall within a few epochs, {change} or lower train.learning_rate "
          f"(now {train_cfg.learning_rate:g}) and train in a new --workdir")


def divergence_message(step: int, epoch: int, latest_epoch: int | None, checkpoint_dir: str,
                       train_cfg: ml_collections.ConfigDict) -> str:
  """The one-line reason a run stopped on a non-finite loss: which checkpoint is
  kept (only if one was saved) and what to change."""
  what = f"non-finite training loss at step {step} (epoch {epoch}); training stopped"
  change = (f"Lower train.learning_rate (now {train_cfg.learning_rate:g}) or set "
            f"train.grad_clip_norm (now {train_cfg.grad_clip_norm:g})")
  if latest_epoch is None:
    return (f"{what} before any checkpoint was saved (no epoch finished). {change}, and train in "
            "a new --workdir")
  return (f"{what}. The last good checkpoint, of epoch {latest_epoch}, is kept in "
          f"{checkpoint_dir}/latest. {change}, and train in a new --workdir")


def progress_postfix(rows: list[dict], tracker: dict) -> dict[str, str]:
  """The epoch bar's postfix: last loss, the LAST validation with its epoch
  (``0.0712@ep12``; an epoch without validation does not show ``nan``), best epoch."""
  out = {"loss": f"{rows[-1]['loss']:.4f}"} if rows else {}
  validated = [r for r in rows if "valid/NDCG@10" in r]
  out["ndcg10"] = (f"{validated[-1]['valid/NDCG@10']:.4f}@ep{validated[-1]['epoch']}"
                   if validated else "-")
  out["best"] = f"ep{tracker['best_epoch']}" if tracker.get("best_epoch") else "-"
  return out


def _log_data(config: ml_collections.ConfigDict, dataset: Dataset, split: Split) -> None:
  """One console line per preprocessing step and for the split, each with what
  it dropped; a DataError when the split leaves no user to train on."""
  for line in preprocess_lib.console_lines(dataset.report, split.dropped_users, len(split.users)):
    _log(line)
  if not len(split.users):
    raise DataError(config.data.path or config.data.name,
                    f"no user of {dataset.num_users:,} has the 3 interactions the leave-one-out split "
                    "needs (a training, a validation and a test item)")


def model_variant(model_cfg: ml_collections.ConfigDict) -> str:
  """Names the model variant written next to every result (docs/protocol.md trap 9).

  FAME's label lists the options that ``fame_jax.options`` marks for it.
  """
  if model_cfg.num_experts == 1 and not model_cfg.facet_heads and not model_cfg.moe_all_layers:
    return "SASRec (post-LN RecBole-style, GELU FFN, full-softmax CE)"
  parts = (f"{o.label}={model_cfg[o.key.split('.', 1)[1]]}" for o in options.label_options())
  return f"FAME ({', '.join(parts)})"


def _evaluate_split(model, params, config, split: Split, which: str, num_items: int,
                    progress: bool, table=None, mesh=None) -> dict[str, float]:
  histories, targets = split.eval_examples(which)
  score_fn, rank_fn = None, None
  if distributed.process_count() > 1:
    # Each process ranks its rows of every chunk; the ranks are gathered.
    rank_fn = steps_lib.make_global_rank_fn(model, params, config, mesh, table)
  elif table is None:
    score_fn = steps_lib.make_score_fn(model, params, config.train.examples, config.data.max_len)
  else:  # Row-sharded table: per-shard counts, never a [B, N + 1] matrix.
    rank_fn = steps_lib.make_sharded_rank_fn(model, params, config, table)
  metrics = evaluation.evaluate(
      score_fn, histories, targets, num_items, batch_size=config.eval.batch_size,
      mask_history=config.eval.mask_history, ks=tuple(config.eval.ks),
      max_len=config.data.max_len, progress=progress, rank_fn=rank_fn)
  return {f"{which}/{k}": float(v) for k, v in metrics.items()}


def _read_metrics(path: str, upto_epoch: int) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  return [r for r in rows if r["epoch"] <= upto_epoch]


def _write_metrics(path: str, rows: list[dict]) -> None:
  if not distributed.is_main():
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    for r in rows:
      f.write(json.dumps(r) + "\n")
  os.replace(tmp, path)


def _check_stored_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises if the workdir's ``config.json`` differs from ``config`` in a
  field that changes what the epochs already run computed."""
  path = os.path.join(workdir, "config.json")
  resolved = json.loads(config.to_json_best_effort())
  if os.path.exists(path):
    with open(path) as f:
      stored = with_added_defaults(json.load(f))
    diffs = [d for d in config_differences(stored, resolved) if d[0] not in _RESUMABLE_DIFFS]
    if diffs:
      lines = "\n".join(f"  {k}: workdir has {a!r}, command has {b!r}" for k, a, b in diffs[:20])
      raise ValueError(f"workdir {workdir} was made with a different config; use a new --workdir "
                       f"or the same config. Differences:\n{lines}")


def _prepare_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes ``config.json`` (atomically), or checks the stored one still matches."""
  _check_stored_config(config, workdir)
  if distributed.is_main():
    os.makedirs(workdir, exist_ok=True)
    workdir_lib.write_json_atomic(os.path.join(workdir, workdir_lib.CONFIG_FILE),
                                  json.loads(config.to_json_best_effort()))
  distributed.barrier("prepare_workdir")


def finished_run_continues(results: dict, rows: list[dict],
                           train_cfg: ml_collections.ConfigDict) -> tuple[bool, str]:
  """Whether a finished run would have trained on under ``train_cfg``.

  A run ends at ``max_epochs`` or when ``patience_evals`` validations in a row
  bring no new best. Resuming it with a larger ``max_epochs`` (or patience)
  continues it exactly as one longer run would have gone on, since the
  learning rate does not depend on either (e.g. a 20-epoch probe continued as
  a full run).

  Args:
    results: the run's ``results.json`` (``epochs_run``, ``best_epoch``).
    rows: its ``metrics.jsonl`` rows.
    train_cfg: the ``train`` section of the command's config.

  Returns:
    ``(continues, reason)``, the reason in words for the log.
  """
  last, best = int(results["epochs_run"]), int(results["best_epoch"])
  since_best = sum(1 for r in rows if best < r["epoch"] <= last and "valid/NDCG@10" in r)
  if since_best >= train_cfg.patience_evals:
    return False, (f"it stopped early ({since_best} validations without a new best since epoch "
                   f"{best}; patience {train_cfg.patience_evals})")
  if last >= train_cfg.max_epochs:
    return False, f"it ran {last} epochs (train.max_epochs {train_cfg.max_epochs})"
  return True, (f"it ran {last} of train.max_epochs {train_cfg.max_epochs} epochs with "
                f"{since_best} validations since its best (patience {train_cfg.patience_evals})")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes) a model, then evaluates its best checkpoint.

  Args:
    config: the full config (see ``configs/base.py``).
    workdir: run directory; created if missing.

  Returns:
    The contents of ``results.json``, or ``{"stopped_after_epoch": e}`` when
    ``train.stop_after_epoch`` paused the run (the same command resumes it).
  """
  validate_config(config)
  workdir = os.path.abspath(workdir)
  results, finished_epoch = _finished_run(config, workdir)
  if results is not None:
    return results
  _prepare_workdir(config, workdir)
  dataset, split = _load_data(config, workdir)
  _log_data(config, dataset, split)
  run, abstract_state = _build_model_and_state(config, workdir, dataset, split)
  state, tracker, rows, epochs_done = _restore_or_init(run, abstract_state, finished_epoch)
  state, stopped_after = _fit(run, state, tracker, rows, epochs_done)
  if stopped_after is not None:
    run.ckpts.close()
    _log(f"stopped after epoch {stopped_after} (train.stop_after_epoch); run the same command "
         "to resume")
    return {"stopped_after_epoch": stopped_after}
  results = _final_evaluation(run, state, tracker, rows)
  _write_results(run, results, rows)
  return results


@dataclasses.dataclass(frozen=True)
class _Run:
  """What the phases after loading share; built once by ``_build_model_and_state``.

  The changing part of a run (train state, early-stopping tracker, metric
  rows, epochs done) is passed between the phases explicitly instead.
  """

  config: ml_collections.ConfigDict
  workdir: str
  dataset: Dataset
  split: Split
  mesh: jax.sharding.Mesh
  batcher: Any  # fame_jax.data.batching batcher: one epoch's batches per (seed, epoch).
  model: FAME
  init_rng: jax.Array
  step_rng: jax.Array
  ckpts: ckpt_lib.Checkpoints
  progress: bool
  # sharded_table.TableLayout with train.shard_item_table, else None (replicated table).
  table: Any = None
  # This process's rows (lo, hi) of every global batch (all rows in one process).
  rows: tuple[int, int] | None = None

  @property
  def metrics_path(self) -> str:
    return os.path.join(self.workdir, "metrics.jsonl")


def _finished_run(config: ml_collections.ConfigDict, workdir: str) -> tuple[dict | None, int | None]:
  """Looks for a finished run (``results.json``) in ``workdir``.

  A finished run must have been made by the same config (else its stored
  results would be returned for a config that did not make them), and goes on
  only where a longer ``max_epochs`` / patience lets it (see
  :func:`finished_run_continues`).

  Returns:
    ``(results, None)`` for a finished run that stays finished (nothing to
    train); ``(None, epochs_run)`` for one that continues; ``(None, None)``
    when there is no finished run.
  """
  results_path = os.path.join(workdir, "results.json")
  if not os.path.exists(results_path):
    return None, None
  _check_stored_config(config, workdir)
  with open(results_path) as f:
    results = json.load(f)
  continues, why = finished_run_continues(
      results, _read_metrics(os.path.join(workdir, "metrics.jsonl"), results["epochs_run"]),
      config.train)
  if not continues:
    _log(f"{workdir} already holds a finished run (results.json): {why}; not retraining. "
         "Use a new --workdir to train again.")
    return results, None
  _log(f"continuing the finished run in {workdir}: {why}")
  return None, int(results["epochs_run"])


def _load_data(config: ml_collections.ConfigDict, workdir: str) -> tuple[Dataset, Split]:
  """Loads the dataset and its split; records them in the workdir.

  ``vocab.json``, ``histories.npz`` and ``preprocessing.json`` are written on a
  fresh run; a resumed run must load the same data
  (:func:`fame_jax.workdir.write_or_check_data_files`). ``data_summary.json``'s
  item count is what :func:`fame_jax.training.checkpoints.check_fits` later
  compares with the dataset of an evaluation command.
  """
  dataset, split = load_data(config)
  if distributed.is_main():  # The other processes read the same data (same file, same code).
    workdir_lib.write_or_check_data_files(workdir, config.data, dataset, split)
    with open(os.path.join(workdir, "data_summary.json"), "w") as f:
      json.dump({k: v for k, v in dataset.statistics().items() if k != "preprocessing"}
                | {"split_dropped_users": split.dropped_users}, f, indent=2)
  distributed.barrier("load_data")
  return dataset, split


def _build_model_and_state(config: ml_collections.ConfigDict, workdir: str, dataset: Dataset,
                           split: Split) -> tuple[_Run, Any]:
  """Mesh, batcher, model and checkpoints, and the abstract train state.

  The abstract state (shapes, dtypes and shardings, from ``jax.eval_shape``
  of the function that builds the live state: docs/protocol.md trap 15) is
  what a checkpoint is restored into; nothing is initialised for it.

  Returns:
    ``(run, abstract_state)``.
  """
  mesh = parallel.make_mesh()
  batcher = batching.make_batcher(
      split.train, examples=config.train.examples, max_len=config.data.max_len,
      batch_size=config.train.batch_size, packing=config.train.packing,
      row_multiple=mesh.devices.size)
  parallel.check_divisible(batcher.rows_per_batch, mesh, "rows per batch")
  init_rng, step_rng = jax.random.split(jax.random.key(config.train.seed))
  table = sharded_table.layout_for(config, dataset.num_items, mesh)
  model = FAME(cfg=config.model, num_items=dataset.num_items)
  abstract = ckpt_lib.abstract_train_state(config, dataset.num_items, mesh=mesh, table=table)
  ckpts = ckpt_lib.Checkpoints(os.path.join(workdir, "checkpoints"), config.train.keep_checkpoints)
  rows = distributed.local_row_range(parallel.batch_sharded(mesh), batcher.rows_per_batch)
  run = _Run(config=config, workdir=workdir, dataset=dataset, split=split, mesh=mesh,
             batcher=batcher, model=model, init_rng=init_rng, step_rng=step_rng, ckpts=ckpts,
             progress=_show_progress(config), table=table, rows=rows)
  return run, abstract


def _restore_or_init(run: _Run, abstract_state: Any, finished_epoch: int | None
                     ) -> tuple[Any, dict, list[dict], int]:
  """The state to train from: the latest checkpoint's, else a fresh one.

  Resuming restores the state and the early-stopping tracker and cuts
  ``metrics.jsonl`` back to the checkpoint's epoch (an interrupted epoch may
  have logged a row after it). When the newest checkpoint cannot be restored
  (damaged on disk), the one before it is used with a warning and the epochs
  after it are replayed exactly (:meth:`Checkpoints.resume`). A fresh start
  takes the initial params (with the pre-training hand-off when configured)
  and empties ``metrics.jsonl``.

  Args:
    run: the run's fixed parts.
    abstract_state: the abstract state of ``_build_model_and_state`` (the
      restore target).
    finished_epoch: ``epochs_run`` of a finished run that continues; its
      latest checkpoint must be of that epoch.

  Returns:
    ``(state, tracker, rows, epochs_done)``: the replicated train state, the
    tracker (best NDCG@10 and epoch, validations since the best, training
    seconds), the metric rows of the epochs already run and their number.

  Raises:
    CheckpointError: no ``latest`` checkpoint restores (each tried one and
      the folder to remove are named).
  """
  ckpts = run.ckpts
  if finished_epoch is not None and ckpts.latest_epoch() != finished_epoch:
    raise ValueError(
        f"cannot continue the finished run in {run.workdir}: it ran {finished_epoch} epochs but its "
        f"latest checkpoint is {ckpts.latest_epoch()} ({ckpts.directory}/latest); use a new --workdir")
  # The newest checkpoint that restores; a damaged newer one is reported and
  # set aside, and the epochs after the older one are replayed exactly.
  try:
    restored = ckpts.resume(abstract_state, log=_log)
  except ckpt_lib.CheckpointError:
    ckpts.close()  # No Orbax thread left to print at exit.
    raise
  if restored is not None:
    state, meta = restored
    epochs_done = int(meta["epoch"])
    _write_metrics(run.metrics_path, _read_metrics(run.metrics_path, epochs_done))
    _log(f"resuming {run.workdir} after epoch {epochs_done} (step {int(state.step)})")
    return state, meta["tracker"], _read_metrics(run.metrics_path, epochs_done), epochs_done
  params = _initial_params(run.config, run.model, run.init_rng, run.dataset, run.workdir)
  _, state = state_lib.create_train_state(run.config, run.dataset.num_items, run.init_rng,
                                          params=params, table=run.table)
  _write_metrics(run.metrics_path, [])
  tracker = {"best_ndcg10": -1.0, "best_epoch": 0, "evals_since_best": 0, "train_seconds": 0.0}
  return sharded_table.put_state(state, run.mesh, run.table), tracker, [], 0


def _initial_params(config, model, rng, dataset, workdir):
  """Fresh params, or the pre-training hand-off when configured."""
  params = state_lib.init_params(model, config, rng)
  source = config.init.item_embeddings_from
  if config.pretrain.enabled and not source:
    if distributed.process_count() > 1:
      raise ConfigError(
          "text pre-training (pretrain.enabled) runs in one process: start this run in one process "
          "with --config.train.stop_after_epoch=1 (it pre-trains, trains one epoch and pauses), "
          "then run the same command over several processes, which resumes it")
    from fame_jax.pretraining import pretrain
    pretrain.run_pretraining(config, dataset, workdir)
    source = workdir
  if source:
    from fame_jax.pretraining import handoff
    params = handoff.apply_pretrained_item_embeddings(params, source, config.model)
  return params


def peak_memory_bytes(reset: bool = False) -> int | None:
  """Peak memory of this run: the accelerator's peak bytes in use, else (CPU)
  the process's resident high-water mark (Linux VmHWM); None where neither is
  known. ``reset`` restarts the CPU high-water mark, so a sweep's earlier runs
  do not count (an accelerator's peak cannot be reset: in a sweep it is the
  process's)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"])
  try:
    if reset:
      with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with open("/proc/self/status") as f:
      return next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:")), None)
  except OSError:
    return None


def _fit(run: _Run, state: Any, tracker: dict, rows: list[dict], epochs_done: int
         ) -> tuple[Any, int | None]:
  """Trains epochs ``epochs_done + 1 .. train.max_epochs``.

  Each epoch: the batches of ``(seed, epoch)``, a stop with the step on a
  non-finite loss, validation every ``eval_every_epochs`` (and at the last
  epoch) with the best params saved, a ``metrics.jsonl`` row and the latest
  checkpoint. Stops early after ``patience_evals`` validations without a new
  best, or pauses after ``train.stop_after_epoch``. ``tracker`` and ``rows``
  are updated in place.

  Returns:
    ``(state, stopped_after)``: the last state, and the epoch the run paused
    after (``None`` when it ended).

  Each epoch also logs one plain line (loss, seconds, validation), and a
  warning line when its loss diverges (:func:`loss_warning`); the first epoch
  from :data:`PLATEAU_EPOCHS` on whose loss is still at the popularity level
  logs :func:`plateau_warning`.

  Raises:
    DivergedError: (a FloatingPointError) a non-finite training loss; the
      message names the last good checkpoint only if one was saved.
  """
  config, ckpts, mesh = run.config, run.ckpts, run.mesh
  start_epoch = epochs_done + 1
  train_step = steps_lib.make_train_step(run.model, config, mesh, run.table)
  _log(f"{run.dataset.name}: {run.dataset.num_users} users, {run.dataset.num_items} items; "
       f"{model_variant(config.model)}; {count_params(state.params):,} params; "
       f"{mesh.devices.size} device(s) {jax.devices()[0].platform}; "
       f"{run.batcher.num_targets:,} training targets/epoch; rows/batch {run.batcher.rows_per_batch}")

  stopped_early = tracker["evals_since_best"] >= config.train.patience_evals
  pop_loss, plateau_warned = popularity_loss(run.batcher.target_items()), False
  peak_memory_bytes(reset=True)
  epoch_bar = tqdm(range(start_epoch, config.train.max_epochs + 1), desc="epochs",
                   initial=start_epoch - 1, total=config.train.max_epochs, disable=not run.progress)
  for epoch in epoch_bar:
    if stopped_early:
      break
    t0 = time.time()
    step_losses = []
    for batch in tqdm(run.batcher.epoch(config.train.seed, epoch, rows=run.rows),
                      desc=f"epoch {epoch}", leave=False, disable=not run.progress):
      batch = parallel.put_batch(batch, mesh, run.batcher.rows_per_batch)
      state, m = train_step(state, batch, run.step_rng)
      step_losses.append(m)
    loss_sums = np.asarray([float(m["loss_sum"]) for m in step_losses])
    weight_sums = np.asarray([float(m["weight_sum"]) for m in step_losses])
    first_step = int(state.step) - len(step_losses)
    bad = np.flatnonzero(~np.isfinite(loss_sums))
    if len(bad):
      ckpts.wait()
      raise DivergedError(divergence_message(first_step + int(bad[0]), epoch, ckpts.latest_epoch(),
                                             ckpts.directory, config.train))
    train_seconds = time.time() - t0
    tracker["train_seconds"] += train_seconds
    row = {"epoch": epoch, "step": int(state.step), "loss": float(loss_sums.sum() / weight_sums.sum()),
           "train_seconds": train_seconds, "peak_memory_bytes": peak_memory_bytes()}
    if config.train.get("log_step_losses", False):
      row["step_losses"] = (loss_sums / np.maximum(weight_sums, 1.0)).tolist()
    if epoch % config.train.eval_every_epochs == 0 or epoch == config.train.max_epochs:
      t1 = time.time()
      valid = _evaluate_split(run.model, state.params, config, run.split, "valid",
                              run.dataset.num_items, progress=False, table=run.table, mesh=mesh)
      row.update(valid)
      row["eval_seconds"] = time.time() - t1
      if valid["valid/NDCG@10"] > tracker["best_ndcg10"]:
        tracker.update(best_ndcg10=valid["valid/NDCG@10"], best_epoch=epoch, evals_since_best=0)
        ckpts.save_best(epoch, state.params, {"epoch": epoch, **valid})
      else:
        tracker["evals_since_best"] += 1
      stopped_early = tracker["evals_since_best"] >= config.train.patience_evals
    rows.append(row)
    _write_metrics(run.metrics_path, rows)
    ckpts.save_latest(epoch, state, {"epoch": epoch, "tracker": tracker, "seed": config.train.seed})
    epoch_bar.set_postfix(progress_postfix(rows, tracker))
    _log(f"epoch {epoch}/{config.train.max_epochs}: loss {row['loss']:.4f}, {train_seconds:.1f}s"
         + (f", valid NDCG@10 {row['valid/NDCG@10']:.4f} HR@10 {row['valid/HR@10']:.4f}"
            if "valid/NDCG@10" in row else "")
         + (f" (best epoch {tracker['best_epoch']})" if tracker["best_epoch"] else ""))
    warning = loss_warning(epoch, row["loss"], run.dataset.num_items, config.train)
    if warning:
      _log(warning)
    elif not plateau_warned:
      warning = plateau_warning(epoch, row["loss"], pop_loss, config.train)
      if warning:
        _log(warning)
        plateau_warned = True
    if epoch == config.train.stop_after_epoch and not stopped_early and epoch < config.train.max_epochs:
      epoch_bar.close()
      return state, epoch
  epoch_bar.close()
  ckpts.wait()
  return state, None


def _final_evaluation(run: _Run, state: Any, tracker: dict, rows: list[dict]) -> dict[str, Any]:
  """Evaluates the best checkpoint on validation and test: ``results.json``'s content."""
  config = run.config
  try:
    params, meta = run.ckpts.restore_best(ckpt_lib.abstract_like(state.params))
  except ckpt_lib.CheckpointError:
    run.ckpts.close()  # No Orbax thread left to print at exit.
    raise
  results: dict[str, Any] = {}
  for which in ("valid", "test"):
    results.update(_evaluate_split(run.model, params, config, run.split, which,
                                   run.dataset.num_items, run.progress, table=run.table,
                                   mesh=run.mesh))
  results.update({
      "best_epoch": int(meta["epoch"]),
      "epochs_run": int(rows[-1]["epoch"]) if rows else 0,
      "train_seconds": float(tracker["train_seconds"]),
      "num_params": int(count_params(params)),
      "model_variant": model_variant(config.model),
      "dataset": config.data.name,
      "seed": int(config.train.seed),
      "protocol": {
          "ranking": "full (all items), pessimistic ties, pad never ranked",
          "mask_history": bool(config.eval.mask_history),
          "loss": f"full-softmax cross-entropy ({config.train.loss_impl})",
          "examples": config.train.examples,
          "split": "leave-one-out (last = test, second-to-last = valid)",
          "model_selection": "best validation NDCG@10",
      },
      "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}"
                 + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""),
  })
  return results


def _write_results(run: _Run, results: dict[str, Any], rows: list[dict]) -> None:
  """Writes ``results.json`` (atomically: its presence marks a finished run) and
  ``training_curves.png``; closes the checkpoints."""
  if distributed.is_main():
    workdir_lib.write_json_atomic(os.path.join(run.workdir, "results.json"), results)
    _plot_curves(rows, os.path.join(run.workdir, "training_curves.png"))
  run.ckpts.close()
  distributed.barrier("write_results")
  _log("test: " + ", ".join(f"{k}={results[k]:.4f}" for k in sorted(results) if k.startswith("test/")))


def _plot_curves(rows: list[dict], path: str) -> None:
  """Training loss and validation NDCG@10 / HR@10 per epoch, as a PNG."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  if not rows:
    return
  fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
  a.plot([r["epoch"] for r in rows], [r["loss"] for r in rows], marker=".")
  a.set_xlabel("epoch")
  a.set_ylabel("train loss (CE)")
  ev = [r for r in rows if "valid/NDCG@10" in r]
  b.plot([r["epoch"] for r in ev], [r["valid/NDCG@10"] for r in ev], marker=".", label="valid NDCG@10")
  b.plot([r["epoch"] for r in ev], [r["valid/HR@10"] for r in ev], marker=".", label="valid HR@10")
  b.set_xlabel("epoch")
  b.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def evaluate_workdir(config: ml_collections.ConfigDict | None, workdir: str, split_name: str = "test",
                     checkpoint: str = "best") -> dict[str, float]:
  """Evaluates a trained workdir's checkpoint (``best``, ``latest`` or an epoch).

  Args:
    config: ``None`` = the workdir's own ``config.json``; a given config must
      agree with it except in :data:`_RESUMABLE_DIFFS` (e.g. ``eval.batch_size``).
    workdir: a ``train.py`` workdir. Its ``vocab.json`` and ``histories.npz``
      give the data (runs made before they existed load the config's data).
    split_name: ``"valid"`` or ``"test"``.
    checkpoint: ``"best"``, ``"latest"`` or an epoch number.

  Raises:
    WorkdirError: the given config differs from the stored one (one line
      naming each key, ``key: stored -> given``), or the workdir lacks its files.
    ValueError: if the checkpoint does not fit the config (e.g. a different
      item count, hidden size or head/expert count).
  """
  workdir = os.path.abspath(workdir)
  config = workdir_lib.resolve_config(workdir, config, _RESUMABLE_DIFFS)
  validate_config(config)
  dataset, split = workdir_lib.load_run_data(config, workdir)
  params = restore_params(config, workdir, dataset.num_items, checkpoint)
  model = FAME(cfg=config.model, num_items=dataset.num_items)
  mesh = parallel.make_mesh()
  if distributed.process_count() > 1:  # Restored on this process's devices; now on the mesh.
    params = distributed.put_global_tree(params, parallel.replicated(mesh))
  return _evaluate_split(model, params, config, split, split_name, dataset.num_items,
                         progress=sys.stderr.isatty() and distributed.is_main(), mesh=mesh)


def restore_params(config: ml_collections.ConfigDict, workdir: str, num_items: int,
                   checkpoint: str = "best") -> Any:
  """Params of a workdir's ``best``/``latest``/epoch-numbered checkpoint.

  :func:`fame_jax.training.checkpoints.restore_params` with this module's
  ``_SHAPE_FIELDS``: the stored ``config.json`` is compared with ``config``
  first, so a mismatch is reported by field name rather than as an
  array-shape error.
  """
  return ckpt_lib.restore_params(config, workdir, num_items, checkpoint,
                                 shape_fields=_SHAPE_FIELDS)


# Fields that change parameter shapes or meaning; a checkpoint only fits a
# config that agrees on all of them.
_SHAPE_FIELDS = options.shape_keys()

