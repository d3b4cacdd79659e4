"""Stage 1 of FAME+: facet-aware pre-training of item embeddings (docs/protocol.md §5).

``run_pretraining(config, dataset, workdir)``:

1. item texts from ``config.pretrain.text_template`` (``""`` = the dataset's
   default in :data:`fame_jax.pretraining.item_text.DATASET_DEFAULTS`), encoded
   once by the frozen MiniLM encoder and cached (``text_emb_<sha256>.npy``);
2. one facet label field per head from ``config.pretrain.facets`` (``()`` =
   dataset default; heads beyond the listed facets, and ``""`` entries, are
   unlabelled and use the instance-contrastive fallback);
3. ``pretrain.steps`` jitted steps of SupCon on the projection heads. With
   ``schedule="alternate"`` step ``s`` updates head ``s mod H`` only: the head's
   params and its own Adam state are sliced out, updated and written back, so
   the other heads' params and Adam moments are bitwise untouched (each head
   also keeps its own Adam step count). ``"sum"`` updates every head each step
   with its own loss (heads share no parameters, so this is the gradient of the
   summed loss);
4. writes under ``<workdir>/pretrain``: ``checkpoints/`` (Orbax, resumable),
   ``item_facet_embeddings.npy`` ``[N+1, H, d']`` (``P_h(t_v)``, row 0 zeros),
   ``metrics.jsonl`` and ``pretrain_summary.json`` (config, seconds, facet-
   neighbour agreement per head).

Batches: with ``pair_sampling`` (default) half of a batch is drawn from the
items labelled for the step's facet and each of them brings a random partner
sharing one of its values, so rare values (most brands) still meet a positive.

Only item metadata is read, never interactions (docs/protocol.md trap 7).
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from fame_jax import options
from fame_jax.data.dataset import Dataset
from fame_jax.pretraining import item_text
from fame_jax.pretraining import supcon
from fame_jax.training import checkpoints as ckpt_lib

TEXT_DIM = 384


# --------------------------------------------------------------------- setup
def resolve_template_and_facets(config: ml_collections.ConfigDict, dataset: Dataset
                                ) -> tuple[str, tuple[str, ...]]:
  """Text template and one facet name per head (``""`` = unlabelled).

  Raises:
    ValueError: more facets than heads.
  """
  num_heads = int(config.model.num_heads)
  defaults = item_text.dataset_defaults(dataset.name) or {}
  template = config.pretrain.text_template or defaults.get("template", "{title}")
  facets = tuple(config.pretrain.facets) or tuple(defaults.get("facets", ()))
  if len(facets) > num_heads:
    raise ValueError(
        f"pretrain.facets has {len(facets)} entries {facets} but the model has "
        f"model.num_heads={num_heads}: one facet per head at most")
  return template, facets + ("",) * (num_heads - len(facets))


def item_text_embeddings(dataset: Dataset, template: str, cache_dir: str,
                         batch_size: int = 128, max_tokens: int = 256,
                         progress: bool = True) -> np.ndarray:
  """Frozen MiniLM embedding of every item's text.

  Returns:
    [N + 1, 384] float32, row 0 (padding) zeros, cached in ``cache_dir``.
  """
  from fame_jax.models import text_encoder  # Lazy: needs the weights package.

  texts = item_text.item_texts(dataset, template)
  emb = text_encoder.encode_items(texts[1:], cache_dir=cache_dir,
                                  batch_size=batch_size, max_tokens=max_tokens,
                                  progress=progress)
  return np.concatenate([np.zeros((1, emb.shape[1]), np.float32), emb], axis=0)


class BatchSampler:
  """Host-side item batches and their positives; a pure function of the step.

  Args:
    labels: one list of ``N + 1`` label sets per head (empty = unlabelled).
    batch_size: items per batch ``B``.
    pair_sampling: half the batch are labelled seeds, half same-value partners.
    seed: base seed; batch ``s`` uses ``default_rng([seed, s])`` (resumable).
  """

  def __init__(self, labels: Sequence[Sequence[frozenset]], batch_size: int,
               pair_sampling: bool, seed: int):
    self.num_items = len(labels[0]) - 1
    self.batch_size = int(batch_size)
    self.pair_sampling = pair_sampling
    self.seed = int(seed)
    self.csr = [item_text.label_index(l) for l in labels]
    self.labelled = []
    self.by_value = []
    for indptr, values, vocab in self.csr:
      counts = np.diff(indptr)
      self.labelled.append(np.nonzero(counts)[0])
      # (value, item) pairs sorted by value: items of value v are a slice.
      items = np.repeat(np.arange(len(counts)), counts)
      order = np.argsort(values, kind="stable")
      starts = np.searchsorted(values[order], np.arange(len(vocab) + 1))
      self.by_value.append((items[order], starts))

  def ids(self, step: int, head: int) -> np.ndarray:
    """[B] int32 item ids for ``step``, sampled for ``head``'s facet."""
    rng = np.random.default_rng([self.seed, step])
    b, n = self.batch_size, self.num_items
    labelled = self.labelled[head]
    if not self.pair_sampling or len(labelled) == 0:
      return rng.choice(np.arange(1, n + 1), size=b, replace=b > n).astype(np.int32)
    half = b // 2
    seeds = rng.choice(labelled, size=b - half, replace=(b - half) > len(labelled))
    indptr, values, _ = self.csr[head]
    items, starts = self.by_value[head]
    pick = indptr[seeds[:half]] + (rng.random(half) * np.diff(indptr)[seeds[:half]]
                                   ).astype(np.int64)
    v = values[pick]
    partners = items[starts[v] + (rng.random(half) * (starts[v + 1] - starts[v])
                                  ).astype(np.int64)]
    alone = partners == seeds[:half]  # A value with one item: take any item.
    partners[alone] = rng.integers(1, n + 1, size=int(alone.sum()))
    return np.concatenate([seeds, partners]).astype(np.int32)

  def positives(self, ids: np.ndarray, head: int) -> tuple[np.ndarray, np.ndarray]:
    """([B, B] bool share-a-value, [B] bool has-label) of ``head``'s facet."""
    indptr, values, _ = self.csr[head]
    return supcon.batch_positives(ids, indptr, values)


