"""Item text, facet labels, alternating schedule, hand-off and facet separation."""

import json
import os
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import tiny
from fame_jax.data.dataset import Dataset
from fame_jax.pretraining import handoff
from fame_jax.pretraining import item_text
from fame_jax.pretraining import pretrain
from fame_jax.pretraining import supcon
from fame_jax.training import checkpoints as ckpt_lib


class _NoInteractions(list):
  """Sequences that fail when read: pre-training must use metadata only."""

  def __iter__(self):
    raise AssertionError("pre-training read the interactions")

  def __getitem__(self, i):
    raise AssertionError("pre-training read the interactions")

  def __len__(self):
    raise AssertionError("pre-training read the interactions")


def _dataset(meta, name="toy"):
  n = len(next(iter(meta.values()))) - 1
  return Dataset(name=name, sequences=_NoInteractions(), num_items=n,
                 user_raw_ids=np.array([]),
                 item_raw_ids=np.array(["<pad>"] + [str(i) for i in range(1, n + 1)], object),
                 item_meta=meta)


# ------------------------------------------------------------------ item text
def test_template_drops_missing_segments_and_formats_values():
  ds = _dataset({
      "title": [None, "Rock &amp; Roll Nail Polish", "Cream.", None],
      "brand": [None, "OPI", None, "Unknown"],
      "categories": [None, [["Beauty", "Makeup", "Nails"]], [["Beauty", "Skin"], ["Beauty", "Face"]], []],
  }, name="beauty")
  texts = item_text.item_texts(ds, "{title}|Brand: {brand}|Categories: {categories}")
  assert texts == [
      "",
      "Rock & Roll Nail Polish. Brand: OPI. Categories: Beauty > Makeup > Nails",
      "Cream. Categories: Beauty > Skin; Beauty > Face",  # No ".." after "Cream.".
      "",  # Unknown brand counts as missing; nothing else is present.
  ]
  with pytest.raises(KeyError, match="not in dataset"):
    item_text.item_texts(ds, "{colour}")


def test_facet_labels_derived_fields():
  beauty = _dataset({"categories": [None, [["B", "Makeup", "Nails"], ["B", "Tools"]], [["B", "Skin"]],
                                    [["B", "Skin"]]],
                     "brand": [None, "OPI", "unknown", "Nivea"]})
  assert item_text.facet_labels(beauty, "leaf_category", 1.0) == [
      frozenset(), {"Nails", "Tools"}, {"Skin"}, {"Skin"}]
  assert item_text.facet_labels(beauty, "brand") == [frozenset(), {"OPI"}, frozenset(), {"Nivea"}]
  sports = _dataset({"brand": [None, "Ghost", "Lee"],
                     "attributes": [None, ["Ghost", "Sports", "Hunting"], ["Lee", "Sports", "Camping"]]})
  # "Sports" is on every item (> max_label_fraction): not a label.
  assert item_text.facet_labels(sports, "category") == [frozenset(), {"Hunting"}, {"Camping"}]
  movies = _dataset({"year": [None, 1995, 1987, None], "genres": [None, ["Comedy", "Drama"], ["Drama"], ["War"]]})
  assert item_text.facet_labels(movies, "decade") == [frozenset(), {"1990s"}, {"1980s"}, frozenset()]
  assert item_text.facet_labels(movies, "genres", 1.0)[1] == {"Comedy", "Drama"}


