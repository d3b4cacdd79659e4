"""Orbax checkpoints: saving, restoring, and whether a checkpoint fits a config.

Every Orbax ``CheckpointManager`` of the project is made here.

Training (:class:`Checkpoints`), under ``<workdir>/checkpoints``:

* ``latest/<epoch>``: train state (params, optimiser state, step) plus a JSON
  ``meta`` item (epoch, early-stopping tracker, seed) — everything needed to
  resume exactly. The data order of epoch ``e`` is a pure function of
  ``(seed, e)``, so the epoch number *is* the data-order position. The
  ``train.keep_checkpoints`` newest are kept (2 by default), so a resume whose
  newest checkpoint was damaged on disk falls back to the one before
  (:meth:`Checkpoints.resume`) and replays from there exactly.
* ``best/<epoch>``: params of the best validation NDCG@10 so far, with meta.

Pre-training (:class:`StepCheckpoints`), under ``<workdir>/pretrain/checkpoints``:
``<step>`` holds the whole pre-training state (params, per-head Adam state,
step); batch ``s`` is a pure function of ``(seed, s)``, so the step is the
data-order position.

Restores go against an abstract target built by the same function as the
live state (docs/protocol.md trap 15). :func:`restore_params` first compares
the workdir's stored config with the command's (:func:`check_fits`), so a
mismatch is reported by field name rather than as an array-shape error.

A checkpoint that cannot be read (truncated or missing files, an empty step
folder) raises :class:`~fame_jax.errors.CheckpointError` naming its folder and
the first line of the cause, never Orbax's own traceback; see
:func:`_restore_quietly` for the noise a failed Orbax restore leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from typing import Any, Callable, Iterator, Sequence

import jax
import ml_collections
import orbax.checkpoint as ocp

from fame_jax import distributed, options
from fame_jax.errors import CheckpointError
from fame_jax.training import state as state_lib
from fame_jax.training.config_check import config_differences, with_added_defaults

# Where resume() moves the checkpoints it cannot use (the damaged ones, and the
# best ones newer than the epoch it resumes from), under the checkpoint
# directory: out of the managers' folders, so the replayed epochs can be saved
# again, but kept for the user to inspect or delete.
SET_ASIDE_DIR = "set_aside"


class Checkpoints:
  """Two Orbax ``CheckpointManager`` s (latest, best) under one directory.

  Args:
    directory: the run's ``checkpoints`` directory (made absolute; created if
      missing).
    keep_latest: how many ``latest`` checkpoints to keep (at least 1);
      ``train.keep_checkpoints``.
  """

  def __init__(self, directory: str, keep_latest: int = 2):
    directory = os.path.abspath(directory)
    self.directory = directory
    # Opening reads each step's metadata; a damaged one is reported by the
    # restore that needs it, not logged here.
    with _held_back_orbax_logs():
      # Over several processes both managers save the same epoch at once: each
      # needs barrier names of its own.
      self.latest = ocp.CheckpointManager(
          os.path.join(directory, "latest"),
          options=ocp.CheckpointManagerOptions(
              max_to_keep=max(1, keep_latest), create=True,
              multiprocessing_options=ocp.options.MultiprocessingOptions(
                  barrier_sync_key_prefix="latest")))
      self.best = ocp.CheckpointManager(
          os.path.join(directory, "best"),
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True,
              multiprocessing_options=ocp.options.MultiprocessingOptions(
                  barrier_sync_key_prefix="best")))

  # ------------------------------------------------------------------ latest
  def save_latest(self, epoch: int, state: Any, meta: dict) -> None:
    self.latest.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def latest_epoch(self) -> int | None:
    return self.latest.latest_step()

  def restore_latest(self, abstract_state: Any, epoch: int | None = None) -> tuple[Any, dict]:
    """Restores ``(state, meta)`` of the newest (or the named) epoch into ``abstract_state``.

    Raises:
      CheckpointError: the checkpoint's files cannot be read; the message
        names its folder and the cause.
    """
    step = self.latest.latest_step() if epoch is None else epoch
    if step is None:
      raise CheckpointError(f"no checkpoint under {self.latest.directory}")
    out = _restore_quietly(
        self.latest, step, ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]

  def resume(self, abstract_state: Any, log: Callable[[str], None] = print
             ) -> tuple[Any, dict] | None:
    """``(state, meta)`` of the newest ``latest`` checkpoint that restores.

    A checkpoint that fails (files truncated or missing on disk) is reported
    by ``log`` in one line (folder and cause) and the one before it is tried.
    When an older one restores, the failed newer ones, and any ``best``
    checkpoint newer than it, are moved to ``<directory>/set_aside``: the
    resumed run replays those epochs exactly and saves them again.

    Returns:
      ``None`` when there is no ``latest`` checkpoint (a fresh start).

    Raises:
      CheckpointError: no checkpoint restores; the message lists each one
        tried with its cause and the folder to remove to start afresh.
    """
    steps = sorted(self.latest.all_steps(), reverse=True)
    failed: list[tuple[int, str]] = []
    for step in steps:
      try:
        state, meta = self.restore_latest(abstract_state, step)
      except CheckpointError as e:
        failed.append((step, _first_line(e.__cause__ or e)))
        log(f"warning: {e}")
        continue
      # A best checkpoint newer than the one resumed from: its epoch is
      # replayed and saved again (a run killed between the two saves of an
      # epoch leaves one without the other).
      newer_best = [s for s in self.best.all_steps() if s > step]
      if failed or newer_best:
        moved = [f"{self._move_aside(self.latest, s)} (cannot be restored)" for s, _ in failed]
        moved += [f"{self._move_aside(self.best, s)} (newer than epoch {step}; the replay saves it "
                  "again)" for s in newer_best]
        log((f"warning: resuming from the previous good checkpoint {self.latest.directory}/{step} "
             f"(epoch {step}); the epochs after it are replayed exactly. " if failed else "")
            + "Set aside, to delete when no longer needed: " + ", ".join(moved))
      return state, meta
    if not steps:
      # Killed before any latest checkpoint was complete: a best one saved
      # in that time is replayed too.
      moved = [self._move_aside(self.best, s) for s in self.best.all_steps()]
      if moved:
        log("Set aside (no latest checkpoint to resume from; the run starts afresh), to delete "
            "when no longer needed: " + ", ".join(moved))
      return None
    tried = "; ".join(f"{self.latest.directory}/{s}: {cause}" for s, cause in failed)
    raise CheckpointError(
        f"no checkpoint under {self.latest.directory} can be restored (tried {tried}). "
        f"To restart this run from scratch, remove its checkpoints: rm -r {self.directory}")

  def _move_aside(self, manager: ocp.CheckpointManager, step: int) -> str:
    """Moves ``manager``'s step folder under :data:`SET_ASIDE_DIR`; returns where."""
    kind = os.path.basename(os.fspath(manager.directory))
    target = os.path.join(self.directory, SET_ASIDE_DIR, f"{kind}-{step}")
    n = 1
    while os.path.exists(target):
      n += 1
      target = os.path.join(self.directory, SET_ASIDE_DIR, f"{kind}-{step}.{n}")
    if distributed.is_main():  # Over several processes, one moves it; all reload.
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.move(os.path.join(os.fspath(manager.directory), str(step)), target)
    distributed.barrier(f"set_aside_{kind}_{step}")
    with _held_back_orbax_logs():
      manager.reload()
    return target

  # ------------------------------------------------------------------ best
  def save_best(self, epoch: int, params: Any, meta: dict) -> None:
    self.best.save(epoch, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)), force=True)

  def best_epoch(self) -> int | None:
    return self.best.latest_step()

  def restore_best(self, abstract_params: Any, epoch: int | None = None) -> tuple[Any, dict]:
    """Restores ``(params, meta)`` of the best (or the named) checkpoint.

    Raises:
      CheckpointError: there is no such checkpoint, or its files cannot be
        read (the message names the folder and the cause, and says to
        evaluate ``--checkpoint latest`` or retrain).
    """
    step = self.best.latest_step() if epoch is None else epoch
    if step is None:
      raise CheckpointError(f"no best checkpoint under {self.best.directory}: train first")
    try:
      out = _restore_quietly(self.best, step, ocp.args.Composite(
          params=ocp.args.StandardRestore(abstract_params), meta=ocp.args.JsonRestore()))
    except CheckpointError as e:
      raise CheckpointError(
          f"best {e}; evaluate another checkpoint (evaluate.py --checkpoint latest) or retrain "
          "in a new --workdir") from e.__cause__
    return out["params"], out["meta"]

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.wait()
    self.latest.close()
    self.best.close()


