"""Every committed config loads through train.py's flag machinery and validates."""

import glob
import json
import os
import re

import pytest
from absl import flags
from ml_collections import config_flags

from configs.base import get_base_config
from fame_jax import options
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
  assert "output_norm_scale" not in old["model"]  # The input is not modified.
  changed = json.loads(json.dumps(base))
  changed["model"]["output_norm_scale"] = 2.0
  assert with_added_defaults(changed)["model"]["output_norm_scale"] == 2.0


def _with_deleted(**model):
  stored = json.loads(get_base_config().to_json_best_effort())
  stored["model"].update(model)
  return stored


def test_deleted_options_at_their_no_op_value_are_ignored():
  # A config.json written before the deletions holds every deleted key at
  # its no-op value: it reads as the current base config.
  base = json.loads(get_base_config().to_json_best_effort())
  old = _with_deleted(**{k.split(".", 1)[1]: v for k, v in options.DELETED.items()})
  assert old != base
  assert with_added_defaults(old) == base
  assert "head_mix" in old["model"]  # The input is not modified.


@pytest.mark.parametrize("key,value", [
    ("head_mix", True), ("head_ffn", "dense"), ("head_norm", "full"), ("ffn_head_inner", 256),
    ("fame_dropout", 0.2), ("mix", "probs"), ("moe_residual", "key_proj"),
    ("facet_proj_scale", 2.0)])
def test_deleted_option_with_another_value_names_the_key_and_the_tag(key, value):
  stored = _with_deleted(**{key: value})
  with pytest.raises(ValueError, match=rf"model\.{key}=.*variant-study-archive"):
    with_added_defaults(stored)
  # The results tables still read such a run and list the setting as a difference.
  assert with_added_defaults(stored, keep_deleted=True)["model"][key] == value


def test_deleted_facet_head_option_is_inert_without_facet_heads():
  # SASRec inherited the dataset config's facet_proj_scale but never read it.
  sasrec = _with_deleted(facet_proj_scale=2.0, facet_heads=False, num_experts=1)
  assert "facet_proj_scale" not in with_added_defaults(sasrec)["model"]
  # The FAME-block dropout acted on SASRec's last block too.
  with pytest.raises(ValueError, match="model.fame_dropout"):
    with_added_defaults(_with_deleted(fame_dropout=0.2, facet_heads=False, num_experts=1))


def test_option_schema_keys_are_base_config_keys():
  keys = options.valid_keys(get_base_config())
  assert "model.hidden_size" in keys and "train.seed" in keys and "data.synthetic.seed" in keys
  assert list(keys) == sorted(keys) and len(keys) == len(set(keys))
  for opt in options.OPTIONS:
    assert opt.key in keys, opt.key
  for dotted in options.DELETED:
    assert dotted not in keys, dotted
  # The base config's choice values are among the declared ones.
  c = get_base_config()
  for opt in options.OPTIONS:
    if opt.choices is not None:
      section, leaf = opt.key.split(".", 1)
      assert c[section][leaf] in opt.choices, opt.key


def test_shape_fields_and_label_come_from_the_schema():
  from fame_jax.training import loop
  assert loop._SHAPE_FIELDS == options.shape_keys()
  assert {"model.hidden_size", "model.num_experts", "model.facet_heads", "model.gate",
          "model.facet_item_proj", "model.max_len"} <= set(loop._SHAPE_FIELDS)
  assert "model.facet_proj_init" not in loop._SHAPE_FIELDS  # Init only; shapes unchanged.


def test_model_variant_names_sasrec_and_fame():
  from fame_jax.training.loop import model_variant
  m = get_base_config().model
  assert model_variant(m) == ("FAME (H=2, E=4, facet_heads=True, gate=learned, "
                              "facet_item_proj=linear)")
  m.gate, m.num_heads = "uniform", 4
  assert model_variant(m) == ("FAME (H=4, E=4, facet_heads=True, gate=uniform, "
                              "facet_item_proj=linear)")
  m.num_experts, m.facet_heads = 1, False
  assert model_variant(m).startswith("SASRec")


@pytest.mark.parametrize("section,key,value", [
    ("data", "format", "xml"),
    ("data", "dedup", "first"),
    ("data", "time_format", "unix"),
    ("model", "facet_item_proj", "dot"),
    ("model", "facet_proj_init", "eye"),
    ("model", "gate", "softmax"),
    ("train", "examples", "last"),
    ("train", "loss_impl", "sparse"),
    ("pretrain", "schedule", "round_robin"),
    ("model", "hidden_size", 31),
    ("model", "output_norm_scale", -1.0),
    ("model", "ffn_inner", 0),
])
def test_validate_config_names_the_bad_field(section, key, value):
  c = get_base_config()
  c[section][key] = value
  field = f"config.{section}.{key}={value!r}" if isinstance(value, str) else f"config.{section}.{key}"
  with pytest.raises(ValueError, match=re.escape(field)):
    validate_config(c)
  validate_config(get_base_config())  # The base config itself passes.


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


def test_stats_load_config_parses_overrides_with_the_field_type():
  """Scripts without absl's flags share the sweep's override parsing: a value
  takes its field's type, and a bad key or value stops with one line."""
  from fame_jax.data import stats
  c = stats.load_config("configs/tiny.py", ["--config.data.name=123", "--config.train.packing=false",
                                            "--config.pretrain.facets=('genres',)"])
  assert (c.data.name, c.train.packing, c.pretrain.facets) == ("123", False, ("genres",))
  with pytest.raises(SystemExit, match=r"unknown config key 'model.hiden_size'.*closest valid keys: model.hidden_size"):
    stats.load_config("configs/tiny.py", ["--config.model.hiden_size=3"])
  with pytest.raises(SystemExit, match=r"^override model.hidden_size: 'x3' is not an int$"):
    stats.load_config("configs/tiny.py", ["--config.model.hidden_size=x3"])
  with pytest.raises(SystemExit, match=r"^config file 'configs/nope.py' not found$"):
    stats.load_config("configs/nope.py", [])
