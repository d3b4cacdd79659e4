"""Size study: accuracy against parameter count and training time, read from run folders.

  python scripts/size_curve.py runs/ml1m_size --out docs/ml1m_size \
      [--reference HSTU-large=0.1893 --reference gSASRec=0.1726]
  python scripts/size_curve.py results/ml1m/sasrec_seed* results/ml1m/fame_seed* \
      results/ml1m/sasrec_d128_seed0 --out /tmp/ml1m_size

Each argument is a run folder (it holds ``config.json``) or a folder of run
folders (a sweep's ``--workdir``). Of each run it reads, and never recomputes:

* ``config.json``: ``model.hidden_size`` (d), ``model.num_layers`` (blocks),
  the model (SASRec, FAME or FAME+, :func:`model_name`) and ``data.path``;
* ``results.json`` (a finished run): ``num_params``, ``train_seconds``
  (all training epochs, evaluation excluded; kept, not shown), ``best_epoch``,
  ``epochs_run`` and the validation and test NDCG@10 / test HR@10 of the best
  validation epoch;
* ``metrics.jsonl``: per-epoch ``train_seconds`` (the epoch time is their
  median, so the first epoch's compilation and a busy machine's slow epochs do
  not count) and, where the trainer records it, ``peak_memory_bytes``. The
  training time of a run is its epochs times that median: a shared machine's
  slowed or paused epochs (an epoch with the process stopped for an hour) would
  otherwise decide where a run sits on the time axis.

Runs named ``<name>_seed<k>`` are one point: their metrics are the mean (and
sample std, ``fame_jax.analysis.seeds``) over the finished seeds. A run
without ``results.json`` is listed as running, with its best validation
NDCG@10 so far, and is left out of the curve.

Written to ``--out``:

* ``size_curve.md``: one row per point, grouped by model and sorted by
  parameter count; ``*`` marks, for each model and size (d, blocks), the point
  with the best validation NDCG@10 (the one the curve uses: sizes are chosen
  on validation only), and ``gain`` is that point's validation NDCG@10 minus
  the previous chosen size's, which shows where the curve flattens;
* ``size_curve.png``: validation and test NDCG@10 against parameters and
  against training hours, one line per model (and data file, when runs on
  several files are given); ``--reference NAME=VALUE`` draws a published test
  NDCG@10 as a dashed line on the test panels.

A folder that is not a run, or a malformed file, stops the script with the
file (and line) and the problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
from typing import Sequence

from fame_jax.analysis.seeds import jsonl_rows, mean_std

_SEED = re.compile(r"^(?P<name>.+)_seed(?P<seed>\d+)$")
MODELS = ("SASRec", "FAME", "FAME+")  # Table and legend order.


@dataclasses.dataclass
class Run:
  """One run folder, as read from its files."""
  path: str
  name: str  # Folder name without ``_seed<k>``: runs with one name are one point.
  model: str
  hidden_size: int
  num_layers: int
  data_file: str
  finished: bool
  num_params: int | None
  valid_ndcg10: float | None  # Best validation NDCG@10 (so far, for a running run).
  test_ndcg10: float | None
  test_hr10: float | None
  train_seconds: float  # Sum over the logged epochs (results.json's value when finished).
  epoch_seconds: float | None  # Median epoch time.
  epochs_run: int
  best_epoch: int | None
  peak_memory_bytes: int | None

  @property
  def training_seconds(self) -> float:
    """Epochs times the median epoch (the sum when no epoch time was logged)."""
    return self.train_seconds if self.epoch_seconds is None else self.epochs_run * self.epoch_seconds


def model_name(config: dict) -> str:
  """``"SASRec"``, ``"FAME"`` or ``"FAME+"`` from a run's ``config.json``.

  SASRec is FAME with one expert, no facet heads and plain attention in every
  layer (the rule of ``fame_jax.training.loop.model_variant``); FAME+ is FAME
  whose item table starts from text pre-training.
  """
  m = config["model"]
  if m["num_experts"] == 1 and not m["facet_heads"] and not m.get("moe_all_layers", False):
    return "SASRec"
  pretrained = config.get("pretrain", {}).get("enabled") or config.get("init", {}).get(
      "item_embeddings_from")
  return "FAME+" if pretrained else "FAME"


def _read_json(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise SystemExit(f"{path}:{e.lineno}: not JSON ({e.msg})") from None


def _read_rows(path: str) -> list[dict]:
  rows = []
  if not os.path.exists(path):
    return rows
  for n, row in jsonl_rows(path):
    if not isinstance(row, dict) or not isinstance(row.get("train_seconds"), (int, float)):
      raise SystemExit(f"{path}:{n}: epoch row without a numeric 'train_seconds'")
    rows.append(row)
  return rows


def _field(d: dict, key: str, path: str):
  """``d[key]`` for a file's required field; a one-line error naming the file otherwise."""
  node = d
  for part in key.split("."):
    if not isinstance(node, dict) or part not in node:
      raise SystemExit(f"{path}: no {key!r} field")
    node = node[part]
  return node


