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
    args = ["text pre-training"] + [a for a in args if "pretrain.enabled" not in a]
  if re.search(r"--config configs/sasrec\.py", command):
    args = ["SASRec (E 1, no facet heads)"] + args
  return ", ".join(a.replace("--config.", "") for a in args) or "SPEC defaults"


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
_MATCHED = {"pscale4": "sasrec_oscale2", "d128_pscale2": "sasrec_d128"}


def comparison_table(study_dir: str, metric: str = "test/NDCG@10") -> str:
  """Each FAME group against the SASRec group of the same suffix (fame_text_d128
  vs sasrec_d128; suffixes in `_MATCHED` map to another SASRec group) and, for a FAME variant with a suffix, also against the plain
  `sasrec` group (the SASRec the study tuned, whose own variants did not beat
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
    for base in dict.fromkeys((matched, "sasrec")):
      if base in groups:
        pairs.append((name, base))
  lines = []
  for name, base in pairs:
    runs = groups[name]
    a = [r["results"][metric] for r in runs]
    b = [r["results"][metric] for r in groups[base]]
    va = [r["results"]["valid/NDCG@10"] for r in runs]
    vb = [r["results"]["valid/NDCG@10"] for r in groups[base]]
    if len(a) < 2 or len(b) < 2:
      verdict = "n/a (needs >= 2 seeds each)"
    elif min(a) > max(b):
      verdict = "yes: FAME above"
    elif max(a) < min(b):
      verdict = "yes: SASRec above"
    else:
      verdict = "no (seed ranges overlap)"
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
  """Runs interrupted by the end of a session: how far they got (validation only, no test)."""
  lines = []
  for d in sorted(glob.glob(os.path.join(study_dir, "*"))):
    path = os.path.join(d, "metrics.jsonl")
    if not os.path.exists(path):
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
    if "gate_entropy_mean" in rt:
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


def score_scale_table(analysis_dir: str) -> str:
  """One row per line of `score_scale.jsonl` (scripts/score_scale.py): the
  scale of a trained model's scores and the temperature that would fit best."""
  path = os.path.join(analysis_dir, "score_scale.jsonl")
  if not os.path.exists(path):
    return ""
  rows = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        r = json.loads(line)
      except json.JSONDecodeError as e:
        raise SystemExit(f"{path}:{n}: not JSON ({e})") from e
      rows.append(f"| {os.path.relpath(r['run'], 'results')} | {r['valid/NDCG@10']:.4f} | {r['u_norm']:.2f} | "
                  f"{r['item_norm']:.3f} | {r['score_std']:.2f} | {r['ce']:.4f} | {r['best_t']:.3f} | "
                  f"{r['ce_at_best_t']:.4f} |")
  head = ("| run (validation users, best checkpoint) | NDCG@10 | mean norm of u | mean norm of item emb | "
          "score std over items | target CE | CE-optimal score factor t | CE at t |\n"
          "|---|---|---|---|---|---|---|---|")
  return head + "\n" + "\n".join(rows)


def analysis_tables(analysis_dir: str) -> str:
  return "\n\n".join(t for t in (routing_table(analysis_dir), score_scale_table(analysis_dir)) if t)


# Study folders that are not training studies: their table and heading.
_SPECIAL_STUDIES = {
    "analysis": (analysis_tables, "inside trained models, validation split"),
    "in_progress": (in_progress_table, "runs interrupted by the end of a session"),
}


def all_tables() -> str:
  out = []
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