# --------------------------------------------------------------------- steps
def _head_loss(module, p_head, t, positives, has_label, unlabelled, rng,
               temperature: float, view_dropout: float):
  """Loss of one head (params without the head axis) on a batch ``t`` [B, 384]."""
  p = jax.tree.map(lambda x: x[None], p_head)  # Back to a 1-head stacked tree.

  def project(x):
    return supcon.l2_normalize(module.apply({"params": p}, x)[:, 0])

  def supervised(_):
    return supcon.supcon_loss(project(t), positives, has_label, temperature)

  def instance(_):
    keep = 1.0 - view_dropout
    k1, k2 = jax.random.split(rng)
    views = [jnp.where(jax.random.bernoulli(k, keep, t.shape), t / keep, 0.0)
             for k in (k1, k2)]
    z = project(jnp.concatenate(views, axis=0))
    return supcon.nt_xent_loss(z[:t.shape[0]], z[t.shape[0]:], temperature)

  return jax.lax.cond(unlabelled, instance, supervised, None)


def make_train_steps(module, optimizer, unlabelled: np.ndarray, temperature: float,
                     view_dropout: float):
  """Builds the jitted ``alternate`` and ``sum`` steps.

  Both take ``(state, table [N+1, 384], ids [B], ...)`` and return
  ``(state, metrics)``; ``state`` = {params, opt_state, step} is donated. The
  optimizer state has a leading head axis (``jax.vmap(optimizer.init)``).
  """
  unlabelled = jnp.asarray(unlabelled, bool)
  one_head = module.clone(num_heads=1)  # Applies one head's sliced params.

  def head_update(p_h, o_h, h, t, positives, has_label, rng):
    def loss_fn(p):
      return _head_loss(one_head, p, t, positives, has_label, unlabelled[h], rng,
                        temperature, view_dropout)
    (loss, n_anchor), grads = jax.value_and_grad(loss_fn, has_aux=True)(p_h)
    updates, o_h = optimizer.update(grads, o_h, p_h)
    return optax.apply_updates(p_h, updates), o_h, loss, n_anchor

  @functools.partial(jax.jit, donate_argnums=0)
  def alternate_step(state, table, ids, positives, has_label, head, rng):
    """One head: positives [B, B], has_label [B], head int32 scalar."""
    take = lambda tree: jax.tree.map(lambda x: x[head], tree)
    p_h, o_h, loss, n_anchor = head_update(
        take(state["params"]), take(state["opt_state"]), head, table[ids],
        positives, has_label, rng)
    # Writing back only slice `head` leaves every other head bitwise unchanged,
    # Adam moments and step count included.
    put = lambda tree, new: jax.tree.map(lambda x, y: x.at[head].set(y), tree, new)
    state = {"params": put(state["params"], p_h),
             "opt_state": put(state["opt_state"], o_h),
             "step": state["step"] + 1}
    return state, {"loss": loss, "anchors": n_anchor, "head": head}

  @functools.partial(jax.jit, donate_argnums=0)
  def sum_step(state, table, ids, positives, has_label, rng):
    """All heads: positives [H, B, B], has_label [H, B]."""
    num_heads = unlabelled.shape[0]
    t = table[ids]
    rngs = jax.random.split(rng, num_heads)
    params, opt_state, loss, n_anchor = jax.vmap(
        head_update, in_axes=(0, 0, 0, None, 0, 0, 0))(
            state["params"], state["opt_state"], jnp.arange(num_heads), t,
            positives, has_label, rngs)
    state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
    return state, {"loss": loss, "anchors": n_anchor}

  return alternate_step, sum_step


