"""Several processes, one program: JAX's multi-controller runtime.

A run over several hosts (or several processes on one host) starts the same
command once per process; each calls :func:`initialize` before any JAX
computation, after which ``jax.devices()`` lists the devices of every process
and the data-parallel mesh (:mod:`fame_jax.parallel`) spans them all. Every
process then runs the same program:

* it reads and preprocesses the whole log (the vocabulary and the split must
  be the same everywhere; reading is seconds even at 20 M rows) but assembles
  only its own rows of each global batch and of each evaluation chunk
  (``parallel.put_batch``, :func:`put_global`);
* process 0 alone logs and writes the workdir's files (:func:`is_main`);
  Orbax saves and restores the checkpoints from all processes together;
* evaluation ranks each process's rows on its devices and gathers the integer
  ranks, so every process computes the same metrics.

The settings come, in this order of precedence, from the command's flags
(``--coordinator_address``, ``--num_processes``, ``--process_id``), from the
variables that Kubeflow Trainer's JAX runtime (and most launchers) set
(``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), or
from SLURM (``SLURM_NTASKS`` > 1 inside ``srun``: JAX reads the node list and
task ids itself). None of them = a single process; nothing is initialised.
On CPU the processes' collectives go over gloo (TCP).

This module imports JAX only inside its functions, so the command lines can
check their flags first.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from fame_jax.errors import ConfigError

ENV_ADDRESS = "JAX_COORDINATOR_ADDRESS"
ENV_COUNT = "JAX_NUM_PROCESSES"
ENV_ID = "JAX_PROCESS_ID"


@dataclasses.dataclass(frozen=True)
class Settings:
  """Where the processes meet. ``slurm=True``: JAX reads them from SLURM."""

  coordinator_address: str | None
  num_processes: int | None
  process_id: int | None
  source: str  # "flags", "environment" or "SLURM", for messages.
  slurm: bool = False


def define_flags() -> None:
  """The distributed flags of ``train.py`` and ``evaluate.py``."""
  from absl import flags
  flags.DEFINE_string(
      "coordinator_address", None, "host:port of process 0's coordinator, the same for every "
      f"process (or ${ENV_ADDRESS}). Set it only for a run over several processes.")
  flags.DEFINE_integer("num_processes", None, f"Number of processes (or ${ENV_COUNT}).")
  flags.DEFINE_integer("process_id", None, f"This process's index, 0 .. num_processes - 1 "
                       f"(or ${ENV_ID}).")


def _int(value: Any, what: str) -> int:
  try:
    return int(value)
  except (TypeError, ValueError):
    raise ConfigError(f"{what}={value!r} is not an integer") from None


def resolve(coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None,
            environ: Mapping[str, str] | None = None) -> Settings | None:
  """The run's distributed settings, or ``None`` for a single process.

  Flags win over the environment, which wins over SLURM. Settings that are
  only partly given (an address without a process count, an id out of range)
  are a :class:`~fame_jax.errors.ConfigError` naming what is missing.
  """
  env = os.environ if environ is None else environ
  if any(v is not None for v in (coordinator_address, num_processes, process_id)):
    given = Settings(coordinator_address, num_processes, process_id, "flags")
    names = ("--coordinator_address", "--num_processes", "--process_id")
  elif any(k in env for k in (ENV_ADDRESS, ENV_COUNT, ENV_ID)):
    given = Settings(env.get(ENV_ADDRESS),
                     _int(env[ENV_COUNT], ENV_COUNT) if ENV_COUNT in env else None,
                     _int(env[ENV_ID], ENV_ID) if ENV_ID in env else None, "environment")
    names = (ENV_ADDRESS, ENV_COUNT, ENV_ID)
  elif "SLURM_JOB_ID" in env and _int(env.get("SLURM_NTASKS", "1"), "SLURM_NTASKS") > 1:
    return Settings(None, _int(env["SLURM_NTASKS"], "SLURM_NTASKS"),
                    _int(env.get("SLURM_PROCID", "0"), "SLURM_PROCID"), "SLURM", slurm=True)
  else:
    return None
  values = (given.coordinator_address, given.num_processes, given.process_id)
  missing = [n for n, v in zip(names, values) if v is None or v == ""]
  if missing:
    raise ConfigError(f"distributed run: {', '.join(missing)} not set (the {given.source} give "
                      f"{', '.join(n for n in names if n not in missing)}); a run over several "
                      "processes needs all three, a single process none")
  if given.num_processes < 1:
    raise ConfigError(f"distributed run: {names[1]}={given.num_processes} must be >= 1")
  if not 0 <= given.process_id < given.num_processes:
    raise ConfigError(f"distributed run: {names[2]}={given.process_id} must be in 0 .. "
                      f"{given.num_processes - 1} ({names[1]}={given.num_processes})")
  if ":" not in given.coordinator_address:
    raise ConfigError(f"distributed run: {names[0]}={given.coordinator_address!r} must be "
                      "host:port (process 0's address and a free port)")
  if given.num_processes == 1:
    return None
  return given


def initialize(settings: Settings | None) -> None:
  """Joins the processes (``jax.distributed.initialize``); nothing for ``None``.

  Must run before any JAX computation. Blocks until every process has joined
  (or JAX's initialisation timeout passes).
  """
  if settings is None:
    return
  import jax
  if settings.slurm:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(settings.coordinator_address, settings.num_processes,
                               settings.process_id)


def initialize_from_flags() -> None:
  """:func:`initialize` with the settings of :func:`define_flags`' flags."""
  from absl import flags
  f = flags.FLAGS
  initialize(resolve(f.coordinator_address, f.num_processes, f.process_id))


def process_count() -> int:
  import jax
  return jax.process_count()


def is_main() -> bool:
  """Whether this is process 0, the one that logs and writes files."""
  import jax
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier ``name`` (no-op alone)."""
  import jax
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def local_row_range(sharding: Any, rows: int) -> tuple[int, int]:
  """``(lo, hi)``: the rows of a ``[rows, ...]`` array that this process's
  devices hold under ``sharding`` (split along rows); one contiguous block,
  since the mesh lists devices process by process."""
  index = sharding.addressable_devices_indices_map((rows,))
  starts = sorted((s[0].start or 0, rows if s[0].stop is None else s[0].stop)
                  for s in index.values())
  lo, hi = starts[0][0], starts[-1][1]
  covered = sum(b - a for a, b in dict.fromkeys(starts))
  if covered != hi - lo:
    raise ValueError(f"this process's rows of a {rows}-row batch are not one block: {starts}")
  return lo, hi


def put_global(x: Any, sharding: Any) -> Any:
  """A global array from a host array that every process holds in full.

  Each process transfers only the shards of its own devices.
  """
  import jax
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def gather(x: Any) -> Any:
  """A global array's whole value as numpy, on every process."""
  import jax
  import numpy as np
  if jax.process_count() == 1 or x.is_fully_replicated:
    return np.asarray(x)
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def put_global_tree(tree: Any, sharding: Any) -> Any:
  """:func:`put_global` on every leaf of a pytree of host (or local) arrays."""
  import jax
  import numpy as np
  return jax.tree_util.tree_map(lambda x: put_global(np.asarray(x), sharding), tree)
