"""Grid sweeps: one workdir per point, resumable, with a table and a plot.

  python -m fame_jax.sweep --config configs/tiny.py \
      --grid model.num_experts=1,2,4,8 --grid model.num_heads=1,2,4 \
      --workdir runs/sweep_tiny [--config.train.max_epochs=10 ...]

Every point of the cartesian product of the ``--grid`` values trains in its
own workdir ``<workdir>/<key=value,...>`` through
:func:`fame_jax.training.loop.train_and_evaluate`, sequentially, in this
process. Because that function resumes an interrupted workdir and skips a
finished one, re-running the same command continues an interrupted sweep
where it stopped. ``--config.*`` overrides apply to every point. At the end
``sweep.csv``, ``sweep.md`` (a Markdown table) and ``sweep.png`` (validation
and test NDCG@10 per point) are written to ``<workdir>``.
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import os
from typing import Any, Sequence

import ml_collections

from fame_jax.training import loop
from fame_jax.training.config_check import validate_config

# Columns of sweep.csv / sweep.md after the grid keys.
_METRIC_COLUMNS = ("best_epoch", "valid/NDCG@10", "test/NDCG@10", "valid/HR@10", "test/HR@10",
                   "train_seconds")


def _lookup(config: ml_collections.ConfigDict, key: str) -> Any:
  node = config
  parts = key.split(".")
  for i, p in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or p not in node:
      raise KeyError(f"--grid key {key!r} is not in the config (no field "
                     f"{'.'.join(parts[:i + 1])!r})")
    node = node[p]
  if isinstance(node, ml_collections.ConfigDict):
    raise KeyError(f"--grid key {key!r} names a config section, not a field")
  return node


def _parse_value(key: str, text: str, like: Any) -> Any:
  """Parses ``text`` with the type of the config field's current value."""
  text = text.strip()
  if isinstance(like, bool):  # Before int: bool is an int subclass.
    low = text.lower()
    if low in ("true", "1", "yes"):
      return True
    if low in ("false", "0", "no"):
      return False
    raise ValueError(f"--grid {key}: {text!r} is not a bool (true/false)")
  for typ in (int, float, str):
    if isinstance(like, typ):
      try:
        return typ(text)
      except ValueError:
        raise ValueError(f"--grid {key}: {text!r} is not a {typ.__name__}") from None
  raise ValueError(f"--grid {key}: field of type {type(like).__name__} cannot be swept "
                   "(only bool/int/float/str fields)")


def parse_grid(specs: Sequence[str], config: ml_collections.ConfigDict) -> list[tuple[str, list[Any]]]:
  """Parses ``--grid key=v1,v2,...`` flags against the config.

  Args:
    specs: the flag values, e.g. ``["model.num_experts=1,2,4"]``.
    config: the base config; each key must name an existing scalar field.

  Returns:
    ``[(key, [typed values...]), ...]`` in flag order.

  Raises:
    KeyError: a key that is not a config field (the message names it).
    ValueError: a malformed spec, a repeated key, or a value of the wrong type.
  """
  grid, seen = [], set()
  for spec in specs:
    if "=" not in spec:
      raise ValueError(f"--grid {spec!r}: expected key=v1,v2,...")
    key, values = spec.split("=", 1)
    key = key.strip()
    if key.startswith("config."):
      key = key[len("config."):]
    if key in seen:
      raise ValueError(f"--grid key {key!r} given twice")
    seen.add(key)
    like = _lookup(config, key)
    parsed = [_parse_value(key, v, like) for v in values.split(",") if v.strip()]
    if not parsed:
      raise ValueError(f"--grid {key}: no values")
    grid.append((key, parsed))
  return grid


def point_name(point: Sequence[tuple[str, Any]]) -> str:
  """Workdir name of a grid point: ``key=value,key=value``."""
  return ",".join(f"{k}={v}" for k, v in point)


def point_config(config: ml_collections.ConfigDict, point: Sequence[tuple[str, Any]]
                 ) -> ml_collections.ConfigDict:
  """A copy of ``config`` with the point's values set (types checked by ConfigDict)."""
  c = copy.deepcopy(config)
  for key, value in point:
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value  # Existing field: allowed on a locked ConfigDict.
  return c


