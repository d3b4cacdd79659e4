"""Writes docs/results.md and the README table blocks from results/.

  python scripts/make_tables.py            # rewrites docs/results.md and README.md's blocks
  python scripts/make_tables.py --check    # exit 1 if either differs from what results/ gives
  python scripts/make_tables.py --print    # prints docs/results.md instead

What it reads:

* ``results/<dataset>/<run>/``: finished runs, each with ``results.json``,
  ``config.json``, ``metrics.jsonl`` and ``command.txt``. Runs named
  ``<name>_seed<k>`` are grouped and reported as mean ± std over seeds
  (:mod:`fame_jax.analysis.seeds`: the sample std, as ``python -m
  fame_jax.sweep --seeds`` prints it).
* ``results/<dataset>/gpu_h200/<run>/``: runs made on an H200, the same files.
* ``results/<dataset>/analysis/``: what scripts/export_routing.sh,
  scripts/fit_curves.py, scripts/score_scale.py, scripts/length_buckets.py and
  scripts/popularity_buckets.py wrote.
* ``results/bench/*.jsonl``: one line per benchmark run (``command``,
  ``when``, the machine, and the benchmark's JSON as ``result``).
* ``configs/``: which runs are "the committed configs" is decided by
  comparing each run's stored config.json with what the config files hold now
  (:func:`committed_runs`), so a config changed without runs behind it shows
  up as a row without runs.

The README gets two blocks, between ``<!-- results-table:begin -->`` /
``<!-- results-table:end -->`` and ``<!-- bench-table:begin -->`` /
``<!-- bench-table:end -->``; docs/results.md gets every table.
tests/test_make_tables.py fails when the committed files differ from what
this module generates from the committed results/.
"""

from __future__ import annotations

import argparse
import collections
import glob
import importlib
import json
import os
import re
import shlex
import sys

import numpy as np

from fame_jax import options
from fame_jax.analysis.seeds import STD_NAME
from fame_jax.analysis.seeds import mean_std as _fmt
from fame_jax.training import config_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_MD = os.path.join("docs", "results.md")
README = "README.md"
README_BLOCKS = ("results-table", "bench-table")
DATASETS = {"beauty": "Beauty", "sports": "Sports", "ml1m": "ML-1M"}
# Folders of results/<dataset>/ that are not runs.
GPU_DIR, ANALYSIS_DIR = "gpu_h200", "analysis"


def _load(run_dir: str) -> dict:
  with open(os.path.join(run_dir, "results.json")) as f:
    res = json.load(f)
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    rows = [json.loads(l) for l in f if l.strip()]
  cmd = ""
  if os.path.exists(os.path.join(run_dir, "command.txt")):
    with open(os.path.join(run_dir, "command.txt")) as f:
      cmd = f.read().strip()
  return {"results": res, "rows": rows, "command": cmd}


_COMMON = re.compile(r"--config\.(train\.(progress|max_epochs|eval_every_epochs|seed)|pretrain\.text_cache_dir)=")


def _changes(command: str) -> str:
  """The run's own overrides (the study's shared ones left out), e.g. `model.gate=uniform`."""
  args = [a for a in shlex.split(command, comments=True)
          if a.startswith("--config.") and not _COMMON.match(a)]
  if re.search(r"--config configs/\w+_text\.py", command) or "pretrain.enabled=True" in command:
    # Stage 2 from a stage-1 workdir made beforehand (bench/gpu_suite.sh) is
    # the same text pre-training, not a change of the model.
    from_stage1 = any(a.startswith("--config.init.item_embeddings_from=") for a in args)
    args = ["text pre-training" + (" (stage 1 run beforehand)" if from_stage1 else "")] + [
        a for a in args if "pretrain.enabled" not in a and "init.item_embeddings_from" not in a]
  if re.search(r"--config configs/sasrec\.py", command):
    args = ["SASRec (E 1, no facet heads)"] + args
  return ", ".join(a.replace("--config.", "") for a in args) or "its config file, no overrides"


def _run_dirs(parent: str) -> list[str]:
  """The finished runs directly under ``parent`` (folders with results.json), sorted."""
  return [d for d in sorted(glob.glob(os.path.join(parent, "*")))
          if os.path.isfile(os.path.join(d, "results.json"))]


def _groups(study_dir: str) -> dict[str, list[dict]]:
  groups: dict[str, list[dict]] = collections.defaultdict(list)
  for d in _run_dirs(study_dir):
    groups[re.sub(r"_seed\d+$", "", os.path.basename(d))].append(_load(d))
  return groups


_MODEL = re.compile(r"^(fame_text|fame_selector|fame)")
# FAME groups whose SASRec counterpart has another suffix: the same initial
# score scale. With H = 2 heads, facet_proj_scale a (`_pscale<a>` runs; an
# option since deleted) starts u at a/2 times the concatenated LayerNormed
# heads, which SASRec's output_norm_scale a/2 matches.
_MATCHED = {"pscale4": "sasrec_oscale2", "d128_pscale2": "sasrec_d128",
            "d128_pscale4": "sasrec_d128_oscale2"}


