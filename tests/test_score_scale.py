"""scripts/score_scale.py: reading a finished run's command line (shell-quoted by the
queue worker with `printf %q`, as the test input below)."""

import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                     "score_scale.py")


@pytest.fixture
def score_scale(monkeypatch):
  monkeypatch.setenv("FAME_JAX_HUGEPAGES", "0")  # Importing must not re-exec pytest.
  spec = importlib.util.spec_from_file_location("score_scale", _PATH)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_parse_command(score_scale, tmp_path):
  (tmp_path / "command.txt").write_text(
      ".venv/bin/python train.py --config configs/ml1m_text.py --workdir runs/ml1m/full/x "
      "--config.train.progress=False --config.model.num_heads=1 "
      "--config.pretrain.facets=\\(\\'genres\\'\\,\\) --config.train.seed=0  # a note\n")
  config, overrides, workdir = score_scale.parse_command(str(tmp_path))
  assert config == "configs/ml1m_text.py"
  assert workdir == "runs/ml1m/full/x"
  assert overrides == ["--config.model.num_heads=1", "--config.pretrain.facets=('genres',)",
                       "--config.train.seed=0"]


def test_parse_command_errors(score_scale, tmp_path):
  with pytest.raises(SystemExit, match="command.txt not found"):
    score_scale.parse_command(str(tmp_path))
  (tmp_path / "command.txt").write_text("python train.py --config configs/x.py\n")
  with pytest.raises(SystemExit, match="no --config/--workdir"):
    score_scale.parse_command(str(tmp_path))
