"""fame_jax/analysis/size_curve.py: the size table and curve read from a fake tree of run folders."""

import json
import os
import subprocess
import sys

import pytest

from fame_jax.analysis import size_curve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(model="fame", d=64, layers=2, data="../shared/data/ml-1m/ml-1m.txt"):
  sasrec = model == "sasrec"
  return {"data": {"path": data},
          "model": {"hidden_size": d, "num_layers": layers, "num_experts": 1 if sasrec else 4,
                    "facet_heads": not sasrec, "moe_all_layers": False},
          "pretrain": {"enabled": model == "fame+"}, "init": {"item_embeddings_from": ""}}


def _run(root, name, config, epoch_seconds, valids, results=None, peaks=None):
  """A run folder: config.json, one metrics.jsonl row per epoch, results.json when finished."""
  d = root / name
  d.mkdir(parents=True)
  (d / "config.json").write_text(json.dumps(config))
  rows = []
  for i, (s, v) in enumerate(zip(epoch_seconds, valids)):
    row = {"epoch": i + 1, "loss": 6.0 - i, "train_seconds": s, "valid/NDCG@10": v}
    if peaks:
      row["peak_memory_bytes"] = peaks[i]
    rows.append(row)
  (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  if results is not None:
    (d / "results.json").write_text(json.dumps(results))
  return d


def _results(params, valid, test, hr, seconds, epochs, best):
  return {"num_params": params, "valid/NDCG@10": valid, "test/NDCG@10": test, "test/HR@10": hr,
          "train_seconds": seconds, "epochs_run": epochs, "best_epoch": best}


@pytest.fixture
def tree(tmp_path):
  """SASRec at d 64 (two seeds) and d 128; FAME at d 128 twice (the lr variant wins on
  validation), FAME at d 128 L4 still running, FAME+ at d 64."""
  r = tmp_path / "runs"
  _run(r, "sasrec_d64_l2_seed0", _config("sasrec"), [100.0, 10.0, 12.0], [0.10, 0.16, 0.15],
       _results(300_000, 0.16, 0.15, 0.30, 122.0, 3, 2), peaks=[2**30, 3 * 2**30, 2**30])
  _run(r, "sasrec_d64_l2_seed1", _config("sasrec"), [90.0, 14.0, 11.0], [0.12, 0.18, 0.17],
       _results(300_000, 0.18, 0.17, 0.32, 115.0, 3, 2))
  _run(r, "sasrec_d128_l2_seed0", _config("sasrec", d=128), [200.0, 30.0, 20.0, 40.0],
       [0.1, 0.2, 0.19, 0.18], _results(700_000, 0.19, 0.18, 0.33, 3600.0, 4, 2))
  _run(r, "fame_d128_l2_seed0", _config(d=128), [50.0, 50.0], [0.1, 0.15],
       _results(650_000, 0.15, 0.14, 0.28, 100.0, 2, 2))
  _run(r, "fame_d128_l2_lr5e-4_seed0", _config(d=128), [60.0, 60.0], [0.1, 0.17],
       _results(650_000, 0.17, 0.16, 0.29, 120.0, 2, 2))
  _run(r, "fame_d64_l2_seed0", _config(), [20.0, 20.0], [0.1, 0.14],
       _results(310_000, 0.14, 0.13, 0.25, 40.0, 2, 2))
  _run(r, "fame_d128_l4_seed0", _config(d=128, layers=4), [300.0, 100.0], [0.02, 0.05])
  _run(r, "famep_d64_l2_seed0", _config("fame+"), [30.0], [0.15],
       _results(310_000, 0.15, 0.145, 0.26, 30.0, 1, 1))
  return r


def _rows(table):
  """``{run column: cells}`` of a Markdown size table (the ``*`` mark kept in the key)."""
  lines = table.strip().splitlines()
  head = [c.strip() for c in lines[0].strip("|").split("|")]
  out = {}
  for line in lines[2:]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    row = dict(zip(head, cells))
    out[row["run"]] = row
  return out


def test_table_seeds_choice_gain_and_running_runs(tree, tmp_path):
  out = tmp_path / "out"
  size_curve.main([str(tree), "--out", str(out), "--reference", "HSTU-large=0.1893"])
  rows = _rows((out / "size_curve.md").read_text())
  assert set(rows) == {"*sasrec_d64_l2", "*sasrec_d128_l2", "*fame_d64_l2", "fame_d128_l2",
                       "*fame_d128_l2_lr5e-4", "fame_d128_l4", "*famep_d64_l2"}
  s = rows["*sasrec_d64_l2"]
  assert (s["model"], s["d"], s["blocks"], s["params"], s["seeds"]) == ("SASRec", "64", "2", "300,000", "2")
  # Mean ± sample std of the two seeds: valid (0.16, 0.18), test (0.15, 0.17).
  assert s["valid NDCG@10"] == "0.1700 ± 0.0141" and s["test NDCG@10"] == "0.1600 ± 0.0141"
  # Epoch time: the median epoch of each seed (12, 14), then their mean; compile epochs ignored.
  assert s["epoch time"] == "13 s"
  assert s["peak memory"] == "3,072 MiB"  # The largest recorded epoch peak.
  assert s["epochs (best)"] == "3 (2), 3 (2)" and s["gain"] == "-"
  assert rows["*sasrec_d128_l2"]["gain"] == "+0.0200"  # 0.19 - 0.17.
  # Training time: epochs x the median epoch, 4 x 35 s, not results.json's 3,600 s, which
  # counts the 200 s compile epoch (and would count a paused process's hour).
  assert rows["*sasrec_d128_l2"]["train time"] == "0.04 h"
  # At d 128 L2 the lr variant has the better validation NDCG@10: it is the chosen point,
  # and its gain is measured from FAME's chosen d 64 point.
  assert rows["fame_d128_l2"]["gain"] == "-"
  assert rows["*fame_d128_l2_lr5e-4"]["gain"] == "+0.0300"
  assert rows["*famep_d64_l2"]["model"] == "FAME+"
  running = rows["fame_d128_l4"]
  assert running["seeds"] == "0 (1 running)" and running["valid NDCG@10"] == "0.0500 so far"
  assert (running["params"], running["test NDCG@10"], running["epochs (best)"]) == ("-", "-", "2 so far")
  png = (out / "size_curve.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_curve_lines_use_the_chosen_point_per_size(tree):
  points = size_curve.group_points(size_curve.find_runs([str(tree)]))
  lines = size_curve._lines(points)
  assert [p.name for p in lines[("FAME", "ml-1m.txt")]] == ["fame_d64_l2", "fame_d128_l2_lr5e-4"]
  assert [p.name for p in lines[("SASRec", "ml-1m.txt")]] == ["sasrec_d64_l2", "sasrec_d128_l2"]


def test_runs_on_two_files_are_two_lines(tmp_path):
  r = tmp_path / "runs"
  for name, data in (("a", "x/ml-1m.txt"), ("b", "x/ml-1m_item5_3416.txt")):
    _run(r, f"sasrec_{name}_seed0", _config("sasrec", data=data), [5.0], [0.1],
         _results(100, 0.1, 0.1, 0.2, 5.0, 1, 1))
  points = size_curve.group_points(size_curve.find_runs([str(r / "sasrec_a_seed0"), str(r / "sasrec_b_seed0")]))
  assert set(size_curve._lines(points)) == {("SASRec", "ml-1m.txt"), ("SASRec", "ml-1m_item5_3416.txt")}


def test_model_names():
  assert size_curve.model_name(_config("sasrec")) == "SASRec"
  assert size_curve.model_name(_config("fame")) == "FAME"
  assert size_curve.model_name(_config("fame+")) == "FAME+"
  handed_off = _config("fame")
  handed_off["init"]["item_embeddings_from"] = "runs/pretrain"
  assert size_curve.model_name(handed_off) == "FAME+"
  no_heads = _config("sasrec")
  no_heads["model"]["num_experts"] = 4  # MoE without facet heads is a FAME ablation, not SASRec.
  assert size_curve.model_name(no_heads) == "FAME"


def test_bad_input_names_the_file(tmp_path, tree):
  (tmp_path / "empty").mkdir()
  with pytest.raises(SystemExit, match="empty: neither a run folder"):
    size_curve.main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
  with pytest.raises(SystemExit, match="not a folder"):
    size_curve.main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
  bad = tree / "fame_d64_l2_seed0" / "metrics.jsonl"
  bad.write_text(bad.read_text() + "{oops\n")
  with pytest.raises(SystemExit, match=r"fame_d64_l2_seed0/metrics.jsonl:3: not JSON"):
    size_curve.find_runs([str(tree)])
  cfg = _config()
  del cfg["model"]["hidden_size"]
  _run(tmp_path / "x", "r", cfg, [1.0], [0.1])
  with pytest.raises(SystemExit, match=r"r/config.json: no 'model.hidden_size' field"):
    size_curve.find_runs([str(tmp_path / "x" / "r")])
  _run(tmp_path / "y", "s_seed0", _config(d=64), [1.0], [0.1])
  _run(tmp_path / "y", "s_seed1", _config(d=128), [1.0], [0.1])
  with pytest.raises(SystemExit, match="s_seed1: named as a seed of .*s_seed0, but its model or size differs"):
    size_curve.group_points(size_curve.find_runs([str(tmp_path / "y")]))


def test_reference_must_be_name_equals_value(tree, tmp_path, capsys):
  with pytest.raises(SystemExit):
    size_curve.main([str(tree), "--out", str(tmp_path / "o"), "--reference", "HSTU"])
  assert "expected NAME=VALUE" in capsys.readouterr().err


def test_script_runs_from_a_checkout(tree, tmp_path):
  out = tmp_path / "cli"
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "size_curve.py"),
                         str(tree / "sasrec_d64_l2_seed0"), "--out", str(out)],
                        capture_output=True, text=True, cwd=tmp_path, timeout=60)
  assert proc.returncode == 0, proc.stderr
  assert "sasrec_d64_l2" in (out / "size_curve.md").read_text() and (out / "size_curve.png").exists()


def test_log_axes_label_close_points_plainly():
  """Points within a factor of two (two models of one size) get 1-2-5 ticks
  labelled 1M, 2M, not overlapping minor labels in scientific notation."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  assert [size_curve._compact_count(x) for x in (1_023_104, 250_000, 2e9, 900)] == [
      "1.02M", "250k", "2G", "900"]
  fig, ax = plt.subplots()
  ax.plot([1_023_104, 1_030_272], [0.17, 0.02], "o")
  size_curve._log_axis(ax, size_curve._compact_count)
  fig.canvas.draw()
  lo, hi = ax.get_xlim()
  assert hi / lo >= 4 and lo < 1_023_104 and hi > 1_030_272
  labels = [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]
  assert "1M" in labels and all("10^" not in t and "\\times" not in t for t in labels)
  assert not any(t.get_text() for t in ax.xaxis.get_minorticklabels())
  plt.close(fig)
