"""Sweeps: grid parsing with config types, a two-point sweep, resume skips finished points."""

import csv
import os

import pytest

from configs import tiny
from fame_jax import sweep
from fame_jax.training import loop


def _config():
  c = tiny.get_config()
  c.train.max_epochs = 2  # Two short points.
  c.train.eval_every_epochs = 1
  c.lock()
  return c


def test_parse_grid_uses_field_types():
  c = _config()
  grid = sweep.parse_grid(["model.num_experts=1,2", "model.facet_heads=true,False",
                           "train.learning_rate=1e-3,0.01", "model.gate=learned,uniform"], c)
  assert grid == [("model.num_experts", [1, 2]), ("model.facet_heads", [True, False]),
                  ("train.learning_rate", [1e-3, 0.01]), ("model.gate", ["learned", "uniform"])]
  assert all(type(v) is int for v in grid[0][1]) and all(type(v) is bool for v in grid[1][1])


@pytest.mark.parametrize("spec,match", [
    ("model.num_expertz=1,2", "model.num_expertz"),
    ("modle.num_experts=1", "modle"),
    ("model=1", "section"),
    ("model.num_experts=1,two", "not a int"),
    ("model.facet_heads=maybe", "not a bool"),
    ("model.num_experts", "key=v1"),
])
def test_parse_grid_errors_name_the_key(spec, match):
  with pytest.raises((KeyError, ValueError), match=match):
    sweep.parse_grid([spec], _config())


def test_invalid_point_fails_before_training(tmp_path, monkeypatch):
  monkeypatch.setattr(loop, "train_and_evaluate", lambda *a: pytest.fail("trained"))
  grid = sweep.parse_grid(["model.num_heads=2,3"], _config())  # 16 % 3 != 0
  with pytest.raises(ValueError, match="model.num_heads=3"):
    sweep.run_sweep(_config(), grid, str(tmp_path))


def test_two_point_sweep_writes_table_and_resumes(tmp_path, monkeypatch):
  config = _config()
  sweep_dir = str(tmp_path / "sweep")
  grid = sweep.parse_grid(["model.num_experts=1,2"], config)
  rows = sweep.run_sweep(config, grid, sweep_dir)
  names = ["model.num_experts=1", "model.num_experts=2"]
  assert [r["point"] for r in rows] == names
  for r, e in zip(rows, (1, 2)):
    assert r["model.num_experts"] == e
    assert 0.0 < r["valid/NDCG@10"] <= 1.0 and 0.0 < r["test/HR@10"] <= 1.0
    assert r["best_epoch"] in (1, 2) and r["train_seconds"] > 0
  # Each point really trained with its value.
  for name, e in zip(names, (1, 2)):
    with open(os.path.join(sweep_dir, name, "config.json")) as f:
      assert f'"num_experts": {e}' in f.read()
  with open(os.path.join(sweep_dir, "sweep.csv")) as f:
    table = list(csv.DictReader(f))
  assert [t["point"] for t in table] == names
  assert float(table[1]["test/NDCG@10"]) == pytest.approx(rows[1]["test/NDCG@10"])
  with open(os.path.join(sweep_dir, "sweep.md")) as f:
    md = f.read()
  assert "| point | best epoch | valid NDCG@10 | test NDCG@10 |" in md and names[1] in md
  assert os.path.getsize(os.path.join(sweep_dir, "sweep.png")) > 1000
  print("\n" + md)

  # Re-run: finished points are not retrained (metrics.jsonl untouched), and
  # an unfinished point is (its results.json removed = interrupted).
  mtimes = {n: os.path.getmtime(os.path.join(sweep_dir, n, "metrics.jsonl")) for n in names}
  os.remove(os.path.join(sweep_dir, names[1], "results.json"))
  calls = []
  real = loop.train_and_evaluate

  def spy(c, workdir):
    calls.append(os.path.basename(workdir))
    return real(c, workdir)

  monkeypatch.setattr(loop, "train_and_evaluate", spy)
  again = sweep.run_sweep(config, grid, sweep_dir)
  assert calls == names  # Called for both; the first returns at once.
  assert os.path.getmtime(os.path.join(sweep_dir, names[0], "metrics.jsonl")) == mtimes[names[0]]
  assert again[0] == rows[0]
  assert again[1]["test/NDCG@10"] == pytest.approx(rows[1]["test/NDCG@10"], abs=1e-6)
