"""Device mesh and shardings: data parallelism with ``jax.jit`` over a ``Mesh``.

This is the modern form of a pmapped step: one mesh axis ``"data"``; the batch
is sharded along its leading axis, the train state is replicated (or, with
``train.shard_item_table``, all but the item table and its optimiser moments,
whose rows are split over the same axis: ``fame_jax.sharded_table``), and
XLA's SPMD partitioner inserts the gradient all-reduce. The same program runs on one
CPU, eight simulated CPU devices, a GPU or a TPU slice.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (or the given) devices with axis ``"data"``."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that keeps a full copy on every device (train state)."""
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding that splits the leading (row) axis over ``"data"``."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_divisible(rows: int, mesh: Mesh, what: str) -> None:
  """Raises a clear error when ``rows`` cannot be split evenly over the mesh."""
  n = mesh.devices.size
  if rows % n:
    raise ValueError(f"{what}={rows} is not divisible by the number of devices ({n}); "
                     f"choose a multiple of {n}")


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh, global_rows: int | None = None
              ) -> dict[str, jax.Array]:
  """Moves a host batch onto the mesh, sharded along rows.

  Over several processes (``fame_jax.distributed``) ``batch`` holds only this
  process's rows (``distributed.local_row_range``) of a ``global_rows``-row
  batch, and each leaf becomes one global array
  (``jax.make_array_from_process_local_data``).
  """
  sharding = batch_sharded(mesh)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree_util.tree_map(
      lambda x: jax.make_array_from_process_local_data(sharding, x, (global_rows,) + x.shape[1:]),
      batch)


def device_memory_peak_mb(devices=None) -> float | None:
  """Largest ``peak_bytes_in_use`` over ``devices`` (default all) in MiB.

  Accelerators report it through ``Device.memory_stats()``; the CPU backend
  returns no statistics, so this gives None there (host memory is the
  process's peak RSS instead). With ``XLA_PYTHON_CLIENT_PREALLOCATE=false``
  on a GPU the figure is what the program used, not the preallocated pool.
  """
  peaks = []
  for d in devices if devices is not None else jax.devices():
    try:
      stats = d.memory_stats()
    except Exception:  # Backends without the call.
      stats = None
    if stats and "peak_bytes_in_use" in stats:
      peaks.append(int(stats["peak_bytes_in_use"]))
  return round(max(peaks) / 2**20, 1) if peaks else None


def vary(x, axis_name: str | None):
  """``x`` (a pytree) marked as varying over ``axis_name`` inside ``shard_map``.

  A loop carry must keep one type: a carry started from a constant
  (replicated) but updated with per-shard values (e.g. the rows of a sharded
  item table) has to start as varying. ``axis_name=None`` (outside
  ``shard_map``) returns ``x`` unchanged, so one loop serves a whole table and
  one shard of it.
  """
  if axis_name is None:
    return x
  return jax.tree_util.tree_map(lambda a: jax.lax.pcast(a, (axis_name,), to="varying"), x)