class StepCheckpoints:
  """One Orbax ``CheckpointManager`` of a whole pytree, saved by step.

  Used by pre-training (:mod:`fame_jax.pretraining.pretrain`), whose state is a
  plain dict ``{params, opt_state, step}``.

  Args:
    directory: checkpoint directory (made absolute; created if missing).
    keep: how many step checkpoints to keep.
  """

  def __init__(self, directory: str, keep: int = 1):
    self.directory = os.path.abspath(directory)
    with _held_back_orbax_logs():  # As in Checkpoints: a damaged step is reported on restore.
      self.manager = ocp.CheckpointManager(
          self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max(1, keep), create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, tree: Any) -> None:
    """Saves ``tree`` as ``step`` and waits until it is written.

    Waiting matters: the caller's next jitted step donates the buffers that an
    asynchronous save would still be reading.
    """
    self.manager.save(step, args=ocp.args.StandardSave(tree))
    self.manager.wait_until_finished()

  def restore_latest(self, like: Any) -> Any:
    """The newest checkpoint, restored into the structure of the live ``like``.

    Raises:
      CheckpointError: no checkpoint, or the newest cannot be read; the
        message names the folder, the cause and the folder to remove to
        redo pre-training.
    """
    step = self.manager.latest_step()
    if step is None:
      raise CheckpointError(f"no checkpoint under {self.directory}")
    try:
      return _restore_quietly(self.manager, step, ocp.args.StandardRestore(abstract_like(like)))
    except CheckpointError as e:
      raise CheckpointError(f"pre-training {e}; to redo pre-training from scratch remove it: "
                            f"rm -r {self.directory}") from e.__cause__

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_train_state(config: ml_collections.ConfigDict, num_items: int, mesh: Any = None,
                         table: Any = None) -> Any:
  """``ShapeDtypeStruct`` tree of the train state ``config`` builds, with its shardings.

  The restore target of docs/protocol.md trap 15, from ``jax.eval_shape`` of
  the function that builds the live state rather than from running it:
  initialising a model op by op only to throw the values away took ~16 s of a
  21 s load on a 2-core CPU.

  Args:
    config: the run's config.
    num_items: ``N``. A row-sharded run's checkpoint (``R`` table rows) is
      also the state of the ``R - 1``-item model
      (``sharded_table.padded_model``), for a target without ``table``.
    mesh: the training mesh: the state placed as training places it
      (``sharded_table.state_shardings``). ``None``: on this process's first
      device (over several processes each restores a copy).
    table: with ``mesh``, the row-sharded table's layout
      (``sharded_table.layout_for``), or ``None`` for a replicated table.
  """
  from fame_jax import sharded_table
  abstract = jax.eval_shape(
      lambda: state_lib.create_train_state(config, num_items, jax.random.key(0), table=table)[1])
  if mesh is None:
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    shardings = jax.tree_util.tree_map(lambda _: device, abstract)
  else:
    shardings = sharded_table.state_shardings(abstract, mesh, table)
  return jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings)