def _spread(a: list[float], b: list[float]) -> str:
  """FAME seeds `a` vs SASRec seeds `b`: "fame" / "sasrec" when every seed of one
  is above every seed of the other, "overlap", or "n/a" with fewer than 2 each."""
  if len(a) < 2 or len(b) < 2:
    return "n/a"
  if min(a) > max(b):
    return "fame"
  if max(a) < min(b):
    return "sasrec"
  return "overlap"


def comparison_table(study_dir: str, metric: str = "test/NDCG@10") -> str:
  """Each FAME group against the SASRec group of the same suffix (fame_text_d128
  vs sasrec_d128; suffixes in `_MATCHED` map to the SASRec of the same initial
  score scale), the one of the same suffix without `_pscale<a>` (a knob SASRec
  lacks: fame_text_d128_pscale4 vs sasrec_d128) and, for a FAME variant with a
  suffix, also against the plain `sasrec` group (the SASRec the study tuned,
  whose own variants did not beat it): difference of the seed means, and whether it is beyond the seed spread
  (every FAME seed above every SASRec seed; needs >= 2 seeds each)."""
  groups = _groups(study_dir)
  pairs = []
  for name in sorted(groups):
    m = _MODEL.match(name)
    if not m:
      continue
    suffix = name[m.end():]
    matched = _MATCHED.get(suffix.lstrip("_"), "sasrec" + suffix)
    # The SASRec of the same settings but the scale (which SASRec does not have).
    same_width = "sasrec" + re.sub(r"_pscale\d+", "", suffix)
    for base in dict.fromkeys((matched, same_width, "sasrec")):
      if base in groups:
        pairs.append((name, base))
  lines = []
  for name, base in pairs:
    runs = groups[name]
    a = [r["results"][metric] for r in runs]
    b = [r["results"][metric] for r in groups[base]]
    va = [r["results"]["valid/NDCG@10"] for r in runs]
    vb = [r["results"]["valid/NDCG@10"] for r in groups[base]]
    verdict = {"n/a": "n/a (needs >= 2 seeds each)", "fame": "yes: FAME above",
               "sasrec": "yes: SASRec above", "overlap": "no (seed ranges overlap)"}[_spread(a, b)]
    lines.append(f"| {name} vs {base} | {len(a)} vs {len(b)} | {np.mean(va) - np.mean(vb):+.4f} | "
                 f"{_fmt(a)} vs {_fmt(b)} | {np.mean(a) - np.mean(b):+.4f} | {verdict} |")
  if not lines:
    return ""
  head = (f"| FAME vs SASRec | seeds | valid NDCG@10 diff | {metric} | diff | beyond seed spread? |\n"
          "|---|---|---|---|---|---|")
  return head + "\n" + "\n".join(lines)



def final_table(study_dir: str) -> str:
  """Mean ± std over seeds of every metric, best epoch and wall time."""
  groups = _groups(study_dir)
  if not groups:
    return ""
  keys = [f"test/{m}@{k}" for m in ("HR", "NDCG") for k in (5, 10, 20)]
  lines = ["| model | changes | seeds | " + " | ".join(k.replace("test/", "test ") for k in keys) +
           " | valid NDCG@10 | best epoch | train s |",
           "|" + "---|" * (len(keys) + 6)]
  for name, runs in groups.items():
    res = [r["results"] for r in runs]
    cells = [_fmt([r[k] for r in res]) for k in keys]
    lines.append(f"| {name} | {_changes(runs[0]['command'])} | {len(runs)} | " + " | ".join(cells) +
                 f" | {_fmt([r['valid/NDCG@10'] for r in res])} | "
                 f"{', '.join(str(r['best_epoch']) for r in res)} | "
                 f"{', '.join('%.0f' % r['train_seconds'] for r in res)} |")
  return "\n".join(lines)



def routing_table(analysis_dir: str) -> str:
  """One row per `<run>_valid_routing.json` (scripts/export_routing.sh): how
  much the gate and the expert routers route, and what each head gives alone."""
  rows = []
  for path in sorted(glob.glob(os.path.join(analysis_dir, "*_routing.json"))):
    with open(path) as f:
      a = json.load(f)
    rt, split = a["routing"], a["split"]
    name = os.path.basename(path)[:-len("_routing.json")]
    heads = " / ".join(f"{hm['NDCG@10']:.4f}" for hm in a["head_metrics"].values()) or "-"
    router = " / ".join(f"{v:.3f}" for v in rt["router_entropy_mean"])
    if "gate_entropy_mean" in rt and rt.get("share_top_gate_tied", 0.0) == 1.0:
      # A fixed (uniform) gate: no user has a top-gate head.
      gate = f"uniform, {rt['gate_entropy_mean']:.3f}"
      share = own = "- (all tied)"
    elif "gate_entropy_mean" in rt:
      gate = f"{rt['gate_entropy_mean']:.3f} (max {rt['gate_entropy_max']:.3f})"
      share = " / ".join(f"{v:.2f}" for v in rt["top_gate_share"])
      own = " / ".join(f"{r['own_head_HR@10']:.3f} vs {r['other_heads_best_HR@10']:.3f}"
                       for r in rt["by_top_gate_head"])
    else:
      gate = share = own = "-"
    rows.append(f"| {name} | {a['metrics'][f'{split}/NDCG@10']:.4f} | {heads} | {gate} | {share} | {own} | "
                f"{router} (max {rt['router_entropy_max']:.3f}) |")
  if not rows:
    return ""
  head = ("| run | NDCG@10 fused | NDCG@10 of each head alone | gate entropy | users per top-gate head | "
          "HR@10 of the top-gate head alone vs the other head, on its users | router entropy per head |\n"
          "|---|---|---|---|---|---|---|")
  return head + "\n" + "\n".join(rows)