def init_state(module, optimizer, num_heads: int, seed: int) -> dict:
  """Fresh {params [H, ...], opt_state (per head, leading H), step}."""
  params = module.init(jax.random.PRNGKey(seed),
                       jnp.zeros((1, TEXT_DIM), jnp.float32))["params"]
  del num_heads  # Shapes come from the module.
  return {"params": params, "opt_state": jax.vmap(optimizer.init)(params),
          "step": jnp.zeros((), jnp.int32)}


def project_items(module, params, table: np.ndarray, chunk: int = 4096) -> np.ndarray:
  """``P_h(t_v)`` for every item: [N+1, H, d'] float32, row 0 zeros."""
  apply = jax.jit(lambda p, x: module.apply({"params": p}, x))
  n = table.shape[0]
  chunk = min(chunk, n)
  out = []
  for s in range(0, n, chunk):
    x = table[s:s + chunk]
    pad = chunk - x.shape[0]
    y = np.asarray(apply(params, np.pad(x, ((0, pad), (0, 0)))))
    out.append(y[:chunk - pad])
  emb = np.concatenate(out, axis=0).astype(np.float32)
  emb[0] = 0.0
  return emb


# --------------------------------------------------------------------- metric
def facet_neighbour_agreement(emb: np.ndarray, labels_per_facet: Sequence[Sequence[frozenset]],
                              k: int = 10, max_queries: int = 2000, seed: int = 0
                              ) -> np.ndarray:
  """How much each head's neighbourhoods follow each facet.

  For head ``h`` and facet ``f``: over query items (up to ``max_queries``,
  sampled once, same for all heads) that have a label for ``f``, the mean
  fraction of their ``k`` nearest neighbours (cosine in head ``h``'s subspace,
  the query itself excluded, all items ``1..N`` as candidates) sharing at least
  one value of ``f``. Unlabelled neighbours count as not sharing.

  Args:
    emb: [N+1, H, d'] item facet embeddings (row 0 ignored).
    labels_per_facet: ``F`` lists of ``N + 1`` label sets.
    k: neighbours per query.
    max_queries: query sample size.
    seed: query sample seed.

  Returns:
    [H, F] float64 matrix (NaN where no query has a label for ``f``).
  """
  x = np.asarray(emb, np.float32)[1:]
  n, num_heads = x.shape[0], x.shape[1]
  x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  rng = np.random.default_rng(seed)
  q = np.sort(rng.choice(n, size=min(n, max_queries), replace=False))
  k = min(k, n - 1)
  out = np.full((num_heads, len(labels_per_facet)), np.nan)
  for h in range(num_heads):
    sims = x[q, h] @ x[:, h].T  # [Q, N]
    sims[np.arange(len(q)), q] = -np.inf
    nbrs = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # 0-based rows = id - 1.
    for f, labels in enumerate(labels_per_facet):
      fr = [np.mean([not labels[qi + 1].isdisjoint(labels[j + 1]) for j in nb])
            for qi, nb in zip(q, nbrs) if labels[qi + 1]]
      if fr:
        out[h, f] = float(np.mean(fr))
  return out