# ------------------------------------------------------------------ alternate
def test_alternate_step_touches_only_the_active_head():
  num_heads = 3
  module = supcon.FacetProjectionHeads(num_heads, 16, 4)
  opt = optax.adam(1e-2)
  alt, _ = pretrain.make_train_steps(module, opt, np.array([False, False, True]), 0.1, 0.1)
  state = pretrain.init_state(module, opt, num_heads, seed=0)
  rng = np.random.default_rng(0)
  table = jnp.asarray(rng.normal(size=(40, 384)), jnp.float32)
  ids = np.arange(1, 17, dtype=np.int32)
  lab = rng.integers(0, 3, size=16)
  pos = lab[:, None] == lab[None, :]
  has = np.ones(16, bool)
  # Head 0 twice (its Adam moments are then non-zero), then heads 1, 2, 0, 1:
  # a leak of head 0's momentum into a head-1 step would move head 0.
  for s, head in enumerate([0, 0, 1, 2, 0, 1]):
    before = jax.tree.map(np.array, state)
    state, m = alt(state, table, ids, pos, has, np.int32(head), jax.random.PRNGKey(s))
    after = jax.tree.map(np.array, state)
    for tree in ("params", "opt_state"):
      for b, a in zip(jax.tree.leaves(before[tree]), jax.tree.leaves(after[tree])):
        for h in range(num_heads):
          if h != head:
            np.testing.assert_array_equal(a[h], b[h])  # Bitwise unchanged.
    assert not np.array_equal(after["params"]["w1"][head], before["params"]["w1"][head])
    assert np.isfinite(float(m["loss"]))
  assert alt._cache_size() == 1  # The head index is traced: one compile.


# ------------------------------------------------------------------ hand-off
@pytest.mark.parametrize("proj", ["linear", "slice"])
def test_handoff_facet_embeddings_equal_scaled_pretrained(tmp_path, proj):
  n, num_heads, d_head = 9, 2, 4
  d = num_heads * d_head
  rng = np.random.default_rng(0)
  emb = rng.normal(size=(n + 1, num_heads, d_head)).astype(np.float32)
  emb[:, 1] *= 5.0  # Heads with different scales get different factors.
  emb[0] = 0.0
  os.makedirs(tmp_path / "pretrain")
  np.save(tmp_path / "pretrain" / "item_facet_embeddings.npy", emb)
  cfg = ml_collections.ConfigDict(dict(hidden_size=d, num_heads=num_heads, init_std=0.02,
                                       facet_item_proj=proj))
  params = {"item_emb": {"embedding": jnp.asarray(rng.normal(size=(n + 1, d)), jnp.float32)},
            "fame_block": {"facet_proj": jnp.asarray(rng.normal(size=(num_heads, d, d_head)),
                                                     jnp.float32)},
            "other": {"kernel": jnp.ones((3,))}}
  new = handoff.apply_pretrained_item_embeddings(params, str(tmp_path), cfg)
  table = np.asarray(new["item_emb"]["embedding"])
  assert np.all(table[0] == 0.0)
  for h in range(num_heads):
    # Documented scale: per-component RMS of head h over items 1..N = init_std.
    c_h = 0.02 / np.sqrt(np.mean(emb[1:, h] ** 2))
    if proj == "linear":
      x_h = table @ np.asarray(new["fame_block"]["facet_proj"][h])
    else:
      x_h = table[:, h * d_head:(h + 1) * d_head]
    np.testing.assert_allclose(x_h, c_h * emb[:, h], rtol=1e-5, atol=1e-8)
    assert np.sqrt(np.mean(x_h[1:] ** 2)) == pytest.approx(0.02, rel=1e-5)
  if proj == "linear":  # W_f becomes the 0/1 chunk selectors.
    np.testing.assert_array_equal(np.asarray(new["fame_block"]["facet_proj"]),
                                  handoff.chunk_selectors(num_heads, d_head))
  if proj == "slice":  # No W_f: left as it was.
    np.testing.assert_array_equal(new["fame_block"]["facet_proj"], params["fame_block"]["facet_proj"])
  # Mismatches are refused with a clear message.
  with pytest.raises(ValueError, match="item count"):
    bad = dict(params, item_emb={"embedding": jnp.zeros((n + 3, d))})
    handoff.apply_pretrained_item_embeddings(bad, str(tmp_path), cfg)
  with pytest.raises(ValueError, match="num_heads"):
    handoff.apply_pretrained_item_embeddings(
        params, str(tmp_path), ml_collections.ConfigDict(dict(cfg, num_heads=4)))
  with pytest.raises(ValueError, match="hidden_size"):
    handoff.apply_pretrained_item_embeddings(
        params, str(tmp_path), ml_collections.ConfigDict(dict(cfg, hidden_size=2 * d)))
  mask = handoff.item_emb_trainable_mask(new, freeze=True)
  assert mask["item_emb"]["embedding"] is False and mask["other"]["kernel"] is True
  assert all(jax.tree.leaves(handoff.item_emb_trainable_mask(new, freeze=False)))