def _read_jsonl(path: str) -> list[dict]:
  """The JSON objects of a JSON-lines file (blank lines skipped); a bad line stops with file and line."""
  out = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise SystemExit(f"{path}:{n}: not JSON ({e})") from e
  return out


def fit_table(analysis_dir: str) -> str:
  """One row per line of `fit_curves.jsonl` (scripts/fit_curves.py): the first
  epoch at which each run's training loss reached each level, and its
  validation NDCG@10 there (same loss, different NDCG = generalisation; same
  NDCG, later epoch = slower fit)."""
  path = os.path.join(analysis_dir, "fit_curves.jsonl")
  if not os.path.exists(path):
    return ""
  runs = _read_jsonl(path)
  levels = list(dict.fromkeys(k for r in runs for k in r["at_loss"]))
  rows = []
  for r in runs:
    cells = []
    for k in levels:
      hit = r["at_loss"].get(k)
      cells.append(f"ep {hit[0]}: {hit[1]:.4f}" if hit else "not reached")
    rows.append(f"| {os.path.relpath(r['run'], 'results')} | {r['best_epoch']} of {r['epochs_run']} | "
                f"{r['best_valid']:.4f} | {r['loss_at_best']:.3f} | " + " | ".join(cells) + " |")
  head = ("| run | best epoch | best valid NDCG@10 | training loss there | " +
          " | ".join(f"training loss <= {k}: first epoch, valid NDCG@10" for k in levels) + " |\n" +
          "|" + "---|" * (4 + len(levels)))
  return head + "\n" + "\n".join(rows)


def score_scale_table(analysis_dir: str) -> str:
  """One row per line of `score_scale.jsonl` (scripts/score_scale.py): the
  scale of a trained model's scores and the temperature that would fit best."""
  path = os.path.join(analysis_dir, "score_scale.jsonl")
  if not os.path.exists(path):
    return ""
  rows = []
  for r in _read_jsonl(path):
    rows.append(f"| {os.path.relpath(r['run'], 'results')} | {r['valid/NDCG@10']:.4f} | {r['u_norm']:.2f} | "
                f"{r['item_norm']:.3f} | {r['score_std']:.2f} | {r['ce']:.4f} | {r['best_t']:.3f} | "
                f"{r['ce_at_best_t']:.4f} |")
  head = ("| run (validation users, best checkpoint) | NDCG@10 | mean norm of u | mean norm of item emb | "
          "score std over items | target CE | CE-optimal score factor t | CE at t |\n"
          "|---|---|---|---|---|---|---|---|")
  return head + "\n" + "\n".join(rows)


def buckets_table(analysis_dir: str) -> str:
  """One row per run of each `length_buckets*.json` / `popularity_buckets*.json`
  (scripts/length_buckets.py, scripts/popularity_buckets.py): NDCG@10 by the
  user's history length or by the training count of the user's target."""
  parts = []
  for kind, key, label in (("length_buckets", "history", "history length"),
                           ("popularity_buckets", "target_train_count", "training count of the target")):
    for path in sorted(glob.glob(os.path.join(analysis_dir, f"{kind}*.json"))):
      with open(path) as f:
        a = json.load(f)
      runs = list(a["runs"].items())
      if not runs:
        continue
      cols = [b[key] for b in runs[0][1]["buckets"]]
      users = [str(b["users"]) for b in runs[0][1]["buckets"]]
      pop = kind == "popularity_buckets"
      head = (f"`{os.path.basename(path)}`, NDCG@10 by {label} (users per bucket: {', '.join(users)})\n\n"
              f"| run | checkpoint's {runs[0][1]['split']} NDCG@10 | " + " | ".join(cols)
              + (" | mean / median training count of its top-10 items |" if pop else " |") + "\n"
              + "|---" * (len(cols) + 2 + pop) + "|")
      rows = []
      for name, r in runs:
        if [b[key] for b in r["buckets"]] != cols:
          raise SystemExit(f"{path}: run {name} has different buckets from {runs[0][0]}")
        vals = " | ".join("-" if b["NDCG@10"] is None else f"{b['NDCG@10']:.4f}" for b in r["buckets"])
        extra = (f" | {r['top10_mean_train_count']:.0f} / {r['top10_median_train_count']:.0f}" if pop else "")
        rows.append(f"| {name} | {r['metrics'][r['split'] + '/NDCG@10']:.4f} | {vals}{extra} |")
      parts.append(head + "\n" + "\n".join(rows))
  return "\n\n".join(parts)


