"""fame_jax.config_tools and train.py's handling of config flags."""

import os
import subprocess
import sys

import pytest

from configs.base import get_base_config
from fame_jax import config_tools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train_py(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)


def test_flatten_orders_sections_as_the_base_declares_them():
  keys = list(config_tools.flatten(get_base_config()))
  sections = list(dict.fromkeys(k.split(".")[0] for k in keys))
  assert sections == ["data", "model", "train", "eval", "init", "pretrain"]
  assert keys.index("data.synthetic.seed") < keys.index("data.tfds_name")  # Nested keys stay dotted.
  model = [k for k in keys if k.startswith("model.")]
  assert model == sorted(model)


def test_differences_lists_changed_added_and_removed_keys():
  base = {"a.x": 1, "a.y": (5, 10), "a.z": "s"}
  config = {"a.x": 2, "a.y": [5, 10], "a.w": True}  # A tuple equals its JSON list.
  assert config_tools.differences(base, config) == [("a.x", 1, 2), ("a.w", None, True), ("a.z", "s", None)]


def test_inactive_keys_follow_the_settings_that_switch_them_off():
  c = get_base_config()
  c.pretrain.enabled = True  # The hand-off overwrites W_f^h, whatever its init.
  assert config_tools.inactive_keys(c).keys() == {"model.facet_proj_init"}
  c.pretrain.enabled = False
  assert config_tools.inactive_keys(c).keys() == {f"pretrain.{k}" for k in c.pretrain if k != "enabled"}
  c.model.facet_item_proj = "slice"
  assert "model.facet_proj_init" in config_tools.inactive_keys(c)
  c.model.facet_heads, c.model.num_experts = False, 1
  assert {"model.gate", "model.facet_item_proj", "model.facet_proj_init",
          "model.moe_all_layers"} <= config_tools.inactive_keys(c).keys()


@pytest.mark.parametrize("argv,keys", [
    (["--config.model.num_heads=4", "--workdir=x"], ["model.num_heads"]),
    (["--noconfig.train.progress", "--config.eval.ks[0]=1"], ["train.progress", "eval.ks"]),
    (["--config", "c.py", "--", "--config.model.x=1"], []),  # After "--": not a flag.
])
def test_override_keys(argv, keys):
  assert [k for k, _ in config_tools.override_keys(argv)] == keys


def test_unknown_key_error_suggests_close_keys_or_the_sections():
  c = get_base_config()
  assert config_tools.unknown_key_error("model.num_heads", "arg", c) is None
  assert config_tools.unknown_key_error("data.synthetic", "arg", c) is None  # A section.
  message = config_tools.unknown_key_error("model.num_head", "--config.model.num_head=2", c)
  assert message.startswith("unknown config key 'model.num_head' in --config.model.num_head=2")
  assert "model.num_heads" in message
  assert "sections: data, eval, init, model, pretrain, train" in config_tools.unknown_key_error("zzz", "a", c)
  message = config_tools.unknown_key_error("model.head_ffn", "--config.model.head_ffn=dense", c)
  assert message.startswith("config key 'model.head_ffn' in --config.model.head_ffn=dense was deleted")
  assert "variant-study-archive" in message


@pytest.mark.parametrize("override,suggested", [
    ("--config.model.no_such=1", "model."),
    ("--config.modle.num_heads=1", "model.num_heads"),
])
def test_train_py_unknown_override_key_is_one_line_and_exit_2(tmp_path, override, suggested):
  out = _train_py("--config", "configs/sasrec.py:beauty", f"--workdir={tmp_path / 'run'}", override)
  assert out.returncode == 2
  assert out.stdout == ""
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
  key = override[len("--config."):].split("=")[0]
  assert f"unknown config key '{key}'" in lines[0] and suggested in lines[0]
  assert "configs/sasrec.py:beauty" in lines[0]
  assert not (tmp_path / "run").exists()


def test_train_py_needs_a_workdir_unless_printing():
  out = _train_py("--config", "configs/tiny.py")
  assert out.returncode != 0 and "--workdir is required" in out.stderr
  assert "Traceback" not in out.stderr
