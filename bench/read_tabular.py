"""Reading benchmark: a 20 M-row interaction CSV of ML-20M's shape, read and preprocessed.

  .venv/bin/python bench/read_tabular.py                    # 20 M rows, integer ids
  .venv/bin/python bench/read_tabular.py --string-ids       # same rows, string ids
  .venv/bin/python bench/read_tabular.py --rows 2000000 --baseline_rows 200000

The synthetic file (generated once, cached under ``runs/bench_data/``, which git
ignores) has ML-20M's ``ratings.csv`` shape: header ``userId,movieId,rating,
timestamp``, 138,493 users with at least 20 ratings each (log-normal lengths,
mean ~144), 26,744 movies with ids spread over ``1..131262`` and a Zipf-like
popularity, ratings in half stars, integer Unix timestamps 1995-2015 with
same-second ties, rows sorted by user then movie (so the time sort moves
most rows), no repeated (user, movie) pair. ``--string-ids`` writes the same
rows with ids ``u<user>`` and ``m<movie>``.

It times, in one process and on the same data (each file read once first, so
both readers start from the page cache):

* the columnar reader: :func:`fame_jax.data.tabular.read_table` plus
  :func:`fame_jax.data.tabular.preprocess_table` (time order per user, items
  renumbered ``1..N``; ``--kcore`` optional), on all ``--rows`` rows;
* the csv-module baseline: ``readers.read_csv`` plus ``preprocess.preprocess``
  (header ``user,item,timestamp``, integer ids only), on the first
  ``--baseline_rows`` rows (a copy with that header and integer ids, also
  cached). It keeps every row as Python objects, so it is timed on fewer rows
  and its 20 M time is extrapolated linearly (flagged in the JSON); the
  columnar reader is timed on that same small file too, for a like-for-like
  ratio.

Prints one JSON line and appends it to ``results/bench/read_tabular.jsonl``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import resource
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fame_jax.data import preprocess as preprocess_lib  # noqa: E402
from fame_jax.data import readers  # noqa: E402
from fame_jax.data import tabular  # noqa: E402

# ML-20M's ratings.csv: 20,000,263 ratings by 138,493 users of 26,744 movies
# (ids up to 131,262), timestamps 1995-01-09 .. 2015-03-31.
ML20M_USERS = 138_493
ML20M_ITEMS = 26_744
ML20M_MAX_ITEM_ID = 131_262
ML20M_TIME = (789_652_009, 1_427_784_002)
DATA_DIR = ROOT / "runs" / "bench_data"
RESULTS = ROOT / "results" / "bench" / "read_tabular.jsonl"


def generate(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
  """Columns of an ML-20M-shaped ratings table with exactly ``rows`` rows.

  Args:
    rows: number of ratings.
    seed: numpy seed.

  Returns:
    ``userId``, ``movieId`` (int64), ``rating`` (float64), ``timestamp``
    (int64), sorted by user then movie, (user, movie) pairs unique.
  """
  rng = np.random.default_rng(seed)
  users = max(1, min(ML20M_USERS, rows // 20))
  # Log-normal lengths above ML-20M's minimum of 20, rescaled to the total.
  raw = rng.lognormal(0.0, 1.0, size=users)
  extra = max(0, rows - 20 * users)
  lens = 20 + np.floor(raw / raw.sum() * extra).astype(np.int64)
  lens[: rows - int(lens.sum())] += 1  # Remainder, so the sum is exact.
  lens = np.minimum(lens, ML20M_ITEMS)
  short = rows - int(lens.sum())
  while short > 0:  # Only when the cap bit: spread what is left.
    room = np.flatnonzero(lens < ML20M_ITEMS)[:short]
    lens[room] += 1
    short = rows - int(lens.sum())
  item_ids = np.sort(rng.choice(np.arange(1, ML20M_MAX_ITEM_ID + 1),
                                ML20M_ITEMS, replace=False))
  popularity = 1.0 / np.arange(1, ML20M_ITEMS + 1) ** 0.9
  popularity = rng.permutation(popularity / popularity.sum())
  user_col = np.repeat(np.arange(1, users + 1, dtype=np.int64), lens)
  # Draw a few more items than needed per user, drop repeats, keep `len`.
  item_idx = np.empty(rows, dtype=np.int64)
  todo = np.arange(users)
  starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
  filled = np.zeros(users, dtype=np.int64)
  cdf = np.cumsum(popularity)
  while len(todo):
    need = lens[todo] - filled[todo]
    draw = np.minimum(ML20M_ITEMS, need + need // 4 + 8)
    owner = np.repeat(todo, draw)
    cand = np.searchsorted(cdf, rng.random(len(owner)) * cdf[-1])
    cand = np.minimum(cand, ML20M_ITEMS - 1)
    # Unique (user, item) within this draw, then drop items already held.
    key = np.unique(owner * ML20M_ITEMS + cand)
    owner, cand = key // ML20M_ITEMS, key % ML20M_ITEMS
    for_u = np.split(cand, np.flatnonzero(np.diff(owner)) + 1)
    users_drawn = owner[np.r_[0, np.flatnonzero(np.diff(owner)) + 1]]
    still = []
    for u, c in zip(users_drawn.tolist(), for_u):
      have = item_idx[starts[u]: starts[u] + filled[u]]
      if filled[u]:
        c = c[~np.isin(c, have)]
      take = c[: lens[u] - filled[u]]
      item_idx[starts[u] + filled[u]: starts[u] + filled[u] + len(take)] = take
      filled[u] += len(take)
      if filled[u] < lens[u]:
        still.append(u)
    todo = np.asarray(still, dtype=np.int64)
  movie_col = item_ids[item_idx]
  order = np.lexsort((movie_col, user_col))
  movie_col = movie_col[order]
  # Per-user activity window; same-second ties are common (ML-20M rates in
  # bursts), so offsets are coarse for part of the rows.
  lo, hi = ML20M_TIME
  start = rng.integers(lo, hi - 10_000_000, size=users)
  span = rng.integers(0, 10_000_000, size=users)
  offs = (rng.random(rows) * span[user_col - 1]).astype(np.int64)
  burst = rng.random(rows) < 0.3
  offs[burst] = offs[burst] // 3600 * 3600
  ts = start[user_col - 1] + offs
  rating = rng.integers(1, 11, size=rows) / 2.0
  return {"userId": user_col, "movieId": movie_col, "rating": rating,
          "timestamp": ts}


def write_csv(cols: dict[str, np.ndarray], path: pathlib.Path,
              string_ids: bool = False, names: tuple[str, ...] | None = None,
              rows: int | None = None) -> None:
  """Writes the columns as a CSV (pyarrow's writer: minutes saved at 20 M)."""
  import pyarrow as pa
  import pyarrow.compute as pc
  import pyarrow.csv as pacsv
  arrays = []
  for name, col in cols.items():
    col = col[:rows] if rows is not None else col
    arr = pa.array(col)
    if name == "rating":  # "3.5", "4.0" as in ratings.csv.
      arr = pc.utf8_slice_codeunits(
          pc.cast(pa.array(col + 1e-9), pa.string()), 0, 3)
    if string_ids and name in ("userId", "movieId"):
      arr = pc.binary_join_element_wise(
          "u" if name == "userId" else "m", pc.cast(arr, pa.string()), "")
    arrays.append(arr)
  names = list(names or cols)
  table = pa.table(arrays, names=names)
  tmp = path.with_suffix(".tmp")
  with open(tmp, "wb") as f:  # pyarrow would quote the header names.
    f.write((",".join(names) + "\n").encode())
    pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False,
                                                 quoting_style="none"))
  tmp.rename(path)