def analysis_tables(analysis_dir: str) -> str:
  """Every table of a results/<dataset>/analysis folder, those with files only."""
  return "\n\n".join(t for t in (routing_table(analysis_dir), score_scale_table(analysis_dir),
                                  buckets_table(analysis_dir), fit_table(analysis_dir)) if t)


# Config keys that do not change what a run learns: seeds (runs are grouped
# over them), logging, checkpoint housekeeping, caches, and the loss and scoring
# implementations (chunked and dense compute the same loss, tests/test_losses.py).
_NEUTRAL = re.compile(
    r"^(train\.(seed|progress|log_every_steps|log_step_losses|keep_checkpoints|stop_after_epoch|loss_impl"
    r"|loss_chunk_items)|eval\.batch_size"
    r"|pretrain\.(text_cache_dir|checkpoint_every_steps|encode_batch_size))$")
# The models the README compares and the config file each is trained with;
# SASRec+text (:func:`dataset_configs`) is added where FAME+ has a config.
_DATASET_CONFIGS = (("SASRec", "configs/sasrec.py:{ds}"), ("FAME", "configs/{ds}.py"),
                    ("FAME+", "configs/{ds}_text.py"))
def current_config(spec: str) -> dict:
  """The settings a config file holds now, e.g. `configs/sasrec.py:beauty`, as a plain dict."""
  if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
  path, _, arg = spec.partition(":")
  module = importlib.import_module(path[:-3].replace("/", "."))
  cfg = module.get_config(arg) if arg else module.get_config()
  return json.loads(json.dumps(cfg.to_dict()))


# Keys the model never reads in some settings (fame_jax/models/fame.py): the
# facet-head keys when the last block is a standard one (SASRec), the
# all-layers MoE switch with one expert, every stage-1 key without text
# pre-training, and W_f's init with it (the hand-off overwrites W_f with the
# selectors).
_FACET_HEAD_KEYS = ("facet_item_proj", "facet_proj_init", "gate")


def _inert(current: dict) -> set[str]:
  model, out = current["model"], set()
  if not model["facet_heads"]:
    out |= {f"model.{k}" for k in _FACET_HEAD_KEYS}
  if model["num_experts"] == 1:
    out.add("model.moe_all_layers")
  if current["pretrain"]["enabled"]:
    out.add("model.facet_proj_init")
  else:
    out |= {f"pretrain.{k}" for k in current["pretrain"] if k != "enabled"}
  return out


def _setting_differences(stored: dict, current: dict) -> list[str]:
  """``key=value (config: value)`` for each setting of a stored run that the config does not hold.

  Deleted options at their no-op value (or unread, without facet heads) are no
  difference (``config_check.with_added_defaults``); at another value the run
  cannot be rebuilt by today's code, and says so.
  """
  # Both sides get the keys added since (a config written by hand may lack them too).
  diffs = config_check.config_differences(
      config_check.with_added_defaults(stored, keep_deleted=True),
      config_check.with_added_defaults(current, keep_deleted=True))
  inert = _inert(current)
  out = []
  for k, a, b in diffs:
    if _NEUTRAL.match(k) or k in inert:
      continue
    if b is None and k in options.DELETED:
      out.append(f"{k}={a!r} (an option since deleted)")
    else:
      out.append(f"{k}={a!r} (config: {b!r})")
  return out


# SASRec given the same text pre-training as FAME+ (the stage-1 table as its
# item embeddings): the baseline that separates what the text brings from what
# the facet heads bring. Its row appears only where such runs exist.
_SASREC_TEXT = "SASRec+text"
_OPTIONAL_ROWS = (_SASREC_TEXT,)
MODEL_ORDER = ("SASRec", "FAME", _SASREC_TEXT, "FAME+")


def dataset_configs(dataset: str) -> dict[str, tuple[str, dict]]:
  """The current settings of the dataset configs that exist for `dataset`, and
  SASRec+text, `configs/sasrec.py:<dataset>_text` (FAME+'s config, text
  pre-training and training settings included, with the plain last block)."""
  out = {}
  for label, pattern in _DATASET_CONFIGS:
    spec = pattern.format(ds=dataset)
    if os.path.exists(os.path.join(ROOT, spec.partition(":")[0])):
      out[label] = (spec, current_config(spec))
  if "SASRec" in out and "FAME+" in out:
    spec = f"configs/sasrec.py:{dataset}_text"
    out[_SASREC_TEXT] = (spec, current_config(spec))
  return out