def abstract_like(tree: Any) -> Any:
  """``ShapeDtypeStruct`` tree (with shardings) of a live pytree."""
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)


# ------------------------------------------------------------ failed restores
def _restore_quietly(manager: ocp.CheckpointManager, step: int, args: Any) -> Any:
  """``manager.restore(step, args)``; any failure becomes one :class:`CheckpointError`.

  Orbax reads a checkpoint's arrays concurrently on a private event loop. When
  one read fails it raises that error and closes the loop while the others
  are still in flight; their completions then print "Event loop is closed"
  tracebacks and "exception was never retrieved" log records, some before the
  error reaches us and some up to interpreter exit ("Exception ignored ...
  Python is likely shutting down"). Those say nothing the raised error does
  not, so they are dropped during every attempt and, once one has failed, for
  the rest of the process (:class:`_AbandonedReadNoise`). Orbax's own log lines
  about the broken files are held back during the attempt for the same reason.

  Raises:
    CheckpointError: ``checkpoint <folder> cannot be restored (<cause>)``,
      chained to the original exception (shown with ``--verbose``).
  """
  folder = os.path.join(os.fspath(manager.directory), str(step))
  if os.path.isdir(folder) and not any(files for _, _, files in os.walk(folder)):
    raise CheckpointError(f"checkpoint {folder} cannot be restored (the folder holds no files)")
  _AbandonedReadNoise.install()
  try:
    with _held_back_orbax_logs():
      return manager.restore(step, args=args)
  except Exception as e:  # pylint: disable=broad-except
    # Any failure means this checkpoint cannot serve; callers decide whether
    # an older one can (resume) or the user must act.
    _AbandonedReadNoise.failed = True
    raise CheckpointError(f"checkpoint {folder} cannot be restored ({_first_line(e)})") from e
  finally:
    if not _AbandonedReadNoise.failed:
      _AbandonedReadNoise.uninstall()


