"""Batches of training runs: a grid of one config, or a list of runs over seeds.

Grid mode, every point of the cartesian product of the ``--grid`` values::

  python -m fame_jax.sweep --config configs/tiny.py \
      --grid model.num_experts=1,2,4,8 --grid model.num_heads=1,2,4 \
      --workdir runs/sweep_tiny [--config.train.max_epochs=10 ...]

trains each point in ``<workdir>/<key=value,...>``; ``--config.*`` overrides
apply to every point. At the end ``sweep.csv``, ``sweep.md`` (a Markdown
table) and ``sweep.png`` (validation and test NDCG@10 per point) are written
to ``<workdir>``.

List-of-runs mode, each run of a file at seeds ``0 .. N-1``::

  python -m fame_jax.sweep --runs study.txt --seeds 3 --workdir runs/study

The runs file has one run per line, ``NAME CONFIG [--config.key=value ...]``
(shell quoting; ``#`` starts a comment; blank lines are skipped)::

  sasrec      configs/sasrec.py:beauty
  fame        configs/beauty.py
  fame_gate   configs/beauty.py --config.model.gate=learned

Run ``NAME`` at seed ``k`` (``train.seed = k``) trains in
``<workdir>/<NAME>_seed<k>``, with a ``command.txt`` holding the equivalent
``train.py`` command. ``runs.md`` and ``runs.csv`` in ``<workdir>`` give, per
run, the mean ± std over its finished seeds of validation and test NDCG@10 and
HR@10 and how many seeds finished; the std is the sample std (n - 1
denominator), as docs/results.md reports seeds (``fame_jax.analysis.seeds``).
A bad line stops the batch before anything trains, with ``FILE:LINE:`` and
the problem on one line.

``--only NAME,NAME`` trains just those runs of the file, in its order, into
the same ``<NAME>_seed<k>`` workdirs (``runs.md`` then covers those runs), so a
study's file can list every point while each call trains the ones that fit in
the time at hand.

Both modes train sequentially in this process through
:func:`fame_jax.training.loop.train_and_evaluate`, which resumes an
interrupted workdir and skips a finished one: re-running the same command
continues a batch where it stopped.

``--parallel N`` (list-of-runs mode) trains up to N runs at once instead, each
as its own ``command.txt`` (``train.py``) process writing ``train.log`` in its
workdir; the tables are then read from the runs' ``results.json``. Small
models leave most of a GPU idle, so several runs can share one: the processes
get ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (unless the environment sets it or
``XLA_PYTHON_CLIENT_MEM_FRACTION``), each taking only the memory it uses.
Their epoch times then include the sharing. On a CPU one run already uses
every core.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import difflib
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import Any, Sequence

import ml_collections

from fame_jax import config_tools
from fame_jax.analysis.seeds import mean_std
from fame_jax.errors import ConfigError
from fame_jax.training import loop
from fame_jax.training.config_check import validate_config

# Columns of sweep.csv / sweep.md after the grid keys.
_METRIC_COLUMNS = ("best_epoch", "valid/NDCG@10", "test/NDCG@10", "valid/HR@10", "test/HR@10",
                   "train_seconds")


def parse_grid(specs: Sequence[str], config: ml_collections.ConfigDict) -> list[tuple[str, list[Any]]]:
  """Parses ``--grid key=v1,v2,...`` flags against the config.

  Args:
    specs: the flag values, e.g. ``["model.num_experts=1,2,4"]``.
    config: the base config; each key must name an existing scalar field.

  Returns:
    ``[(key, [typed values...]), ...]`` in flag order.

  Raises:
    ConfigError: (a ValueError) a key that is not a config field (the message
      names it and the closest valid keys), a malformed spec, a repeated key,
      or a value of the wrong type.
  """
  grid, seen = [], set()
  for spec in specs:
    if "=" not in spec:
      raise ConfigError(f"--grid {spec!r}: expected key=v1,v2,...")
    key, values = spec.split("=", 1)
    key = key.strip()
    if key.startswith("config."):
      key = key[len("config."):]
    if key in seen:
      raise ConfigError(f"--grid key {key!r} given twice")
    seen.add(key)
    like = config_tools.lookup(config, key)
    parsed = [config_tools.parse_value(key, v, like) for v in values.split(",") if v.strip()]
    if not parsed:
      raise ConfigError(f"--grid {key}: no values")
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
    config_tools.set_field(c, key, value)
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
      raise ConfigError(f"sweep point {point_name(p)}: {e}") from e
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


# ---------------------------------------------------------------- list of runs

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")
# Columns of runs.md / runs.csv after the run name: the metrics averaged over seeds.
_RUN_METRICS = ("valid/NDCG@10", "test/NDCG@10", "valid/HR@10", "test/HR@10")


@dataclasses.dataclass(frozen=True)
class Run:
  """One line of a runs file: ``NAME CONFIG [--config.key=value ...]``."""
  name: str
  config_spec: str  # ``path.py`` or ``path.py:arg`` (get_config(arg)).
  overrides: tuple[str, ...]  # As written, ``--config.key=value``.
  config: ml_collections.ConfigDict  # Loaded, overridden, validated; train.seed not set yet.
  where: str  # ``FILE:LINE``, for messages.


def _apply_override(config: ml_collections.ConfigDict, arg: str, source: str = "the config") -> None:
  if arg.startswith("--config.train.seed="):
    raise ValueError("train.seed is set by --seeds (runs use seeds 0 .. N-1)")
  config_tools.apply_override(config, arg, source=source)


def parse_runs_file(path: str) -> list[Run]:
  """Reads and checks a runs file; every config is loaded and validated.

  Raises:
    ConfigError: (a ValueError) one line, ``FILE:LINE: problem``, for the first bad line (a
      missing config, an unknown key, a value of the wrong type, an invalid
      combination, a repeated name), or for a file without runs.
  """
  if not os.path.isfile(path):
    raise ConfigError(f"{path}: runs file not found")
  runs: list[Run] = []
  seen: dict[str, str] = {}
  with open(path) as f:
    for n, line in enumerate(f, 1):
      where = f"{path}:{n}"
      try:
        words = shlex.split(line, comments=True)
      except ValueError as e:  # An unclosed quote.
        raise ConfigError(f"{where}: {e}") from None
      if not words:
        continue
      if len(words) < 2:
        raise ConfigError(f"{where}: expected NAME CONFIG [--config.key=value ...], got {line.strip()!r}")
      name, spec, overrides = words[0], words[1], tuple(words[2:])
      if not _NAME.match(name):
        raise ConfigError(f"{where}: run name {name!r} may hold only letters, digits and _ . + = -")
      if name in seen:
        raise ConfigError(f"{where}: run name {name!r} repeats {seen[name]}")
      seen[name] = where
      try:
        config = config_tools.load_config_file(spec)
        for arg in overrides:
          _apply_override(config, arg, source=spec)
        validate_config(config)
      except (KeyError, ValueError, TypeError) as e:
        problem = " ".join(part.strip() for part in str(e).strip('"').splitlines())  # One line.
        raise ConfigError(f"{where}: {name}: {problem}") from None
      runs.append(Run(name, spec, overrides, config, where))
  if not runs:
    raise ConfigError(f"{path}: no runs (lines NAME CONFIG [--config.key=value ...])")
  return runs


def select_runs(runs: Sequence[Run], names: Sequence[str], path: str) -> list[Run]:
  """The runs of ``names`` (``--only``), in the runs file's order.

  A study's file lists every point; ``--only`` trains some of them (the points
  that fit in the time a machine is held, say) into the same workdirs that the
  whole file uses, so what one call trains, a later call of the whole file
  finds finished.

  Raises:
    ConfigError: one line naming the runs file, for a name that is not a run of
      it (with the closest run names) or a name given twice.
  """
  known = {r.name for r in runs}
  wanted: list[str] = []
  for name in names:
    name = name.strip()
    if not name:
      continue
    if name not in known:
      close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
      hint = f"; closest: {', '.join(close)}" if close else f"; its runs: {', '.join(r.name for r in runs)}"
      raise ConfigError(f"--only {name}: no run of that name in {path}{hint}")
    if name in wanted:
      raise ConfigError(f"--only {name}: given twice")
    wanted.append(name)
  if not wanted:
    raise ConfigError("--only: no run names (give NAME[,NAME...])")
  return [r for r in runs if r.name in wanted]


def seed_workdir(workdir: str, name: str, seed: int) -> str:
  return os.path.join(workdir, f"{name}_seed{seed}")


def _train_args(run: Run, workdir: str, seed: int) -> list[str]:
  """``train.py``'s arguments for ``run`` at ``seed`` in ``workdir``."""
  return ["--config", run.config_spec, "--workdir", workdir, *run.overrides,
          f"--config.train.seed={seed}"]