def committed_runs(run_root: str, configs: dict[str, tuple[str, dict]]) -> dict[str, dict]:
  """The runs made with exactly the settings each config holds now.

  A run matches a config when its stored config.json differs from the
  config's current settings only in `_NEUTRAL` keys, keys the model does not
  read there (`_inert`), or removed options at the value that stayed. The
  matching runs of every group are pooled over seeds (one run per seed, the
  first folder in name order).

  Args:
    run_root: results/<dataset>, holding one folder per run.
    configs: model label -> (config spec, its current settings), as
      :func:`dataset_configs` gives.

  Returns:
    label -> ``{"spec", "names" (the run groups), "runs" (folder names),
    "results" (their results.json, by seed)}``; a label without runs gets
    ``"results": []`` and ``"closest": (folder, differences)``.
  """
  stored = {}
  for d in _run_dirs(run_root):
    if os.path.isfile(os.path.join(d, "config.json")):
      with open(os.path.join(d, "config.json")) as f:
        stored[os.path.basename(d)] = json.load(f)
  out = {}
  for label, (spec, current) in configs.items():
    by_seed: dict[int, tuple[str, dict]] = {}
    closest = None
    for name, cfg in stored.items():
      diffs = _setting_differences(cfg, current)
      if not diffs:
        seed = cfg.get("train", {}).get("seed", 0)
        by_seed.setdefault(seed, (name, _load(os.path.join(run_root, name))["results"]))
      elif closest is None or len(diffs) < len(closest[1]):
        closest = (name, diffs)
    picked = [v for _, v in sorted(by_seed.items())]
    out[label] = {"spec": spec, "runs": [n for n, _ in picked], "results": [r for _, r in picked],
                  "names": sorted({re.sub(r"_seed\d+$", "", n) for n, _ in picked}),
                  "closest": None if picked else closest}
  return out


def chosen_table(run_root: str, configs: dict[str, tuple[str, dict]]) -> str:
  """The committed configs' runs (:func:`committed_runs`) with every metric.

  Where no run matches, the closest run and its differences are shown (rows
  in `_OPTIONAL_ROWS` are left out instead). FAME and FAME+ are then compared
  with SASRec, and FAME+ with SASRec+text, on test NDCG@10 (beyond the seed
  spread = every seed above every seed of the baseline)."""
  if not _run_dirs(run_root):
    return ""
  picked = committed_runs(run_root, configs)
  lines = ["| model | config | runs with its current settings | seeds | valid NDCG@10 | "
           "test HR@10 | test NDCG@10 | best epoch |", "|---|---|---|---|---|---|---|---|"]
  for label in sorted(picked, key=MODEL_ORDER.index):
    p = picked[label]
    res = p["results"]
    if not res:
      if label in _OPTIONAL_ROWS:  # A baseline shown only where it was run.
        continue
      c = p["closest"]
      hint = f"none; closest `{c[0]}` differs in {', '.join(c[1])}" if c else "none"
      lines.append(f"| {label} | `{p['spec']}` | {hint} | 0 | | | | |")
      continue
    lines.append(f"| {label} | `{p['spec']}` | {', '.join(p['names'])} | {len(res)} | "
                 f"{_fmt([r['valid/NDCG@10'] for r in res])} | {_fmt([r['test/HR@10'] for r in res])} | "
                 f"{_fmt([r['test/NDCG@10'] for r in res])} | "
                 f"{', '.join(str(r['best_epoch']) for r in res)} |")
  verdicts = []
  for label, base_label in (("FAME", "SASRec"), ("FAME+", "SASRec"), ("FAME+", _SASREC_TEXT)):
    if not picked.get(base_label, {}).get("results") or not picked.get(label, {}).get("results"):
      continue
    a = [r["test/NDCG@10"] for r in picked[label]["results"]]
    b = [r["test/NDCG@10"] for r in picked[base_label]["results"]]
    verdict = {"n/a": "needs >= 2 seeds each", "fame": "FAME above beyond the seed spread",
               "sasrec": "SASRec above beyond the seed spread",
               "overlap": "seed ranges overlap"}[_spread(a, b)]
    verdicts.append(f"{label} vs {base_label} on test NDCG@10: {np.mean(a) - np.mean(b):+.4f} "
                    f"({len(a)} vs {len(b)} seeds; {verdict}).")
  return "\n".join(lines) + ("\n\n" + " ".join(verdicts) if verdicts else "")


# ---------------------------------------------------------------- README tables

# Published full-ranking numbers beside the row they compare with: label -> (source and data,
# NDCG@10, HR@10). Beauty: docs/protocol.md §8 (the same S3-Rec file and protocol). ML-1M:
# gSASRec (asash/gSASRec-pytorch README) on the SASRec repository's 3,416-item file, which is
# configs/ml1m.py's file; HSTU (meta-recsys/generative-recommenders README) preprocesses the raw
# ratings itself (3,706 items), so its file differs from ours. None are known for Sports.
REFERENCES = {
    ("beauty", "SASRec"): ("S3-Rec's SASRec, one sampled negative; same file", 0.0318, 0.0605),
    ("beauty", "FAME"): ("BSARec, cross-entropy; same file", 0.0611, 0.1008),
    ("ml1m", "SASRec"): ("gSASRec, 256 negatives; same 3,416-item file", 0.1726, 0.3003),
    ("ml1m", "FAME"): ("HSTU-large; its own 3,706-item preprocessing", 0.1893, 0.3294),
}
OTHER_REFERENCES = (("ICLRec", 0.0403, 0.0744),)


