"""Every committed config loads through train.py's flag machinery and validates."""

import glob
import json
import os

import pytest
from absl import flags
from ml_collections import config_flags

from configs.base import get_base_config
from fame_jax.training.config_check import ADDED_DEFAULTS, validate_config, with_added_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if not p.endswith("__init__.py") and not p.endswith("base.py"))


def _load(spec):
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=fv)
  cwd = os.getcwd()
  os.chdir(ROOT)
  try:
    fv(["prog", f"--config={spec}"])
    return fv.config
  finally:
    os.chdir(cwd)


@pytest.mark.parametrize("path", CONFIGS)
def test_config_loads_and_validates(path):
  config = _load(path)
  validate_config(config)
  assert config.model.max_len >= config.data.max_len


def test_base_config_is_a_config_file():
  # python train.py --config configs/base.py trains the neutral base as is.
  config = _load("configs/base.py")
  validate_config(config)
  assert config.to_dict() == get_base_config().to_dict()
  assert config.data.format == "synthetic"  # Needs no data files.


@pytest.mark.parametrize("dataset", ["beauty", "ml1m", "tiny", "beauty_text"])
def test_sasrec_config_is_the_dataset_config_with_a_plain_last_block(dataset):
  sas, base = _load(f"configs/sasrec.py:{dataset}"), _load(f"configs/{dataset}.py")
  assert sas.model.num_experts == 1 and not sas.model.facet_heads
  # SASRec's last LayerNorm starts at 1 (at 2 for SASRec+text on Beauty).
  assert sas.model.output_norm_scale == (2.0 if dataset == "beauty_text" else 1.0)
  # SASRec takes the dataset config's head count (on Beauty 4, tuned for both
  # models; docs/findings.md#sasrec-heads).
  assert (sas.model.num_heads, base.model.num_heads) == ((4, 4) if dataset == "beauty" else
                                                         (base.model.num_heads,) * 2)
  sas.model.num_experts, sas.model.facet_heads = base.model.num_experts, base.model.facet_heads
  sas.model.output_norm_scale, sas.model.num_heads = base.model.output_norm_scale, base.model.num_heads
  assert sas.to_dict() == base.to_dict()


def test_sasrec_sports_is_sports_at_width_128_and_rate_2_5e_4():
  # Sports SASRec and FAME without text both train at d 128 / lr 2.5e-4
  # (configs/sasrec.py and configs/sports.py evidence); SASRec resets the
  # last LayerNorm's initial scale that FAME's slice recipe raises to 4 (= H),
  # and keeps 2 attention heads where FAME has 4 facet heads
  # (docs/findings.md#sasrec-heads).
  sas, base = _load("configs/sasrec.py:sports"), _load("configs/sports.py")
  assert (sas.model.hidden_size, sas.train.learning_rate) == (128, 2.5e-4)
  assert (base.model.hidden_size, base.train.learning_rate) == (128, 2.5e-4)
  assert (sas.model.output_norm_scale, base.model.output_norm_scale) == (1.0, 4.0)
  assert (sas.model.num_heads, base.model.num_heads) == (2, 4)
  # FAME+ on Sports keeps one head per pre-training facet.
  text = _load("configs/sports_text.py")
  assert text.model.num_heads == len(text.pretrain.facets) == 2
  for key in ("num_experts", "facet_heads", "output_norm_scale", "num_heads"):
    setattr(sas.model, key, getattr(base.model, key))
  assert sas.to_dict() == base.to_dict()


def test_sasrec_config_rejects_unknown_dataset():
  with pytest.raises(Exception, match="unknown dataset"):
    _load("configs/sasrec.py:nope")


def test_stats_load_config_takes_file_and_arg():
  from fame_jax.data import stats
  c = stats.load_config("configs/sasrec.py:beauty", ["--config.train.seed=3"])
  assert (c.model.num_experts, c.model.facet_heads, c.data.name, c.train.seed) == (1, False, "beauty", 3)
  assert stats.load_config("configs/beauty.py", []).model.num_experts == 4


def test_added_defaults_fill_old_configs_and_match_base():
  base = json.loads(get_base_config().to_json_best_effort())
  old = json.loads(json.dumps(base))
  for dotted in ADDED_DEFAULTS:
    *parents, leaf = dotted.split(".")
    node = old
    for part in parents:
      node = node[part]
    del node[leaf]
  assert old != base
  filled = with_added_defaults(old)
  # The filled-in values are the base defaults, so an old run's config reads
  # as the model it was trained as; present keys are never overwritten.
  assert filled == base
  assert "head_mix" not in old["model"]  # The input is not modified.
  changed = json.loads(json.dumps(base))
  changed["model"]["head_mix"] = True
  assert with_added_defaults(changed)["model"]["head_mix"] is True