# --------------------------------------------------------------------- driver
def run_pretraining(config: ml_collections.ConfigDict, dataset: Dataset, workdir: str,
                    text_embeddings: np.ndarray | None = None) -> dict:
  """Runs stage-1 pre-training and writes its outputs under ``workdir/pretrain``.

  Args:
    config: full fame_jax config (``pretrain``, ``model.hidden_size``,
      ``model.num_heads``, ``train.progress``, ``train.log_every_steps``).
    dataset: only ``item_meta``, ``name`` and ``num_items`` are read.
    workdir: run directory; resumes from ``workdir/pretrain/checkpoints``.
    text_embeddings: optional [N+1, 384] table to use instead of encoding the
      item texts (tests, or a table computed elsewhere).

  Returns:
    The summary dict also written to ``pretrain_summary.json``.
  """
  t_start = time.time()
  pc = config.pretrain
  out_dir = os.path.abspath(os.path.join(workdir, "pretrain"))
  os.makedirs(out_dir, exist_ok=True)
  num_heads, d = int(config.model.num_heads), int(config.model.hidden_size)
  if d % num_heads:
    raise ValueError(f"model.hidden_size={d} is not divisible by num_heads={num_heads}")
  d_head = d // num_heads
  progress = bool(config.train.get("progress", True))
  template, facets = resolve_template_and_facets(config, dataset)

  # 1. Frozen text embeddings.
  t0 = time.time()
  if text_embeddings is None:
    table = item_text_embeddings(
        dataset, template, pc.text_cache_dir or out_dir,
        batch_size=int(pc.encode_batch_size), max_tokens=int(pc.max_tokens),
        progress=progress)
  else:
    table = np.asarray(text_embeddings, np.float32)
    if table.shape != (dataset.num_items + 1, TEXT_DIM):
      raise ValueError(f"text_embeddings has shape {table.shape}, expected "
                       f"({dataset.num_items + 1}, {TEXT_DIM})")
  encode_seconds = time.time() - t0

  # 2. Labels, one facet per head.
  labels = item_text.all_facet_labels(dataset, facets, float(pc.max_label_fraction))
  unlabelled = np.array([not f for f in facets])
  for f, l in zip(facets, labels):
    if f and not any(l):
      raise ValueError(f"facet {f!r} gives no item a label in dataset {dataset.name!r}")

  # 3. Training.
  module = supcon.FacetProjectionHeads(num_heads, int(pc.hidden_size), d_head)
  optimizer = optax.adam(float(pc.learning_rate))
  alternate_step, sum_step = make_train_steps(
      module, optimizer, unlabelled, float(pc.temperature), float(pc.view_dropout))
  state = init_state(module, optimizer, num_heads, int(pc.seed))
  ckpts = ckpt_lib.StepCheckpoints(os.path.join(out_dir, "checkpoints"))
  resumed_from = ckpts.latest_step()
  if resumed_from is not None:
    state = ckpts.restore_latest(state)
  start = int(state["step"])
  steps = int(pc.steps)
  options.check_choice("pretrain.schedule", pc.schedule)
  sampler = BatchSampler(labels, int(pc.batch_size), bool(pc.pair_sampling),
                         int(pc.seed))
  table_dev = jnp.asarray(table)
  base_rng = jax.random.PRNGKey(int(pc.seed) + 1)
  log_every = max(1, int(config.train.get("log_every_steps", 50)))
  every = max(1, int(pc.checkpoint_every_steps))
  pending: list[tuple[int, Any]] = []
  recent: dict[int, list[float]] = {h: [] for h in range(num_heads)}
  metrics_path = os.path.join(out_dir, "metrics.jsonl")

  def flush():
    rows = {}
    for s, m in pending:
      loss = np.asarray(m["loss"])
      for h in ([s % num_heads] if pc.schedule == "alternate" else range(num_heads)):
        v = float(loss) if loss.ndim == 0 else float(loss[h])
        if not math.isfinite(v):
          raise FloatingPointError(
              f"pre-training loss of head {h} (facet {facets[h]!r}) is {v} at "
              f"step {s}; lower pretrain.learning_rate or raise temperature")
        rows.setdefault(h, []).append(v)
        recent[h] = (recent[h] + [v])[-100:]
    if pending:
      with open(metrics_path, "a") as f:
        f.write(json.dumps({"step": pending[-1][0] + 1, **{
            f"loss_head{h}": float(np.mean(v)) for h, v in sorted(rows.items())}}) + "\n")
    pending.clear()

  t1 = time.time()
  for s in tqdm.trange(start, steps, desc="pretrain", disable=not progress,
                       initial=start, total=steps):
    head = s % num_heads
    ids = sampler.ids(s, head)
    rng = jax.random.fold_in(base_rng, s)
    if pc.schedule == "alternate":
      pos, has = sampler.positives(ids, head)
      state, m = alternate_step(state, table_dev, ids, pos, has, np.int32(head), rng)
    else:
      pos, has = zip(*(sampler.positives(ids, h) for h in range(num_heads)))
      state, m = sum_step(state, table_dev, ids, np.stack(pos), np.stack(has), rng)
    pending.append((s, m))
    if (s + 1) % log_every == 0 or s + 1 == steps:
      flush()
    if (s + 1) % every == 0 or s + 1 == steps:
      ckpts.save(s + 1, state)  # Waits: the next step donates these buffers.
  train_seconds = time.time() - t1
  ckpts.close()

  # 4. Outputs.
  emb = project_items(module, state["params"], table)
  np.save(os.path.join(out_dir, "item_facet_embeddings.npy"), emb)
  labelled_facets = [f for f in facets if f]
  facet_lab = [l for f, l in zip(facets, labels) if f]
  k, nq = int(pc.agreement_k), int(pc.agreement_queries)
  agreement = facet_neighbour_agreement(emb, facet_lab, k=k, max_queries=nq)
  text_agreement = facet_neighbour_agreement(table[:, None, :], facet_lab, k=k,
                                             max_queries=nq)
  done = steps - start
  summary = {
      "dataset": dataset.name,
      "num_items": dataset.num_items,
      "num_heads": num_heads,
      "head_dim": d_head,
      "template": template,
      "facets": list(facets),
      "schedule": pc.schedule,
      "steps": steps,
      "resumed_from_step": resumed_from,
      "seconds": {"text_encoding": encode_seconds, "training": train_seconds,
                  "total": time.time() - t_start},
      "steps_per_second": done / train_seconds if done and train_seconds > 0 else None,
      "final_loss_per_head": {str(h): (float(np.mean(v)) if v else None)
                              for h, v in recent.items()},
      "agreement": {
          "k": k, "rows": [f"head{h}:{facets[h] or '<instance>'}" for h in range(num_heads)],
          "columns": labelled_facets,
          "matrix": [[None if np.isnan(a) else float(a) for a in row] for row in agreement]},
      "text_baseline_agreement": {
          f: (None if np.isnan(a) else float(a))
          for f, a in zip(labelled_facets, text_agreement[0])},
      "outputs": {"item_facet_embeddings": os.path.join(out_dir, "item_facet_embeddings.npy"),
                  "checkpoints": os.path.join(out_dir, "checkpoints")},
      "config": {"pretrain": pc.to_dict(), "model.hidden_size": d,
                 "model.num_heads": num_heads},
  }
  with open(os.path.join(out_dir, "pretrain_summary.json"), "w") as f:
    json.dump(summary, f, indent=2, default=str)
  return summary