def read_run(path: str) -> Run:
  """Reads one run folder (``config.json``, ``metrics.jsonl``, ``results.json`` if finished)."""
  config_path = os.path.join(path, "config.json")
  config = _read_json(config_path)
  rows = _read_rows(os.path.join(path, "metrics.jsonl"))
  results_path = os.path.join(path, "results.json")
  results = _read_json(results_path) if os.path.exists(results_path) else None
  folder = os.path.basename(os.path.normpath(path))
  m = _SEED.match(folder)
  epoch_times = [float(r["train_seconds"]) for r in rows]
  valids = [r["valid/NDCG@10"] for r in rows if "valid/NDCG@10" in r]
  peaks = [r["peak_memory_bytes"] for r in rows if "peak_memory_bytes" in r]
  run = Run(
      path=path, name=m.group("name") if m else folder, model=model_name(config),
      hidden_size=int(_field(config, "model.hidden_size", config_path)),
      num_layers=int(_field(config, "model.num_layers", config_path)),
      data_file=os.path.basename(str(config.get("data", {}).get("path", ""))) or "-",
      finished=results is not None, num_params=None, valid_ndcg10=max(valids) if valids else None,
      test_ndcg10=None, test_hr10=None, train_seconds=sum(epoch_times),
      epoch_seconds=statistics.median(epoch_times) if epoch_times else None,
      epochs_run=len(rows), best_epoch=None, peak_memory_bytes=max(peaks) if peaks else None)
  if results is not None:
    run.num_params = int(_field(results, "num_params", results_path))
    run.valid_ndcg10 = float(_field(results, "valid/NDCG@10", results_path))
    run.test_ndcg10 = float(_field(results, "test/NDCG@10", results_path))
    run.test_hr10 = float(_field(results, "test/HR@10", results_path))
    run.train_seconds = float(_field(results, "train_seconds", results_path))
    run.epochs_run = int(_field(results, "epochs_run", results_path))
    run.best_epoch = int(_field(results, "best_epoch", results_path))
    if "peak_memory_bytes" in results:
      run.peak_memory_bytes = int(results["peak_memory_bytes"])
  return run


def find_runs(paths: Sequence[str]) -> list[Run]:
  """The runs of each argument: the folder itself if it holds ``config.json``, else its sub-folders that do.

  Raises:
    SystemExit: an argument is missing or holds no run.
  """
  runs = []
  for p in paths:
    if not os.path.isdir(p):
      raise SystemExit(f"{p}: not a folder")
    if os.path.exists(os.path.join(p, "config.json")):
      runs.append(read_run(p))
      continue
    subs = sorted(d for d in os.listdir(p) if os.path.exists(os.path.join(p, d, "config.json")))
    if not subs:
      raise SystemExit(f"{p}: neither a run folder (config.json) nor a folder of runs")
    runs.extend(read_run(os.path.join(p, d)) for d in subs)
  return runs


@dataclasses.dataclass
class Point:
  """One name's runs (its seeds): one row of the table, one marker of the curve."""
  name: str
  model: str
  hidden_size: int
  num_layers: int
  data_file: str
  runs: list[Run]
  chosen: bool = False  # Best validation NDCG@10 of its model, size and data file.
  gain: float | None = None  # Validation NDCG@10 minus the previous chosen size's.

  @property
  def done(self) -> list[Run]:
    return [r for r in self.runs if r.finished]

  def mean(self, attr: str) -> float | None:
    vals = [getattr(r, attr) for r in self.done if getattr(r, attr) is not None]
    return statistics.fmean(vals) if vals else None

  @property
  def num_params(self) -> int | None:
    return self.done[0].num_params if self.done else None

  @property
  def epoch_seconds(self) -> float | None:
    vals = [r.epoch_seconds for r in self.runs if r.epoch_seconds is not None]
    return statistics.fmean(vals) if vals else None

  @property
  def peak_memory_bytes(self) -> int | None:
    vals = [r.peak_memory_bytes for r in self.runs if r.peak_memory_bytes is not None]
    return max(vals) if vals else None


