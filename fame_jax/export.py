"""Looking inside a trained FAME run: export arrays, per-head metrics, plots.

``export_run(config, workdir, out_dir)`` restores a workdir's checkpoint and
writes, for every evaluated user of one split (``config=None``: the
workdir's own ``config.json``; the data comes from the workdir's
``vocab.json`` and ``histories.npz``, see :mod:`fame_jax.workdir`):

* the gate weights ``[H]`` and each head's router weights ``[H, E]`` at the
  user's last real position (the position the evaluator scores),
* the top-20 recommendations (pad and, with ``eval.mask_history``, the user's
  history excluded exactly as the evaluator excludes them),
* per-user HR@K / NDCG@K from :func:`evaluation.compute_ranks` and
  :func:`evaluation.per_user_metrics`, so their means are the evaluator's
  numbers,
* per-head ranks: each head alone scores ``<F^h_t, x_v^h>`` (docs/protocol.md §3 without
  the gate), which says whether any single facet carries the model,

plus the item facet sub-embeddings ``x_v^h`` ``[N + 1, H, d']`` and the
raw-id maps, as ``arrays.npz`` and a ``manifest.json`` that names every
array's shape, dtype and meaning and holds the summary numbers. On the
synthetic facet world it also measures facet recovery: does each user's
top-gate head match the facet that really drives the user? PNG plots go
next to the arrays (see :mod:`fame_jax.plots`).

Memory: users are processed in chunks of ``chunk_size``; a chunk holds
``[B, N + 1]`` fused and ``[B, H, N + 1]`` per-head scores on device and only
``[B, 20]`` top items, ``[B]`` / ``[B, H]`` ranks and the gate/router rows
come back to the host. Nothing ``[U, N]`` is ever built.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fame_jax import evaluation
from fame_jax import workdir as workdir_lib
from fame_jax.models import FAME, score_items
from fame_jax.models.fame import model_settings
from fame_jax.training import loop
from fame_jax.training import steps as steps_lib
from fame_jax.training.config_check import validate_config

TOP_K = 20  # Recommendations kept per user.
ARRAYS_FILE = "arrays.npz"
MANIFEST_FILE = "manifest.json"
# Label permutations used to estimate the chance level of facet recovery.
_CHANCE_PERMUTATIONS = 20
_CHANCE_SEED = 0


# ----------------------------------------------------------------------------
# Item side.
# ----------------------------------------------------------------------------


def item_facet_embeddings(params: Any, model_cfg: ml_collections.ConfigDict) -> np.ndarray:
  """Item facet sub-embeddings ``x_v^h`` (docs/protocol.md §3).

  Args:
    params: FAME params (``item_emb/embedding [N + 1, d]`` and, with
      ``facet_item_proj="linear"``, ``fame_block/facet_proj [H, d, d']``).
    model_cfg: ``config.model``.

  Returns:
    ``[N + 1, H, d']`` float32: ``item_emb @ W_f^h`` (linear) or chunk ``h`` of
    ``item_emb`` (slice). Row 0 is the pad item.
  """
  s = model_settings(model_cfg)
  table = jnp.asarray(params["item_emb"]["embedding"])
  if s.facet_item_proj == "linear":
    x = jnp.einsum("nd,hdk->nhk", table, params["fame_block"]["facet_proj"])
  else:
    x = table.reshape(table.shape[0], s.num_heads, s.head_size)
  return np.asarray(x, np.float32)


# ----------------------------------------------------------------------------
# User side: one jitted function per chunk.
# ----------------------------------------------------------------------------


def _make_chunk_fn(model: FAME, examples: str, facet_heads: bool, mask_history: bool,
                   top_k: int):
  """Jitted ``chunk(params, item_x, inputs, lengths, targets, history) -> dict``.

  The model input is built exactly as :func:`steps.make_score_fn` builds it
  (right-padded window; ``prefix_last`` models shifted to left padding), so
  the fused scores, and hence the ranks, are the evaluator's.
  """
  left_pad = examples == "prefix_last"

  @jax.jit
  def chunk(params, item_x, inputs, lengths, targets, history):
    b = inputs.shape[0]
    items, positions, segments, last = steps_lib.eval_model_inputs(inputs, lengths, left_pad)
    u, inter = model.apply({"params": params}, items, positions, segments, train=False)

    def at_last(x):  # [B, L, ...] -> [B, ...] at each user's scored position.
      idx = last.reshape((b, 1) + (1,) * (x.ndim - 2))
      return jnp.take_along_axis(x, idx, axis=1)[:, 0]

    table = params["item_emb"]["embedding"]
    scores = score_items(at_last(u), table)  # [B, N + 1], column 0 -inf.
    out = {"ranks": evaluation.compute_ranks(scores, targets, history, mask_history),
           "router": at_last(inter["router"])}
    # Top-k candidates are the ranking's candidates: pad and (when masking)
    # history items other than the target get -inf. Scattering at the
    # history ids is [B, W] work, not a second [B, N + 1] pass.
    if mask_history:
      drop = (history > 0) & (history != targets[:, None])
      rows = jnp.arange(b)[:, None]
      scores = scores.at[rows, jnp.where(drop, history, 0)].set(-jnp.inf)
    out["top_scores"], out["top_items"] = jax.lax.top_k(scores, top_k)
    if facet_heads:
      out["gate"] = at_last(inter["gate"])
      f_last = at_last(inter["head_outputs"])  # [B, H, d']
      head_scores = jnp.einsum("bhk,nhk->hbn", f_last, item_x).at[..., 0].set(-jnp.inf)
      head_ranks = jax.vmap(lambda s: evaluation.compute_ranks(s, targets, history, mask_history))(
          head_scores)  # [H, B]
      out["head_ranks"] = head_ranks.T
    return out

  return chunk


# ----------------------------------------------------------------------------
# Facet recovery (synthetic world).
# ----------------------------------------------------------------------------


def best_assignment_accuracy(confusion: np.ndarray) -> tuple[float, np.ndarray]:
  """Accuracy of the best one-to-one head -> facet matching.

  Args:
    confusion: ``[H, F]`` counts (users whose top-gate head is ``h`` and whose
      true dominant facet is ``f``).

  Returns:
    ``(accuracy, head_to_facet)``: matched users / all users, and ``[H]`` int
    (``-1`` for heads left unmatched when ``H > F``).
  """
  from scipy.optimize import linear_sum_assignment
  confusion = np.asarray(confusion, np.float64)
  rows, cols = linear_sum_assignment(-confusion)
  mapping = np.full(confusion.shape[0], -1, np.int64)
  mapping[rows] = cols
  total = confusion.sum()
  return (float(confusion[rows, cols].sum() / total) if total else 0.0), mapping


def _confusion(heads: np.ndarray, facets: np.ndarray, num_heads: int, num_facets: int) -> np.ndarray:
  c = np.zeros((num_heads, num_facets), np.int64)
  np.add.at(c, (heads, facets), 1)
  return c


def facet_recovery(top_head: np.ndarray, true_facet: np.ndarray, num_heads: int,
                   num_facets: int) -> dict[str, Any]:
  """How well the top-gate head identifies each user's dominant facet.

  Chance is the larger of (a) the mean best-assignment accuracy after
  shuffling the users' facet labels (fixed seed), which keeps both marginals
  and so includes the optimism of choosing the best matching after the fact,
  and (b) the majority-facet share, what a gate that always picks one head
  scores once that head is matched to the commonest facet.

  Args:
    top_head: ``[U]`` int, argmax of each user's gate.
    true_facet: ``[U]`` int, the generator's dominant facet.
    num_heads: ``H``.
    num_facets: ``F``.

  Returns:
    ``accuracy``, ``chance``, ``chance_permutation``, ``chance_majority``,
    ``head_to_facet`` (list, -1 = unmatched), ``confusion`` ``[H, F]`` (list).
  """
  top_head = np.asarray(top_head, np.int64)
  true_facet = np.asarray(true_facet, np.int64)
  confusion = _confusion(top_head, true_facet, num_heads, num_facets)
  acc, mapping = best_assignment_accuracy(confusion)
  rng = np.random.default_rng(_CHANCE_SEED)
  perm_accs = [best_assignment_accuracy(_confusion(top_head, rng.permutation(true_facet),
                                                   num_heads, num_facets))[0]
               for _ in range(_CHANCE_PERMUTATIONS)]
  majority = float(np.bincount(true_facet, minlength=num_facets).max() / max(len(true_facet), 1))
  chance_perm = float(np.mean(perm_accs))
  return {
      "accuracy": acc,
      "chance": max(chance_perm, majority),
      "chance_permutation": chance_perm,
      "chance_permutation_std": float(np.std(perm_accs)),
      "chance_majority": majority,
      "chance_permutations": _CHANCE_PERMUTATIONS,
      "head_to_facet": mapping.tolist(),
      "confusion": confusion.tolist(),
      "num_users": int(len(top_head)),
  }


# ----------------------------------------------------------------------------
# Export.
# ----------------------------------------------------------------------------


def _spec(name: str, a: np.ndarray, meaning: str) -> dict[str, Any]:
  return {"name": name, "shape": list(a.shape), "dtype": str(a.dtype), "meaning": meaning}


# Gate weights closer than this count as tied (no top-gate head).
_GATE_TIE = 1e-6


def routing_summary(router: np.ndarray, gate: np.ndarray | None = None,
                    ranks: np.ndarray | None = None,
                    head_ranks: np.ndarray | None = None, k: int = 10) -> dict[str, Any]:
  """How much the gate and the routers actually route (the numbers behind the plots).

  Args:
    router: ``[U, H, E]`` router weights per user and head.
    gate: ``[U, H]`` gate weights, or None (no facet heads).
    ranks: ``[U]`` fused ranks; with ``gate`` and ``head_ranks`` it adds, per
      head, HR@k over the users whose top-gate head it is. Users whose two
      largest gate weights tie (within 1e-6; every user of a uniform gate)
      have no top-gate head: they are counted in ``share_top_gate_tied`` and
      in no head's share.
    head_ranks: ``[U, H]`` ranks of each head alone.
    k: cut-off of those HR values.

  Returns:
    A JSON-able dict. Entropies are in nats, with their maxima (``log E``,
    ``log H``: a uniform distribution): a router entropy near ``log E`` means the
    experts are mixed equally for every user, i.e. the MoE does not route.
  """
  def entropy(p, axis=-1):
    return -(p * np.log(np.clip(p, 1e-30, None))).sum(axis)

  out: dict[str, Any] = {
      "router_entropy_mean": [float(v) for v in entropy(router).mean(0)],
      "router_entropy_max": float(np.log(router.shape[-1])),
      "router_mean": router.mean(0).tolist(),
  }
  if gate is not None:
    # A user whose largest gate weight is tied (a uniform gate: every user)
    # has no top-gate head; argmax would hand all of them to head 0.
    srt = np.sort(gate, axis=1)
    tied = (srt[:, -1] - srt[:, -2] <= _GATE_TIE) if gate.shape[1] > 1 else np.zeros(len(gate), bool)
    top = np.where(tied, -1, np.argmax(gate, axis=1))
    out.update({
        "gate_entropy_mean": float(entropy(gate).mean()),
        "gate_entropy_max": float(np.log(gate.shape[1])),
        "gate_mean": [float(v) for v in gate.mean(0)],
        "gate_std": [float(v) for v in gate.std(0)],
        "top_gate_share": [float(np.mean(top == h)) for h in range(gate.shape[1])],
        "share_top_gate_above_0.9": float(np.mean(gate.max(1) > 0.9)),
        "share_top_gate_tied": float(np.mean(tied)),
    })
    if ranks is not None and head_ranks is not None:
      per_head = []
      for h in range(gate.shape[1]):
        m = top == h
        per_head.append({
            "users": int(m.sum()),
            f"fused_HR@{k}": float(np.mean(ranks[m] < k)) if m.any() else None,
            f"own_head_HR@{k}": float(np.mean(head_ranks[m, h] < k)) if m.any() else None,
            f"other_heads_best_HR@{k}": (
                float(np.mean(np.delete(head_ranks[m], h, axis=1).min(1) < k))
                if m.any() and gate.shape[1] > 1 else None),
        })
      out["by_top_gate_head"] = per_head
  return out


def export_run(config: ml_collections.ConfigDict | None, workdir: str, out_dir: str, split: str = "test",
               checkpoint: str = "best", chunk_size: int = 0, plots: bool = True) -> dict[str, Any]:
  """Exports a trained workdir's checkpoint for inspection (see module doc).

  Args:
    config: the config the workdir was trained with; ``None`` = its
      ``config.json``. A given config must agree with it except in settings
      that do not change what was trained (``loop._RESUMABLE_DIFFS``).
    workdir: a ``train.py`` workdir.
    out_dir: created if missing; receives ``arrays.npz``, ``manifest.json``
      and the PNG plots.
    split: ``"test"`` or ``"valid"``: whose users, inputs and targets.
    checkpoint: ``"best"``, ``"latest"`` or an epoch number.
    chunk_size: users per device chunk; 0 = ``min(eval.batch_size, 256)``.
    plots: also write the PNGs.

  Returns:
    The manifest (also written to ``manifest.json``): ``arrays`` (name, shape,
    dtype, meaning for each), ``metrics`` (fused, from the per-user ranks),
    ``head_metrics`` (each head alone), ``facet_recovery`` (synthetic world
    with facet heads only), ``notes`` and ``plots``.
  """
  if split not in ("valid", "test"):
    raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
  workdir = os.path.abspath(workdir)
  config = workdir_lib.resolve_config(workdir, config, loop._RESUMABLE_DIFFS)  # pylint: disable=protected-access
  validate_config(config)
  os.makedirs(out_dir, exist_ok=True)
  dataset, sp = workdir_lib.load_run_data(config, workdir)
  num_items = dataset.num_items
  params = loop.restore_params(config, workdir, num_items, checkpoint)
  s = model_settings(config.model)
  model = FAME(cfg=config.model, num_items=num_items)
  histories, targets = sp.eval_examples(split)
  targets = np.asarray(targets, np.int32)
  num_users, max_len = len(histories), int(config.data.max_len)
  mask_history = bool(config.eval.mask_history)
  ks = tuple(int(k) for k in config.eval.ks)
  top_k = min(TOP_K, num_items)
  notes: list[str] = []

  item_x = item_facet_embeddings(params, config.model) if s.facet_heads else None
  chunk_fn = _make_chunk_fn(model, config.train.examples, s.facet_heads, mask_history, top_k)

  # The evaluator's own window builder, so the inputs are its inputs.
  hist = evaluation._Histories(histories)  # pylint: disable=protected-access
  # One history width for every chunk: one compile (the evaluator buckets
  # per chunk; the counts do not depend on the width).
  width = evaluation.next_pow2(max(1, int(hist.lens.max()))) if mask_history else 1
  bsz = int(min(chunk_size or min(int(config.eval.batch_size), 256), num_users))
  pieces: dict[str, list[np.ndarray]] = {}
  for lo in range(0, num_users, bsz):
    hi = min(lo + bsz, num_users)
    rows, real, lengths, inputs, full = hist.padded_chunk(lo, hi, bsz, max_len,
                                                          width if mask_history else 0)
    tgt = np.where(real, targets[rows], 1).astype(np.int32)
    out = chunk_fn(params, item_x, jnp.asarray(inputs), jnp.asarray(lengths), jnp.asarray(tgt),
                   jnp.asarray(full))
    for k, v in out.items():  # Stream: only this chunk's small outputs stay.
      pieces.setdefault(k, []).append(np.asarray(v)[:hi - lo])
  got = {k: np.concatenate(v) for k, v in pieces.items()}

  ranks = got["ranks"].astype(np.int32)
  per_user = evaluation.per_user_metrics(ranks, ks)
  arrays: dict[str, np.ndarray] = {}
  specs: list[dict[str, Any]] = []

  def add(name, a, meaning):
    arrays[name] = a
    specs.append(_spec(name, a, meaning))

  u_idx = np.asarray(sp.users, np.int64)
  add("user_index", u_idx, f"[U] row of each exported user in the dataset ({split} split users)")
  add("user_raw_ids", np.asarray(dataset.user_raw_ids, dtype=str)[u_idx], "[U] raw user id")
  add("item_raw_ids", np.asarray(dataset.item_raw_ids, dtype=str),
      "[N+1] raw item id of each item id (row 0 = pad)")
  add("targets", targets, f"[U] {split} target item id")
  add("history_lengths", hist.lens.astype(np.int32), "[U] items before the target (whole history)")
  add("ranks", ranks, "[U] pessimistic full-ranking rank of the target, fused score (0 = best)")
  for name, v in per_user.items():
    k = name.split("@")[1]
    add(f"{name.split('@')[0].lower()}_at_{k}", v.astype(np.float32), f"[U] per-user {name}, fused")
  add("top_items", got["top_items"].astype(np.int32),
      f"[U, {top_k}] top-{top_k} item ids by fused score, best first; pad"
      + (" and history items other than the target" if mask_history else "") + " excluded")
  add("top_scores", got["top_scores"].astype(np.float32), f"[U, {top_k}] their fused scores")
  add("router", got["router"].astype(np.float32),
      "[U, H, E] router weights per head at the last real position (rows sum to 1)")

  head_metrics: dict[str, Any] = {}
  recovery = None
  if s.facet_heads:
    add("item_facet_emb", item_x,
        f"[N+1, H, d'] item facet sub-embeddings x_v^h ({s.facet_item_proj}: "
        + ("item_emb @ facet_proj[h]" if s.facet_item_proj == "linear" else "chunk h of item_emb") + ")")
    gate = got["gate"].astype(np.float32)
    add("gate", gate, "[U, H] gate weights at the last real position (rows sum to 1)"
        + ("; constant 1/H (gate='uniform')" if s.gate == "uniform" else ""))
    head_ranks = got["head_ranks"].astype(np.int32)
    add("head_ranks", head_ranks, "[U, H] rank of the target when head h alone scores: <F^h_t, x_v^h>")
    for h in range(s.num_heads):
      head_metrics[f"head{h}"] = evaluation.metrics_from_ranks(head_ranks[:, h], ks)
    if dataset.ground_truth is not None and "user_dominant_facet" in dataset.ground_truth:
      gt = dataset.ground_truth
      true_facet = np.asarray(gt["user_dominant_facet"], np.int64)[u_idx]
      top_head = np.argmax(gate, axis=1).astype(np.int64)
      add("true_dominant_facet", true_facet, "[U] the generator's dominant facet of each user")
      add("top_gate_head", top_head, "[U] argmax of the user's gate")
      recovery = facet_recovery(top_head, true_facet, s.num_heads, len(gt["facet_names"]))
      recovery["facet_names"] = list(gt["facet_names"])
      if s.gate == "uniform":
        notes.append("gate='uniform': every gate is 1/H, so the top-gate head is head 0 for all "
                     "users and facet recovery is the majority baseline by construction.")
  else:
    notes.append("facet_heads=False: there is no gate and no per-head item embedding "
                 "(heads are concatenated through W_O), so gate, item_facet_emb, head_ranks "
                 "and facet recovery are not exported; router is the last block's "
                 "(all ones when num_experts=1).")

  routing = routing_summary(
      got["router"].astype(np.float32), arrays.get("gate"), ranks, arrays.get("head_ranks"))
  metrics = evaluation.metrics_from_ranks(ranks, ks)
  manifest: dict[str, Any] = {
      "workdir": workdir,
      "checkpoint": checkpoint,
      "split": split,
      "dataset": dataset.name,
      "model_variant": loop.model_variant(config.model),
      "num_users": num_users,
      "num_items": num_items,
      "num_heads": s.num_heads,
      "num_experts": s.num_experts,
      "head_size": s.head_size,
      "facet_heads": s.facet_heads,
      "mask_history": mask_history,
      "top_k": top_k,
      "ranking": "full (all items), pessimistic ties, pad never ranked",
      "metrics": {f"{split}/{k}": v for k, v in metrics.items()},
      "head_metrics": head_metrics,
      "facet_recovery": recovery,
      "routing": routing,
      "notes": notes,
      "arrays_file": ARRAYS_FILE,
      "arrays": specs,
  }
  np.savez_compressed(os.path.join(out_dir, ARRAYS_FILE), **arrays)
  if plots:
    from fame_jax import plots as plots_lib
    manifest["plots"] = plots_lib.plot_export(manifest, arrays, out_dir, workdir)
  with open(os.path.join(out_dir, MANIFEST_FILE), "w") as f:
    json.dump(manifest, f, indent=2)
  print(summary_text(manifest))
  return manifest


def summary_text(manifest: dict[str, Any]) -> str:
  """A few human-readable lines: fused vs per-head HR@10, facet recovery."""
  split = manifest["split"]
  m = manifest["metrics"]
  lines = [f"export of {manifest['workdir']} ({split}, {manifest['num_users']} users): "
           f"fused HR@10 {m[f'{split}/HR@10']:.4f} NDCG@10 {m[f'{split}/NDCG@10']:.4f}"]
  for h, hm in manifest["head_metrics"].items():
    lines.append(f"  {h} alone: HR@10 {hm['HR@10']:.4f} NDCG@10 {hm['NDCG@10']:.4f}")
  rt = manifest.get("routing")
  if rt:
    ent = ", ".join(f"{v:.3f}" for v in rt["router_entropy_mean"])
    lines.append(f"  router entropy per head: {ent} (uniform = {rt['router_entropy_max']:.3f})")
    if "gate_entropy_mean" in rt:
      lines.append(f"  gate entropy {rt['gate_entropy_mean']:.3f} (uniform = {rt['gate_entropy_max']:.3f}); "
                   f"top-gate share per head: " + ", ".join(f"{v:.3f}" for v in rt["top_gate_share"])
                   + f"; tied (no top-gate head): {rt.get('share_top_gate_tied', 0.0):.3f}")
  r = manifest.get("facet_recovery")
  if r:
    lines.append(f"  facet recovery (top-gate head = dominant facet, best matching): "
                 f"{r['accuracy']:.3f} vs chance {r['chance']:.3f} "
                 f"(permutation {r['chance_permutation']:.3f}, majority {r['chance_majority']:.3f})")
  lines.extend(f"  note: {n}" for n in manifest["notes"])
  return "\n".join(lines)


def load_export(out_dir: str) -> dict[str, Any]:
  """Loads an export: every array by name plus ``"manifest"`` (the dict).

  Raises:
    FileNotFoundError: if ``out_dir`` holds no export.
  """
  path = os.path.join(out_dir, MANIFEST_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: run export_run (or evaluate.py --export) first")
  with open(path) as f:
    manifest = json.load(f)
  with np.load(os.path.join(out_dir, manifest["arrays_file"]), allow_pickle=False) as z:
    out: dict[str, Any] = {k: z[k] for k in z.files}
  out["manifest"] = manifest
  return out