def test_handoff_without_facet_heads_sets_only_the_item_table(tmp_path):
  # SASRec (E 1, no facet heads) and FAME without facet heads have no W_f: the
  # hand-off gives them the same pre-trained table and touches nothing else.
  n, num_heads, d_head = 7, 2, 4
  d = num_heads * d_head
  rng = np.random.default_rng(1)
  emb = rng.normal(size=(n + 1, num_heads, d_head)).astype(np.float32)
  emb[0] = 0.0
  os.makedirs(tmp_path / "pretrain")
  np.save(tmp_path / "pretrain" / "item_facet_embeddings.npy", emb)
  params = {"item_emb": {"embedding": jnp.asarray(rng.normal(size=(n + 1, d)), jnp.float32)},
            "blocks_1": {"kernel": jnp.ones((3,))}}
  base = dict(hidden_size=d, num_heads=num_heads, init_std=0.02, facet_item_proj="linear")
  with pytest.raises(ValueError, match="facet_proj"):  # A FAME config must have W_f.
    handoff.apply_pretrained_item_embeddings(params, str(tmp_path), ml_collections.ConfigDict(base))
  new = handoff.apply_pretrained_item_embeddings(
      params, str(tmp_path), ml_collections.ConfigDict(dict(base, facet_heads=False)))
  expected, _ = handoff.pretrained_item_table(emb, 0.02)
  np.testing.assert_allclose(np.asarray(new["item_emb"]["embedding"]), expected, rtol=1e-6)
  assert set(new) == {"item_emb", "blocks_1"}
  np.testing.assert_array_equal(new["blocks_1"]["kernel"], params["blocks_1"]["kernel"])


# ------------------------------------------------------------------ end to end
def _facet_world(n=240, values=6, noise=0.6, seed=0):
  """Items with two facets; text vectors = sum of per-value random vectors + noise."""
  rng = np.random.default_rng(seed)
  vals = rng.integers(0, values, size=(n + 1, 2))
  proto = rng.normal(size=(2, values, 384))
  t = proto[0][vals[:, 0]] + proto[1][vals[:, 1]] + noise * np.sqrt(2) * rng.normal(size=(n + 1, 384))
  t /= np.linalg.norm(t, axis=1, keepdims=True)
  t[0] = 0.0
  meta = {"genre": [None] + [f"g{v}" for v in vals[1:, 0]],
          "brand": [None] + [f"b{v}" for v in vals[1:, 1]]}
  return _dataset(meta, name="synthetic_test"), t.astype(np.float32)


def _config(steps):
  c = tiny.get_config()
  c.pretrain.steps = steps
  c.pretrain.batch_size = 64
  c.pretrain.checkpoint_every_steps = 10
  c.train.progress = False
  return c


def test_pretraining_separates_facets_per_head(tmp_path):
  ds, t = _facet_world()
  summary = pretrain.run_pretraining(_config(120), ds, str(tmp_path), text_embeddings=t)
  out = tmp_path / "pretrain"
  emb = np.load(out / "item_facet_embeddings.npy")
  assert emb.shape == (ds.num_items + 1, 2, 8) and np.all(emb[0] == 0.0)
  assert json.loads((out / "pretrain_summary.json").read_text())["steps"] == 120
  a = np.asarray(summary["agreement"]["matrix"])  # rows: heads, cols: genre, brand
  # Head h's neighbours share facet h far more often than the other facet.
  assert a[0, 0] - a[0, 1] > 0.2, a
  assert a[1, 1] - a[1, 0] > 0.2, a
  # The raw text space mixes both facets; each head is purer than it on its facet.
  base = summary["text_baseline_agreement"]
  assert a[0, 0] > base["genre"] and a[1, 1] > base["brand"], (a, base)