def group_points(runs: Sequence[Run]) -> list[Point]:
  """Groups runs into points by name and data file, marks the chosen point of each size, and its gain.

  Raises:
    SystemExit: two runs of one point differ in model or size (their folder
      names say they are seeds of one configuration).
  """
  points: dict[tuple[str, str], Point] = {}
  for r in runs:
    key = (r.name, r.data_file)
    p = points.get(key)
    if p is None:
      points[key] = Point(r.name, r.model, r.hidden_size, r.num_layers, r.data_file, [r])
      continue
    if (p.model, p.hidden_size, p.num_layers) != (r.model, r.hidden_size, r.num_layers):
      raise SystemExit(f"{r.path}: named as a seed of {p.runs[0].path}, but its model or size differs")
    p.runs.append(r)
  out = sorted(points.values(), key=_order)
  for line in _lines(out).values():
    prev = None
    for p in line:
      p.chosen = True
      p.gain = None if prev is None else p.mean("valid_ndcg10") - prev.mean("valid_ndcg10")
      prev = p
  return out


def _order(p: Point):
  # Finished points by size, then the running ones.
  return (MODELS.index(p.model) if p.model in MODELS else len(MODELS), p.data_file,
          not p.done, p.num_params or 0, p.hidden_size, p.num_layers, p.name)


def _lines(points: Sequence[Point]) -> dict[tuple[str, str], list[Point]]:
  """Per (model, data file), the finished point of best validation NDCG@10 at each size, by parameters."""
  best: dict[tuple[str, str, int, int], Point] = {}
  for p in points:
    if not p.done:
      continue
    k = (p.model, p.data_file, p.hidden_size, p.num_layers)
    if k not in best or p.mean("valid_ndcg10") > best[k].mean("valid_ndcg10"):
      best[k] = p
  lines: dict[tuple[str, str], list[Point]] = {}
  for (model, data_file, _, _), p in best.items():
    lines.setdefault((model, data_file), []).append(p)
  for line in lines.values():
    line.sort(key=lambda p: p.num_params)
  return lines


def _seconds(s: float | None) -> str:
  return "-" if s is None else f"{s:.0f} s"


def _hours(s: float | None) -> str:
  return "-" if s is None else f"{s / 3600:.2f} h"


def markdown_table(points: Sequence[Point]) -> str:
  """The size table (Markdown), one row per point."""
  head = ("| model | run | data | d | blocks | params | epoch time | peak memory | epochs (best) "
          "| train time | seeds | valid NDCG@10 | test NDCG@10 | test HR@10 | gain |")
  lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
  for p in points:
    done = p.done
    vals = lambda attr: [getattr(r, attr) for r in done]  # noqa: E731
    mem = p.peak_memory_bytes
    if done:
      epochs = ", ".join(f"{r.epochs_run} ({r.best_epoch})" for r in done)
      seeds = f"{len(done)}" + (f" (+{len(p.runs) - len(done)} running)" if len(p.runs) > len(done) else "")
      valid, test, hr = (mean_std(vals(a)) for a in ("valid_ndcg10", "test_ndcg10", "test_hr10"))
      train = _hours(p.mean("training_seconds"))
    else:
      r = max(p.runs, key=lambda r: r.epochs_run)
      epochs = f"{r.epochs_run} so far"
      seeds = f"0 ({len(p.runs)} running)"
      valid = "-" if r.valid_ndcg10 is None else f"{r.valid_ndcg10:.4f} so far"
      test = hr = "-"
      train = _hours(r.training_seconds)
    lines.append(
        f"| {p.model} | {'*' if p.chosen else ''}{p.name} | {p.data_file} | {p.hidden_size} "
        f"| {p.num_layers} | {'-' if p.num_params is None else f'{p.num_params:,}'} "
        f"| {_seconds(p.epoch_seconds)} | {'-' if mem is None else f'{mem / 2**20:,.0f} MiB'} "
        f"| {epochs} | {train} | {seeds} | {valid} | {test} | {hr} "
        f"| {'-' if p.gain is None else f'{p.gain:+.4f}'} |")
  return "\n".join(lines) + "\n"


