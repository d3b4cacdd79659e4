"""One process of a multi-process training run, for tests/test_multiprocess.py.

  python tests/multiprocess_check.py WORKDIR NUM_PROCESSES PROCESS_ID PORT KILL_AT_STEP SHARDED

Trains configs/tiny.py (4 epochs, validation every 2, per-step losses logged)
in WORKDIR on CPU, then evaluates the workdir as evaluate.py does (each
process writes WORKDIR/evaluate_process<ID>.json), as process PROCESS_ID of NUM_PROCESSES joined at
127.0.0.1:PORT (gloo collectives). NUM_PROCESSES=1: one process with 2 CPU
devices (MULTIPROCESS_CHECK_DEVICES, default 2), the same global mesh as 2
processes of 1 device (bit-for-bit equal).
SHARDED=1: the item table is row-sharded over the devices of both processes
(train.shard_item_table). KILL_AT_STEP > 0: the process kills itself (SIGKILL, no clean-up, as a
preempted job) right after its training step KILL_AT_STEP has run; every
process of the run reaches that step, so the whole run dies there.
"""

import json
import os
import signal
import sys

NUM_PROCESSES = int(sys.argv[2])
os.environ["JAX_PLATFORMS"] = "cpu"
DEVICES = int(os.environ.get("MULTIPROCESS_CHECK_DEVICES", "2"))  # One process's devices.
if NUM_PROCESSES == 1:
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={DEVICES}").strip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fame_jax import distributed  # noqa: E402

WORKDIR, PROCESS_ID, PORT = sys.argv[1], int(sys.argv[3]), int(sys.argv[4])
KILL_AT_STEP, SHARDED = int(sys.argv[5]), sys.argv[6] == "1"

distributed.initialize(distributed.resolve(f"127.0.0.1:{PORT}", NUM_PROCESSES, PROCESS_ID))

import jax  # noqa: E402

from configs.tiny import get_config  # noqa: E402
from fame_jax.training import loop  # noqa: E402
from fame_jax.training import steps  # noqa: E402
from tests.multiprocess_check_config import multiprocess_config  # noqa: E402

assert jax.process_count() == NUM_PROCESSES, jax.devices()
assert jax.device_count() == (2 if NUM_PROCESSES == 2 else DEVICES), jax.devices()

if KILL_AT_STEP:
  make_train_step = steps.make_train_step

  def killing_train_step(*args, **kwargs):
    step = make_train_step(*args, **kwargs)

    def run(state, batch, rng):
      state, metrics = step(state, batch, rng)
      if int(state.step) == KILL_AT_STEP:
        jax.block_until_ready(metrics)
        os.kill(os.getpid(), signal.SIGKILL)
      return state, metrics

    return run

  steps.make_train_step = killing_train_step

config = multiprocess_config(get_config(), shard_item_table=SHARDED)
loop.train_and_evaluate(config, WORKDIR)
# evaluate.py's path: the workdir's best checkpoint restored by every process,
# its test split ranked by all of them together.
metrics = loop.evaluate_workdir(None, WORKDIR, "test")
with open(os.path.join(WORKDIR, f"evaluate_process{PROCESS_ID}.json"), "w") as f:
  json.dump(metrics, f)
