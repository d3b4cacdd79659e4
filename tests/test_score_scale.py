"""fame_jax/analysis/score_scale.py: reading a finished run's command line (shell-quoted
with `printf %q` where it was recorded by a shell, as the test input below)."""

import pytest

from fame_jax.analysis import score_scale


def test_parse_command(tmp_path):
  (tmp_path / "command.txt").write_text(
      ".venv/bin/python train.py --config configs/ml1m_text.py --workdir runs/ml1m/x "
      "--config.train.progress=False --config.model.num_heads=1 "
      "--config.pretrain.facets=\\(\\'genres\\'\\,\\) --config.train.seed=0  # a note\n")
  config, overrides, workdir = score_scale.parse_command(str(tmp_path))
  assert config == "configs/ml1m_text.py"
  assert workdir == "runs/ml1m/x"
  assert overrides == ["--config.model.num_heads=1", "--config.pretrain.facets=('genres',)",
                       "--config.train.seed=0"]


def test_parse_command_errors(tmp_path):
  with pytest.raises(SystemExit, match="command.txt not found"):
    score_scale.parse_command(str(tmp_path))
  (tmp_path / "command.txt").write_text("python train.py --config configs/x.py\n")
  with pytest.raises(SystemExit, match="no --config/--workdir"):
    score_scale.parse_command(str(tmp_path))
