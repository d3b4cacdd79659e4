"""How confident is a trained model? Logit scale and temperature on validation users.

  python scripts/score_scale.py results/ml1m/sasrec_seed0 \
      results/ml1m/fame_text_seed0 [--out results/ml1m/analysis/score_scale.jsonl]

Each argument is a finished run's results directory (its ``command.txt`` names
the config, the overrides and the workdir, whose best checkpoint is loaded).
For every validation user, at the scored position, it measures the user
vector ``u`` (the model's output; ``score(v) = <u, item_emb[v]>``):

* ``u_norm``: mean ``||u||``; ``item_norm``: mean ``||item_emb[v]||`` over real items;
* ``score_std``: mean over users of the std of their scores over all items;
* ``ce``: the full-softmax cross-entropy of the validation target (the
  training loss, no history masking), and ``ce_at_best_t`` / ``best_t``: the
  same loss with every score multiplied by the temperature factor ``t`` that
  minimises it (grid ``2^(-2..4)`` in steps of ``2^0.125``). ``best_t`` well
  above 1 means the model's scores are too flat for its own ranking: the
  ranking (hence NDCG) is unchanged by ``t``, only the loss is;
* ``valid/NDCG@10``: the evaluator's metric on the same users (history masked), a check.

One JSON line per run, to stdout and (``--out``) appended to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex

import jax
import jax.numpy as jnp
import numpy as np

from fame_jax import evaluation
from fame_jax.data import stats
from fame_jax.models import FAME, score_items
from fame_jax.training import loop
from fame_jax.training import steps as steps_lib

LOG2_T = np.arange(-2.0, 4.0 + 1e-9, 0.125)  # Temperature factors 0.25 .. 16.


def parse_command(results_dir: str) -> tuple[str, list[str], str]:
  """(config, overrides, workdir) from a run's ``command.txt``."""
  path = os.path.join(results_dir, "command.txt")
  if not os.path.exists(path):
    raise SystemExit(f"{path} not found: pass a finished run's results directory")
  argv = shlex.split(open(path).read(), comments=True)
  config, workdir, overrides = None, None, []
  i = 0
  while i < len(argv):
    a = argv[i]
    if a == "--config":
      config, i = argv[i + 1], i + 2
      continue
    if a == "--workdir":
      workdir, i = argv[i + 1], i + 2
      continue
    if a.startswith("--config.") and not a.startswith("--config.train.progress"):
      overrides.append(a)
    i += 1
  if config is None or workdir is None:
    raise SystemExit(f"{path}: no --config/--workdir in {argv}")
  return config, overrides, workdir


def measure(results_dir: str, chunk: int = 256) -> dict:
  config, overrides, workdir = parse_command(results_dir)
  c = stats.load_config(config, overrides)
  dataset, split = loop.load_data(c)
  params = loop.restore_params(c, workdir, dataset.num_items)
  model = FAME(cfg=c.model, num_items=dataset.num_items)
  left_pad = c.train.examples == "prefix_last"
  ts = jnp.asarray(2.0 ** LOG2_T, jnp.float32)

  @jax.jit
  def stats_fn(params, inputs, lengths, targets, history):
    items, positions, segments, last = steps_lib.eval_model_inputs(inputs, lengths, left_pad)
    u, _ = model.apply({"params": params}, items, positions, segments, train=False)
    u = jnp.take_along_axis(u, last[:, None, None], axis=1)[:, 0]  # [B, d]
    table = params["item_emb"]["embedding"]
    scores = score_items(u, table)  # [B, N + 1], column 0 (pad) -inf.
    s = scores[:, 1:]  # Real items only.
    tgt = jnp.take_along_axis(s, (targets - 1)[:, None], axis=1)[:, 0]
    ce_t = jax.vmap(lambda t: jax.nn.logsumexp(t * s, axis=1) - t * tgt)(ts)  # [T, B]
    ranks = evaluation.compute_ranks(scores, targets, history, True)
    return {"u_norm": jnp.linalg.norm(u, axis=1), "score_std": jnp.std(s, axis=1),
            "ce_t": ce_t.T, "ranks": ranks}

  histories, targets = split.eval_examples("valid")
  targets = np.asarray(targets, np.int32)
  hist = evaluation._Histories(histories)  # pylint: disable=protected-access
  width = evaluation.next_pow2(int(hist.lens.max()))
  max_len = int(c.data.max_len)
  n = len(histories)
  got: dict[str, list] = {}
  for lo in range(0, n, chunk):
    hi = min(lo + chunk, n)
    rows, real, lengths, inputs, full = hist.padded_chunk(lo, hi, chunk, max_len, width)
    tgt = np.where(real, targets[rows], 1).astype(np.int32)
    out = stats_fn(params, jnp.asarray(inputs), jnp.asarray(lengths), jnp.asarray(tgt),
                   jnp.asarray(full))
    for k, v in out.items():
      got.setdefault(k, []).append(np.asarray(v)[:hi - lo])
  g = {k: np.concatenate(v) for k, v in got.items()}
  ce = g["ce_t"].mean(axis=0)  # [T]
  best = int(np.argmin(ce))
  one = int(np.argmin(np.abs(LOG2_T)))
  table = np.asarray(params["item_emb"]["embedding"])[1:]
  ndcg = evaluation.per_user_metrics(g["ranks"], (10,))["NDCG@10"].mean()
  return {"run": results_dir, "users": n, "u_norm": round(float(g["u_norm"].mean()), 3),
          "item_norm": round(float(np.linalg.norm(table, axis=1).mean()), 3),
          "score_std": round(float(g["score_std"].mean()), 3),
          "ce": round(float(ce[one]), 4), "best_t": round(float(2.0 ** LOG2_T[best]), 3),
          "ce_at_best_t": round(float(ce[best]), 4),
          "valid/NDCG@10": round(float(ndcg), 4)}


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("runs", nargs="+", help="finished runs' results directories")
  ap.add_argument("--out", help="append the JSON lines to this file")
  args = ap.parse_args(argv)
  for r in args.runs:
    row = measure(r)
    line = json.dumps(row)
    print(line, flush=True)
    if args.out:
      os.makedirs(os.path.dirname(args.out), exist_ok=True)
      with open(args.out, "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
  main()
