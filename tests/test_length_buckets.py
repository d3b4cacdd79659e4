"""scripts/length_buckets.py: per-history-length NDCG@10 of exported runs."""

import json
import os
import subprocess
import sys

import numpy as np

_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                       "length_buckets.py")


def _export(d, users, lengths, ndcg):
  d.mkdir()
  np.savez(d / "arrays.npz", user_index=np.array(users), history_lengths=np.array(lengths),
           ndcg_at_10=np.array(ndcg))
  (d / "manifest.json").write_text(json.dumps({"workdir": "w", "checkpoint": "best", "split": "valid",
                                               "metrics": {"valid/NDCG@10": float(np.mean(ndcg))}}))


def _run(*args):
  return subprocess.run([sys.executable, _SCRIPT, *args], capture_output=True, text=True)


def test_buckets_by_history_length(tmp_path):
  _export(tmp_path / "a", [0, 1, 2, 3], [3, 60, 49, 450], [1.0, 0.5, 0.0, 0.25])
  _export(tmp_path / "b", [0, 1, 2, 3], [3, 60, 49, 450], [0.0, 0.0, 0.0, 1.0])
  got = _run(f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}")
  assert got.returncode == 0, got.stderr
  out = json.loads(got.stdout)
  a = {b["history"]: (b["users"], b["NDCG@10"]) for b in out["runs"]["a"]["buckets"]}
  assert a == {"0-49": (2, 0.5), "50-99": (1, 0.5), "100-199": (0, None), "200-399": (0, None),
               ">=400": (1, 0.25)}
  assert out["runs"]["b"]["buckets"][-1] == {"history": ">=400", "users": 1, "NDCG@10": 1.0}


def test_exports_of_different_users_are_refused(tmp_path):
  _export(tmp_path / "a", [0, 1, 2], [1, 2, 3], [1.0, 0.5, 0.25])
  _export(tmp_path / "b", [0, 1], [1, 2], [0.0, 0.0])
  got = _run(f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}")
  assert got.returncode != 0 and "exports cover different users" in got.stderr
  got = _run(str(tmp_path / "a"))
  assert got.returncode != 0 and "expected NAME=EXPORT_DIR" in got.stderr
