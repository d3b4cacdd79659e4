"""Reading configs as a person does: the resolved values, what differs from the
base, which settings have no effect, and a one-line answer to a mistyped key.

``train.py --print_config`` prints :func:`describe`; ``train.py`` checks its
``--config.<key>=value`` overrides with :func:`unknown_override_error` before
absl parses them (ml_collections would raise three chained tracebacks).
Code that takes a config without absl's flags (the sweep's runs files and
grids, ``fame_jax.data.stats``, the benchmarks) loads it with
:func:`load_config_file` and sets each ``--config.key=value`` with
:func:`apply_override`, which parses the value with its field's type.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import sys
from typing import Any, Iterable, Mapping

import ml_collections

from fame_jax import options
from fame_jax.errors import ConfigError

# Sections in the order configs/base.py declares them (ConfigDict sorts keys).
_SECTION_ORDER = ("data", "model", "train", "eval", "init", "pretrain")
_OVERRIDE_PREFIXES = ("--config.", "--noconfig.")


def flatten(config: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
  """``{"model.hidden_size": 64, ...}``: every leaf by dotted key, sections in
  configs/base.py order, keys sorted within a section; tuples stay tuples."""
  tree = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  out: dict[str, Any] = {}

  def walk(node: Mapping[str, Any], prefix: str) -> None:
    for key in sorted(node):
      value = node[key]
      if isinstance(value, Mapping):
        walk(value, f"{prefix}{key}.")
      else:
        out[f"{prefix}{key}"] = value

  rank = {name: i for i, name in enumerate(_SECTION_ORDER)}
  for section in sorted(tree, key=lambda k: (rank.get(k, len(rank)), k)):
    if isinstance(tree[section], Mapping):
      walk(tree[section], f"{section}.")
    else:
      out[section] = tree[section]
  return out


def _same(a: Any, b: Any) -> bool:
  norm = lambda v: list(v) if isinstance(v, tuple) else v  # JSON turns tuples into lists.
  return norm(a) == norm(b)


def differences(base: Mapping[str, Any], config: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
  """``(key, base_value, config_value)`` for each differing leaf of two
  :func:`flatten` dicts, in ``config``'s order; a missing side reads ``None``."""
  keys = list(config) + [k for k in base if k not in config]
  return [(k, base.get(k), config.get(k)) for k in keys if not _same(base.get(k), config.get(k))]


def inactive_keys(config: ml_collections.ConfigDict) -> dict[str, str]:
  """Settings the model or the run never reads under the rest of ``config``,
  each with the setting that makes it so (fame_jax/models/fame.py,
  fame_jax/pretraining/handoff.py, fame_jax/training/loop.py)."""
  m, out = config.model, {}
  if not m.facet_heads:
    for key in ("facet_item_proj", "facet_proj_init", "gate"):
      out[f"model.{key}"] = "facet_heads=False (no facet heads)"
  elif m.facet_item_proj == "slice":
    out["model.facet_proj_init"] = "facet_item_proj='slice' (no W_f^h)"
  elif config.pretrain.enabled or config.init.item_embeddings_from:
    out["model.facet_proj_init"] = "the FAME+ hand-off sets W_f^h to the selectors"
  if m.num_experts == 1:
    out["model.moe_all_layers"] = "num_experts=1 (no MoE)"
  if not config.pretrain.enabled:
    for key in config.pretrain:
      if key != "enabled":
        out[f"pretrain.{key}"] = "pretrain.enabled=False"
  return out


def describe(config: ml_collections.ConfigDict, base: ml_collections.ConfigDict,
             name: str = "config", base_name: str = "configs/base.py") -> str:
  """The text ``train.py --print_config`` prints: every resolved value (marked
  where it has no effect), then ``key: base value -> this value`` lines."""
  values, inactive = flatten(config), inactive_keys(config)
  lines = [f"# {name}: resolved config"]
  for key, value in values.items():
    note = f"  # no effect: {inactive[key]}" if key in inactive else ""
    lines.append(f"{key} = {value!r}{note}")
  diffs = differences(flatten(base), values)
  lines += ["", f"# {name}: {len(diffs)} differences from {base_name} (key: base value -> this value)"]
  lines += [f"{key}: {a!r} -> {b!r}" for key, a, b in diffs]
  return "\n".join(lines)


def override_keys(argv: Iterable[str]) -> list[tuple[str, str]]:
  """``(dotted_key, argument)`` for each ``--config.<key>[=value]`` argument
  (also ``--noconfig.<key>``); an index such as ``ks[0]`` names its field."""
  out = []
  for arg in argv:
    if arg == "--":
      break
    for prefix in _OVERRIDE_PREFIXES:
      if arg.startswith(prefix):
        key = arg[len(prefix):].split("=", 1)[0].split("[", 1)[0]
        out.append((key, arg))
  return out


def _valid_paths(config: ml_collections.ConfigDict) -> list[str]:
  """Every leaf key and every section key an override may name."""
  leaves = list(flatten(config))
  sections = {".".join(k.split(".")[:i]) for k in leaves for i in range(1, k.count(".") + 1)}
  return leaves + sorted(sections)


