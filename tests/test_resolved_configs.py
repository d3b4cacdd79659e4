"""The committed configs resolve to the values stored before they were rewritten.

tests/data/resolved_configs.json holds every committed config (and
``sasrec.py:<dataset>``) as it resolved before the configs lost their evidence
paragraphs and the rejected model options were deleted. Only those deleted
keys may differ; any other change to a resolved value is a change of a
committed model, and fails here.
"""

import glob
import json
import os
import subprocess
import sys

import pytest

from configs import sasrec
from fame_jax import config_tools, options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "tests", "data", "resolved_configs.json")) as f:
  STORED = json.load(f)

# Model options deleted as rejected diagnostics (kept by the tag variant-study-archive).
DELETED = frozenset(options.DELETED)

# Keys added to configs/base.py after the stored copy was taken, each with why.
# A key listed here may be missing from the stored copy; where the stored copy
# has it, it is compared exactly like every other key.
ADDED_KEYS = {
    "data.columns.user": "tabular logs (csv/tsv/parquet): user column, '' = found by name",
    "data.columns.item": "tabular logs: item column, '' = found by name",
    "data.columns.time": "tabular logs: time column, '' = found by name",
    "data.dedup": "tabular logs: which repeated rows are dropped ('keep' = none, as before)",
    "data.time_format": "tabular logs: how the time column is parsed ('auto')",
    "train.shard_item_table": "row-sharded item table over the devices (False = replicated, as before)",
    "train.log_step_losses": "bookkeeping: each step's loss in metrics.jsonl (False = not, as before)",
}

# Defaults changed after the stored copy was taken: {key: (stored, now, why)}.
# Only keys that never change a result (bookkeeping) may be listed, and only
# exactly this change of value is accepted.
CHANGED_BOOKKEEPING = {
    "train.keep_checkpoints": (1, 2, "two latest checkpoints, so a resume whose newest is damaged "
                                     "on disk falls back to the one before"),
}


# Committed configs changed on purpose after the stored copy was taken:
# {config name: {key: (stored, now)}}. configs/toys.py had never been trained
# and held the base settings; it now takes the settings Beauty and Sports both
# chose on validation (docs/findings.md#width, #facet-heads,
# #slice-projection, #output-norm-scale, #uniform-gate, #learning-rate).
_TOYS_SHARED = {
    "model.hidden_size": (64, 128), "model.num_heads": (2, 4),
    "model.facet_item_proj": ("linear", "slice"), "model.gate": ("learned", "uniform"),
    "train.learning_rate": (1e-3, 2.5e-4),
}
CHANGED_CONFIGS = {
    "toys": {**_TOYS_SHARED, "model.output_norm_scale": (1.0, 4.0)},
    "sasrec:toys": _TOYS_SHARED,  # configs/sasrec.py puts SASRec's last LayerNorm back at 1.
}


def _resolve(name: str) -> dict:
  """``name`` ("beauty", "sasrec:ml1m") resolved as train.py resolves it, as JSON."""
  module, _, arg = name.partition(":")
  spec = os.path.join(ROOT, "configs", f"{module}.py") + (f":{arg}" if arg else "")
  return json.loads(config_tools.load_config_file(spec).to_json_best_effort())


def _changes(stored: dict, current: dict, accepted: dict | None = None) -> list[str]:
  """``key: stored -> current`` for every difference outside :data:`DELETED`
  and the ``{key: (stored, now)}`` changes ``accepted`` for this config."""
  accepted = accepted or {}
  diffs = config_tools.differences(config_tools.flatten(stored), config_tools.flatten(current))
  return [f"{k}: {a!r} -> {b!r}" for k, a, b in diffs
          if k not in DELETED and not (k in ADDED_KEYS and k not in config_tools.flatten(stored))
          and not (k in CHANGED_BOOKKEEPING and CHANGED_BOOKKEEPING[k][:2] == (a, b))
          and accepted.get(k) != (a, b)]


def test_added_keys_are_new_and_in_the_base_config():
  from configs.base import get_base_config
  base = config_tools.flatten(json.loads(get_base_config().to_json_best_effort()))
  for key in ADDED_KEYS:
    assert key in base, f"{key} is listed as added but configs/base.py lacks it"
    for name, stored in STORED.items():
      assert key not in config_tools.flatten(stored), f"{key} is in the stored {name}: not added"


