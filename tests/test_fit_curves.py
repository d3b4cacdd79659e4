"""scripts/fit_curves.py: training loss and validation NDCG@10 read from runs' logs."""

import json
import os
import subprocess
import sys

_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                       "fit_curves.py")


def _log(d, rows):
  d.mkdir()
  (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(*args):
  return subprocess.run([sys.executable, _SCRIPT, *args], capture_output=True, text=True)


def _rows(losses, ndcgs):
  return [{"epoch": e, "step": 10 * e, "loss": l, "valid/NDCG@10": v}
          for e, (l, v) in enumerate(zip(losses, ndcgs), 1)]


def test_epochs_loss_levels_and_best(tmp_path):
  # Run a fits fast; run b fits slowly and never reaches 5.5. b's best 0.16 is
  # tied at epochs 3 and 4: the first is the one the trainer keeps.
  _log(tmp_path / "a", _rows([6.0, 5.7, 5.5, 5.4], [0.10, 0.15, 0.17, 0.165]))
  _log(tmp_path / "b", _rows([6.2, 5.9, 5.7, 5.6], [0.09, 0.12, 0.16, 0.16]))
  out_file = tmp_path / "fit.jsonl"
  got = _run(str(tmp_path / "a"), str(tmp_path / "b"), "--epochs", "2,4,5", "--losses",
             "5.7,5.5", "--out", str(out_file))
  assert got.returncode == 0, got.stderr
  a, b = [json.loads(x) for x in got.stdout.splitlines()]
  assert a["at_epoch"] == {"2": [5.7, 0.15], "4": [5.4, 0.165], "5": None}
  assert a["at_loss"] == {"5.7": [2, 0.15], "5.5": [3, 0.17]}
  assert (a["best_epoch"], a["best_valid"], a["loss_at_best"], a["epochs_run"]) == (3, 0.17, 5.5, 4)
  assert b["at_loss"] == {"5.7": [3, 0.16], "5.5": None}
  assert (b["best_epoch"], b["best_valid"]) == (3, 0.16)
  assert out_file.read_text().splitlines() == got.stdout.splitlines()
  again = _run(str(tmp_path / "b"), "--out", str(out_file))  # --out replaces, never appends.
  assert out_file.read_text().splitlines() == again.stdout.splitlines() and len(again.stdout.splitlines()) == 1


def test_rows_without_validation_are_skipped(tmp_path):
  rows = _rows([6.0, 5.0], [0.1, 0.2]) + [{"test/NDCG@10": 0.3}]
  _log(tmp_path / "a", rows)
  got = _run(str(tmp_path / "a"), "--epochs", "1")
  assert got.returncode == 0, got.stderr
  assert json.loads(got.stdout)["epochs_run"] == 2


def test_bad_logs_name_the_file_and_line(tmp_path):
  got = _run(str(tmp_path / "missing"))
  assert got.returncode != 0 and "metrics.jsonl not found" in got.stderr
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "metrics.jsonl").write_text(
      json.dumps(_rows([6.0], [0.1])[0]) + "\n{not json\n")
  got = _run(str(tmp_path / "bad"))
  assert got.returncode != 0 and "metrics.jsonl:2: not JSON" in got.stderr
  _log(tmp_path / "noloss", [{"epoch": 1, "valid/NDCG@10": 0.1}])
  got = _run(str(tmp_path / "noloss"))
  assert got.returncode != 0 and "metrics.jsonl:1: epoch row without a numeric 'loss'" in got.stderr
  _log(tmp_path / "empty", [])
  got = _run(str(tmp_path / "empty"))
  assert got.returncode != 0 and "no epoch rows" in got.stderr
