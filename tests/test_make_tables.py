"""fame_jax/analysis/make_tables.py: seed grouping, mean ± std, the FAME-vs-SASRec verdict,
the committed-config rows, the benchmark rows, and that the committed docs/results.md and
README blocks are what the committed results/ give."""

import json
import os

import numpy as np
import pytest

from fame_jax.analysis import fit_curves, make_tables, seeds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(study, name, ndcg10, valid=0.07, config="configs/beauty.py", overrides=""):
  d = study / name
  d.mkdir(parents=True)
  res = {f"test/{m}@{k}": ndcg10 for m in ("HR", "NDCG") for k in (5, 10, 20)}
  res.update({"valid/NDCG@10": valid, "valid/HR@10": valid, "best_epoch": 3, "train_seconds": 10.0})
  (d / "results.json").write_text(json.dumps(res))
  (d / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_seconds": 1.0}) + "\n")
  (d / "command.txt").write_text(f"python train.py --config {config} --workdir x {overrides}")


def test_comparison_verdicts(tmp_path):
  study = tmp_path / "full"
  for s, v in enumerate((0.050, 0.052)):
    _run(study, f"sasrec_seed{s}", v, config="configs/sasrec.py:beauty")
  for s, v in enumerate((0.053, 0.055)):
    _run(study, f"fame_text_seed{s}", v, valid=0.08, config="configs/beauty_text.py")
  for s, v in enumerate((0.051, 0.060)):
    _run(study, f"fame_seed{s}", v)
  _run(study, "fame_text_d128_seed0", 0.06, overrides="--config.model.hidden_size=128")
  table = make_tables.comparison_table(str(study))
  rows = {l.split("|")[1].strip(): l for l in table.splitlines()[2:]}
  # No sasrec_d128 yet: the d128 variant is compared with the plain SASRec only.
  assert set(rows) == {"fame_text vs sasrec", "fame vs sasrec", "fame_text_d128 vs sasrec"}
  assert "n/a (needs >= 2 seeds each)" in rows["fame_text_d128 vs sasrec"]
  assert "+0.0090" in rows["fame_text_d128 vs sasrec"]  # 0.06 - 0.051.
  assert "yes: FAME above" in rows["fame_text vs sasrec"]
  assert f"{np.mean([0.053, 0.055]) - 0.051:+.4f}" in rows["fame_text vs sasrec"]
  assert "+0.0100" in rows["fame_text vs sasrec"]  # Valid diff 0.08 - 0.07.
  assert "no (seed ranges overlap)" in rows["fame vs sasrec"]
  _run(study, "sasrec_d128_seed0", 0.058, overrides="--config.model.hidden_size=128")
  rows = {l.split("|")[1].strip(): l
          for l in make_tables.comparison_table(str(study)).splitlines()[2:]}
  assert set(rows) == {"fame_text vs sasrec", "fame vs sasrec", "fame_text_d128 vs sasrec",
                       "fame_text_d128 vs sasrec_d128"}
  assert "+0.0020" in rows["fame_text_d128 vs sasrec_d128"]  # 0.06 - 0.058.
  final = make_tables.final_table(str(study))
  sasrec_row = [l for l in final.splitlines() if l.startswith("| sasrec |")][0]
  assert "SASRec (E 1, no facet heads)" in sasrec_row
  assert f"0.0510 ± {np.std([0.050, 0.052], ddof=1):.4f}" in sasrec_row
  assert "text pre-training" in [l for l in final.splitlines() if l.startswith("| fame_text |")][0]


def test_matched_scale_pairs_fame_pscale4_with_sasrec_oscale2(tmp_path):
  study = tmp_path / "full"
  _run(study, "sasrec_seed0", 0.05)
  _run(study, "sasrec_oscale2_seed0", 0.056)
  _run(study, "fame_text_pscale4_seed0", 0.06)
  rows = {l.split("|")[1].strip(): l
          for l in make_tables.comparison_table(str(study)).splitlines()[2:]}
  assert set(rows) == {"fame_text_pscale4 vs sasrec_oscale2", "fame_text_pscale4 vs sasrec"}
  assert "+0.0040" in rows["fame_text_pscale4 vs sasrec_oscale2"]  # 0.06 - 0.056.


def test_scaled_fame_is_also_paired_with_sasrec_of_the_same_width(tmp_path):
  study = tmp_path / "full"
  _run(study, "sasrec_seed0", 0.05)
  _run(study, "sasrec_d128_seed0", 0.057)
  _run(study, "fame_text_d128_pscale4_seed0", 0.06)
  rows = {l.split("|")[1].strip(): l
          for l in make_tables.comparison_table(str(study)).splitlines()[2:]}
  # No sasrec_d128_oscale2 (the matched scale): the same-width SASRec and the plain one.
  assert set(rows) == {"fame_text_d128_pscale4 vs sasrec_d128", "fame_text_d128_pscale4 vs sasrec"}
  assert "+0.0030" in rows["fame_text_d128_pscale4 vs sasrec_d128"]


def test_one_seed_gets_no_verdict(tmp_path):
  study = tmp_path / "full"
  _run(study, "sasrec_seed0", 0.05)
  _run(study, "fame_seed0", 0.09)
  assert "n/a (needs >= 2 seeds each)" in make_tables.comparison_table(str(study))


def test_routing_table_reads_the_export_summary(tmp_path):
  from fame_jax import export
  rng = np.random.default_rng(1)
  gate = rng.dirichlet(np.ones(2), size=30)
  routing = export.routing_summary(rng.dirichlet(np.ones(4), size=(30, 2)), gate,
                                   rng.integers(0, 20, 30), rng.integers(0, 20, (30, 2)))
  summary = {"split": "valid", "metrics": {"valid/NDCG@10": 0.0703},
             "head_metrics": {"head0": {"NDCG@10": 0.03}, "head1": {"NDCG@10": 0.04}},
             "routing": routing}
  (tmp_path / "fame_x_valid_routing.json").write_text(json.dumps(summary))
  row = make_tables.routing_table(str(tmp_path)).splitlines()[2]
  assert row.startswith("| fame_x_valid | 0.0703 | 0.0300 / 0.0400 |")
  assert f"{routing['gate_entropy_mean']:.3f} (max {np.log(2):.3f})" in row
  assert f"(max {np.log(4):.3f})" in row
  # A uniform gate: no top-gate head for anyone, so those columns are blank.
  summary["routing"] = export.routing_summary(rng.dirichlet(np.ones(4), size=(30, 2)),
                                              np.full((30, 2), 0.5), rng.integers(0, 20, 30),
                                              rng.integers(0, 20, (30, 2)))
  (tmp_path / "fame_x_valid_routing.json").write_text(json.dumps(summary))
  row = make_tables.routing_table(str(tmp_path)).splitlines()[2]
  assert f"| uniform, {np.log(2):.3f} | - (all tied) | - (all tied) |" in row


def test_score_scale_table(tmp_path):
  row = {"run": "results/ml1m/sasrec_seed0", "users": 3, "u_norm": 15.076, "item_norm": 1.17,
         "score_std": 3.1, "ce": 5.6665, "best_t": 0.841, "ce_at_best_t": 5.6249,
         "valid/NDCG@10": 0.1781}
  (tmp_path / "score_scale.jsonl").write_text(json.dumps(row) + "\n")
  table = make_tables.score_scale_table(str(tmp_path))
  lines = table.splitlines()
  assert len(lines) == 3
  # Every line of a markdown table has the same number of cells.
  assert len({l.count("|") for l in lines}) == 1
  assert "| ml1m/sasrec_seed0 | 0.1781 | 15.08 | 1.170 | 3.10 | 5.6665 | 0.841 | 5.6249 |" == lines[2]
  (tmp_path / "score_scale.jsonl").write_text(json.dumps(row) + "\nnot json\n")
  with pytest.raises(SystemExit, match="score_scale.jsonl:2"):
    make_tables.score_scale_table(str(tmp_path))
  assert make_tables.score_scale_table(str(tmp_path / "missing")) == ""


def test_fit_table_reads_what_fit_curves_writes(tmp_path):
  # The producer's own summary, so the table cannot drift from fit_curves.
  fast = [{"epoch": e, "loss": l, "valid/NDCG@10": v} for e, l, v in ((1, 6.0, 0.10), (2, 5.5, 0.17))]
  slow = [{"epoch": e, "loss": l, "valid/NDCG@10": v} for e, l, v in ((1, 6.2, 0.09), (2, 5.9, 0.12))]
  rows = [{"run": f"results/ml1m/{name}", **fit_curves.summarise(r, [2], [6.0, 5.5])}
          for name, r in (("sasrec_seed0", fast), ("fame_seed0", slow))]
  (tmp_path / "fit_curves.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  lines = make_tables.fit_table(str(tmp_path)).splitlines()
  assert len(lines) == 4 and len({l.count("|") for l in lines}) == 1
  assert lines[0].endswith("| training loss <= 6.0: first epoch, valid NDCG@10 | "
                           "training loss <= 5.5: first epoch, valid NDCG@10 |")
  assert lines[2] == "| ml1m/sasrec_seed0 | 2 of 2 | 0.1700 | 5.500 | ep 1: 0.1000 | ep 2: 0.1700 |"
  assert lines[3] == "| ml1m/fame_seed0 | 2 of 2 | 0.1200 | 5.900 | ep 2: 0.1200 | not reached |"
  (tmp_path / "fit_curves.jsonl").write_text(json.dumps(rows[0]) + "\n{\n")
  with pytest.raises(SystemExit, match="fit_curves.jsonl:2"):
    make_tables.fit_table(str(tmp_path))
  assert make_tables.fit_table(str(tmp_path / "missing")) == ""


def test_buckets_table(tmp_path):
  def run(ndcgs, key="history", labels=("0-49", ">=50"), pop=False):
    r = {"split": "valid", "metrics": {"valid/NDCG@10": 0.17},
         "buckets": [{key: l, "users": 3, "NDCG@10": v} for l, v in zip(labels, ndcgs)]}
    if pop:
      r.update(top10_mean_train_count=841.6, top10_median_train_count=693.0)
    return r
  (tmp_path / "length_buckets_x.json").write_text(json.dumps(
      {"runs": {"sas": run([0.2, 0.1]), "fame": run([0.25, None])}}))
  (tmp_path / "popularity_buckets_x.json").write_text(json.dumps(
      {"runs": {"sas": run([0.3, 0.4], "target_train_count", ("4-217", "218-300"), True)}}))
  parts = make_tables.buckets_table(str(tmp_path)).split("\n\n")
  assert parts[0].startswith("`length_buckets_x.json`, NDCG@10 by history length (users per bucket: 3, 3)")
  lines = parts[1].splitlines()
  assert len({l.count("|") for l in lines}) == 1
  assert lines[0] == "| run | checkpoint's valid NDCG@10 | 0-49 | >=50 |"
  assert lines[2:] == ["| sas | 0.1700 | 0.2000 | 0.1000 |", "| fame | 0.1700 | 0.2500 | - |"]
  lines = parts[3].splitlines()
  assert len({l.count("|") for l in lines}) == 1
  assert lines[2] == "| sas | 0.1700 | 0.3000 | 0.4000 | 842 / 693 |"
  (tmp_path / "length_buckets_x.json").write_text(json.dumps(
      {"runs": {"sas": run([0.2, 0.1]), "fame": run([0.2, 0.1], labels=("0-9", ">=10"))}}))
  with pytest.raises(SystemExit, match="run fame has different buckets from sas"):
    make_tables.buckets_table(str(tmp_path))
  assert make_tables.buckets_table(str(tmp_path / "missing")) == ""

def test_changes_reads_shell_quoted_commands():
  # command.txt files written by a shell hold `printf %q` quoting.
  cmd = (r".venv/bin/python train.py --config configs/beauty_text.py --workdir runs/x "
         r"--config.train.progress=False --config.model.num_heads=1 "
         r"--config.pretrain.facets=\(\'leaf_category\'\,\) --config.train.seed=0  # note")
  assert make_tables._changes(cmd) == (
      "text pre-training, model.num_heads=1, pretrain.facets=('leaf_category',)")


def test_changes_names_stage_two_from_a_stage_one_workdir_as_text_pretraining():
  # bench/gpu_suite.sh runs FAME+ stage 2 from a stage-1 workdir made beforehand.
  cmd = ("python3 train.py --config configs/beauty_text.py --workdir /tmp/x --config.train.progress=False "
         "--config.pretrain.enabled=False --config.init.item_embeddings_from=.devdata/beauty_stage1 "
         "--config.model.gate=uniform  # call 1")
  assert make_tables._changes(cmd) == "text pre-training (stage 1 run beforehand), model.gate=uniform"


def _config(**model):
  m = {"facet_heads": True, "num_experts": 4, "hidden_size": 64, "facet_proj_init": "selector",
       "facet_item_proj": "linear", "output_norm_scale": 1.0}
  m.update(model)
  return {"model": m, "train": {"seed": 0, "loss_impl": "dense", "learning_rate": 1e-3},
          "pretrain": {"enabled": False, "facets": ["a", "b"], "text_cache_dir": ""}}


def _run_with_config(study, name, ndcg10, config):
  _run(study, name, ndcg10)
  (study / name / "config.json").write_text(json.dumps(config))


def test_chosen_table_pools_the_runs_made_with_the_current_settings(tmp_path):
  study = tmp_path / "runs"
  # SASRec inherits the dataset config's facet_item_proj, a key it never reads.
  sasrec = _config(facet_heads=False, num_experts=1, facet_item_proj="slice")
  fame = _config(facet_item_proj="slice")
  for s, v in enumerate((0.050, 0.052)):
    # Made before output_norm_scale existed (the key is absent: its value is
    # config_check.ADDED_DEFAULTS'), with facet_item_proj linear and a deleted
    # facet-head option at another value (SASRec reads neither), with a deleted
    # option at its no-op, and with the chunked loss (same loss): they still count.
    stored = _config(facet_heads=False, num_experts=1, facet_proj_scale=2.0, head_mix=False)
    del stored["model"]["output_norm_scale"]
    stored["train"].update(seed=s, loss_impl="chunked")
    _run_with_config(study, f"sasrec_seed{s}", v, stored)
  for s, v in enumerate((0.055, 0.056)):
    stored = _config(facet_item_proj="slice", mix="logits")
    stored["train"]["seed"] = s
    _run_with_config(study, f"fame_slice_seed{s}", v, stored)
  _run_with_config(study, "fame_seed0", 0.07, _config())  # Linear: not the config's.
  # A deleted option at another value: today's code cannot build that model.
  _run_with_config(study, "fame_slice_pscale2_seed0", 0.08, _config(facet_item_proj="slice",
                                                                   facet_proj_scale=2.0))
  configs = {"SASRec": ("configs/sasrec.py:x", sasrec), "FAME": ("configs/x.py", fame),
             "FAME+": ("configs/x_text.py", dict(fame, pretrain={"enabled": True, "facets": ["a", "b"],
                                                                 "text_cache_dir": ""}))}
  table = make_tables.chosen_table(str(study), configs)
  rows = {l.split("|")[1].strip(): l for l in table.splitlines()[2:5]}
  assert "| sasrec | 2 | 0.0700 ± 0.0000 |" in rows["SASRec"]
  assert f"0.0510 ± {np.std([0.050, 0.052], ddof=1):.4f}" in rows["SASRec"]
  assert "| fame_slice | 2 |" in rows["FAME"]
  assert "0.0555 ± 0.0007" in rows["FAME"]
  # No FAME+ run: the closest group and what differs are named.
  assert "none; closest `" in rows["FAME+"] and "pretrain.enabled=False (config: True)" in rows["FAME+"]
  assert "FAME vs SASRec on test NDCG@10: +0.0045 (2 vs 2 seeds; FAME above beyond the seed spread)." \
      in table
  assert "FAME+ vs SASRec" not in table
  picked = make_tables.committed_runs(str(study), configs)
  assert picked["FAME"]["runs"] == ["fame_slice_seed0", "fame_slice_seed1"]
  # A setting the model reads makes a run not count.
  fame["model"]["hidden_size"] = 128
  table = make_tables.chosen_table(str(study), configs)
  assert "model.hidden_size=64 (config: 128)" in table.splitlines()[3]
  fame["model"]["hidden_size"] = 64
  assert make_tables._setting_differences(_config(facet_item_proj="slice", facet_proj_scale=2.0),
                                          fame) == ["model.facet_proj_scale=2.0 (an option since deleted)"]
  assert make_tables.chosen_table(str(tmp_path / "none"), configs) == ""


def test_sasrec_with_text_row_appears_only_with_its_runs(tmp_path):
  study = tmp_path / "full"
  text = {"enabled": True, "facets": ["a", "b"], "text_cache_dir": ""}
  sasrec = _config(facet_heads=False, num_experts=1)
  fame_text = dict(_config(), pretrain=text)
  for s, v in enumerate((0.050, 0.051)):
    _run_with_config(study, f"sasrec_seed{s}", v, dict(sasrec, train=dict(sasrec["train"], seed=s)))
    _run_with_config(study, f"fame_text_seed{s}", v + 0.010,
                     dict(fame_text, train=dict(sasrec["train"], seed=s)))
  configs = {"SASRec": ("configs/sasrec.py:x", sasrec), "FAME+": ("configs/x_text.py", fame_text),
             make_tables._SASREC_TEXT: ("sasrec + text", dict(sasrec, pretrain=text))}
  table = make_tables.chosen_table(str(study), configs)
  assert make_tables._SASREC_TEXT not in table  # No such runs: no row, no verdict.
  for s, v in enumerate((0.064, 0.066)):
    _run_with_config(study, f"sasrec_text_seed{s}", v,
                     dict(sasrec, pretrain=text, train=dict(sasrec["train"], seed=s)))
  table = make_tables.chosen_table(str(study), configs)
  row = [l for l in table.splitlines() if l.startswith(f"| {make_tables._SASREC_TEXT} |")]
  assert len(row) == 1 and "| sasrec_text | 2 |" in row[0]
  assert "FAME+ vs SASRec on test NDCG@10: +0.0100 (2 vs 2 seeds; FAME above beyond the seed spread)." in table
  assert (f"FAME+ vs {make_tables._SASREC_TEXT} on test NDCG@10: -0.0045 (2 vs 2 seeds; "
          "SASRec above beyond the seed spread).") in table


def test_dataset_configs_add_sasrec_with_the_text_pretraining_of_fame_plus():
  configs = make_tables.dataset_configs("beauty")
  spec, cfg = configs[make_tables._SASREC_TEXT]
  fame_plus = configs["FAME+"][1]
  assert spec == "configs/sasrec.py:beauty_text"
  assert cfg["pretrain"] == fame_plus["pretrain"] and cfg["pretrain"]["enabled"]
  assert cfg["train"] == fame_plus["train"]  # The same training settings as FAME+.
  assert (cfg["model"]["num_experts"], cfg["model"]["facet_heads"]) == (1, False)
  # SASRec+text's last LayerNorm starts at 2 on Beauty (configs/sasrec.py); FAME+'s F^h one at 4.
  assert (cfg["model"]["output_norm_scale"], fame_plus["model"]["output_norm_scale"]) == (2.0, 4.0)
  own = ("num_experts", "facet_heads", "output_norm_scale")
  assert {k: v for k, v in cfg["model"].items() if k not in own} == {
      k: v for k, v in fame_plus["model"].items() if k not in own}


def test_current_config_reads_the_committed_dataset_configs():
  sasrec = make_tables.current_config("configs/sasrec.py:beauty")
  fame = make_tables.current_config("configs/beauty_text.py")
  assert (sasrec["model"]["num_experts"], sasrec["model"]["facet_heads"]) == (1, False)
  assert fame["pretrain"]["enabled"] and fame["model"]["facet_heads"]


def _picked(results, spec="configs/x.py"):
  return {"spec": spec, "results": results, "runs": [], "names": [], "closest": None}


def test_readme_results_table_rows_references_and_missing_models():
  res = [{"test/NDCG@10": v, "test/HR@10": 2 * v} for v in (0.050, 0.052, 0.054)]
  picked = {"beauty": {"SASRec": _picked(res), "FAME": _picked(res[:1])},
            "ml1m": {"SASRec+text": _picked([], "configs/sasrec.py:ml1m_text")}}
  table, note = make_tables.readme_results_table(picked).split("\n\n")
  rows = table.splitlines()
  assert len({r.count("|") for r in rows}) == 1
  assert len(rows) == 2 + 3 * 4  # Header, rule, four models for each of the three datasets.
  std = np.std([0.050, 0.052, 0.054], ddof=1)  # The sample std, as the sweep prints it.
  assert rows[2] == (f"| Beauty | SASRec | `configs/x.py` | 3 | 0.0520 ± {std:.4f} | 0.1040 ± {2 * std:.4f} | "
                     "0.0318 / 0.0605 (S3-Rec's SASRec, one sampled negative; same file) |")
  assert rows[3] == ("| Beauty | FAME | `configs/x.py` | 1 | 0.0500 | 0.1000 | "
                     "0.0611 / 0.1008 (BSARec, cross-entropy; same file) |")
  assert rows[4] == "| Beauty | SASRec+text | - | 0 (not run) | - | - | - |"
  assert "| ML-1M | SASRec+text | `configs/sasrec.py:ml1m_text` | 0 (not run) |" in table
  assert seeds.STD_NAME in note and "over 1 or 3 seeds" in note
  assert "(docs/protocol.md#s8)" in note and "(protocol.md#s8)" in make_tables.readme_results_table(
      picked, docs="")


def _bench_line(when, result, **extra):
  return {"command": "python bench/x.py", "when": when, "result": result, **extra}


def test_bench_table_keeps_the_latest_line_per_device_and_setting(tmp_path):
  def train(**r):
    return {"device": "1 x cpu", "cpu_count": 2, "model": "FAME d=64 H=2 E=4 L=50 batch=256 gate=x",
            "loss_impl": "dense", **r}
  on = lambda s: {"seconds_per_epoch": s, "targets_per_second": 1000.0 / s}
  lines = [_bench_line("2026-01-01T00:00Z", train(packing_on=on(9.0), packing_off=on(70.0))),
           _bench_line("2026-01-02T00:00Z", train(packing_on=on(6.0))),
           _bench_line("2026-01-01T00:00Z", dict(train(packing_on=on(0.5)), device="1 x NVIDIA H200",
                                                 cpu_count=16),
                       correction="measured d=128", model_measured="FAME d=128 H=2 E=4 L=50 batch=256")]
  evals = [_bench_line("2026-01-01T00:00Z", {"device": "cpu", "users": 10, "items": 20, "wall_seconds": 0.5}),
           _bench_line("2026-01-03T00:00Z", {"device": "cpu", "users": 10, "items": 20, "wall_seconds": 0.25})]
  (tmp_path / "train_throughput.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
  (tmp_path / "eval_speed.jsonl").write_text("".join(json.dumps(l) + "\n" for l in evals))
  bench = make_tables.read_bench(str(tmp_path))
  rows = make_tables.readme_bench_table(bench).split("\n\n")[0].splitlines()[2:]
  assert len(rows) == 3
  # CPU: the latest packed figure (day 2) and the unpacked one of day 1, which day 2 did not measure.
  assert rows[0].startswith("| train_throughput | Beauty training epoch, FAME d=64 H=2 E=4 L=50 batch=256, "
                            "dense loss | 6.00 s/epoch packed (167 targets/s); 70.00 s/epoch unpacked")
  assert rows[0].endswith("| CPU, 2 cores | 2026-01-02 |")
  assert "FAME d=128 H=2 E=4" in rows[1] and "label corrected" in rows[1] and "| NVIDIA H200 |" in rows[1]
  assert rows[2] == ("| eval_speed | full-ranking evaluation, 10 users x 20 items (Beauty) | 0.250 s | CPU | "
                     "2026-01-03 |")
  everything = make_tables.bench_tables(bench)
  assert everything.count("| 2026-01-01T00:00Z |") == 3 and "measured d=128" in everything
  (tmp_path / "eval_speed.jsonl").write_text(json.dumps({"command": "x", "result": {}}) + "\n")
  with pytest.raises(SystemExit, match="eval_speed.jsonl: line 1 lacks 'when'"):
    make_tables.read_bench(str(tmp_path))
  (tmp_path / "eval_speed.jsonl").write_text("{\n")
  with pytest.raises(SystemExit, match="eval_speed.jsonl:1: not JSON"):
    make_tables.read_bench(str(tmp_path))


def test_fill_readme_replaces_only_between_the_markers():
  text = ("intro\n<!-- results-table:begin -->\nold\n<!-- results-table:end -->\nmiddle\n"
          "<!-- bench-table:begin --><!-- bench-table:end -->\nend\n")
  blocks = {"results-table": "| r |", "bench-table": "| b |"}
  out = make_tables.fill_readme(text, blocks)
  assert out == ("intro\n<!-- results-table:begin -->\n| r |\n<!-- results-table:end -->\nmiddle\n"
                 "<!-- bench-table:begin -->\n| b |\n<!-- bench-table:end -->\nend\n")
  assert make_tables.fill_readme(out, blocks) == out
  assert make_tables.readme_has_markers(out) and not make_tables.readme_has_markers("intro\n")


def test_committed_results_md_and_readme_blocks_are_what_results_give():
  generated = make_tables.generate()
  with open(os.path.join(ROOT, make_tables.RESULTS_MD)) as f:
    assert f.read() == generated[make_tables.RESULTS_MD], (
        "docs/results.md is stale: run python scripts/make_tables.py")
  # The headline rows are the committed configs' runs, 3 seeds each.
  assert "| Beauty | FAME+ | `configs/beauty_text.py` | 3 |" in generated["results-table"]
  with open(os.path.join(ROOT, make_tables.README)) as f:
    readme = f.read()
  if not make_tables.readme_has_markers(readme):
    pytest.skip("README.md has no results-table / bench-table markers yet: nothing to compare")
  assert readme == make_tables.fill_readme(readme, generated), (
      "README.md's table blocks are stale: run python scripts/make_tables.py")