def test_changed_bookkeeping_defaults_are_the_base_config_s_and_only_that_change_passes():
  from configs.base import get_base_config
  base = config_tools.flatten(json.loads(get_base_config().to_json_best_effort()))
  for key, (old, new, _) in CHANGED_BOOKKEEPING.items():
    assert base[key] == new, key
    assert all(config_tools.flatten(stored)[key] == old for stored in STORED.values()), key
  stored = STORED["beauty"]
  current = json.loads(json.dumps(stored))
  current["train"]["keep_checkpoints"] = 2  # The listed change: accepted.
  assert _changes(stored, current) == []
  current["train"]["keep_checkpoints"] = 3  # Any other value: reported.
  assert _changes(stored, current) == ["train.keep_checkpoints: 1 -> 3"]


def test_ignored_keys_are_the_deletions_the_stored_copy_predates():
  # The stored copy was taken before exactly these eight options were deleted;
  # a later deletion must not widen what this test ignores unnoticed.
  assert DELETED == {f"model.{k}" for k in ("head_mix", "head_ffn", "head_norm", "ffn_head_inner",
                                            "fame_dropout", "mix", "moe_residual", "facet_proj_scale")}


def test_stored_copy_covers_every_committed_config():
  files = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))}
  files -= {"__init__", "base", "sasrec"}
  assert {n for n in STORED if ":" not in n} == files
  assert {n.split(":")[1] for n in STORED if n.startswith("sasrec:")} == set(sasrec._DATASETS)


@pytest.mark.parametrize("name", sorted(STORED))
def test_resolved_config_is_unchanged(name):
  changes = _changes(STORED[name], _resolve(name), CHANGED_CONFIGS.get(name))
  assert not changes, f"{name} resolves differently from tests/data/resolved_configs.json:\n" + "\n".join(changes)


def test_changed_configs_list_exactly_their_changes():
  # Every listed change is one the config makes now (no stale entry), and
  # only the listed values pass: toys at d 256 would be reported.
  for name, changed in CHANGED_CONFIGS.items():
    stored, current = config_tools.flatten(STORED[name]), config_tools.flatten(_resolve(name))
    for key, (old, new) in changed.items():
      assert (stored[key], current[key]) == (old, new), (name, key)
  current = _resolve("toys")
  current["model"]["hidden_size"] = 256
  assert _changes(STORED["toys"], current, CHANGED_CONFIGS["toys"]) == ["model.hidden_size: 64 -> 256"]


def test_only_the_deleted_keys_are_ignored():
  stored = STORED["beauty"]
  current = json.loads(json.dumps(stored))
  current["model"]["head_ffn"] = "dense"  # A deleted key: ignored.
  del current["model"]["mix"]
  assert _changes(stored, current) == []
  current["model"]["facet_proj_init"] = "normal"  # A kept key: reported.
  current["train"]["new_key"] = 1  # A key the stored copy lacks: reported.
  del current["eval"]["ks"]  # A key that vanished: reported.
  assert _changes(stored, current) == ["model.facet_proj_init: 'selector' -> 'normal'",
                                       "train.new_key: None -> 1", "eval.ks: [5, 10, 20] -> None"]


def _train_py(*args, cwd=ROOT):
  return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args], cwd=cwd,
                        capture_output=True, text=True, timeout=120)


def test_print_config_prints_values_and_differences_without_training(tmp_path):
  workdir = tmp_path / "run"
  out = _train_py("--config", "configs/beauty.py", "--print_config", f"--workdir={workdir}")
  assert out.returncode == 0, out.stderr
  assert not workdir.exists()  # Printing never trains.
  values, diffs = out.stdout.split("\n\n")
  assert "model.hidden_size = 128\n" in values
  assert "model.facet_proj_init = 'selector'  # no effect: facet_item_proj='slice'" in values
  assert diffs.splitlines()[0].startswith("# configs/beauty.py: 14 differences from configs/base.py")
  assert "model.hidden_size: 64 -> 128" in diffs.splitlines()
  assert "train.learning_rate: 0.001 -> 0.00025" in diffs.splitlines()
  assert "model.dropout" not in diffs  # Equal to the base: not a difference.


def test_print_config_takes_an_argument_and_overrides_without_a_workdir():
  out = _train_py("--config=configs/sasrec.py:sports", "--config.train.seed=3", "--print_config")
  assert out.returncode == 0, out.stderr
  diffs = out.stdout.split("\n\n")[1].splitlines()
  assert diffs[0].startswith("# configs/sasrec.py:sports: ")
  for line in ("model.facet_heads: True -> False", "model.num_experts: 4 -> 1", "train.seed: 0 -> 3",
               "data.name: 'synthetic' -> 'sports'"):
    assert line in diffs
  assert not any(line.startswith("model.num_heads") for line in diffs)  # SASRec keeps 2 on Sports.
