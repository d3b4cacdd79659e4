"""fame_jax/analysis/fit_curves.py: training loss and validation NDCG@10 read from runs' logs."""

import json
import os
import subprocess
import sys

import pytest

from fame_jax.analysis import fit_curves

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _log(d, rows):
  d.mkdir()
  (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(capsys, *args):
  """The printed JSON lines of ``fit_curves.main(args)``."""
  fit_curves.main(list(args))
  return capsys.readouterr().out.splitlines()


def _rows(losses, ndcgs):
  return [{"epoch": e, "step": 10 * e, "loss": l, "valid/NDCG@10": v}
          for e, (l, v) in enumerate(zip(losses, ndcgs), 1)]


def test_epochs_loss_levels_and_best(tmp_path, capsys):
  # Run a fits fast; run b fits slowly and never reaches 5.5. b's best 0.16 is
  # tied at epochs 3 and 4: the first is the one the trainer keeps.
  _log(tmp_path / "a", _rows([6.0, 5.7, 5.5, 5.4], [0.10, 0.15, 0.17, 0.165]))
  _log(tmp_path / "b", _rows([6.2, 5.9, 5.7, 5.6], [0.09, 0.12, 0.16, 0.16]))
  out_file = tmp_path / "fit.jsonl"
  got = _run(capsys, str(tmp_path / "a"), str(tmp_path / "b"), "--epochs", "2,4,5", "--losses",
             "5.7,5.5", "--out", str(out_file))
  a, b = [json.loads(x) for x in got]
  assert a["at_epoch"] == {"2": [5.7, 0.15], "4": [5.4, 0.165], "5": None}
  assert a["at_loss"] == {"5.7": [2, 0.15], "5.5": [3, 0.17]}
  assert (a["best_epoch"], a["best_valid"], a["loss_at_best"], a["epochs_run"]) == (3, 0.17, 5.5, 4)
  assert b["at_loss"] == {"5.7": [3, 0.16], "5.5": None}
  assert (b["best_epoch"], b["best_valid"]) == (3, 0.16)
  assert out_file.read_text().splitlines() == got
  again = _run(capsys, str(tmp_path / "b"), "--out", str(out_file))  # --out replaces, never appends.
  assert out_file.read_text().splitlines() == again and len(again) == 1


def test_rows_without_validation_are_skipped(tmp_path, capsys):
  rows = _rows([6.0, 5.0], [0.1, 0.2]) + [{"test/NDCG@10": 0.3}]
  _log(tmp_path / "a", rows)
  assert json.loads(_run(capsys, str(tmp_path / "a"), "--epochs", "1")[0])["epochs_run"] == 2


def test_bad_logs_name_the_file_and_line(tmp_path, capsys):
  with pytest.raises(SystemExit, match="metrics.jsonl not found"):
    _run(capsys, str(tmp_path / "missing"))
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "metrics.jsonl").write_text(
      json.dumps(_rows([6.0], [0.1])[0]) + "\n{not json\n")
  with pytest.raises(SystemExit, match="metrics.jsonl:2: not JSON"):
    _run(capsys, str(tmp_path / "bad"))
  _log(tmp_path / "noloss", [{"epoch": 1, "valid/NDCG@10": 0.1}])
  with pytest.raises(SystemExit, match="metrics.jsonl:1: epoch row without a numeric 'loss'"):
    _run(capsys, str(tmp_path / "noloss"))
  _log(tmp_path / "empty", [])
  with pytest.raises(SystemExit, match="no epoch rows"):
    _run(capsys, str(tmp_path / "empty"))


def test_standard_runs_exist_and_the_committed_files_are_current():
  # Every run --all reads is committed, and each committed fit_curves.jsonl is
  # what --all writes now (run paths in the new results/<dataset>/<run> layout).
  for dataset, (names, losses) in fit_curves.STANDARD_RUNS.items():
    runs = [os.path.join("results", dataset, n) for n in names]
    missing = [r for r in runs if not os.path.isfile(os.path.join(ROOT, r, "metrics.jsonl"))]
    assert not missing, missing
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
      want = fit_curves.write_lines(runs, fit_curves.STANDARD_EPOCHS, losses, None)
    finally:
      os.chdir(cwd)
    with open(os.path.join(ROOT, "results", dataset, "analysis", "fit_curves.jsonl")) as f:
      assert f.read().splitlines() == want, f"rerun: python scripts/fit_curves.py --all ({dataset})"


def test_command_line_script(tmp_path):
  # scripts/fit_curves.py is a thin wrapper: same output, errors as one line.
  _log(tmp_path / "a", _rows([6.0, 5.5], [0.1, 0.2]))
  script = os.path.join(ROOT, "scripts", "fit_curves.py")
  got = subprocess.run([sys.executable, script, str(tmp_path / "a"), "--epochs", "2"],
                       capture_output=True, text=True, check=True)
  assert json.loads(got.stdout)["at_epoch"] == {"2": [5.5, 0.2]}
  got = subprocess.run([sys.executable, script, "--all", str(tmp_path / "a")], capture_output=True,
                       text=True)
  assert got.returncode == 2 and "--all takes no run directories" in got.stderr
