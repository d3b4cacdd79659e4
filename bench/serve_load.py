"""Benchmark: serve.py under a bounded load on 127.0.0.1.

Run::

  .venv/bin/python bench/serve_load.py                       # Beauty model (fresh init)
  .venv/bin/python bench/serve_load.py --serving DIR         # an exported serving directory

Exports configs/beauty.py's model (fresh weights: they do not change the
cost; configs/tiny.py's when ../shared/data/beauty is absent, ``model`` says
which) to a temporary serving directory, starts ``serve.py --port 0`` on
127.0.0.1, warms every history-length bucket up, then sends ``--requests``
(2,000) POST /recommend requests from ``--clients`` (8) concurrent clients,
each a random user's whole history (k=10), and stops the server. Reports
requests/s and p50/p99 latency; exits 1 if any request failed. Prints one
JSON line and appends it to results/bench/serve_load.jsonl (``--no-append``
to only print).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

_REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, _REPO)

from fame_jax import runtime  # noqa: E402

runtime.use_huge_pages()  # Before JAX loads (fame_jax/runtime.py).

import numpy as np  # noqa: E402

_RESULTS = os.path.join(_REPO, "results", "bench", "serve_load.jsonl")
_BEAUTY = os.path.join(_REPO, "..", "shared", "data", "beauty", "Beauty.txt")


def _export(directory: str, n: int, seed: int) -> tuple[str, list[list]]:
  """Exports a fresh-init model; returns what it is and ``n`` whole histories
  (raw ids) of random users of its data."""
  import jax
  from recommend_speed import fresh_recommender

  from fame_jax import serving
  if os.path.exists(_BEAUTY):
    from configs import beauty
    config, name = beauty.get_config(), "configs/beauty.py (fresh init, seed 0), Beauty data"
  else:
    from configs import tiny
    config, name = tiny.get_config(), (f"configs/tiny.py (fresh init): Beauty data not found at "
                                       f"{os.path.abspath(_BEAUTY)}")
  rec = fresh_recommender(config)
  serving.export_serving(rec, directory, platforms=(jax.default_backend(),))
  users = np.random.default_rng(seed).integers(0, len(rec.user_ids), n)
  return name, rec.histories([rec.user_ids[u] for u in users])


def _random_histories(directory: str, n: int, seed: int) -> list[list]:
  """``n`` runs of random items with Beauty-like lengths, as raw ids."""
  with open(os.path.join(directory, "vocab.json")) as f:
    items = json.load(f)["items"]
  rng = np.random.default_rng(seed)
  lens = np.minimum(5 + rng.geometric(1 / 4.9, n), 200)
  return [[items[i] for i in rng.integers(1, len(items), m)] for m in lens]


def _load(url: str, histories: list[list], clients: int) -> tuple[list[float], list[str], float]:
  """Sends ``histories`` from ``clients`` threads, each on its own keep-alive connection."""
  parsed = urllib.parse.urlsplit(url)
  latencies, failures = [], []
  queue = list(enumerate(histories))
  lock = threading.Lock()

  def client():
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    try:
      while True:
        with lock:
          if not queue:
            return
          _, h = queue.pop()
        t0 = time.perf_counter()
        try:
          conn.request("POST", parsed.path, body=json.dumps({"history": h, "k": 10}),
                       headers={"Content-Type": "application/json"})
          r = conn.getresponse()
          body = json.loads(r.read())
          if r.status != 200 or len(body.get("ids", [])) != 10:
            failures.append(f"{r.status}: {body}")
        except Exception as e:  # noqa: BLE001 - counted, reported.
          failures.append(f"{type(e).__name__}: {e}")
          conn.close()
          conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
        latencies.append(time.perf_counter() - t0)
    finally:
      conn.close()

  threads = [threading.Thread(target=client) for _ in range(clients)]
  t0 = time.perf_counter()
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  return latencies, failures, time.perf_counter() - t0


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--serving", default="", help="serving directory (default: export one)")
  parser.add_argument("--requests", type=int, default=2000)
  parser.add_argument("--clients", type=int, default=8)
  parser.add_argument("--no-append", action="store_true", help="print only")
  args = parser.parse_args()
  command = "python bench/serve_load.py " + " ".join(sys.argv[1:])
  now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")

  with tempfile.TemporaryDirectory() as tmp:
    directory = args.serving
    if directory:
      model = f"serving directory {os.path.abspath(directory)} (random item histories)"
      histories = _random_histories(directory, args.requests, seed=0)
    else:
      directory = tmp
      model, histories = _export(directory, args.requests, seed=0)
    server = subprocess.Popen([sys.executable, os.path.join(_REPO, "serve.py"), "--serving",
                               directory, "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
      t0 = time.perf_counter()
      line = server.stdout.readline()
      if "ready on" not in line:
        raise SystemExit(f"serve.py did not start: {line!r} {server.stderr.read()[-2000:]}")
      startup = time.perf_counter() - t0
      url = line.split("ready on ")[1].strip() + "/recommend"
      # Warm-up: each history-width bucket alone and in a batch of `clients`.
      by_width = {}
      for h in histories:
        by_width.setdefault(max(16, 1 << (len(h) - 1).bit_length()), h)
      warm = [h for h in by_width.values() for _ in range(args.clients + 1)]
      t0 = time.perf_counter()
      for h in by_width.values():
        _load(url, [h], 1)
      _load(url, warm, args.clients)
      warmup = time.perf_counter() - t0
      latencies, failures, seconds = _load(url, histories, args.clients)
    finally:
      server.terminate()
      server.wait(timeout=60)

  lat_ms = np.asarray(latencies) * 1000
  import jax
  line = {
      "command": command,
      "when": now,
      "machine_load": (f"1-minute load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
                       "at the end; server and clients share the machine"),
      "result": {
          "bench": "serve_load",
          "model": model,
          "requests": len(latencies),
          "clients": args.clients,
          "failed": len(failures),
          "seconds": round(seconds, 3),
          "requests_per_second": round(len(latencies) / seconds, 1),
          "latency_ms_p50": round(float(np.percentile(lat_ms, 50)), 2),
          "latency_ms_p99": round(float(np.percentile(lat_ms, 99)), 2),
          "latency_ms_max": round(float(lat_ms.max()), 2),
          "server_startup_seconds": round(startup, 2),
          "warmup_seconds": round(warmup, 2),
          "history_lengths": f"whole histories of random users, mean {np.mean([len(h) for h in histories]):.1f}",
          "cpu_cores": os.cpu_count(),
          "jax": jax.__version__,
      },
  }
  if failures:
    line["result"]["first_failures"] = failures[:3]
  text = json.dumps(line)
  print(text)
  if not args.no_append:
    with open(_RESULTS, "a") as f:
      f.write(text + "\n")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