def readme_results_table(picked: dict[str, dict[str, dict]], docs: str = "docs/") -> str:
  """Test NDCG@10 and HR@10 of the committed configs per dataset, beside the public numbers.

  Args:
    picked: dataset -> :func:`committed_runs` of its configs.
    docs: the path from the Markdown file that shows the table to docs/
      (``"docs/"`` in the README, ``""`` in docs/results.md), for its links.
  """
  lines = ["| dataset | model | config | seeds | test NDCG@10 | test HR@10 | "
           "published full-ranking reference: NDCG@10 / HR@10 |", "|---|---|---|---|---|---|---|"]
  for ds, label in DATASETS.items():
    for model in MODEL_ORDER:
      p = picked.get(ds, {}).get(model)
      ref = REFERENCES.get((ds, model))
      ref_text = f"{ref[1]:.4f} / {ref[2]:.4f} ({ref[0]})" if ref else "-"
      if p is None or not p["results"]:
        spec = f"`{p['spec']}`" if p else "-"
        lines.append(f"| {label} | {model} | {spec} | 0 (not run) | - | - | {ref_text} |")
        continue
      res = p["results"]
      lines.append(f"| {label} | {model} | `{p['spec']}` | {len(res)} | "
                   f"{_fmt([r['test/NDCG@10'] for r in res])} | {_fmt([r['test/HR@10'] for r in res])} | "
                   f"{ref_text} |")
  seeds = sorted({len(p["results"]) for d in picked.values() for p in d.values() if p["results"]})
  others = "; ".join(f"{n} {a:.4f} / {b:.4f}" for n, a, b in OTHER_REFERENCES)
  note = (f"Mean ± {STD_NAME} over {' or '.join(map(str, seeds))} seeds, test split, at the epoch of "
          f"best validation NDCG@10. Protocol ([protocol §6]({docs}protocol.md#s6), "
          f"[§7]({docs}protocol.md#s7)): leave-one-out split (last item "
          "test, second-to-last validation), full ranking over every item with the user's history "
          "masked. SASRec+text is SASRec given FAME+'s text pre-training. The Beauty references "
          f"([protocol §8]({docs}protocol.md#s8)) are on the same file (S3-Rec's) with the same protocol; "
          f"another published Beauty number there: {others}. The ML-1M references are the published "
          "full-ranking results of gSASRec (on our 3,416-item file) and HSTU-large (on its own "
          "preprocessing of the raw ratings, 3,706 items; not the same file). None are known for Sports. "
          f"The run folders behind each row: [results]({docs}results.md).")
  return "\n".join(lines) + "\n\n" + note


# ---------------------------------------------------------------- benchmarks

BENCH_FILES = ("train_throughput", "eval_speed", "validation_speed", "scale", "read_tabular",
               "recommend_speed", "serve_load")


def _device(line: dict) -> str:
  """``"NVIDIA H200"`` or ``"CPU, 2 cores"``; lines without a device ran on the development CPU."""
  r = line["result"]
  dev = re.sub(r"^\d+ x ", "", str(r.get("device", "cpu")))
  if dev.lower() == "cpu":
    return f"CPU, {r['cpu_count']} cores" if "cpu_count" in r else "CPU"
  return dev


def _date(line: dict) -> str:
  return str(line.get("when", ""))[:10]


def _model(line: dict) -> str:
  """The measured model without the switches listed after the batch size.

  A line whose label was wrong carries the right one as ``model_measured``
  (and the story as ``correction``)."""
  label = line.get("model_measured") or line["result"].get("model", "")
  m = re.match(r"^(.*?batch=\d+)", label)
  return m.group(1) if m else label


