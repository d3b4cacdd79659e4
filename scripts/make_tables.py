"""Regenerates the README results tables from results/<dataset>/<study>/<run>/.

  .venv/bin/python scripts/make_tables.py            # rewrites README.md in place
  .venv/bin/python scripts/make_tables.py --print    # prints the tables only

Every run directory holds results.json, config.json, metrics.jsonl and
command.txt (written by scripts/queue_worker.sh). Runs named `<name>_seed<k>`
are grouped and reported as mean ± std over seeds. Probe studies (short runs)
show validation NDCG@10 per evaluated epoch and no test numbers: variants are
chosen on validation only; test is reported once, for the final runs.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import shlex

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


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


def _fmt(values: list[float]) -> str:
  if len(values) == 1:
    return f"{values[0]:.4f}"
  return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


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


def _groups(study_dir: str) -> dict[str, list[dict]]:
  groups: dict[str, list[dict]] = collections.defaultdict(list)
  for d in sorted(glob.glob(os.path.join(study_dir, "*"))):
    if os.path.exists(os.path.join(d, "results.json")):
      groups[re.sub(r"_seed\d+$", "", os.path.basename(d))].append(_load(d))
  return groups


_MODEL = re.compile(r"^(fame_text|fame_selector|fame)")
# FAME groups whose SASRec counterpart has another suffix: the same initial
# score scale. With H = 2 heads, facet_proj_scale a starts u at a/2 times the
# concatenated LayerNormed heads, which SASRec's output_norm_scale a/2 matches.
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
  suffix, also against the plain `sasrec` group (the SASRec the study tuned, whose own variants did not beat
  it): difference of the seed means, and whether it is beyond the seed spread
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


def probe_table(study_dir: str) -> str:
  """Validation NDCG@10 per evaluated epoch for each variant (no test)."""
  runs = {os.path.basename(d): _load(d) for d in sorted(glob.glob(os.path.join(study_dir, "*")))
          if os.path.exists(os.path.join(d, "results.json"))}
  if not runs:
    return ""
  epochs = sorted({r["epoch"] for v in runs.values() for r in v["rows"] if "valid/NDCG@10" in r})
  head = "| variant | changes | " + " | ".join(f"valid NDCG@10 ep {e}" for e in epochs) + \
         " | best valid HR@10 | best valid NDCG@10 | s/epoch |"
  lines = [head, "|" + "---|" * (len(epochs) + 5)]
  for name, v in sorted(runs.items(), key=lambda kv: -kv[1]["results"]["valid/NDCG@10"]):
    by_epoch = {r["epoch"]: r.get("valid/NDCG@10") for r in v["rows"]}
    secs = np.median([r["train_seconds"] for r in v["rows"]])
    cells = [f"{by_epoch[e]:.4f}" if by_epoch.get(e) is not None else "" for e in epochs]
    lines.append(f"| {name} | {_changes(v['command'])} | " + " | ".join(cells) +
                 f" | {v['results']['valid/HR@10']:.4f} | {v['results']['valid/NDCG@10']:.4f} | {secs:.1f} |")
  return "\n".join(lines)


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


def in_progress_table(study_dir: str) -> str:
  """Runs interrupted by the end of a session: how far they got (validation only, no test).
  A snapshot whose run has since finished (`<name>/results.json` in another study
  of the dataset, e.g. `full/`) is left out: the finished run's row supersedes it."""
  lines = []
  for d in sorted(glob.glob(os.path.join(study_dir, "*"))):
    path = os.path.join(d, "metrics.jsonl")
    if not os.path.exists(path):
      continue
    finished = glob.glob(os.path.join(os.path.dirname(os.path.abspath(study_dir)), "*",
                                      os.path.basename(d), "results.json"))
    if finished:
      continue
    with open(path) as f:
      rows = [json.loads(l) for l in f if l.strip()]
    evals = [r for r in rows if "valid/NDCG@10" in r]
    if not evals:
      continue
    best = max(evals, key=lambda r: r["valid/NDCG@10"])
    secs = np.median([r["train_seconds"] for r in rows])
    lines.append(f"| {os.path.basename(d)} | {rows[-1]['epoch']} | {best['valid/NDCG@10']:.4f} (epoch "
                 f"{best['epoch']}) | {evals[-1]['valid/NDCG@10']:.4f} | {secs:.1f} |")
  if not lines:
    return ""
  return ("| interrupted run (no test) | epochs done | best valid NDCG@10 so far | last valid NDCG@10 "
          "| train s/epoch |\n|---|---|---|---|---|\n" + "\n".join(lines))


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