def test_model_variant_names_sasrec_fame_and_head_mix():
  from fame_jax.training.loop import model_variant
  m = get_base_config().model
  assert model_variant(m).startswith("FAME (H=2, E=4")
  assert "head_mix" not in model_variant(m)
  m.head_mix = True
  assert model_variant(m).endswith(", head_mix)")
  m.head_mix, m.head_ffn = False, "full"
  assert model_variant(m).endswith(", head_ffn=full)")
  m.head_ffn = "dense"
  assert model_variant(m).endswith(", head_ffn=dense)")
  m.head_ffn = "head"
  m.num_experts, m.facet_heads, m.head_mix = 1, False, False
  assert model_variant(m).startswith("SASRec")


@pytest.mark.parametrize("overrides,field", [
    (dict(head_mix=True, facet_heads=False), "config.model.head_mix"),
    (dict(facet_item_proj="dot"), "config.model.facet_item_proj"),
    (dict(hidden_size=31), "config.model.hidden_size=31"),
    (dict(facet_proj_scale=2.0, facet_proj_init="normal"), "config.model.facet_proj_scale"),  # No hand-off.
    (dict(facet_proj_scale=2.0, facet_proj_init="selector", facet_item_proj="slice"),
     "config.model.facet_proj_scale"),
    (dict(facet_proj_scale=0.0, facet_proj_init="selector"), "config.model.facet_proj_scale"),
    (dict(output_norm_scale=-1.0), "config.model.output_norm_scale"),
    (dict(head_ffn="wide"), "config.model.head_ffn"),
    (dict(head_ffn="full", facet_heads=False), "config.model.head_ffn='full' needs"),
    (dict(head_ffn="full", head_mix=True), "config.model.head_mix=False"),
    (dict(head_ffn="full", moe_residual="key_proj"), "config.model.moe_residual"),
    (dict(head_ffn="full", ffn_head_inner=64), "config.model.ffn_head_inner=64"),
    (dict(head_norm="d"), "config.model.head_norm"),
    (dict(head_ffn="dense", facet_heads=False), "config.model.head_ffn='dense' needs"),
    (dict(head_ffn="full", head_norm="full"), "config.model.head_norm='full'"),
])
def test_validate_config_names_the_bad_field(overrides, field):
  c = get_base_config()
  for key, value in overrides.items():
    setattr(c.model, key, value)
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    validate_config(c)
  validate_config(get_base_config())  # The base config itself passes.
  ok = get_base_config()
  ok.model.facet_proj_init, ok.model.facet_proj_scale = "selector", 2.0
  validate_config(ok)


def _assignments(path):
  """The parent config a config file starts from and the dotted keys its
  get_config assigns (``c.model.gate = ...`` -> ``model.gate``), one per assignment."""
  import ast
  with open(os.path.join(ROOT, path)) as f:
    fn = next(n for n in ast.parse(f.read()).body if isinstance(n, ast.FunctionDef) and n.name == "get_config")
  start = next(n.value.func for n in fn.body  # c = get_base_config() / c = beauty.get_config()
               if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "c")
  if isinstance(start, ast.Name):
    parent = "configs/base.py"
  else:  # sasrec.py imports the dataset config it is given: no fixed parent.
    parent = f"configs/{start.value.id}.py" if isinstance(start.value, ast.Name) else None
  keys = []
  for node in ast.walk(fn):
    targets = node.targets if isinstance(node, ast.Assign) else []
    for target in targets:
      parts = []
      while isinstance(target, ast.Attribute):
        parts.insert(0, target.attr)
        target = target.value
      if isinstance(target, ast.Name) and target.id == "c" and parts:
        keys.append(".".join(parts))
  return parent, keys


@pytest.mark.parametrize("path", CONFIGS)
def test_config_assigns_each_key_once(path):
  _, keys = _assignments(path)
  assert len(keys) > 1
  assert sorted(k for k in set(keys) if keys.count(k) > 1) == [], f"{path} overwrites its own setting"


@pytest.mark.parametrize("path", [p for p in CONFIGS if not p.endswith("sasrec.py")])
def test_config_assignments_change_something(path):
  from fame_jax import config_tools
  parent_path, keys = _assignments(path)
  parent = config_tools.flatten(get_base_config() if parent_path.endswith("base.py") else _load(parent_path))
  config = _load(path)
  resolved = config_tools.flatten(config)
  # Equal to what the parent already gives: a no-op that reads like a choice.
  assert [k for k in keys if resolved[k] == parent[k]] == [], path
  # Read by nothing under the rest of the config. Stage-1 settings are the
  # exception: they serve the FAME+ config that extends this one and
  # --config.pretrain.enabled=True.
  inactive = config_tools.inactive_keys(config)
  assert [k for k in keys if k in inactive and not k.startswith("pretrain.")] == [], path


def test_config_links_name_existing_findings():
  # Each setting's reason links a topic of docs/findings.md; the anchor must exist.
  import re
  with open(os.path.join(ROOT, "docs", "findings.md")) as f:
    anchors = set(re.findall(r'<a id="([\w-]+)"></a>', f.read()))
  links = {}
  for path in CONFIGS + ["configs/base.py"]:
    with open(os.path.join(ROOT, path)) as f:
      for anchor in re.findall(r"docs/findings\.md#([\w-]+)", f.read()):
        links.setdefault(anchor, []).append(path)
  assert len(links) >= 10
  assert {a: p for a, p in links.items() if a not in anchors} == {}
