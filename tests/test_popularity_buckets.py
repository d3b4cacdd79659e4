"""fame_jax/analysis/popularity_buckets.py: NDCG@10 per target-popularity bucket of exported runs."""

import json

import numpy as np
import pytest

from fame_jax.analysis import popularity_buckets


def _world(tmp_path):
  """Ten users whose training parts (s[:-2]) hold item 1 ten times, 2 five times, 3 once."""
  lines = []
  for u in range(1, 11):
    train = [1] + ([2] if u <= 5 else []) + ([3] if u == 1 else [])
    lines.append(" ".join(map(str, [u] + train + [4, 5])))
  (tmp_path / "d.txt").write_text("\n".join(lines) + "\n")
  (tmp_path / "cfg.py").write_text(
      "import ml_collections\n"
      "def get_config():\n"
      "  c = ml_collections.ConfigDict()\n"
      "  c.data = ml_collections.ConfigDict()\n"
      "  c.data.format = 's3rec'\n"
      f"  c.data.path = {str(tmp_path / 'd.txt')!r}\n"
      "  c.data.name = 't'\n"
      "  return c\n")


def _export(d, targets, ndcg, top, split="valid"):
  d.mkdir()
  np.savez(d / "arrays.npz", user_index=np.arange(len(targets)), targets=np.array(targets),
           ndcg_at_10=np.array(ndcg), top_items=np.array(top))
  (d / "manifest.json").write_text(json.dumps({"workdir": "w", "checkpoint": "best", "split": split,
                                               "metrics": {"valid/NDCG@10": float(np.mean(ndcg))}}))


def _run(capsys, *args):
  popularity_buckets.main(list(args))
  return json.loads(capsys.readouterr().out)


def test_buckets_by_training_count(tmp_path, capsys):
  _world(tmp_path)
  # Item ids follow ascending raw id, so they equal the raw ids here: items 1, 2, 3 occur 10, 5
  # and 1 times in training, 4 and 5 (each user's validation and test items) never.
  targets = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
  top = [[1] * 10] * 5 + [[4] * 10] * 5
  _export(tmp_path / "a", targets, [1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], top)
  out = _run(capsys, "--config", str(tmp_path / "cfg.py"), f"a={tmp_path / 'a'}")
  run = out["runs"]["a"]
  counts = {1: 10, 2: 5, 3: 1, 4: 0, 5: 0}
  assert out["target_mean_train_count"] == np.mean([counts[t] for t in targets])
  assert sum(b["users"] for b in run["buckets"]) == 10
  for b in run["buckets"]:
    lo, hi = map(int, b["target_train_count"].split("-"))
    m = [i for i, t in enumerate(targets) if lo <= counts[t] <= hi]
    assert b["users"] == len(m)
    want = [1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert b["NDCG@10"] == (np.mean([want[i] for i in m]) if m else None)
  assert run["buckets"][-1]["NDCG@10"] == 1.0  # Only the most popular item's users.
  assert run["top10_mean_train_count"] == 5.0  # Half the lists are item 1 (10), half item 4 (0).
  assert run["top10_distinct_items"] == 2


def test_bad_exports_are_refused(tmp_path, capsys):
  _world(tmp_path)
  _export(tmp_path / "a", [1] * 10, [1.0] * 10, [[1] * 10] * 10)
  _export(tmp_path / "b", [3] * 10, [1.0] * 10, [[1] * 10] * 10)
  _export(tmp_path / "c", [9] * 10, [1.0] * 10, [[1] * 10] * 10)
  cfg = str(tmp_path / "cfg.py")
  with pytest.raises(SystemExit, match="b: exports cover different users, targets or splits"):
    _run(capsys, "--config", cfg, f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}")
  with pytest.raises(SystemExit, match="exceed the dataset's 5 items"):
    _run(capsys, "--config", cfg, f"c={tmp_path / 'c'}")
  with pytest.raises(SystemExit, match="expected NAME=EXPORT_DIR"):
    _run(capsys, "--config", cfg, str(tmp_path / "a"))
