"""scripts/length_buckets.py: per-history-length NDCG@10 of exported runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                       "length_buckets.py")


def _export(d, users, ndcg):
  d.mkdir()
  np.savez(d / "arrays.npz", user_raw_ids=np.array(users), ndcg_at_10=np.array(ndcg))
  (d / "manifest.json").write_text(json.dumps({"workdir": "w", "checkpoint": "best", "split": "valid",
                                               "metrics": {"valid/NDCG@10": float(np.mean(ndcg))}}))


def _run(*args):
  return subprocess.run([sys.executable, _SCRIPT, *args], capture_output=True, text=True)


def test_buckets_by_sequence_length(tmp_path):
  # Users 1-3 have 3, 60 and 450 items.
  data = tmp_path / "d.txt"
  data.write_text("1 " + " ".join(["5"] * 3) + "\n2 " + " ".join(["5"] * 60) + "\n\n3 " +
                  " ".join(["5"] * 450) + "\n")
  _export(tmp_path / "a", [1, 2, 3], [1.0, 0.5, 0.25])
  _export(tmp_path / "b", [1, 2, 3], [0.0, 0.0, 1.0])
  got = _run("--data", str(data), f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}")
  assert got.returncode == 0, got.stderr
  out = json.loads(got.stdout)
  a = {b["items"]: (b["users"], b["NDCG@10"]) for b in out["runs"]["a"]["buckets"]}
  assert a == {"0-49": (1, 1.0), "50-99": (1, 0.5), "100-199": (0, None), "200-399": (0, None),
               ">=400": (1, 0.25)}
  assert out["runs"]["b"]["buckets"][-1] == {"items": ">=400", "users": 1, "NDCG@10": 1.0}


@pytest.mark.parametrize("users_a,users_b,line,message", [
    ([1, 2, 3], [1, 2], "1 5 5\n2 5\n3 5\n", "exports cover different users"),
    ([1, 9, 3], [1, 9, 3], "1 5 5\n2 5\n3 5\n", "user 9 is not in"),
    ([1, 2, 3], [1, 2, 3], "1 5 5\n2\n3 5\n", "d.txt:2: a user with no items"),
])
def test_bad_input_names_the_problem(tmp_path, users_a, users_b, line, message):
  data = tmp_path / "d.txt"
  data.write_text(line)
  _export(tmp_path / "a", users_a, [1.0] * len(users_a))
  _export(tmp_path / "b", users_b, [0.0] * len(users_b))
  got = _run("--data", str(data), f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}")
  assert got.returncode != 0 and message in got.stderr
