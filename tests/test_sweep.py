"""Batches of runs: grid parsing with config types, grid and list-of-runs batches
(with a stand-in trainer, so the table logic is checked exactly), runs-file
errors with file and line, and one real tiny run through the command line."""

import csv
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs import tiny
from fame_jax import sweep
from fame_jax.training import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    ("model.num_experts=1,two", "not an int"),
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


def _fake_trainer(monkeypatch, unfinished=(), broken=()):
  """Replaces training: metrics are a function of the config, so the tables can be checked
  exactly. Workdirs named in ``unfinished`` return no test metrics (a stopped run), those
  in ``broken`` raise."""
  calls = []

  def train(c, workdir):
    calls.append((os.path.basename(workdir), c))
    if os.path.basename(workdir) in broken:
      raise FileNotFoundError("no stage-1 workdir")
    v = 0.01 * c.model.num_experts + 0.001 * c.train.seed
    res = {"best_epoch": 1 + c.train.seed, "valid/NDCG@10": v, "valid/HR@10": 2 * v,
           "train_seconds": 1.5}
    if os.path.basename(workdir) not in unfinished:
      res.update({"test/NDCG@10": v / 2, "test/HR@10": v})
    return res

  monkeypatch.setattr(loop, "train_and_evaluate", train)
  return calls


def test_two_point_grid_writes_table(tmp_path, monkeypatch):
  calls = _fake_trainer(monkeypatch)
  sweep_dir = str(tmp_path / "sweep")
  grid = sweep.parse_grid(["model.num_experts=1,2"], _config())
  rows = sweep.run_sweep(_config(), grid, sweep_dir)
  names = ["model.num_experts=1", "model.num_experts=2"]
  assert [r["point"] for r in rows] == names
  # Each point trained with its value, in its own workdir.
  assert [(n, c.model.num_experts) for n, c in calls] == [(names[0], 1), (names[1], 2)]
  assert [r["test/NDCG@10"] for r in rows] == [0.005, 0.01]
  with open(os.path.join(sweep_dir, "sweep.csv")) as f:
    table = list(csv.DictReader(f))
  assert [t["point"] for t in table] == names and float(table[1]["test/NDCG@10"]) == 0.01
  with open(os.path.join(sweep_dir, "sweep.md")) as f:
    md = f.read()
  assert "| point | best epoch | valid NDCG@10 | test NDCG@10 |" in md
  assert "| model.num_experts=2 | 1 | 0.0200 | 0.0100 | 0.0400 | 0.0200 | 1.5000 |" in md
  assert os.path.getsize(os.path.join(sweep_dir, "sweep.png")) > 1000


def _runs_file(tmp_path, text):
  path = tmp_path / "study.txt"
  path.write_text(text)
  return str(path)


def test_run_list_aggregates_seeds_with_the_sample_std(tmp_path, monkeypatch):
  calls = _fake_trainer(monkeypatch, unfinished={"e4_seed2"}, broken={"e4_seed0"})
  path = _runs_file(tmp_path, "# two runs\n\n"
                    "e2 configs/tiny.py --config.model.num_experts=2  # trailing comment\n"
                    "e4 configs/tiny.py --config.model.num_experts=4 --config.model.gate=uniform\n")
  runs = sweep.parse_runs_file(path)
  assert [(r.name, r.where) for r in runs] == [("e2", f"{path}:3"), ("e4", f"{path}:4")]
  workdir = str(tmp_path / "study")
  rows = sweep.run_list(runs, 3, workdir)
  assert [n for n, _ in calls] == [f"{r}_seed{k}" for r in ("e2", "e4") for k in range(3)]
  assert [(c.train.seed, c.model.num_experts, c.model.gate) for _, c in calls[3:]] == [
      (0, 4, "uniform"), (1, 4, "uniform"), (2, 4, "uniform")]
  # Seed 0 of e4 raised (the batch went on), seed 2 stopped before its test.
  assert [(r["run"], r["finished"], r["seeds"]) for r in rows] == [("e2", 3, 3), ("e4", 1, 3)]
  assert rows[1]["per_seed"][0] == {"error": "FileNotFoundError: no stage-1 workdir"}
  assert rows[1]["test/NDCG@10"] == pytest.approx([0.0205])
  with open(os.path.join(workdir, "runs.md")) as f:
    md = f.read().splitlines()
  assert md[0] == "| run | seeds finished | valid NDCG@10 | test NDCG@10 | valid HR@10 | test HR@10 |"
  v = [0.02, 0.021, 0.022]
  assert md[2] == (f"| e2 | 3 of 3 | 0.0210 ± {np.std(v, ddof=1):.4f} | 0.0105 ± {np.std(v, ddof=1) / 2:.4f} "
                   f"| 0.0420 ± {2 * np.std(v, ddof=1):.4f} | 0.0210 ± {np.std(v, ddof=1):.4f} |")
  assert md[3] == "| e4 | 1 of 3 | 0.0410 | 0.0205 | 0.0820 | 0.0410 |"  # One seed: its value.
  assert "sample standard deviation" in md[-1]
  with open(os.path.join(workdir, "runs.csv")) as f:
    per_seed = list(csv.DictReader(f))
  assert len(per_seed) == 6 and per_seed[5]["test/NDCG@10"] == "" and per_seed[4]["seed"] == "1"
  assert per_seed[3]["error"] == "FileNotFoundError: no stage-1 workdir"
  with open(os.path.join(workdir, "e4_seed1", "command.txt")) as f:
    assert f.read() == (f"python train.py --config configs/tiny.py --workdir {workdir}/e4_seed1 "
                        "--config.model.num_experts=4 --config.model.gate=uniform "
                        "--config.train.seed=1\n")