def unknown_key_error(key: str, argument: str, config: ml_collections.ConfigDict,
                      source: str = "the config") -> str | None:
  """One line naming ``key`` and the closest valid keys (or, for a deleted
  option, the tag that keeps it), or ``None`` if ``key`` is valid."""
  valid = _valid_paths(config)
  if key in valid:
    return None
  if key in options.DELETED:
    return (f"config key '{key}' in {argument} was deleted: a variant the study rejected "
            f"(docs/findings.md#rejected-variants); the git tag {options.ARCHIVE_TAG} keeps it")
  close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
  section = key.split(".", 1)[0]
  if not close:  # Nothing spelled alike: list the keys of the named section.
    close = [k for k in valid if k.startswith(f"{section}.")][:8]
  hint = f"closest valid keys: {', '.join(close)}" if close else (
      f"sections: {', '.join(k for k in valid if '.' not in k)}")
  return f"unknown config key '{key}' in {argument} (not in {source}); {hint}"


def config_spec(argv: Iterable[str]) -> str | None:
  """The ``--config`` argument (``file.py`` or ``file.py:arg``) in ``argv``."""
  argv = list(argv)
  for i, arg in enumerate(argv):
    if arg == "--":
      break
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """The config ``spec`` names (``file.py`` or ``file.py:arg``, as ``--config``
  takes it: ``get_config()`` or ``get_config(arg)``) without overrides, locked
  as train.py's ``--config`` leaves it, so a misspelt key cannot become a new
  field. Loaded directly: ml_collections' flag would read the ``--config.*``
  overrides from ``sys.argv`` and raise on the bad one.

  Raises:
    ValueError: the file does not exist or defines no ``get_config``.
  """
  import importlib.util

  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ValueError(f"config file {path!r} not found")
  if os.getcwd() not in sys.path and "" not in sys.path:
    sys.path.insert(0, os.getcwd())  # Config files import configs.base.
  module_spec = importlib.util.spec_from_file_location(
      "_fame_config_" + re.sub(r"\W", "_", path), path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"config file {path!r} defines no get_config()")
  config = module.get_config(arg) if arg else module.get_config()
  config.lock()
  return config


def lookup(config: ml_collections.ConfigDict, key: str, flag: str = "--grid",
           argument: str | None = None, source: str = "the config") -> Any:
  """The value of field ``key``; a ConfigError naming the closest valid keys
  (:func:`unknown_key_error`, as train.py does) for a key the config lacks."""
  node = config
  for p in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or p not in node:
      raise ConfigError(unknown_key_error(key, argument or f"{flag} {key}", config, source=source)
                        or f"{flag} key {key!r} is not in the config")
    node = node[p]
  if isinstance(node, ml_collections.ConfigDict):
    raise ConfigError(f"{flag} key {key!r} names a config section, not a field")
  return node


def set_field(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """Sets the existing field ``key`` (ConfigDict type-checks the value)."""
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = value  # Existing field: allowed on a locked ConfigDict, type-checked.


def parse_value(key: str, text: str, like: Any, flag: str = "--grid") -> Any:
  """Parses ``text`` with the type of the config field's current value."""
  text = text.strip()
  if isinstance(like, bool):  # Before int: bool is an int subclass.
    low = text.lower()
    if low in ("true", "1", "yes"):
      return True
    if low in ("false", "0", "no"):
      return False
    raise ValueError(f"{flag} {key}: {text!r} is not a bool (true/false)")
  if isinstance(like, (tuple, list)):  # e.g. pretrain.facets=('genres',)
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = None
    if not isinstance(value, (tuple, list)):
      raise ValueError(f"{flag} {key}: {text!r} is not a tuple literal, e.g. ('a', 'b')")
    return type(like)(value)
  for typ in (int, float, str):
    if isinstance(like, typ):
      try:
        return typ(text)
      except ValueError:
        article = "an" if typ is int else "a"
        raise ValueError(f"{flag} {key}: {text!r} is not {article} {typ.__name__}") from None
  raise ValueError(f"{flag} {key}: field of type {type(like).__name__} cannot be set here "
                   "(only bool/int/float/str/tuple fields)")


def apply_override(config: ml_collections.ConfigDict, arg: str, source: str = "the config") -> None:
  """Sets the field a ``--config.key=value`` argument names, parsed with the
  field's type; a ConfigError or ValueError (one line) for a key the config
  lacks or a value of the wrong type."""
  if not arg.startswith("--config.") or "=" not in arg:
    raise ValueError(f"{arg!r} is not --config.key=value")
  key, text = arg[len("--config."):].split("=", 1)
  like = lookup(config, key, flag="override", argument=arg, source=source)
  set_field(config, key, parse_value(key, text, like, flag="override"))


def unknown_override_error(argv: list[str]) -> str | None:
  """The first ``--config.<key>`` override in ``argv`` that names no key of
  the loaded config, as a one-line message; ``None`` if all are valid or the
  config itself does not load (then flag parsing reports that)."""
  overrides = override_keys(argv[1:])
  spec = config_spec(argv[1:])
  if not overrides or spec is None:
    return None
  try:
    config = load_config_file(spec)
  except Exception:  # pylint: disable=broad-except  # absl reports a bad --config itself.
    return None
  for key, argument in overrides:
    error = unknown_key_error(key, argument, config, source=os.path.normpath(spec))
    if error:
      return error
  return None
