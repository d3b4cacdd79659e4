"""Config validation before anything is built, and reading stored configs.

Choice values come from the one option schema, ``fame_jax.options``; the
checks here are the ranges and the combinations the model cannot build.
"""

from __future__ import annotations

import json
from typing import Any

import ml_collections

from fame_jax import options
from fame_jax.errors import ConfigError


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  """The value at ``dotted``; a key added after a config was written
  (:data:`ADDED_DEFAULTS`) reads as its default when absent."""
  node = config
  for part in dotted.split("."):
    if part not in node and dotted in ADDED_DEFAULTS:
      return ADDED_DEFAULTS[dotted]
    node = node[part]
  return node


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises :class:`~fame_jax.errors.ConfigError` (a ``ValueError``) naming
  the field for any invalid setting."""
  errors = []
  for opt in options.OPTIONS:
    if opt.choices is not None:
      value = _get(config, opt.key)
      if value not in opt.choices:
        errors.append(f"config.{opt.key}={value!r}: must be one of {opt.choices}")
  m = config.model
  if m.hidden_size % m.num_heads:
    errors.append(f"config.model.hidden_size={m.hidden_size} must be divisible by "
                  f"config.model.num_heads={m.num_heads}")
  for key in ("model.hidden_size", "model.num_layers", "model.num_heads", "model.num_experts",
              "model.ffn_inner", "train.batch_size", "train.max_epochs", "train.eval_every_epochs",
              "data.max_len", "eval.batch_size"):
    if _get(config, key) < 1:
      errors.append(f"config.{key}={_get(config, key)} must be >= 1")
  if m.get("max_len", config.data.max_len) < config.data.max_len:
    errors.append(f"config.model.max_len={m.max_len} must be >= config.data.max_len="
                  f"{config.data.max_len} (rows of the position table)")
  if m.get("output_norm_scale", 1.0) <= 0:
    errors.append(f"config.model.output_norm_scale={m.output_norm_scale} must be > 0")
  if not 0.0 <= m.dropout < 1.0:
    errors.append(f"config.model.dropout={m.dropout} must be in [0, 1)")
  if config.train.learning_rate <= 0:
    errors.append(f"config.train.learning_rate={config.train.learning_rate} must be > 0")
  if config.init.freeze_item_emb and not (config.init.item_embeddings_from or config.pretrain.enabled):
    errors.append("config.init.freeze_item_emb=True needs pre-trained item embeddings "
                  "(config.init.item_embeddings_from or config.pretrain.enabled)")
  if errors:
    raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(d, dict):
    out = {}
    for k, v in d.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: d}


# Config keys added after runs were made, each with the value that rebuilds
# those runs' model; a stored config.json without the key means that value.
ADDED_DEFAULTS = {"model.output_norm_scale": 1.0,
                  # Tabular-log options; these values read a log as before they existed.
                  "data.columns.user": "", "data.columns.item": "", "data.columns.time": "",
                  "data.dedup": "keep", "data.time_format": "auto",
                  # Runs made before the row-sharded item table replicated it.
                  "train.shard_item_table": False,
                  "train.log_step_losses": False}


def with_added_defaults(stored: dict, keep_deleted: bool = False) -> dict:
  """A stored ``config.json`` dict as the current code reads it.

  Fills in :data:`ADDED_DEFAULTS` (keys added after the run was made) and
  drops the deleted options (``options.DELETED``) that hold their no-op
  value (or that the run never read: facet-head options without facet
  heads), so an old run's config compares equal to the current config that
  rebuilds its model. The input is not modified.

  Args:
    stored: the parsed ``config.json``.
    keep_deleted: keep deleted options that hold another value (to list them
      as differences, e.g. in the results tables) instead of raising.

  Returns:
    The completed copy.

  Raises:
    ValueError: (unless ``keep_deleted``) a deleted option holds a value other
      than its no-op: that run's model can no longer be built or resumed.
  """
  out = json.loads(json.dumps(stored))
  for dotted, value in ADDED_DEFAULTS.items():
    *parents, leaf = dotted.split(".")
    node = out
    for part in parents:
      node = node.setdefault(part, {})
    node.setdefault(leaf, value)
  for dotted, noop in options.DELETED.items():
    *parents, leaf = dotted.split(".")
    node = out
    for part in parents:
      node = node.get(part, {}) if isinstance(node, dict) else {}
    if not isinstance(node, dict) or leaf not in node:
      continue
    inert = (dotted in options.DELETED_FACET_HEADS_ONLY
             and not out.get("model", {}).get("facet_heads", True))
    if node[leaf] == noop or inert:
      del node[leaf]
    elif not keep_deleted:
      raise ValueError(
          f"stored config sets {dotted}={node[leaf]!r}, an option deleted from fame_jax "
          f"(only {noop!r} remains); the code that ran it is kept by the git tag "
          f"'{options.ARCHIVE_TAG}'")
  return out


def config_differences(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
  """``(dotted_key, a_value, b_value)`` for every differing leaf."""
  fa, fb = _flatten(a), _flatten(b)
  keys = sorted(set(fa) | set(fb))
  norm = lambda v: list(v) if isinstance(v, tuple) else v
  return [(k, fa.get(k), fb.get(k)) for k in keys if norm(fa.get(k)) != norm(fb.get(k))]