def _first_line(e: BaseException) -> str:
  """``Type: first line`` of the innermost error of ``e``'s chain with a message.

  TensorStore appends the whole store spec (hundreds of characters) to its
  messages; it is cut off.
  """
  best = e
  seen = set()
  x: BaseException | None = e
  while x is not None and id(x) not in seen:
    seen.add(id(x))
    if str(x).strip():
      best = x
    # An implicit context hidden by ``raise ... from None`` is not the cause.
    x = x.__cause__ or (None if x.__suppress_context__ else x.__context__)
  text = best.args[0] if isinstance(best, KeyError) and best.args else str(best)
  line = str(text).strip().splitlines()[0] if str(text).strip() else ""
  line = line.split(" [tensorstore_spec=")[0]
  if len(line) > 300:
    line = line[:297] + "..."
  return f"{type(best).__name__}: {line}" if line else type(best).__name__


class _DropRecords(logging.Filter):
  """Drops log records whose message starts with one of ``prefixes`` (all if empty)."""

  def __init__(self, prefixes: tuple[str, ...] = ()):
    super().__init__()
    self.prefixes = prefixes

  def filter(self, record: logging.LogRecord) -> bool:
    return bool(self.prefixes) and not record.getMessage().startswith(self.prefixes)


@contextlib.contextmanager
def _held_back_orbax_logs() -> Iterator[None]:
  """Drops Orbax's ERROR log lines (via absl) while a restore is attempted:
  a damaged file's parse error is reported once, by the raised error."""
  absl_logger = logging.getLogger("absl")
  drop = _DropRecords()
  absl_logger.addFilter(drop)
  try:
    yield
  finally:
    absl_logger.removeFilter(drop)


class _AbandonedReadNoise:
  """What a failed Orbax restore's abandoned reads print, dropped.

  Narrow on purpose: only what ``sys.unraisablehook`` gets from the abandoned
  reads (``RuntimeError("Event loop is closed")``, or an error raised by an
  Orbax coroutine that was dropped unfinished) and asyncio's records about
  tasks and futures nobody awaited.
  Installed around every restore; after a failed one (``failed``) it stays
  for the rest of the process, since the reads finish, and print, at
  unpredictable times up to exit.
  """

  failed = False
  _previous_hook: Any = None
  _filter = _DropRecords(("Task exception was never retrieved",
                          "Future exception was never retrieved",
                          "_GatheringFuture exception was never retrieved",
                          "Task was destroyed but it is pending"))

  @classmethod
  def _hook(cls, unraisable) -> None:
    exc = unraisable.exc_value
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
      return
    code = getattr(unraisable.object, "cr_code", None)  # A coroutine closed unfinished.
    if code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename:
      return
    cls._previous_hook(unraisable)

  @classmethod
  def install(cls) -> None:
    if cls._previous_hook is None:
      cls._previous_hook = sys.unraisablehook
      sys.unraisablehook = cls._hook
      logging.getLogger("asyncio").addFilter(cls._filter)

  @classmethod
  def uninstall(cls) -> None:
    if cls._previous_hook is not None:
      if sys.unraisablehook == cls._hook:
        sys.unraisablehook = cls._previous_hook
      cls._previous_hook = None
      logging.getLogger("asyncio").removeFilter(cls._filter)