# Config keys that do not change what a run learns: seeds (runs are grouped
# over them), logging, checkpoint housekeeping, caches, and the loss and scoring
# implementations (chunked and dense compute the same loss, tests/test_losses.py).
_NEUTRAL = re.compile(
    r"^(train\.(seed|progress|log_every_steps|keep_checkpoints|stop_after_epoch|loss_impl"
    r"|loss_chunk_items)|eval\.batch_size"
    r"|pretrain\.(text_cache_dir|checkpoint_every_steps|encode_batch_size))$")
# The three models of the issue and the config file each is trained with.
_DATASET_CONFIGS = (("SASRec", "configs/sasrec.py:{ds}"), ("FAME", "configs/{ds}.py"),
                    ("FAME+", "configs/{ds}_text.py"))


def current_config(spec: str) -> dict:
  """The settings a config file holds now, e.g. `configs/sasrec.py:beauty`, as a plain dict."""
  import importlib
  import sys
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
# selectors at facet_proj_scale).
_FACET_HEAD_KEYS = ("facet_item_proj", "facet_proj_init", "facet_proj_scale", "ffn_head_inner",
                    "gate", "head_ffn", "head_mix", "head_norm", "mix", "moe_residual")


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
  from fame_jax.training import config_check
  diffs = config_check.config_differences(config_check.with_added_defaults(stored), current)
  inert = _inert(current)
  return [f"{k}={a!r} (config: {b!r})" for k, a, b in diffs
          if not _NEUTRAL.match(k) and k not in inert]


def chosen_table(full_dir: str, configs: dict[str, dict]) -> str:
  """The runs made with exactly the settings the dataset configs hold now.

  `configs` maps a model label to (config file, its current settings). A run
  matches when its stored config.json differs from them only in `_NEUTRAL`
  keys; the matching runs of every group are pooled over seeds (one run per
  seed). Where none matches, the closest group and its differences are shown,
  so a config changed without runs behind it is visible here (rows in
  `_OPTIONAL_ROWS` are left out instead). FAME and FAME+ are then compared
  with SASRec, and FAME+ with SASRec+text, on test NDCG@10 (beyond the seed
  spread = every seed above every seed of the baseline)."""
  runs = {}
  for d in sorted(glob.glob(os.path.join(full_dir, "*"))):
    if os.path.exists(os.path.join(d, "results.json")) and os.path.exists(
        os.path.join(d, "config.json")):
      with open(os.path.join(d, "config.json")) as f:
        runs[os.path.basename(d)] = json.load(f)
  if not runs:
    return ""
  lines = ["| model | config | runs with its current settings | seeds | valid NDCG@10 | "
           "test HR@10 | test NDCG@10 | best epoch |", "|---|---|---|---|---|---|---|---|"]
  picked: dict[str, list[dict]] = {}
  for label, (spec, current) in configs.items():
    by_seed: dict[int, tuple[str, dict]] = {}
    closest = None
    for name, stored in runs.items():
      diffs = _setting_differences(stored, current)
      if not diffs:
        seed = stored.get("train", {}).get("seed", 0)
        by_seed.setdefault(seed, (name, _load(os.path.join(full_dir, name))["results"]))
      elif closest is None or len(diffs) < len(closest[1]):
        closest = (name, diffs)
    if not by_seed:
      if label in _OPTIONAL_ROWS:  # A baseline shown only where it was run.
        continue
      hint = f"none; closest `{closest[0]}` differs in {', '.join(closest[1])}" if closest else "none"
      lines.append(f"| {label} | `{spec}` | {hint} | 0 | | | | |")
      continue
    names = sorted({re.sub(r"_seed\d+$", "", n) for n, _ in by_seed.values()})
    res = [r for _, (_, r) in sorted(by_seed.items())]
    picked[label] = res
    lines.append(f"| {label} | `{spec}` | {', '.join(names)} | {len(res)} | "
                 f"{_fmt([r['valid/NDCG@10'] for r in res])} | {_fmt([r['test/HR@10'] for r in res])} | "
                 f"{_fmt([r['test/NDCG@10'] for r in res])} | "
                 f"{', '.join(str(r['best_epoch']) for r in res)} |")
  verdicts = []
  for label, base_label in (("FAME", "SASRec"), ("FAME+", "SASRec"), ("FAME+", _SASREC_TEXT)):
    base = picked.get(base_label)
    if base is None or label not in picked:
      continue
    a = [r["test/NDCG@10"] for r in picked[label]]
    b = [r["test/NDCG@10"] for r in base]
    verdict = {"n/a": "needs >= 2 seeds each", "fame": "FAME above beyond the seed spread",
               "sasrec": "SASRec above beyond the seed spread",
               "overlap": "seed ranges overlap"}[_spread(a, b)]
    verdicts.append(f"{label} vs {base_label} on test NDCG@10: {np.mean(a) - np.mean(b):+.4f} "
                    f"({len(a)} vs {len(b)} seeds; {verdict}).")
  return "\n".join(lines) + ("\n\n" + " ".join(verdicts) if verdicts else "")


