"""fame_jax/cli.py: every command line ends a user's mistake with one line on stderr.

Each case runs the real command in a subprocess and checks the exit status
(2 for usage and config, 1 for data, workdir and checkpoint), that the LAST
line of stderr is the message naming the file and line, the config key or
the folder, and that no traceback is shown unless ``--verbose`` or
``FAME_JAX_VERBOSE=1`` asks for it. Every error happens before training or
any JAX compile, so each subprocess takes a few seconds.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from fame_jax import cli, errors, runtime
from fame_jax.data.errors import DataError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args: str, verbose_env: bool = False, huge_pages: bool = False,
         cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  env.pop(cli.VERBOSE_ENV, None)
  if verbose_env:
    env[cli.VERBOSE_ENV] = "1"
  if not huge_pages:
    env["FAME_JAX_HUGEPAGES"] = "0"  # Skip the re-execution (fame_jax/runtime.py).
  return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=120)


def _last_line(out: subprocess.CompletedProcess) -> str:
  lines = out.stderr.strip().splitlines()
  assert lines, f"empty stderr; stdout:\n{out.stdout}"
  return lines[-1]


def _check(out: subprocess.CompletedProcess, code: int, prog: str, *parts: str) -> str:
  """Exit status ``code``; the last stderr line is ``prog: error: ...`` holding
  every one of ``parts``; no traceback."""
  line = _last_line(out)
  assert out.returncode == code, (out.returncode, out.stderr)
  assert line.startswith(f"{prog}: error: "), out.stderr
  for part in parts:
    assert part in line, (part, line)
  assert "Traceback" not in out.stderr, out.stderr
  return line


@pytest.fixture
def data_files(tmp_path):
  """A bad s3rec file (line 3: a non-integer item) and a bad CSV log (line 3:
  a timestamp that is not a time)."""
  s3rec = tmp_path / "bad.txt"
  s3rec.write_text("1 2 3 4 5\n2 3 4 5 6\n3 4 x 6 7\n")
  csv = tmp_path / "bad.csv"
  csv.write_text("user,item,timestamp\n1,2,100\n1,3,oops\n")
  return s3rec, csv


def _train(tmp_path, *overrides: str, **kw) -> subprocess.CompletedProcess:
  return _run("train.py", "--config", "configs/tiny.py", f"--workdir={tmp_path / 'run'}",
              *overrides, **kw)


def test_train_bad_s3rec_line_names_file_and_line(tmp_path, data_files):
  s3rec, _ = data_files
  out = _train(tmp_path, "--config.data.format=s3rec", f"--config.data.path={s3rec}")
  _check(out, 1, "train.py", f"{s3rec}, line 3: non-integer item id 'x'", "--config.data.path")


def test_train_bad_csv_line_names_file_line_and_column(tmp_path, data_files):
  _, csv = data_files
  out = _train(tmp_path, "--config.data.format=csv", f"--config.data.path={csv}")
  _check(out, 1, "train.py", f"{csv}, line 3", "timestamp", "'oops'")


def test_train_missing_data_file(tmp_path):
  missing = tmp_path / "nothere.txt"
  out = _train(tmp_path, "--config.data.format=s3rec", f"--config.data.path={missing}")
  _check(out, 1, "train.py", f"{missing}: file not found")


def test_train_negative_batch_size_names_the_key(tmp_path):
  out = _train(tmp_path, "--config.train.batch_size=-4")
  _check(out, 2, "train.py", "config.train.batch_size=-4 must be >= 1")
  assert not (tmp_path / "run").exists()  # Checked before the workdir is made.


def test_train_unknown_format_lists_the_choices(tmp_path):
  out = _train(tmp_path, "--config.data.format=xlsx")
  _check(out, 2, "train.py", "config.data.format='xlsx': must be one of", "'s3rec'", "'csv'")


def test_train_non_numeric_override_names_the_key_and_its_type(tmp_path):
  out = _train(tmp_path, "--config.train.batch_size=abc")
  _check(out, 2, "train.py", "--config.train.batch_size=abc", "config.train.batch_size takes an int")


def test_train_missing_config_file(tmp_path):
  out = _run("train.py", "--config", "configs/nothere.py", f"--workdir={tmp_path}")
  _check(out, 2, "train.py", "config file 'configs/nothere.py'", "not found")


def test_train_missing_required_flag():
  out = _run("train.py", "--config", "configs/tiny.py")
  _check(out, 2, "train.py", "--workdir is required")


def test_verbose_flag_and_env_show_the_traceback_above_the_same_line(tmp_path, data_files):
  s3rec, _ = data_files
  args = ("--config.data.format=s3rec", f"--config.data.path={s3rec}")
  quiet = _check(_train(tmp_path, *args), 1, "train.py", f"{s3rec}, line 3")
  for out in (_train(tmp_path, *args, "--verbose"), _train(tmp_path, *args, verbose_env=True)):
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "DataError" in out.stderr
    assert _last_line(out) == quiet


def test_one_line_survives_the_huge_pages_reexecution(tmp_path, data_files):
  if runtime.huge_pages_command(dict(os.environ, FAME_JAX_HUGEPAGES="1")) is None:
    pytest.skip("no re-execution on this platform (glibc < 2.35 or not Linux)")
  s3rec, _ = data_files
  out = _train(tmp_path, "--config.data.format=s3rec", f"--config.data.path={s3rec}",
               huge_pages=True)
  _check(out, 1, "train.py", f"{s3rec}, line 3: non-integer item id 'x'")


def test_evaluate_missing_workdir_names_the_folder(tmp_path):
  missing = tmp_path / "never_trained"
  out = _run("evaluate.py", "--config", "configs/tiny.py", f"--workdir={missing}")
  _check(out, 1, "evaluate.py", str(missing))


def test_evaluate_unknown_key_names_the_closest_keys(tmp_path):
  out = _run("evaluate.py", "--config", "configs/tiny.py", f"--workdir={tmp_path}",
             "--config.model.num_head=2")
  _check(out, 2, "evaluate.py", "unknown config key 'model.num_head'", "model.num_heads")


def test_evaluate_override_without_config_says_what_it_needs(tmp_path):
  out = _run("evaluate.py", f"--workdir={tmp_path}", "--config.model.num_heads=2")
  _check(out, 2, "evaluate.py", "--config.model.num_heads: an override of a config key needs "
         "--config FILE")


def test_sweep_unknown_key_names_the_closest_keys(tmp_path):
  out = _run("-m", "fame_jax.sweep", "--config", "configs/tiny.py", "--grid",
             "model.num_experts=1,2", f"--workdir={tmp_path / 'w'}", "--config.model.num_expert=2")
  _check(out, 2, "fame_jax.sweep", "unknown config key 'model.num_expert'", "model.num_experts")
  out = _run("-m", "fame_jax.sweep", "--config", "configs/tiny.py", "--grid",
             "model.num_expert=1,2", f"--workdir={tmp_path / 'w'}")
  _check(out, 2, "fame_jax.sweep", "unknown config key 'model.num_expert'", "model.num_experts")
  assert not (tmp_path / "w").exists()


def test_sweep_runs_file_error_is_one_line(tmp_path):
  runs = tmp_path / "runs.txt"
  runs.write_text("a configs/tiny.py\nb configs/tiny.py --config.train.batch_size=-1\n")
  out = _run("-m", "fame_jax.sweep", "--runs", str(runs), f"--workdir={tmp_path / 'w'}")
  _check(out, 2, "fame_jax.sweep", f"{runs}:2: b: invalid config: config.train.batch_size=-1")


def test_any_user_error_from_main_is_one_line(tmp_path):
  # The hook later commands use: a CheckpointError (raised by checkpoint
  # restores) from main, multi-line message, through fame_jax.cli.run.
  script = tmp_path / "tool.py"
  script.write_text(
      "from fame_jax import cli, errors\n"
      "def main(argv):\n"
      "  raise errors.CheckpointError('checkpoint runs/x/checkpoints/best is damaged:\\n  "
      "missing array params/item_emb')\n"
      "cli.run(main)\n")
  out = _run(str(script))
  line = _check(out, 1, "tool.py", "checkpoint runs/x/checkpoints/best is damaged: "
                "missing array params/item_emb")
  assert out.stderr.strip() == line
  out = _run(str(script), "--verbose")
  assert out.returncode == 1 and "Traceback" in out.stderr and _last_line(out) == line


def test_a_bug_keeps_its_traceback(tmp_path):
  script = tmp_path / "tool.py"
  script.write_text("from fame_jax import cli\n"
                    "def main(argv):\n"
                    "  return [][1]\n"
                    "cli.run(main)\n")
  out = _run(str(script))
  assert out.returncode == 1 and "Traceback" in out.stderr and "IndexError" in out.stderr


def test_format_error_joins_lines_and_adds_what_to_do():
  config_error = errors.ConfigError("invalid config:\n  config.a=1 must be >= 2\n  config.b=0 bad")
  assert cli.format_error("t.py", config_error) == (
      "t.py: error: invalid config: config.a=1 must be >= 2; config.b=0 bad; "
      "set it in the config file or with --config.<key>=<value>")
  assert cli.format_error("t.py", DataError("f.txt", "empty file")).startswith(
      "t.py: error: f.txt: empty file; fix the file")
  assert cli.format_error("t.py", KeyError("no key 'x'")) == "t.py: error: no key 'x'"
  assert cli.exit_code(config_error) == 2
  assert cli.exit_code(DataError("f", "p")) == 1
  assert cli.exit_code(errors.WorkdirError("w")) == 1
  assert cli.exit_code(errors.CheckpointError("c")) == 1
  assert cli.exit_code(errors.DivergedError("d")) == 1


@pytest.mark.parametrize("argv,env,expected", [
    (["p"], {}, False),
    (["p", "--verbose"], {}, True),
    (["p", "--verbose=false"], {}, False),
    (["p", "--noverbose"], {cli.VERBOSE_ENV: "1"}, False),
    (["p"], {cli.VERBOSE_ENV: "1"}, True),
    (["p", "--", "--verbose"], {}, False),
])
def test_verbose_requested(argv, env, expected):
  assert cli.verbose_requested(argv, env) is expected


@pytest.mark.parametrize("args,level", [((), "-1"), (("-v", "0"), "0"), (("--verbosity=1",), "1")])
def test_entry_points_log_at_warning_unless_verbosity_is_given(args, level):
  """Orbax logs each checkpoint save at INFO (seven lines an epoch in a sweep's
  log); every cli.run command starts at WARNING unless the user asks for more."""
  code = ("from absl import logging\nfrom fame_jax import cli\n"
          "cli.run(lambda argv: print('verbosity', logging.get_verbosity()), prog='probe')\n")
  out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
  assert out.returncode == 0, out.stderr
  assert out.stdout.split() == ["verbosity", level]
