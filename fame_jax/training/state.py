"""Train state and optimiser: built by one function for live and abstract use.

Restoring a checkpoint needs an abstract target with exactly the structure of
the live state (docs/protocol.md trap 15), so both come from :func:`create_train_state`; the
abstract one is ``jax.eval_shape`` of the same call.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from fame_jax import sharded_table
from fame_jax.models import FAME
from fame_jax.sharded_table import TableLayout


class TrainState(train_state.TrainState):
  """Flax TrainState; ``step`` counts optimiser updates (drives dropout rng)."""


def make_optimizer(train_cfg: ml_collections.ConfigDict, frozen_mask: Any = None) -> optax.GradientTransformation:
  """Adam (or AdamW) with optional linear warm-up, clipping and frozen leaves.

  Args:
    train_cfg: ``config.train``.
    frozen_mask: optional pytree of bools (True = keep fixed), e.g. the item
      table when ``init.freeze_item_emb``.
  """
  lr = train_cfg.learning_rate
  if train_cfg.warmup_steps > 0:
    lr = optax.linear_schedule(0.0, train_cfg.learning_rate, train_cfg.warmup_steps)
  parts = []
  if train_cfg.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(train_cfg.grad_clip_norm))
  if train_cfg.weight_decay > 0:
    parts.append(optax.adamw(lr, weight_decay=train_cfg.weight_decay))
  else:
    parts.append(optax.adam(lr))
  tx = optax.chain(*parts)
  if frozen_mask is not None:
    tx = optax.multi_transform(
        {"train": tx, "freeze": optax.set_to_zero()},
        jax.tree_util.tree_map(lambda f: "freeze" if f else "train", frozen_mask))
  return tx


def dummy_inputs(max_len: int) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
  """A ``[1, L]`` input triple used only to trace shapes at init."""
  items = jnp.ones((1, max_len), jnp.int32)
  positions = jnp.arange(max_len, dtype=jnp.int32)[None]
  return items, positions, items


def create_train_state(config: ml_collections.ConfigDict, num_items: int, rng: jax.Array,
                       params: Any = None, table: TableLayout | None = None
                       ) -> tuple[FAME, TrainState]:
  """Builds the model and its train state.

  Args:
    config: the full config.
    num_items: ``N`` (the item table has ``N + 1`` rows).
    rng: init key.
    params: optional params to start from (e.g. after the pre-training
      hand-off) instead of a fresh init.
    table: the layout of a row-sharded item table
      (``sharded_table.layout_for``): the table in the state (and so its
      optimiser moments) is padded with zero rows to ``table.rows``; the
      ``N + 1`` real rows are those of the unsharded state. The padded
      state is then built under ``jit`` straight into its sharded layout
      (``sharded_table.state_shardings``), so no device ever holds the whole
      table's optimiser moments. (A fresh init still draws the ``N + 1``
      rows as the unsharded run does, on one device, so that both runs
      start from bitwise the same parameters.)

  Returns:
    ``(model, state)``; ``model`` is the ``N``-item model either way.
  """
  model = FAME(cfg=config.model, num_items=num_items)
  if params is None:
    params = init_params(model, config, rng)

  def build(params):
    if table is not None:
      params = sharded_table.pad_params(params, table.rows)
    frozen = None
    if config.init.freeze_item_emb:
      frozen = flax.traverse_util.path_aware_map(
          lambda path, _: path[0] == "item_emb", params)
    tx = make_optimizer(config.train, frozen)
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx)

  if table is None:
    return model, build(params)
  # Split the padded table over the devices before the jit: a one-device
  # input would be copied whole to every device.
  params = sharded_table.put_state(sharded_table.pad_params(params, table.rows), table.mesh, table)
  shardings = sharded_table.state_shardings(jax.eval_shape(build, params), table.mesh, table)
  return model, jax.jit(build, out_shardings=shardings)(params)


def init_params(model: FAME, config: ml_collections.ConfigDict, rng: jax.Array) -> Any:
  """Fresh parameters for ``model``.

  The init runs as one jitted program: op by op, each initialiser is a
  compile of its own (about 200 for a FAME model, 7-9 s on a 2-core CPU,
  against 2 s). The values equal the op-by-op ones to float32 rounding
  (at most 7.5e-9 apart on the shipped configs).
  """

  @jax.jit
  def init(rng):
    p_rng, d_rng = jax.random.split(rng)
    variables = model.init({"params": p_rng, "dropout": d_rng}, *dummy_inputs(config.data.max_len),
                           train=False)
    return variables["params"]

  return init(rng)