# SASRec given the same text pre-training as FAME+ (the stage-1 table as its
# item embeddings): the baseline that separates what the text brings from what
# the facet heads bring. Its row appears only where such runs exist.
_SASREC_TEXT = "SASRec+text"
_OPTIONAL_ROWS = (_SASREC_TEXT,)


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


def analysis_tables(analysis_dir: str) -> str:
  return "\n\n".join(t for t in (routing_table(analysis_dir), score_scale_table(analysis_dir),
                                          buckets_table(analysis_dir), fit_table(analysis_dir)) if t)


# Study folders that are not training studies: their table and heading.
_SPECIAL_STUDIES = {
    "analysis": (analysis_tables, "inside trained models, validation split"),
    "in_progress": (in_progress_table, "runs interrupted by the end of a session"),
}


def all_tables() -> str:
  out = []
  headline = []
  for dataset_dir in sorted(glob.glob(os.path.join(ROOT, "results", "*"))):
    full_dir = os.path.join(dataset_dir, "full")
    if os.path.isdir(full_dir) and os.path.exists(
        os.path.join(ROOT, "configs", os.path.basename(dataset_dir) + ".py")):
      table = chosen_table(full_dir, dataset_configs(os.path.basename(dataset_dir)))
      if table:
        headline.append(f"#### {os.path.basename(dataset_dir)} / the dataset configs as committed "
                        f"(runs in `{os.path.relpath(full_dir, ROOT)}`)\n\n{table}\n")
  out.extend(headline)
  for dataset_dir in sorted(glob.glob(os.path.join(ROOT, "results", "*"))):
    if not os.path.isdir(dataset_dir):
      continue
    dataset = os.path.basename(dataset_dir)
    for study_dir in sorted(glob.glob(os.path.join(dataset_dir, "*"))):
      if not os.path.isdir(study_dir):
        continue
      study = os.path.basename(study_dir)
      if study in _SPECIAL_STUDIES:
        table_fn, title = _SPECIAL_STUDIES[study]
        table = table_fn(study_dir)
        if table:
          rel = os.path.relpath(study_dir, ROOT)
          out.append(f"#### {dataset} / {title} (`{rel}`)\n\n{table}\n")
        continue
      table = probe_table(study_dir) if study.startswith("probe") else final_table(study_dir)
      if table:
        rel = os.path.relpath(study_dir, ROOT)
        out.append(f"#### {dataset} / {study} (`{rel}`)\n\n{table}\n")
        if not study.startswith("probe"):
          comp = comparison_table(study_dir)
          if comp:
            out.append(f"{comp}\n")
  return "\n".join(out) if out else "_No results yet._\n"


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--print", action="store_true", help="print instead of rewriting README.md")
  args = ap.parse_args()
  tables = all_tables()
  if args.print:
    print(tables)
    return
  path = os.path.join(ROOT, "README.md")
  with open(path) as f:
    text = f.read()
  if BEGIN not in text or END not in text:
    raise SystemExit(f"README.md lacks the {BEGIN} ... {END} markers")
  pre, rest = text.split(BEGIN, 1)
  _, post = rest.split(END, 1)
  with open(path, "w") as f:
    f.write(f"{pre}{BEGIN}\n{tables}\n{END}{post}")


if __name__ == "__main__":
  main()