def plot(points: Sequence[Point], path: str, references: Sequence[tuple[str, float]] = ()) -> None:
  """``path`` (PNG): validation and test NDCG@10 against parameters and training hours."""
  import matplotlib
  matplotlib.use("Agg")  # Headless: tests and servers have no display.
  import matplotlib.pyplot as plt

  lines = _lines(points)
  several_files = len({f for _, f in lines}) > 1
  fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharey="row")
  for (model, data_file), line in sorted(lines.items(), key=lambda kv: _order(kv[1][0])):
    label = f"{model} ({data_file})" if several_files else model
    params = [p.num_params for p in line]
    hours = [p.mean("training_seconds") / 3600 for p in line]
    for row, attr in enumerate(("valid_ndcg10", "test_ndcg10")):
      ys = [p.mean(attr) for p in line]
      # Seed spread (sample std) where a point has two or more finished seeds.
      errs = [statistics.stdev(v) if len(v := [getattr(r, attr) for r in p.done]) > 1 else 0.0
              for p in line]
      for col, xs in enumerate((params, hours)):
        ax = axes[row][col]
        color = ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)[0].get_color()
        for x, y, p in zip(xs, ys, line):
          ax.annotate(f"d{p.hidden_size} L{p.num_layers}", (x, y), fontsize=7, color=color,
                      textcoords="offset points", xytext=(3, 3))
  for col in range(2):
    for name, value in references:
      axes[1][col].axhline(value, linestyle="--", linewidth=0.8, color="gray")
      # Below the line: the points' labels sit above and to the right of them.
      axes[1][col].annotate(f"{name} {value:.4f}", (0.01, value), xycoords=("axes fraction", "data"),
                            fontsize=7, color="gray", xytext=(0, -9), textcoords="offset points")
  for row, what in enumerate(("validation", "test")):
    axes[row][0].set_ylabel(f"{what} NDCG@10")
    for col, xlabel in enumerate(("parameters", "training hours (epochs x median epoch)")):
      _log_axis(axes[row][col], _compact_count if col == 0 else _plain)
      axes[row][col].set_xlabel(xlabel)
      axes[row][col].grid(True, alpha=0.3)
  axes[0][0].legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _compact_count(x: float, _pos=None) -> str:
  """``1.02M``, ``250k``, ``900``: parameter counts as tick labels."""
  for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
    if x >= div:
      return f"{x / div:.3g}{unit}"
  return f"{x:.3g}"


def _plain(x: float, _pos=None) -> str:
  return f"{x:.3g}"


def _log_axis(ax, formatter) -> None:
  """Log x axis with plain labels at 1, 2 and 5 times powers of ten.

  A curve's points can span less than a factor of two (the first points of a
  study, or two models of one size), where matplotlib would label only the
  minor ticks, in overlapping scientific notation: the limits are widened to
  at least a factor of four so that 1-2-5 ticks fall inside. The right end
  gets room for the last point's label.
  """
  from matplotlib import ticker

  ax.set_xscale("log")
  lo, hi = ax.get_xlim()
  if hi / lo < 4:
    mid = (lo * hi) ** 0.5
    lo, hi = mid / 2, mid * 2
  ax.set_xlim(lo, hi * 1.2)
  ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(formatter))
  ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _reference(text: str) -> tuple[str, float]:
  name, sep, value = text.rpartition("=")
  try:
    if not sep or not name:
      raise ValueError
    return name, float(value)
  except ValueError:
    raise argparse.ArgumentTypeError(f"--reference {text!r}: expected NAME=VALUE, "
                                     "e.g. HSTU-large=0.1893") from None


def main(argv: Sequence[str] | None = None) -> None:
  """Writes ``size_curve.md`` and ``size_curve.png`` for the run folders given."""
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("runs", nargs="+", help="run folders, or folders of run folders")
  ap.add_argument("--out", required=True, help="folder for size_curve.md and size_curve.png")
  ap.add_argument("--reference", action="append", default=[], type=_reference,
                  help="published test NDCG@10 drawn on the test panels, NAME=VALUE (repeatable)")
  args = ap.parse_args(argv)
  points = group_points(find_runs(args.runs))
  os.makedirs(args.out, exist_ok=True)
  table = markdown_table(points)
  with open(os.path.join(args.out, "size_curve.md"), "w") as f:
    f.write(table)
  if any(p.chosen for p in points):
    plot(points, os.path.join(args.out, "size_curve.png"), args.reference)
  else:
    print("no finished run: size_curve.png not drawn", file=sys.stderr)
  print(table, end="")
