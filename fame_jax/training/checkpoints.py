"""Orbax checkpoints: the latest full state every epoch and the best params.

Layout under ``<workdir>/checkpoints``:

* ``latest/<epoch>``: train state (params, optimiser state, step) plus a JSON
  ``meta`` item (epoch, early-stopping tracker, seed) — everything needed to
  resume exactly. The data order of epoch ``e`` is a pure function of
  ``(seed, e)``, so the epoch number *is* the data-order position.
* ``best/<epoch>``: params of the best validation NDCG@10 so far, with meta.

Restores go against an abstract target built by the same function as the
live state (TRAPS 15).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


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


def abstract_like(tree: Any) -> Any:
  """``ShapeDtypeStruct`` tree (with shardings) of a live pytree."""
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)
