"""Config validation before anything is built (STYLE 2), and config diffs."""

from __future__ import annotations

import json
from typing import Any

import ml_collections

_CHOICES = {
    "model.facet_item_proj": ("linear", "slice"),
    "model.facet_proj_init": ("normal", "selector"),
    "model.moe_residual": ("slice", "key_proj"),
    "model.gate": ("learned", "uniform"),
    "model.mix": ("logits", "probs"),
    "model.head_ffn": ("head", "full", "dense"),
    "model.head_norm": ("head", "full"),
    "train.examples": ("all_positions", "prefix_last"),
    "train.loss_impl": ("dense", "chunked"),
}


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
  """Raises ``ValueError`` naming the field for any invalid setting."""
  errors = []
  for key, allowed in _CHOICES.items():
    value = _get(config, key)
    if value not in allowed:
      errors.append(f"config.{key}={value!r}: must be one of {allowed}")
  m = config.model
  if m.hidden_size % m.num_heads:
    errors.append(f"config.model.hidden_size={m.hidden_size} must be divisible by "
                  f"config.model.num_heads={m.num_heads}")
  for key in ("model.hidden_size", "model.num_layers", "model.num_heads", "model.num_experts",
              "train.batch_size", "train.max_epochs", "train.eval_every_epochs", "data.max_len",
              "eval.batch_size"):
    if _get(config, key) < 1:
      errors.append(f"config.{key}={_get(config, key)} must be >= 1")
  if m.get("max_len", config.data.max_len) < config.data.max_len:
    errors.append(f"config.model.max_len={m.max_len} must be >= config.data.max_len="
                  f"{config.data.max_len} (rows of the position table)")
  if m.get("head_mix", False) and not m.facet_heads:
    errors.append("config.model.head_mix=True needs config.model.facet_heads=True (a standard "
                  "last block already mixes its heads with W_O)")
  if _get(config, "model.head_ffn") == "dense":
    if not m.facet_heads:
      errors.append("config.model.head_ffn='dense' needs config.model.facet_heads=True (without "
                    "facet heads the last block is the standard block)")
  if _get(config, "model.head_ffn") == "full":
    if not m.facet_heads:
      errors.append("config.model.head_ffn='full' needs config.model.facet_heads=True (without "
                    "facet heads the last block is already the standard block)")
    if m.get("head_mix", False):
      errors.append("config.model.head_ffn='full' already mixes the heads with W_O: set "
                    "config.model.head_mix=False")
    if m.moe_residual != "slice":
      errors.append(f"config.model.moe_residual={m.moe_residual!r} is a head-wise residual; "
                    "config.model.head_ffn='full' has the full-width one (use 'slice')")
    if m.get("head_norm", "head") != "head":
      errors.append(f"config.model.head_norm={m.head_norm!r} sizes the head-wise block's "
                    "LayerNorms, which config.model.head_ffn='full' replaces (use 'head')")
    if m.ffn_head_inner:
      errors.append(f"config.model.ffn_head_inner={m.ffn_head_inner} sizes FFN', which "
                    "config.model.head_ffn='full' replaces with the ffn_inner-wide FFN (use 0)")
  if _get(config, "model.mix") == "probs" and not m.facet_heads:
    errors.append("config.model.mix='probs' needs config.model.facet_heads=True (without facet "
                  "heads there is one score per item and nothing to mix)")
  if m.get("output_norm_scale", 1.0) <= 0:
    errors.append(f"config.model.output_norm_scale={m.output_norm_scale} must be > 0")
  scale = m.get("facet_proj_scale", 1.0)
  if scale <= 0:
    errors.append(f"config.model.facet_proj_scale={scale} must be > 0")
  elif scale != 1.0 and (m.facet_item_proj != "linear" or
                         (m.facet_proj_init != "selector" and not config.pretrain.enabled
                          and not config.init.item_embeddings_from)):
    errors.append(f"config.model.facet_proj_scale={scale} scales the selector W_f^h: it needs "
                  "config.model.facet_item_proj='linear' and facet_proj_init='selector' (or "
                  "the FAME+ hand-off)")
  if not 0.0 <= m.dropout < 1.0:
    errors.append(f"config.model.dropout={m.dropout} must be in [0, 1)")
  if config.train.learning_rate <= 0:
    errors.append(f"config.train.learning_rate={config.train.learning_rate} must be > 0")
  if config.init.freeze_item_emb and not (config.init.item_embeddings_from or config.pretrain.enabled):
    errors.append("config.init.freeze_item_emb=True needs pre-trained item embeddings "
                  "(config.init.item_embeddings_from or config.pretrain.enabled)")
  if errors:
    raise ValueError("invalid config:\n  " + "\n  ".join(errors))


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(d, dict):
    out = {}
    for k, v in d.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: d}


# Config keys added after runs were made, each with the value that rebuilds
# those runs' model; a stored config.json without the key means that value.
ADDED_DEFAULTS = {"model.head_mix": False, "model.facet_proj_scale": 1.0,
                  "model.output_norm_scale": 1.0, "model.mix": "logits",
                  "model.head_ffn": "head", "model.head_norm": "head"}


def with_added_defaults(stored: dict) -> dict:
  """A copy of a stored ``config.json`` dict with :data:`ADDED_DEFAULTS` filled in."""
  out = json.loads(json.dumps(stored))
  for dotted, value in ADDED_DEFAULTS.items():
    *parents, leaf = dotted.split(".")
    node = out
    for part in parents:
      node = node.setdefault(part, {})
    node.setdefault(leaf, value)
  return out


def config_differences(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
  """``(dotted_key, a_value, b_value)`` for every differing leaf."""
  fa, fb = _flatten(a), _flatten(b)
  keys = sorted(set(fa) | set(fb))
  norm = lambda v: list(v) if isinstance(v, tuple) else v
  return [(k, fa.get(k), fb.get(k)) for k in keys if norm(fa.get(k)) != norm(fb.get(k))]