def _bench_rows(name: str, line: dict) -> list[tuple[str, str]]:
  """(setting, figure) rows of one benchmark line."""
  r = line["result"]
  if name == "train_throughput":
    parts = []
    for key, label in (("packing_on", "packed"), ("packing_off", "unpacked")):
      if key in r:
        parts.append(f"{r[key]['seconds_per_epoch']:.2f} s/epoch {label} "
                     f"({r[key]['targets_per_second']:,.0f} targets/s)")
    setting = f"Beauty training epoch, {_model(line)}, {r.get('loss_impl', 'dense')} loss"
    if "model_source" in r:
      setting += f" ({r['model_source']})"
    if "correction" in line:
      setting += " (label corrected, see the note in results/bench/train_throughput.jsonl)"
    return [(setting, "; ".join(parts))]
  if name == "eval_speed":
    return [(f"full-ranking evaluation, {r['users']:,} users x {r['items']:,} items (Beauty)",
             f"{r['wall_seconds']:.3f} s")]
  if name == "validation_speed":
    walls = r["wall_seconds"]
    # The first lines predate the --config flag: --sasrec meant configs/sasrec.py:beauty.
    what = r.get("config") or ("configs/sasrec.py:beauty" if "--sasrec" in line["command"] else "?")
    return [(f"validation of a trained run ({what}), {r['users']:,} users x {r['items']:,} items",
             f"{min(walls[1:]):.2f} s (first call {walls[0]:.2f} s, with compilation)")]
  if name == "scale":
    out = []
    for c in r["cases"]:
      setting = (f"synthetic `{c['case']}`: {c['users']:,} users, {c['items']:,} items, L {c['max_len']}, "
                 f"{c['loss_impl']} loss")
      figure = (f"{c['seconds_per_epoch_estimate']:,.1f} s/epoch (estimate), all-user evaluation "
                f"{c['eval_seconds_all_users_estimate']:,.1f} s")
      if "shard_item_table" in c:
        setting += (f", {c['device']} devices, item table "
                    f"{'row-sharded' if c['shard_item_table'] else 'replicated'}, batch {c['batch_size']}")
        figure += f"; state on device 0 {c['state_mb_device0']:,.1f} MB, process peak {c['peak_rss_mb']:,.0f} MB"
        if c.get("steps_timed", 2) < 2:
          figure += f" ({c['steps_timed']} step timed)"
      out.append((setting, figure))
    return out
  if name == "read_tabular":
    setting = (f"read + preprocess a {r['rows'] / 1e6:.0f} M-row CSV of ML-20M's shape ({r['ids']} ids, "
               f"dedup {r['dedup']}, k-core {r['kcore']})")
    figure = f"{r['seconds']:.1f} s ({r['rows_per_second'] / 1e6:.1f} M rows/s)"
    if "baseline_seconds" in r:
      figure += (f"; csv-module reader on the first {r['baseline_rows'] / 1e6:.0f} M rows "
                 f"{r['baseline_seconds']:.1f} s vs {r['ours_seconds_on_baseline_rows']:.2f} s")
    return [(setting, figure)]
  if name == "recommend_speed":
    return [(f"top-{r['k']} for all {r['users']:,} Beauty users ({r['model']}), after compile",
             f"{r['seconds']:.2f} s ({r['users_per_second']:,} users/s; compile {r['compile_seconds']:.1f} s)")]
  if name == "serve_load":
    return [(f"serve.py, {r['requests']:,} requests from {r['clients']} clients on 127.0.0.1 ({r['model']})",
             f"{r['requests_per_second']:.0f} requests/s, p50 {r['latency_ms_p50']:.1f} ms, "
             f"p99 {r['latency_ms_p99']:.1f} ms, {r['failed']} failed")]
  raise ValueError(f"unknown benchmark {name!r}")


def read_bench(bench_dir: str) -> dict[str, list[dict]]:
  """The lines of each ``results/bench/<name>.jsonl`` (a bad line stops with file and line)."""
  out = {}
  for name in BENCH_FILES:
    path = os.path.join(bench_dir, f"{name}.jsonl")
    if not os.path.exists(path):
      continue
    lines = _read_jsonl(path)
    # read_tabular writes flat lines: the figures beside "command" and "when".
    lines = [l if "result" in l else {"command": l.get("command"), "when": l.get("when"), "result": l}
             for l in lines]
    for n, line in enumerate(lines, 1):
      for key in ("command", "when", "result"):
        if key not in line:
          raise SystemExit(f"{path}: line {n} lacks {key!r}")
    out[name] = lines
  return out


def _bench_key(name: str, line: dict) -> tuple:
  """Lines with the same key measure the same thing; the README keeps the latest."""
  r = line["result"]
  if name == "train_throughput":
    return (_device(line), _model(line), r.get("loss_impl", "dense"))
  if name == "validation_speed":
    return (_device(line), r.get("config", ""), r["users"])
  if name == "scale":
    return (_device(line), r.get("devices", 1), r.get("shard_item_table", False),
            tuple(c["case"] for c in r["cases"]))
  if name == "read_tabular":
    return (_device(line), r["ids"], r["dedup"], r["kcore"], r["rows"])
  return (_device(line),)


def readme_bench_table(bench: dict[str, list[dict]], docs: str = "docs/") -> str:
  """The latest line of each benchmark per device and setting: figure, device, date.

  Of a train_throughput setting, the packed and unpacked figures may come from
  different lines (each the latest that measured it)."""
  lines = ["| benchmark | setting | figure | device | date |", "|---|---|---|---|---|"]
  for name, rows in bench.items():
    latest: dict[tuple, dict] = {}
    for line in sorted(rows, key=lambda l: l["when"]):  # Stable: a later line wins a tie.
      key = _bench_key(name, line)
      if name == "train_throughput" and key in latest:
        merged = dict(latest[key], **line)
        merged["result"] = dict(latest[key]["result"], **line["result"])
        line = merged
      latest[key] = line
    for line in latest.values():
      for setting, figure in _bench_rows(name, line):
        lines.append(f"| {name} | {setting} | {figure} | {_device(line)} | {_date(line)} |")
  return "\n".join(lines) + ("\n\nThe commands, machine load and every earlier measurement "
                             f"(results/bench/*.jsonl): [results]({docs}results.md#benchmarks).")


def bench_tables(bench: dict[str, list[dict]]) -> str:
  """Every benchmark line: when, device, command, figure and the note stored with it."""
  parts = []
  for name, rows in bench.items():
    lines = [f"### {name} (`results/bench/{name}.jsonl`)", "",
             "| when | device | command | setting | figure | note |", "|---|---|---|---|---|---|"]
    for line in rows:
      note = "; ".join(str(line[k]) for k in ("machine_load", "code", "correction") if k in line)
      note = note.replace("|", "/")
      for setting, figure in _bench_rows(name, line):
        cmd = line["command"].replace("|", "\\|")
        lines.append(f"| {line['when']} | {_device(line)} | `{cmd}` | {setting} | {figure} | {note} |")
    parts.append("\n".join(lines))
  return "\n\n".join(parts)