def train_command(run: Run, workdir: str, seed: int) -> str:
  """The ``train.py`` command that trains the same run, shell-quoted."""
  return shlex.join(["python", "train.py", *_train_args(run, workdir, seed)])


def train_script() -> str:
  """``train.py`` beside the ``fame_jax`` package (the repository checkout)."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train.py")
  if not os.path.isfile(path):
    raise ConfigError(f"--parallel runs train.py, which is not at {path} (run the sweep from a "
                      "checkout of the repository, or without --parallel)")
  return path


def _last_line(path: str) -> str:
  try:
    with open(path, errors="replace") as f:
      lines = [line.strip() for line in f if line.strip()]
  except OSError:
    return ""
  return lines[-1] if lines else ""


def _train_in_processes(jobs: Sequence[tuple[Run, int, str]], parallel: int
                        ) -> list[dict[str, Any]]:
  """Trains ``jobs`` (run, seed, workdir) as up to ``parallel`` ``train.py`` processes at once.

  Returns each job's ``results.json``, or ``{"error": ...}`` with the exit
  status and the last line of its ``train.log``. Stopping this process
  (SIGTERM, Ctrl-C) stops the running ones; their workdirs resume.
  """
  script = train_script()
  total = len(jobs)
  env = dict(os.environ)
  if "XLA_PYTHON_CLIENT_MEM_FRACTION" not in env:
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # Several runs on one accelerator.
  out: list[dict[str, Any] | None] = [None] * len(jobs)
  running: dict[int, tuple[subprocess.Popen, Any]] = {}
  queue = list(range(len(jobs)))

  def stop(signum, frame):  # pylint: disable=unused-argument
    raise SystemExit(f"fame_jax.sweep: stopped by signal {signum}; the runs resume when re-run")

  previous = signal.signal(signal.SIGTERM, stop)
  try:
    while queue or running:
      while queue and len(running) < parallel:
        j = queue.pop(0)
        run, k, wd = jobs[j]
        log_path = os.path.join(wd, "train.log")
        log = open(log_path, "a")  # pylint: disable=consider-using-with
        cmd = [sys.executable, script, *_train_args(run, wd, k)]
        running[j] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
        loop._log(f"[runs {j + 1}/{total}] {run.name} seed {k}: started, log {log_path}")  # pylint: disable=protected-access
      time.sleep(1.0)
      for j, (proc, log) in list(running.items()):
        rc = proc.poll()
        if rc is None:
          continue
        log.close()
        del running[j]
        run, k, wd = jobs[j]
        results = os.path.join(wd, "results.json")
        if rc == 0 and os.path.isfile(results):
          with open(results) as f:
            out[j] = json.load(f)
          loop._log(f"[runs {j + 1}/{total}] {run.name} seed {k}: finished, valid NDCG@10 "  # pylint: disable=protected-access
                    f"{out[j].get('valid/NDCG@10')}")
        else:
          out[j] = {"error": f"train.py exited with status {rc}: "
                             f"{_last_line(os.path.join(wd, 'train.log'))}"}
          loop._log(f"[runs] {run.name} seed {k} failed: {out[j]['error']}")  # pylint: disable=protected-access
  finally:
    signal.signal(signal.SIGTERM, previous)
    for proc, log in running.values():
      proc.terminate()
    for proc, log in running.values():
      try:
        proc.wait(timeout=60)
      except subprocess.TimeoutExpired:
        proc.kill()
      log.close()
  return out  # type: ignore[return-value]


def run_list(runs: Sequence[Run], seeds: int, workdir: str, parallel: int = 1
             ) -> list[dict[str, Any]]:
  """Trains every run at seeds ``0 .. seeds-1`` (skipping finished ones) and writes the table.

  Args:
    runs: from :func:`parse_runs_file`.
    seeds: how many seeds per run (>= 1).
    workdir: parent of the ``<name>_seed<k>`` workdirs; receives ``runs.md``
      and ``runs.csv``.
    parallel: 1 trains the runs one after the other in this process; N > 1
      trains up to N at once, each as its ``train.py`` process.

  Returns:
    One row per run: ``run``, ``seeds`` (asked), ``finished`` (seeds whose
    results have test metrics), ``per_seed`` (each seed's results dict, or
    ``{"error": message}`` where training raised) and, per metric of
    ``_RUN_METRICS``, the list of finished seeds' values.
  """
  if seeds < 1:
    raise ValueError(f"--seeds {seeds}: must be >= 1")
  if parallel < 1:
    raise ValueError(f"--parallel {parallel}: must be >= 1")
  os.makedirs(workdir, exist_ok=True)
  jobs = []
  for run in runs:
    for k in range(seeds):
      wd = seed_workdir(workdir, run.name, k)
      os.makedirs(wd, exist_ok=True)
      with open(os.path.join(wd, "command.txt"), "w") as f:
        f.write(train_command(run, wd, k) + "\n")
      jobs.append((run, k, wd))
  if parallel > 1:
    results = _train_in_processes(jobs, parallel)
  else:
    results = []
    for j, (run, k, wd) in enumerate(jobs):
      loop._log(f"[runs {j + 1}/{len(jobs)}] {run.name} seed {k}")  # pylint: disable=protected-access
      c = copy.deepcopy(run.config)
      c.train.seed = k
      try:
        results.append(loop.train_and_evaluate(c, wd))
      except Exception as e:  # pylint: disable=broad-except
        # One broken run (a missing stage-1 workdir, say) must not cost the
        # rest of the batch; it counts as not finished and main() exits 1.
        loop._log(f"[runs] {run.name} seed {k} failed: {type(e).__name__}: {e}")  # pylint: disable=protected-access
        results.append({"error": f"{type(e).__name__}: {e}"})
  rows = []
  for i, run in enumerate(runs):
    per_seed = results[i * seeds:(i + 1) * seeds]
    done = [r for r in per_seed if r.get("test/NDCG@10") is not None]
    row: dict[str, Any] = {"run": run.name, "seeds": seeds, "finished": len(done), "per_seed": per_seed}
    for m in _RUN_METRICS:
      row[m] = [r[m] for r in done]
    rows.append(row)
  write_runs_table(rows, workdir)
  return rows


def write_runs_table(rows: Sequence[dict[str, Any]], workdir: str) -> None:
  """``runs.md`` (mean ± sample std per run) and ``runs.csv`` (one line per run and seed)."""
  cols = ["run", "seeds finished", *(m.replace("/", " ") for m in _RUN_METRICS)]
  lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  for r in rows:
    lines.append(f"| {r['run']} | {r['finished']} of {r['seeds']} | " +
                 " | ".join(mean_std(r[m]) for m in _RUN_METRICS) + " |")
  note = ("\nMean ± sample standard deviation (n - 1 denominator) over the finished seeds; "
          "one seed shows its value alone.\n")
  with open(os.path.join(workdir, "runs.md"), "w") as f:
    f.write("\n".join(lines) + "\n" + note)
  with open(os.path.join(workdir, "runs.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["run", "seed", "best_epoch", *_RUN_METRICS, "error"])
    w.writeheader()
    for r in rows:
      for k, res in enumerate(r["per_seed"]):
        w.writerow({"run": r["run"], "seed": k, "best_epoch": res.get("best_epoch", ""),
                    **{m: res.get(m, "") for m in _RUN_METRICS}, "error": res.get("error", "")})


def main(argv: Sequence[str]) -> None:
  del argv
  from absl import app
  if _RUNS.value:
    if _GRID.value or _CONFIG.value is not None:
      raise app.UsageError("--runs takes its configs from the runs file: give no --config or --grid")
    if _SEEDS.value < 1:
      raise app.UsageError(f"--seeds {_SEEDS.value}: must be >= 1")
    runs = parse_runs_file(_RUNS.value)  # A bad line: ConfigError, FILE:LINE: problem.
    if _ONLY.value is not None:  # --only= with no names is an error, not "all runs".
      runs = select_runs(runs, _ONLY.value, _RUNS.value)
    if _PARALLEL.value < 1:
      raise app.UsageError(f"--parallel {_PARALLEL.value}: must be >= 1")
    rows = run_list(runs, _SEEDS.value, _WORKDIR.value, parallel=_PARALLEL.value)
    with open(os.path.join(_WORKDIR.value, "runs.md")) as f:
      print(f.read())
    failed = [f"{r['run']}_seed{k}" for r in rows for k, res in enumerate(r["per_seed"]) if "error" in res]
    print(json.dumps({"runs": len(rows), "seeds": _SEEDS.value, "failed": failed,
                      "workdir": os.path.abspath(_WORKDIR.value)}))
    if failed:
      raise SystemExit(f"{len(failed)} run(s) failed: {', '.join(failed)} (see the log above)")
    return
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("give --config with --grid, or --runs FILE")
  if _SEEDS.value != 1:
    raise app.UsageError("--seeds applies to --runs; a grid sets train.seed with --grid or --config")
  if _PARALLEL.value != 1:
    raise app.UsageError("--parallel applies to --runs")
  if _ONLY.value is not None:
    raise app.UsageError("--only applies to --runs")
  try:
    grid = parse_grid(_GRID.value or [], config)
  except ValueError as e:  # Includes ConfigError: one line through fame_jax.cli.
    raise ConfigError(str(e)) from e
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

  _CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py), grid mode.",
                                            lock_config=True)
  _GRID = flags.DEFINE_multi_string("grid", None, "key=v1,v2,... (repeat for a cartesian product).")
  _RUNS = flags.DEFINE_string("runs", None, "Runs file: one `NAME CONFIG [--config.key=value ...]` a line.")
  _SEEDS = flags.DEFINE_integer("seeds", 1, "With --runs: train each run at seeds 0 .. N-1.")
  _WORKDIR = flags.DEFINE_string("workdir", None, "Batch directory (one workdir per point or run).")
  _ONLY = flags.DEFINE_list("only", None, "With --runs: train only these runs of the file (NAME,NAME,...), "
                            "in the file's order.")
  _PARALLEL = flags.DEFINE_integer(
      "parallel", 1, "With --runs: train up to N runs at once, each as its train.py process "
      "(several small runs sharing one GPU).")
  flags.mark_flags_as_required(["workdir"])
  from fame_jax import cli
  cli.run(main, prog="fame_jax.sweep")  # A user's error: one line on stderr; --verbose: traceback.