# --------------------------------------------------------------------- fit
def check_fits(config: ml_collections.ConfigDict, workdir: str, num_items: int,
               shape_fields: Sequence[str] | None = None) -> None:
  """Raises if ``workdir``'s checkpoints cannot serve ``config``.

  Args:
    config: the command's config.
    workdir: a ``train.py`` workdir (its ``config.json`` and
      ``data_summary.json`` are read).
    num_items: items of the command's dataset.
    shape_fields: dotted config keys that change parameter shapes or their
      meaning; the stored and the command's config must agree on each.
      Default: the options :mod:`fame_jax.options` marks ``shapes``.

  Raises:
    FileNotFoundError: no ``config.json`` in ``workdir``.
    ValueError: one line per disagreeing field (and the item count).
  """
  if shape_fields is None:
    shape_fields = options.shape_keys()
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir} a train.py workdir?")
  with open(path) as f:
    stored = with_added_defaults(json.load(f))
  resolved = json.loads(config.to_json_best_effort())
  diffs = [d for d in config_differences(stored, resolved) if d[0] in shape_fields]
  msgs = [f"  {k}: checkpoint has {a!r}, config has {b!r}" for k, a, b in diffs]
  meta_items = _stored_num_items(workdir)
  if meta_items is not None and meta_items != num_items:
    msgs.append(f"  items: checkpoint has {meta_items}, the config's dataset has {num_items}")
  if msgs:
    raise ValueError(f"checkpoint in {workdir} does not fit this config:\n" + "\n".join(msgs))