def test_resume_equals_uninterrupted(tmp_path):
  ds, t = _facet_world(n=80)
  full = tmp_path / "full"
  pretrain.run_pretraining(_config(20), ds, str(full), text_embeddings=t)
  part = tmp_path / "part"
  pretrain.run_pretraining(_config(10), ds, str(part), text_embeddings=t)
  s = pretrain.run_pretraining(_config(20), ds, str(part), text_embeddings=t)
  assert s["resumed_from_step"] == 10
  np.testing.assert_array_equal(np.load(full / "pretrain" / "item_facet_embeddings.npy"),
                                np.load(part / "pretrain" / "item_facet_embeddings.npy"))


def test_pretraining_saves_and_resumes_through_the_checkpoints_module(tmp_path, monkeypatch):
  # Pre-training saves and resumes through fame_jax.training.checkpoints (no
  # Orbax manager of its own): every save and restore goes through
  # StepCheckpoints, and what it wrote restores with it to the final state.
  ds, t = _facet_world(n=60)
  calls = []
  real = ckpt_lib.StepCheckpoints

  class Recording(real):
    def save(self, step, tree):
      calls.append(("save", step))
      super().save(step, tree)

    def restore_latest(self, like):
      calls.append(("restore", self.latest_step()))
      return super().restore_latest(like)

  monkeypatch.setattr(ckpt_lib, "StepCheckpoints", Recording)
  pretrain.run_pretraining(_config(10), ds, str(tmp_path), text_embeddings=t)
  pretrain.run_pretraining(_config(20), ds, str(tmp_path), text_embeddings=t)
  assert calls == [("save", 10), ("restore", 10), ("save", 20)]
  assert not [v for v in vars(pretrain).values()
              if isinstance(v, types.ModuleType) and v.__name__.startswith("orbax")]
  c = _config(20)
  module = supcon.FacetProjectionHeads(2, int(c.pretrain.hidden_size), 8)
  fresh = pretrain.init_state(module, optax.adam(float(c.pretrain.learning_rate)), 2,
                              int(c.pretrain.seed))
  ckpts = real(str(tmp_path / "pretrain" / "checkpoints"))
  assert ckpts.latest_step() == 20
  state = ckpts.restore_latest(fresh)
  ckpts.close()
  assert int(state["step"]) == 20
  np.testing.assert_allclose(pretrain.project_items(module, state["params"], t),
                             np.load(tmp_path / "pretrain" / "item_facet_embeddings.npy"),
                             rtol=1e-6, atol=1e-7)


def test_agreement_metric_on_known_geometry():
  # Head 0 clusters by facet A, head 1 by facet B (tiny jitter breaks ties).
  rng = np.random.default_rng(0)
  a = np.repeat(np.arange(4), 10)
  b = np.tile(np.arange(4), 10)
  centers = rng.normal(size=(4, 3)) * 10
  emb = np.zeros((41, 2, 3))
  emb[1:, 0] = centers[a] + 1e-3 * rng.normal(size=(40, 3))
  emb[1:, 1] = centers[b] + 1e-3 * rng.normal(size=(40, 3))
  la = [frozenset()] + [frozenset({x}) for x in a]
  lb = [frozenset()] + [frozenset({x}) for x in b]
  m = pretrain.facet_neighbour_agreement(emb, [la, lb], k=9)
  np.testing.assert_allclose(np.diag(m), 1.0)
  assert m[0, 1] < 0.5 and m[1, 0] < 0.5
