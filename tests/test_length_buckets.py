"""fame_jax/analysis/length_buckets.py: per-history-length NDCG@10 of exported runs."""

import json

import numpy as np
import pytest

from fame_jax.analysis import length_buckets


def _export(d, users, lengths, ndcg):
  d.mkdir()
  np.savez(d / "arrays.npz", user_index=np.array(users), history_lengths=np.array(lengths),
           ndcg_at_10=np.array(ndcg))
  (d / "manifest.json").write_text(json.dumps({"workdir": "w", "checkpoint": "best", "split": "valid",
                                               "metrics": {"valid/NDCG@10": float(np.mean(ndcg))}}))


def _run(capsys, *args):
  length_buckets.main(list(args))
  return json.loads(capsys.readouterr().out)


def test_buckets_by_history_length(tmp_path, capsys):
  _export(tmp_path / "a", [0, 1, 2, 3], [3, 60, 49, 450], [1.0, 0.5, 0.0, 0.25])
  _export(tmp_path / "b", [0, 1, 2, 3], [3, 60, 49, 450], [0.0, 0.0, 0.0, 1.0])
  out = _run(capsys, f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}")
  a = {b["history"]: (b["users"], b["NDCG@10"]) for b in out["runs"]["a"]["buckets"]}
  assert a == {"0-49": (2, 0.5), "50-99": (1, 0.5), "100-199": (0, None), "200-399": (0, None),
               ">=400": (1, 0.25)}
  assert out["runs"]["b"]["buckets"][-1] == {"history": ">=400", "users": 1, "NDCG@10": 1.0}


def test_exports_of_different_users_are_refused(tmp_path, capsys):
  _export(tmp_path / "a", [0, 1, 2], [1, 2, 3], [1.0, 0.5, 0.25])
  _export(tmp_path / "b", [0, 1], [1, 2], [0.0, 0.0])
  with pytest.raises(SystemExit, match="b: exports cover different users"):
    _run(capsys, f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}")
  with pytest.raises(SystemExit, match="expected NAME=EXPORT_DIR"):
    _run(capsys, str(tmp_path / "a"))
