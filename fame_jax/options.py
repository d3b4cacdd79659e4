"""The config options that have choices or fix parameter shapes, declared once.

Each :class:`Option` names a dotted config key, its allowed values (if it is a
choice), whether it changes the parameter shapes (a checkpoint then only fits
a config that agrees on it) and the name it takes in the model-variant label
written next to every result. Validation (``training.config_check``), the
checkpoint fit check and the label (``training.loop``) and the model's own
settings (``models.fame.model_settings``) all read this table, so a choice is
spelled in one place.

:data:`DELETED` lists the model options the variant study tried and rejected;
their code is kept by the git tag ``variant-study-archive``. A stored
``config.json`` of an old run may still hold them: at their no-op value they
are ignored, any other value names the tag (see ``config_check``).

This module imports nothing from fame_jax, so any room may read it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# The git tag that keeps the code of the deleted options.
ARCHIVE_TAG = "variant-study-archive"


@dataclasses.dataclass(frozen=True)
class Option:
  """One declared config option.

  Attributes:
    key: dotted config key, e.g. ``"model.gate"``.
    choices: the allowed values; ``None`` = not a choice (any value of the
      field's type; ranges are checked by ``config_check``).
    shapes: whether the value changes parameter shapes or the parameter tree
      (a checkpoint fits only a config that agrees on it).
    label: the option's name in the model-variant label (``loop.model_variant``);
      ``None`` = not in the label.
  """
  key: str
  choices: tuple[Any, ...] | None = None
  shapes: bool = False
  label: str | None = None


OPTIONS: tuple[Option, ...] = (
    # One reader per format (fame_jax/data/loading.py); csv, tsv and parquet are
    # read by fame_jax/data/tabular.py.
    Option("data.format", choices=("synthetic", "s3rec", "movielens", "amazon", "recbole", "csv",
                                   "tsv", "parquet", "tfds")),
    # Tabular logs: which repeated rows are dropped, and how times are parsed.
    Option("data.dedup", choices=("keep", "exact", "user_item")),
    Option("data.time_format", choices=("auto", "numeric", "iso8601")),
    Option("model.hidden_size", shapes=True),
    Option("model.num_layers", shapes=True),
    Option("model.num_heads", shapes=True, label="H"),
    Option("model.num_experts", shapes=True, label="E"),
    Option("model.ffn_inner", shapes=True),
    Option("model.facet_heads", shapes=True, label="facet_heads"),
    Option("model.gate", choices=("learned", "uniform"), shapes=True, label="gate"),
    Option("model.facet_item_proj", choices=("linear", "slice"), shapes=True,
           label="facet_item_proj"),
    Option("model.facet_proj_init", choices=("normal", "selector")),
    Option("model.moe_all_layers", shapes=True),
    Option("model.max_len", shapes=True),
    Option("train.examples", choices=("all_positions", "prefix_last")),
    Option("train.loss_impl", choices=("dense", "chunked")),
    # A sharded run's table (and checkpoints) has N + 1 rows padded to the device count.
    Option("train.shard_item_table", shapes=True),
    Option("pretrain.schedule", choices=("alternate", "sum")),
)

_BY_KEY = {o.key: o for o in OPTIONS}

# Deleted model options -> the value that was their no-op (the behaviour the
# code keeps). Each was a diagnostic no committed config used, rejected by the
# variant study (docs/findings.md#rejected-variants).
DELETED: dict[str, Any] = {
    "model.head_mix": False,  # Linear(d, d) over the heads before FFN'.
    "model.head_ffn": "head",  # "full" / "dense": full-width FFN instead of FFN'.
    "model.head_norm": "head",  # "full": LayerNorms over all d instead of d'.
    "model.ffn_head_inner": 0,  # FFN' inner width; 0 = d' (the kept behaviour).
    "model.fame_dropout": -1.0,  # FAME-block dropout; < 0 = model.dropout.
    "model.mix": "logits",  # "probs": a mixture of per-head softmaxes.
    "model.moe_residual": "slice",  # "key_proj": K^h as the head-wise residual.
    "model.facet_proj_scale": 1.0,  # Value of W_f's selector entries.
}
# The deleted options that only acted on facet heads: a run without them
# (model.facet_heads=False, e.g. SASRec inheriting a dataset config's value)
# never read them, whatever they hold.
DELETED_FACET_HEADS_ONLY = frozenset(DELETED) - {"model.fame_dropout"}


def option(key: str) -> Option:
  """The declared :class:`Option` of ``key`` (``KeyError`` if undeclared)."""
  return _BY_KEY[key]


def choices(key: str) -> tuple[Any, ...]:
  """The allowed values of the choice option ``key``."""
  allowed = _BY_KEY[key].choices
  if allowed is None:
    raise KeyError(f"{key} is not a choice option")
  return allowed


def check_choice(key: str, value: Any) -> Any:
  """Returns ``value`` if ``key`` allows it, else raises ``ValueError`` naming both."""
  allowed = choices(key)
  if value not in allowed:
    raise ValueError(f"config.{key}={value!r}: must be one of {allowed}")
  return value


def shape_keys() -> tuple[str, ...]:
  """Dotted keys whose values fix the parameter tree (checkpoint fit check)."""
  return tuple(o.key for o in OPTIONS if o.shapes)


def label_options() -> tuple[Option, ...]:
  """The options named in the model-variant label, in label order."""
  return tuple(o for o in OPTIONS if o.label is not None)


def valid_keys(config: Any) -> tuple[str, ...]:
  """Every valid dotted key: the leaves of ``config`` (the base config).

  The base config (``configs/base.py``) declares every key with its default;
  this lists them flattened, sorted, so a checker of unknown keys needs no
  second list. Deleted options (:data:`DELETED`) are not among them.

  Args:
    config: a ``ConfigDict`` or nested ``dict`` (normally
      ``configs.base.get_base_config()``).

  Returns:
    Sorted dotted keys, e.g. ``("data.format", ..., "train.seed")``.
  """
  def walk(node: Any, prefix: str):
    items = node.items() if hasattr(node, "items") else ()
    for k, v in items:
      if hasattr(v, "items"):
        yield from walk(v, f"{prefix}{k}.")
      else:
        yield f"{prefix}{k}"

  return tuple(sorted(walk(config, "")))