def _warm(path: pathlib.Path) -> None:
  """Reads the file once so every timing starts with it in the page cache."""
  with open(path, "rb") as f:
    while f.read(1 << 24):
      pass


def _timed(fn):
  t0 = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t0


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", type=int, default=20_000_000)
  parser.add_argument("--baseline_rows", type=int, default=2_000_000,
                      help="rows the csv-module baseline reads (0 = skip it)")
  parser.add_argument("--string-ids", dest="string_ids", action="store_true")
  parser.add_argument("--kcore", type=int, default=0)
  parser.add_argument("--dedup", default="keep",
                      choices=("keep", "exact", "user_item"))
  parser.add_argument("--no_append", action="store_true",
                      help="print the JSON line only")
  args = parser.parse_args()

  DATA_DIR.mkdir(parents=True, exist_ok=True)
  kind = "str" if args.string_ids else "int"
  path = DATA_DIR / f"ml20m_shape_{args.rows}_{kind}.csv"
  base_path = DATA_DIR / f"ml20m_shape_{args.rows}_first{args.baseline_rows}.csv"
  cols = None
  gen_seconds = 0.0
  need = [path] + ([base_path] if args.baseline_rows else [])
  if not all(p.is_file() for p in need):
    cols, gen_seconds = _timed(lambda: generate(args.rows))
    if not path.is_file():
      write_csv(cols, path, args.string_ids)
    if args.baseline_rows:
      n = min(args.rows, args.baseline_rows)
      if not base_path.is_file():
        write_csv({k: cols[k] for k in ("userId", "movieId", "timestamp")},
                  base_path, names=("user", "item", "timestamp"), rows=n)
    del cols

  def ours(p, columns=None):
    table, report = tabular.read_table(
        p, columns=columns or {"user": "userId", "item": "movieId",
                               "time": "timestamp"},
        dedup=args.dedup)
    return tabular.preprocess_table(table, kcore=args.kcore), report

  load_before = os.getloadavg()[0]
  _warm(path)
  (dataset, report), seconds = _timed(lambda: ours(path))
  result = {
      "bench": "read_tabular",
      "rows": args.rows,
      "ids": kind,
      "dedup": args.dedup,
      "kcore": args.kcore,
      "users": dataset.num_users,
      "items": dataset.num_items,
      "interactions": dataset.num_interactions,
      "file_mb": round(path.stat().st_size / 2**20, 1),
      "seconds": round(seconds, 2),
      "rows_per_second": round(args.rows / seconds),
      "read_seconds": report["seconds"],
      "time_format": report["time_format"],
  }
  del dataset
  if args.baseline_rows:
    n = min(args.rows, args.baseline_rows)
    _warm(base_path)
    _, small_seconds = _timed(lambda: ours(base_path, {
        "user": "user", "item": "item", "time": "timestamp"}))

    def baseline():
      return preprocess_lib.preprocess(readers.read_csv(base_path),
                                       kcore=args.kcore)
    _, base_seconds = _timed(baseline)
    result.update({
        "baseline": "readers.read_csv + preprocess.preprocess (csv module, "
                    "integer ids, header user,item,timestamp)",
        "baseline_rows": n,
        "baseline_file": "the first baseline_rows rows, integer ids, header "
                         "user,item,timestamp; both readers timed on it",
        "baseline_seconds": round(base_seconds, 2),
        "baseline_rows_per_second": round(n / base_seconds),
        "ours_seconds_on_baseline_rows": round(small_seconds, 2),
        "speedup_on_baseline_rows": round(base_seconds / small_seconds, 1),
    })
    if n < args.rows:
      result["baseline_seconds_at_rows_extrapolated"] = round(
          base_seconds * args.rows / n, 1)
      result["baseline_note"] = (
          f"baseline timed on the first {n} rows only; its {args.rows}-row "
          "time is a linear extrapolation, not a measurement")
  result.update({
      "data_generation_seconds": round(gen_seconds, 1),
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                           / 1024.0, 1),
      "cpu_count": os.cpu_count(),
      "load_average_1m_before": round(load_before, 2),
      "page_cache": "each file read once before it is timed",
      "pyarrow": __import__("pyarrow").__version__,
      "numpy": np.__version__,
      "when": datetime.datetime.now(datetime.timezone.utc).strftime(
          "%Y-%m-%dT%H:%MZ"),
      "command": " ".join([".venv/bin/python", "bench/read_tabular.py"]
                          + sys.argv[1:]),
  })
  line = json.dumps(result)
  print(line)
  if not args.no_append:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as f:
      f.write(line + "\n")


if __name__ == "__main__":
  main()