@pytest.mark.parametrize("line,match", [
    ("e2 configs/nothere.py", "e2: config file 'configs/nothere.py' not found"),
    ("e2 configs/tiny.py --config.model.num_expertz=2",
     "e2: unknown config key 'model.num_expertz' in --config.model.num_expertz=2 (not in "
     "configs/tiny.py); closest valid keys: model.num_experts"),
    ("e2 configs/tiny.py --config.model.num_experts=two", "e2: override model.num_experts: 'two' is not an int"),
    ("e2 configs/tiny.py --config.model.num_heads=3", "e2: invalid config: config.model.hidden_size=16 must be divisible"),
    ("e2 configs/tiny.py model.num_experts=2", "e2: 'model.num_experts=2' is not --config.key=value"),
    ("e2 configs/tiny.py --config.train.seed=4", "train.seed is set by --seeds"),
    ("e2", "expected NAME CONFIG"),
    ("e/2 configs/tiny.py", "run name 'e/2' may hold only"),
    ("e2 configs/tiny.py 'open", "No closing quotation"),
    ("e1 configs/tiny.py", "run name 'e1' repeats"),
])
def test_runs_file_errors_name_file_and_line(tmp_path, monkeypatch, line, match):
  monkeypatch.setattr(loop, "train_and_evaluate", lambda *a: pytest.fail("trained"))
  path = _runs_file(tmp_path, f"e1 configs/tiny.py\n# comment\n{line}\n")
  with pytest.raises(ValueError) as e:
    sweep.parse_runs_file(path)
  msg = str(e.value)
  assert msg.startswith(f"{path}:3: ") and match in msg and "\n" not in msg


def test_runs_file_without_runs(tmp_path):
  with pytest.raises(ValueError, match="no runs"):
    sweep.parse_runs_file(_runs_file(tmp_path, "# nothing\n\n"))
  with pytest.raises(ValueError, match="runs file not found"):
    sweep.parse_runs_file(str(tmp_path / "missing.txt"))


def test_a_real_tiny_run(tmp_path, tiny_trained_run):
  # The shared real run of configs/tiny.py (conftest.py, trained once per pytest run) as
  # seed 0 of a one-run batch: the runs file's config must be exactly the run's (or the
  # trainer would refuse the workdir), the finished workdir is not retrained, and the
  # row is its real results.json.
  _, run_dir, results = tiny_trained_run
  workdir = tmp_path / "study"
  shutil.copytree(run_dir, workdir / "tiny_seed0")
  mtime = os.path.getmtime(workdir / "tiny_seed0" / "metrics.jsonl")
  rows = sweep.run_list(sweep.parse_runs_file(_runs_file(tmp_path, "tiny configs/tiny.py\n")), 1,
                        str(workdir))
  assert os.path.getmtime(workdir / "tiny_seed0" / "metrics.jsonl") == mtime  # Not retrained.
  assert 0.0 < results["test/NDCG@10"] <= 1.0
  assert rows[0]["test/NDCG@10"] == [results["test/NDCG@10"]] and rows[0]["finished"] == 1
  with open(workdir / "runs.md") as f:
    assert (f"| tiny | 1 of 1 | {results['valid/NDCG@10']:.4f} | {results['test/NDCG@10']:.4f} | "
            f"{results['valid/HR@10']:.4f} | {results['test/HR@10']:.4f} |") in f.read()


def test_parallel_runs_train_as_train_py_processes(tmp_path, tiny_trained_run, monkeypatch):
  # Two runs at once, each a train.py process: configs/tiny.py gives the shared in-process
  # run's metrics (same programs, same seed), and a run whose data file is missing fails
  # alone, its error the last line train.py wrote.
  monkeypatch.setenv("FAME_JAX_HUGEPAGES", "0")
  monkeypatch.chdir(ROOT)
  _, _, want = tiny_trained_run
  workdir = tmp_path / "study"
  path = _runs_file(tmp_path, "tiny configs/tiny.py --config.train.progress=False\n"
                    "broken configs/tiny.py --config.data.format=csv "
                    f"--config.data.path={tmp_path / 'missing.csv'}\n")
  rows = sweep.run_list(sweep.parse_runs_file(path), 1, str(workdir), parallel=2)
  assert [(r["run"], r["finished"]) for r in rows] == [("tiny", 1), ("broken", 0)]
  for k in ("valid/NDCG@10", "test/NDCG@10", "valid/HR@10", "test/HR@10"):
    assert rows[0][k] == [pytest.approx(want[k], rel=1e-6, abs=1e-9)], k
  assert rows[1]["per_seed"][0]["error"] == (
      f"train.py exited with status 1: train.py: error: {tmp_path / 'missing.csv'}: file not "
      "found; fix the file, or point --config.data.path / --config.data.format at the right one")
  with open(workdir / "tiny_seed0" / "train.log") as f:
    assert "test/NDCG@10" in f.read()
  with open(workdir / "runs.csv") as f:
    assert [r["error"] == "" for r in csv.DictReader(f)] == [True, False]