def _stored_num_items(workdir: str) -> int | None:
  path = os.path.join(workdir, "data_summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return int(json.load(f)["items"])


def restore_params(config: ml_collections.ConfigDict, workdir: str, num_items: int,
                   checkpoint: str = "best", *,
                   shape_fields: Sequence[str] | None = None) -> Any:
  """Params of a workdir's ``best``/``latest``/epoch-numbered checkpoint.

  A run trained with ``train.shard_item_table`` saved its item table padded
  to a multiple of its device count (``sharded_table.padded_rows``). Such a
  checkpoint is restored on any device count, onto the default device, and
  the padding rows (zero, never scored) are cut: every caller gets the
  ``[N + 1, d]`` table of an unsharded run. A caller that ranks on a
  row-sharded table pads it again for its own device count
  (``sharded_table.pad_params``).

  Args:
    config: the command's config; the abstract target is built from it by
      :func:`fame_jax.training.state.create_train_state`.
    workdir: the ``train.py`` workdir.
    num_items: items of the command's dataset.
    checkpoint: ``"best"``, ``"latest"`` or an epoch number of a kept best
      checkpoint.
    shape_fields: see :func:`check_fits`.

  Returns:
    The params, ``item_emb/embedding`` ``[N + 1, d]``, on the default device.

  Raises:
    CheckpointError: no such checkpoint, its files cannot be read (folder and
      cause named), or its parameter shapes do not fit the config ("does not
      fit").
    ValueError: the stored config does not fit the config (:func:`check_fits`).
  """
  check_fits(config, workdir, num_items, shape_fields)
  ckpts = Checkpoints(os.path.join(workdir, "checkpoints"), config.train.keep_checkpoints)
  try:
    if checkpoint == "latest":
      step = ckpts.latest_epoch()
      folder = os.path.join(os.fspath(ckpts.latest.directory), str(step), "state")
      rows = _table_rows(config, num_items, folder if step is not None else None, "params")
      state = abstract_train_state(config, rows - 1)
      try:
        params = ckpts.restore_latest(state, step)[0].params
      except CheckpointError as e:
        _raise_if_misfit(e, folder, "params", state.params, config, num_items)
        if step is None:
          raise
        raise CheckpointError(f"latest {e}; evaluate the best one instead (evaluate.py "
                              "--checkpoint best)") from e.__cause__
    else:
      epoch = None if checkpoint == "best" else int(checkpoint)
      step = ckpts.best_epoch() if epoch is None else epoch
      if step is None:
        raise CheckpointError(f"no best checkpoint under {ckpts.best.directory}: train first")
      if step not in ckpts.best.all_steps():
        raise CheckpointError(f"no best checkpoint of epoch {step} under {ckpts.best.directory} "
                              f"(kept: {list(ckpts.best.all_steps())})")
      folder = os.path.join(os.fspath(ckpts.best.directory), str(step), "params")
      state = abstract_train_state(config, _table_rows(config, num_items, folder, None) - 1)
      try:
        params = ckpts.restore_best(state.params, step)[0]
      except CheckpointError as e:
        _raise_if_misfit(e, folder, None, state.params, config, num_items)
        raise
  finally:
    ckpts.close()
  return _without_padding_rows(params, num_items, os.path.dirname(folder))


def _table_rows(config: ml_collections.ConfigDict, num_items: int, item_dir: str | None,
                subtree: str | None) -> int:
  """Rows of the item table a checkpoint holds: ``N + 1``, or more for a
  run with ``train.shard_item_table`` (padded for the devices it ran on).

  Only such runs read the checkpoint's metadata for it. Metadata that cannot
  be read gives ``N + 1``: the restore then reports the damage.
  """
  rows = num_items + 1
  if item_dir is None or not config.train.get("shard_item_table", False):
    return rows
  stored = _stored_shapes(item_dir, subtree)
  table = (stored or {}).get("['item_emb']['embedding']")
  # Fewer rows, or a table of another width, is a misfit the restore names.
  return table[0] if table is not None and table[0] > rows else rows


def _without_padding_rows(params: Any, num_items: int, folder: str) -> Any:
  """``params`` with the item table cut to its ``N + 1`` real rows.

  Raises:
    CheckpointError: the rows beyond ``N + 1`` are not all zero: they are not
      a row-sharded run's padding (which gets no gradient and stays zero), so
      the checkpoint is of another catalogue.
  """
  table = params["item_emb"]["embedding"]
  if table.shape[0] == num_items + 1:
    return params
  if bool(jax.numpy.any(table[num_items + 1:] != 0)):
    raise CheckpointError(
        f"checkpoint {folder} does not fit this config: its item table has {table.shape[0]} "
        f"rows and those beyond the {num_items + 1} of the data are not zero padding")
  return {**params, "item_emb": {**params["item_emb"], "embedding": table[:num_items + 1]}}


def _raise_if_misfit(error: CheckpointError, item_dir: str, subtree: str | None,
                     params: Any, config: ml_collections.ConfigDict, num_items: int) -> None:
  """Re-raises a failed restore as "does not fit" when the stored shapes differ.

  Fields outside ``shape_fields`` can still change a parameter shape; the
  checkpoint's own metadata then tells a config mismatch from a damaged file.
  Unreadable metadata means damage: nothing is raised here.
  """
  stored = _stored_shapes(item_dir, subtree)
  if not stored or any(shape is None for shape in stored.values()):
    return  # Metadata read only in part: damaged, not a different model.
  wanted = _shapes(params)
  diffs = [f"{k}: checkpoint has {stored.get(k)}, config has {wanted.get(k)}"
           for k in sorted(stored.keys() | wanted.keys()) if stored.get(k) != wanted.get(k)]
  if diffs:
    raise CheckpointError(
        f"checkpoint {os.path.dirname(item_dir)} does not fit this config "
        f"({num_items} items, hidden_size {config.model.hidden_size}): params "
        + "; ".join(diffs[:3]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 3 else "")
    ) from error


def _stored_shapes(item_dir: str, subtree: str | None) -> dict[str, tuple[int, ...] | None] | None:
  """``{key path: shape}`` of the params in a checkpoint item's metadata
  (``subtree`` of it, if given); ``None`` when the metadata cannot be read."""
  try:
    with _held_back_orbax_logs():
      checkpointer = ocp.StandardCheckpointer()
      try:
        tree = checkpointer.metadata(item_dir)
      finally:
        checkpointer.close()
    tree = getattr(tree, "item_metadata", tree)
    return _shapes(tree[subtree] if subtree else tree)
  except Exception:  # pylint: disable=broad-except
    return None


def _shapes(tree: Any) -> dict[str, tuple[int, ...] | None]:
  """``{key path: shape}`` of a params tree or its Orbax metadata."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(path): (None if getattr(leaf, "shape", None) is None
                                       else tuple(leaf.shape)) for path, leaf in flat}