def run_sweep(config: ml_collections.ConfigDict, grid: Sequence[tuple[str, list[Any]]],
              sweep_dir: str) -> list[dict[str, Any]]:
  """Trains every grid point (skipping finished ones) and writes the table.

  Every point's config is validated before any training starts, so a bad
  combination (e.g. ``hidden_size`` not divisible by ``num_heads``) fails in
  seconds instead of after hours of earlier points.

  Args:
    config: base config (with any overrides already applied).
    grid: from :func:`parse_grid`.
    sweep_dir: parent of the point workdirs; receives ``sweep.csv``,
      ``sweep.md`` and ``sweep.png``.

  Returns:
    One row per point: ``point``, the grid values, and the
    ``_METRIC_COLUMNS`` from the point's ``results.json`` (``None`` where a
    point did not finish, e.g. ``train.stop_after_epoch``).
  """
  keys = [k for k, _ in grid]
  points = [list(zip(keys, combo)) for combo in itertools.product(*[v for _, v in grid])]
  configs = []
  for p in points:
    c = point_config(config, p)
    try:
      validate_config(c)
    except ValueError as e:
      raise ValueError(f"sweep point {point_name(p)}: {e}") from e
    configs.append(c)
  os.makedirs(sweep_dir, exist_ok=True)
  rows = []
  for i, (p, c) in enumerate(zip(points, configs)):
    name = point_name(p)
    loop._log(f"[sweep {i + 1}/{len(points)}] {name}")  # pylint: disable=protected-access
    results = loop.train_and_evaluate(c, os.path.join(sweep_dir, name))
    row: dict[str, Any] = {"point": name, **dict(p)}
    for col in _METRIC_COLUMNS:
      row[col] = results.get(col)
    rows.append(row)
  write_table(rows, keys, sweep_dir)
  return rows


def _fmt(v: Any) -> str:
  if v is None:
    return "-"
  if isinstance(v, float):
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.4f}"
  return str(v)


def write_table(rows: list[dict[str, Any]], keys: Sequence[str], sweep_dir: str) -> None:
  """Writes ``sweep.csv``, ``sweep.md`` and ``sweep.png``."""
  cols = ["point", *keys, *_METRIC_COLUMNS]
  with open(os.path.join(sweep_dir, "sweep.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=cols)
    w.writeheader()
    for r in rows:
      w.writerow({c: ("" if r.get(c) is None else r[c]) for c in cols})
  md_cols = ["point", "best epoch", "valid NDCG@10", "test NDCG@10", "valid HR@10", "test HR@10",
             "train s"]
  lines = ["| " + " | ".join(md_cols) + " |", "|" + "---|" * len(md_cols)]
  for r in rows:
    lines.append("| " + " | ".join([r["point"]] + [_fmt(r[c]) for c in _METRIC_COLUMNS]) + " |")
  with open(os.path.join(sweep_dir, "sweep.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  _plot(rows, os.path.join(sweep_dir, "sweep.png"))


def _plot(rows: list[dict[str, Any]], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  x = np.arange(len(rows))
  nan = float("nan")
  valid = [nan if r["valid/NDCG@10"] is None else r["valid/NDCG@10"] for r in rows]
  test = [nan if r["test/NDCG@10"] is None else r["test/NDCG@10"] for r in rows]
  fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), 3.4))
  ax.bar(x - 0.2, valid, 0.4, label="valid NDCG@10")
  ax.bar(x + 0.2, test, 0.4, label="test NDCG@10")
  ax.set_xticks(x, [r["point"].replace(",", "\n") for r in rows], fontsize=7)
  ax.set_ylabel("NDCG@10")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def main(argv: Sequence[str]) -> None:
  del argv
  from absl import app
  config = _CONFIG.value
  try:
    grid = parse_grid(_GRID.value or [], config)
  except (KeyError, ValueError) as e:
    raise app.UsageError(str(e).strip('"')) from None  # A message, not a traceback.
  if not grid:
    raise app.UsageError("give at least one --grid key=v1,v2,...")
  rows = run_sweep(config, grid, _WORKDIR.value)
  with open(os.path.join(_WORKDIR.value, "sweep.md")) as f:
    print(f.read())
  print(json.dumps({"points": len(rows), "sweep_dir": os.path.abspath(_WORKDIR.value)}))


if __name__ == "__main__":
  from fame_jax import runtime
  runtime.use_huge_pages()  # Re-runs once with malloc on huge pages (fame_jax/runtime.py).
  from absl import app, flags
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).",
                                            lock_config=True)
  _GRID = flags.DEFINE_multi_string("grid", None, "key=v1,v2,... (repeat for a cartesian product).")
  _WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (one workdir per point).")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