def _sweep_command(*args):
  """``python -m fame_jax.sweep ARGS`` from the checkout, its output captured."""
  env = dict(os.environ, FAME_JAX_HUGEPAGES="0", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "fame_jax.sweep", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True)


def test_command_line_reports_a_bad_line_in_one_line(tmp_path):
  bad = _runs_file(tmp_path, "# study\ntiny configs/tiny.py --config.model.nope=1\n")
  got = _sweep_command("--runs", bad, "--seeds", "3", "--workdir", str(tmp_path / "w"))
  assert got.returncode == 2  # A config error (fame_jax/errors.py).
  lines = got.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      f"fame_jax.sweep: error: {bad}:2: tiny: unknown config key 'model.nope' in "
      "--config.model.nope=1 (not in configs/tiny.py); closest valid keys: model."), lines
  assert not os.path.exists(tmp_path / "w")  # Nothing started.


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(os.path.join(ROOT, "configs", "studies"))
                                        if f.endswith(".txt")))
def test_study_runs_files_and_their_templates_load(name, tmp_path, monkeypatch):
  """A study's runs file must load as it stands, and so must each commented
  template line (``# NAME configs/... --config...``) once uncommented with its
  placeholders (``D``, ``L``) filled in: the study's later stages are those lines."""
  monkeypatch.chdir(ROOT)
  path = os.path.join(ROOT, "configs", "studies", name)
  assert sweep.parse_runs_file(path)
  with open(path) as f:
    templates = [line[1:].strip() for line in f
                 if line.startswith("# ") and len(line.split()) > 2 and line.split()[2].startswith("configs/")]
  assert templates, f"{name}: no template lines"
  filled = []
  for i, line in enumerate(templates):
    run_name, rest = line.split(None, 1)
    rest = re.sub(r"=L(?=\s|$)", "=4", re.sub(r"=D(?=\s|$)", "=128", rest))
    filled.append(f"t{i}_{run_name.replace('D', '128').replace('L', '4')} {rest}")
  (tmp_path / "templates.txt").write_text("\n".join(filled) + "\n")
  runs = sweep.parse_runs_file(str(tmp_path / "templates.txt"))
  assert len(runs) == len(templates)
  assert {(r.config.model.hidden_size, r.config.model.num_layers) for r in runs} <= {
      (128, 4), (256, 4), (64, 4)}


def test_only_trains_the_named_runs_in_file_order(tmp_path, monkeypatch):
  calls = _fake_trainer(monkeypatch)
  path = _runs_file(tmp_path, "e1 configs/tiny.py --config.model.num_experts=1\n"
                    "e2 configs/tiny.py --config.model.num_experts=2\n"
                    "e4 configs/tiny.py --config.model.num_experts=4\n")
  runs = sweep.select_runs(sweep.parse_runs_file(path), ["e4", " e1"], path)
  assert [r.name for r in runs] == ["e1", "e4"]  # The file's order, not the flag's.
  rows = sweep.run_list(runs, 1, str(tmp_path / "study"))
  assert [n for n, _ in calls] == ["e1_seed0", "e4_seed0"]
  assert [c.model.num_experts for _, c in calls] == [1, 4]
  assert [r["run"] for r in rows] == ["e1", "e4"]
  assert not os.path.exists(tmp_path / "study" / "e2_seed0")


@pytest.mark.parametrize("names,match", [
    (["e3"], "--only e3: no run of that name in {path}; closest: e2, e1"),
    (["zzz"], "--only zzz: no run of that name in {path}; its runs: e1, e2"),
    (["e1", "e1"], "--only e1: given twice"),
    ([""], "--only: no run names (give NAME[,NAME...])"),
])
def test_only_rejects_unknown_and_repeated_names(tmp_path, names, match):
  path = _runs_file(tmp_path, "e1 configs/tiny.py\ne2 configs/tiny.py\n")
  with pytest.raises(ValueError) as e:
    sweep.select_runs(sweep.parse_runs_file(path), names, path)
  assert str(e.value) == match.format(path=path)


def test_command_line_only_names_the_runs_file(tmp_path):
  path = _runs_file(tmp_path, "tiny configs/tiny.py\n")
  got = _sweep_command("--runs", path, "--only", "tiny,tinny", "--workdir", str(tmp_path / "w"))
  assert got.returncode == 2
  assert got.stderr.strip().splitlines() == [
      f"fame_jax.sweep: error: --only tinny: no run of that name in {path}; closest: tiny"]
  assert not os.path.exists(tmp_path / "w")  # Nothing started.
