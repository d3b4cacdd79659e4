"""Orbax checkpoints: saving, restoring, and whether a checkpoint fits a config.

Every Orbax ``CheckpointManager`` of the project is made here.

Training (:class:`Checkpoints`), under ``<workdir>/checkpoints``:

* ``latest/<epoch>``: train state (params, optimiser state, step) plus a JSON
  ``meta`` item (epoch, early-stopping tracker, seed) — everything needed to
  resume exactly. The data order of epoch ``e`` is a pure function of
  ``(seed, e)``, so the epoch number *is* the data-order position.
* ``best/<epoch>``: params of the best validation NDCG@10 so far, with meta.

Pre-training (:class:`StepCheckpoints`), under ``<workdir>/pretrain/checkpoints``:
``<step>`` holds the whole pre-training state (params, per-head Adam state,
step); batch ``s`` is a pure function of ``(seed, s)``, so the step is the
data-order position.

Restores go against an abstract target built by the same function as the
live state (docs/protocol.md trap 15). :func:`restore_params` first compares
the workdir's stored config with the command's (:func:`check_fits`), so a
mismatch is reported by field name rather than as an array-shape error.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import jax
import ml_collections
import orbax.checkpoint as ocp

from fame_jax import options
from fame_jax.training import state as state_lib
from fame_jax.training.config_check import config_differences, with_added_defaults


class Checkpoints:
  """Two Orbax ``CheckpointManager`` s (latest, best) under one directory."""

  def __init__(self, directory: str, keep_latest: int = 1):
    directory = os.path.abspath(directory)
    self.directory = directory
    self.latest = ocp.CheckpointManager(
        os.path.join(directory, "latest"),
        options=ocp.CheckpointManagerOptions(max_to_keep=max(1, keep_latest), create=True))
    self.best = ocp.CheckpointManager(
        os.path.join(directory, "best"),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))

  # ------------------------------------------------------------------ latest
  def save_latest(self, epoch: int, state: Any, meta: dict) -> None:
    self.latest.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def latest_epoch(self) -> int | None:
    return self.latest.latest_step()

  def restore_latest(self, abstract_state: Any) -> tuple[Any, dict]:
    """Restores ``(state, meta)`` of the newest epoch into ``abstract_state``."""
    step = self.latest.latest_step()
    out = self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]

  # ------------------------------------------------------------------ best
  def save_best(self, epoch: int, params: Any, meta: dict) -> None:
    self.best.save(epoch, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)), force=True)

  def best_epoch(self) -> int | None:
    return self.best.latest_step()

  def restore_best(self, abstract_params: Any, epoch: int | None = None) -> tuple[Any, dict]:
    """Restores ``(params, meta)`` of the best (or the named) checkpoint."""
    step = self.best.latest_step() if epoch is None else epoch
    if step is None:
      raise FileNotFoundError(f"no best checkpoint under {self.best.directory}")
    out = self.best.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_params), meta=ocp.args.JsonRestore()))
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
    """The newest checkpoint, restored into the structure of the live ``like``."""
    step = self.manager.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint under {self.directory}")
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract_like(like)))

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_like(tree: Any) -> Any:
  """``ShapeDtypeStruct`` tree (with shardings) of a live pytree."""
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)


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

  Args:
    config: the command's config; the abstract target is built from it by
      :func:`fame_jax.training.state.create_train_state`.
    workdir: the ``train.py`` workdir.
    num_items: items of the command's dataset.
    checkpoint: ``"best"``, ``"latest"`` or an epoch number of a kept best
      checkpoint.
    shape_fields: see :func:`check_fits`.

  Raises:
    FileNotFoundError: no such checkpoint.
    ValueError: the checkpoint does not fit the config.
  """
  check_fits(config, workdir, num_items, shape_fields)
  _, state = state_lib.create_train_state(config, num_items, jax.random.key(0))
  ckpts = Checkpoints(os.path.join(workdir, "checkpoints"))
  try:
    if checkpoint == "latest":
      if ckpts.latest_epoch() is None:
        raise FileNotFoundError(f"no checkpoint under {ckpts.directory}/latest")
      state, _ = ckpts.restore_latest(abstract_like(state))
      return state.params
    epoch = None if checkpoint == "best" else int(checkpoint)
    if (ckpts.best_epoch() if epoch is None else epoch) is None:
      raise FileNotFoundError(f"no best checkpoint under {ckpts.directory}/best: train first")
    params, _ = ckpts.restore_best(abstract_like(state.params), epoch)
    return params
  except (ValueError, KeyError, TypeError) as e:
    # Fields outside shape_fields can still change a shape: say so plainly.
    raise ValueError(f"checkpoint in {ckpts.directory} does not fit this config "
                     f"({num_items} items, hidden_size {config.model.hidden_size}): {e}") from e
  finally:
    ckpts.close()
