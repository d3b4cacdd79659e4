"""The synthetic facet world and the stats command."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs.base import get_base_config
from fame_jax.data import load_dataset
from fame_jax.data.stats import baseline_hr
from fame_jax.data.synthetic import generate_facet_world

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _small(seed=0, **kw):
  cfg = get_base_config().data.synthetic
  cfg.seed = seed
  cfg.num_users, cfg.num_items = 200, 150
  for k, v in kw.items():
    cfg[k] = v
  return cfg


def test_deterministic_for_a_seed(assert_same_dataset):
  a, b = generate_facet_world(_small(3)), generate_facet_world(_small(3))
  assert_same_dataset(a, b)
  c = generate_facet_world(_small(4))
  assert any(len(x) != len(y) or (x != y).any()
             for x, y in zip(a.sequences, c.sequences))


def test_shapes_meta_and_no_repeats():
  cfg = _small()
  ds = generate_facet_world(cfg)
  gt = ds.ground_truth
  assert ds.num_users == 200 and ds.num_items == 150
  assert gt["facet_names"] == ["genre", "brand", "price"]
  assert gt["item_facets"].shape == (151, 3)
  assert (gt["item_facets"][0] == -1).all()
  assert gt["item_facets"][1:].min() >= 0
  assert gt["item_facets"][1:].max() < cfg.values_per_facet
  for s in ds.sequences:
    assert s.dtype == np.int32
    assert cfg.min_length <= len(s) <= cfg.max_length
    assert len(set(s.tolist())) == len(s)  # No repeats, like S3-Rec files.
    assert s.min() >= 1 and s.max() <= 150
  for field in ("title", "text", "genre", "brand", "price"):
    assert len(ds.item_meta[field]) == 151 and ds.item_meta[field][0] is None
  i = 7
  genre = gt["item_facets"][i, 0]
  assert ds.item_meta["genre"][i].startswith(f"genre_{genre} ")
  assert ds.item_meta["genre"][i] in ds.item_meta["text"][i]


def test_ground_truth_matches_sequences():
  # Pools of ~75 items, so no user runs out of on-taste items (no repeats).
  ds = generate_facet_world(_small(noise=0.1, num_items=600))
  gt = ds.ground_truth
  on_taste = []
  for u, s in enumerate(ds.sequences):
    f = gt["user_dominant_facet"][u]
    on_taste.append(np.isin(gt["item_facets"][s, f],
                            gt["user_preferred_values"][u]).mean())
  on_taste = np.asarray(on_taste)
  # noise=0.1 -> about 90% of each user's items carry a preferred value.
  assert (on_taste > 0.5).mean() > 0.95
  assert on_taste.mean() > 0.85
  # A random facet value would match only ~k/8 of the time.
  rng = np.random.default_rng(0)
  shuffled = [np.isin(gt["item_facets"][s, rng.integers(3)],
                      rng.choice(8, 2, replace=False)).mean()
              for s in ds.sequences]
  assert np.mean(shuffled) < 0.4


def test_default_world_size_and_order_signal():
  ds = load_dataset(get_base_config().data)
  # Sized so the default run trains in 1-2 minutes on a 2-core CPU.
  assert 60_000 <= ds.num_interactions <= 80_000
  hr = baseline_hr(ds, k=10)
  # Order carries signal: a first-order Markov chain beats popularity 2x+.
  assert hr["markov_hr@10"] > 2 * hr["popularity_hr@10"]
  assert hr["popularity_hr@10"] > 0.01  # Popularity skew exists too.


def test_stats_command_on_synthetic_default():
  out = subprocess.run(
      [sys.executable, "-m", "fame_jax.data.stats", "--config",
       "configs/base.py", "--config.data.synthetic.num_users=500"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
  stats = json.loads(out.stdout)
  assert stats["users"] == 500 and stats["items"] == 1000
  assert stats["split_dropped_users"] == 0
  assert stats["interactions"] == sum(
      len(s) for s in generate_facet_world(
          _small(num_users=500, num_items=1000)).sequences)
  assert stats["preprocessing"][0]["step"] == "generate_facet_world"


def test_stats_command_rejects_bad_override():
  out = subprocess.run(
      [sys.executable, "-m", "fame_jax.data.stats", "--config",
       "configs/base.py", "--config.data.no_such_key=1"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert out.returncode != 0