# ---------------------------------------------------------------- the documents

HEADER = ("# Results\n\n"
          "<!-- Generated by `python scripts/make_tables.py` (fame_jax/analysis/make_tables.py) from "
          "results/ and configs/. Do not edit by hand: change results/ or the generator and rerun it; "
          "tests/test_make_tables.py fails when this file is stale. -->\n\n"
          "Generated by `python scripts/make_tables.py` from `results/`; do not edit by hand.\n"
          f"Mean ± std over seeds: the {STD_NAME}. Test numbers are at the epoch of best validation "
          "NDCG@10; variants were chosen on validation only.\n")


def generate(root: str = ROOT) -> dict[str, str]:
  """Everything make_tables writes, from ``root``'s results/ and configs/.

  Returns:
    ``{"docs/results.md": text, "results-table": block, "bench-table": block}``.
  """
  results = os.path.join(root, "results")
  picked, sections = {}, []
  for ds in DATASETS:
    run_root = os.path.join(results, ds)
    if not os.path.isdir(run_root):
      continue
    configs = dataset_configs(ds) if os.path.exists(os.path.join(root, "configs", f"{ds}.py")) else {}
    if configs:
      picked[ds] = committed_runs(run_root, configs)
    sections.append(_dataset_section(root, ds, configs))
  bench = read_bench(os.path.join(results, "bench"))
  doc = [HEADER, "## The committed configs\n", readme_results_table(picked, docs="") + "\n",
         "## Benchmarks\n", readme_bench_table(bench, docs="") + "\n", bench_tables(bench) + "\n",
         *sections]
  return {RESULTS_MD: "\n".join(doc).rstrip("\n") + "\n", "results-table": readme_results_table(picked),
          "bench-table": readme_bench_table(bench)}


def _dataset_section(root: str, ds: str, configs: dict) -> str:
  run_root = os.path.join(root, "results", ds)
  rel = os.path.relpath(run_root, root)
  out = [f"## {DATASETS[ds]}\n"]
  if configs:
    table = chosen_table(run_root, configs)
    if table:
      out.append(f"### {DATASETS[ds]}: the dataset configs as committed (runs in `{rel}`)\n\n{table}\n")
  table = final_table(run_root)
  if table:
    out.append(f"### {DATASETS[ds]}: every run (`{rel}`)\n\n{table}\n")
    comp = comparison_table(run_root)
    if comp:
      out.append(f"{comp}\n")
  gpu = os.path.join(run_root, GPU_DIR)
  table = final_table(gpu) if os.path.isdir(gpu) else ""
  if table:
    out.append(f"### {DATASETS[ds]}: runs on an H200 (`{rel}/{GPU_DIR}`)\n\n{table}\n")
  analysis = os.path.join(run_root, ANALYSIS_DIR)
  table = analysis_tables(analysis) if os.path.isdir(analysis) else ""
  if table:
    out.append(f"### {DATASETS[ds]}: inside trained models, validation split (`{rel}/{ANALYSIS_DIR}`)"
               f"\n\n{table}\n")
  return "\n".join(out)


def _markers(block: str) -> tuple[str, str]:
  return f"<!-- {block}:begin -->", f"<!-- {block}:end -->"


def fill_readme(text: str, blocks: dict[str, str]) -> str:
  """``text`` with each README block's markers holding ``blocks[name]``; blocks without markers are left out."""
  for name in README_BLOCKS:
    begin, end = _markers(name)
    if begin not in text or end not in text:
      continue
    pre, rest = text.split(begin, 1)
    _, post = rest.split(end, 1)
    text = f"{pre}{begin}\n{blocks[name]}\n{end}{post}"
  return text


def readme_has_markers(text: str) -> bool:
  return all(m in text for name in README_BLOCKS for m in _markers(name))


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--print", action="store_true", help="print docs/results.md instead of writing files")
  ap.add_argument("--check", action="store_true",
                  help="write nothing; exit 1 naming the files that differ from what results/ gives")
  args = ap.parse_args(argv)
  out = generate()
  if args.print:
    print(out[RESULTS_MD], end="")
    return
  files = {RESULTS_MD: out[RESULTS_MD]}
  readme_path = os.path.join(ROOT, README)
  with open(readme_path) as f:
    readme = f.read()
  if readme_has_markers(readme):
    files[README] = fill_readme(readme, out)
  else:
    print(f"{README}: no {' / '.join(m for n in README_BLOCKS for m in _markers(n))} markers; "
          "its tables are not written", file=sys.stderr)
  stale = []
  for rel, text in files.items():
    path = os.path.join(ROOT, rel)
    old = open(path).read() if os.path.exists(path) else None
    if old == text:
      continue
    stale.append(rel)
    if not args.check:
      os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
      with open(path, "w") as f:
        f.write(text)
  if args.check and stale:
    raise SystemExit(f"out of date: {', '.join(stale)} (run python scripts/make_tables.py)")
  print(("would write" if args.check else "wrote") + f": {', '.join(stale) or 'nothing (up to date)'}")
