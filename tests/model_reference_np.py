"""NumPy references for the model tests (test-only; slow on purpose).

Two independent forwards, both fed the weights pulled from the Flax params:

* :func:`fame_scores_loop` -- a literal reading of docs/protocol.md §1-3 with
  explicit Python loops over rows, layers, heads, experts, positions and
  items. It returns the per-position item scores computed the per-head way,
  ``s_t(v) = sum_h g_{t,h} <F^h_t, x_v^h>``, never through the u-vector.
* :func:`sasrec_forward_matrix` -- RecBole's SASRec written the way RecBole
  writes it (d x d matrices, ``view``/``transpose`` into heads, an additive
  -10000 mask), for the ``num_experts=1, facet_heads=False`` configuration.

Everything runs in float64; only real (nonzero-segment) positions are
meaningful (pad query rows are left at zero).
"""

from __future__ import annotations

import math

import jax
import numpy as np

_erf = np.vectorize(math.erf)


def to_numpy(params):
  """Params pytree as float64 NumPy arrays."""
  return jax.tree.map(lambda a: np.asarray(a, np.float64), params)


def layer_norm(x, p, eps):
  """LayerNorm over the last axis with ``p = {"scale", "bias"}``."""
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def gelu(x):
  """Exact erf GELU."""
  return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def softmax(z):
  """Softmax of a 1-D vector."""
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max())
  return e / e.sum()


def ffn(x, p):
  """``W_2 gelu(W_1 x + b_1) + b_2`` for one position."""
  h = gelu(x @ p["dense_in"]["kernel"] + p["dense_in"]["bias"])
  return h @ p["dense_out"]["kernel"] + p["dense_out"]["bias"]


def embed(p, items_row, positions_row, segments_row, eps):
  """Embedding + LayerNorm for one row; pads set to 0. Returns ``[L, d]``."""
  x = np.stack([p["item_emb"]["embedding"][i] + p["pos_emb"]["embedding"][t]
                for i, t in zip(items_row, positions_row)])
  x = layer_norm(x, p["embed_norm"], eps)
  return x * (np.asarray(segments_row) != 0)[:, None]


def attend(q, k, v, seg):
  """Causal same-segment attention for one head/expert, one row.

  Args:
    q, k, v: ``[L, d']``.
    seg: ``[L]`` segment ids.

  Returns:
    ``[L, d']``; pad query rows are 0.
  """
  length, dh = q.shape
  out = np.zeros_like(v)
  for t in range(length):
    if seg[t] == 0:
      continue
    keys = [s for s in range(t + 1) if seg[s] == seg[t]]
    w = softmax([q[t] @ k[s] / math.sqrt(dh) for s in keys])
    for wj, s in zip(w, keys):
      out[t] += wj * v[s]
  return out


def attention_heads(x, p, seg, num_heads, num_experts, moe):
  """Per-head attention outputs for one row.

  ``moe=False``: standard attention with biases (one expert). ``moe=True``:
  docs/protocol.md §2 steps 1-3 (shared K/V, E query experts, dense router).

  Returns:
    ``(mix [L, H, d'], router [L, H, E])``.
  """
  length, d = x.shape
  dh = d // num_heads
  experts = num_experts if moe else 1
  mix = np.zeros((length, num_heads, dh))
  router = np.ones((length, num_heads, experts))
  for h in range(num_heads):
    if moe:
      kh = x @ p["key"]["kernel"][:, h, :]
      vh = x @ p["value"]["kernel"][:, h, :]
    else:
      kh = x @ p["key"]["kernel"][:, h, :] + p["key"]["bias"][h]
      vh = x @ p["value"]["kernel"][:, h, :] + p["value"]["bias"][h]
    f = []
    for n in range(experts):
      if moe:
        qn = x @ p["query"]["kernel"][:, h, n, :]
      else:
        qn = x @ p["query"]["kernel"][:, h, :] + p["query"]["bias"][h]
      f.append(attend(qn, kh, vh, seg))
    for t in range(length):
      if experts > 1:
        concat = np.concatenate([f[n][t] for n in range(experts)])
        beta = softmax(concat @ p["router"][h])
      else:
        beta = np.ones(1)
      router[t, h] = beta
      for n in range(experts):
        mix[t, h] += beta[n] * f[n][t]
  return mix, router


def transformer_block(x, p, seg, num_heads, num_experts, moe, eps):
  """Post-LN block (attention, W_O, residual+LN, FFN, residual+LN), one row."""
  length, d = x.shape
  mix, _ = attention_heads(x, p["attention"], seg, num_heads, num_experts, moe)
  y = np.zeros_like(x)
  for t in range(length):
    out = p["out"]["bias"].copy()
    for h in range(num_heads):
      out += mix[t, h] @ p["out"]["kernel"][h]  # W_O acting on head h's slice.
    a = layer_norm(x[t] + out, p["attention_norm"], eps)
    y[t] = layer_norm(a + ffn(a, p["ffn"]), p["ffn_norm"], eps)
  return y


def fame_scores_loop(params, items, positions, segments, s):
  """Per-position item scores of FAME by the per-head formula (docs/protocol.md §1-3).

  Args:
    params: Flax params (any array type).
    items, positions, segments: ``[B, L]``.
    s: the model's ``ModelSettings`` (must have ``facet_heads=True``).

  Returns:
    ``(scores [B, L, N+1], gate [B, L, H], router [B, L, H, E])``; score
    column 0 and pad rows are 0 (not compared).
  """
  p = to_numpy(params)
  items, positions, segments = (np.asarray(a) for a in (items, positions, segments))
  table = p["item_emb"]["embedding"]
  batch, length = items.shape
  hh, ee, dh, eps = s.num_heads, s.num_experts, s.head_size, s.layer_norm_eps
  scores = np.zeros((batch, length, table.shape[0]))
  gates = np.zeros((batch, length, hh))
  routers = np.zeros((batch, length, hh, ee))
  fb = p["fame_block"]
  for b in range(batch):
    seg = segments[b]
    x = embed(p, items[b], positions[b], seg, eps)
    for i in range(s.num_layers - 1):
      x = transformer_block(x, p[f"block_{i}"], seg, hh, ee, s.trunk_experts > 0, eps)
    mix, router = attention_heads(x, fb["attention"], seg, hh, ee, moe=True)
    routers[b] = router
    for t in range(length):
      if seg[t] == 0:
        continue
      # Head h on its own: residual X^h (chunk h of the input) + LN(d'),
      # FFN'(d' -> d' -> d'), LN(d'); the weights are shared by the heads.
      facets = []
      for h in range(hh):
        r = layer_norm(x[t][h * dh:(h + 1) * dh] + mix[t, h], fb["residual_norm"], eps)
        facets.append(layer_norm(r + ffn(r, fb["head_ffn"]), fb["head_ffn_norm"], eps))
      if s.gate == "learned":
        g = softmax(np.concatenate(facets) @ fb["gate"]["kernel"] + fb["gate"]["bias"])
      else:
        g = np.full(hh, 1.0 / hh)
      gates[b, t] = g
      head_scores = np.zeros((hh, table.shape[0]))  # s^h_v, column 0 unused.
      for v in range(1, table.shape[0]):
        for h in range(hh):
          if s.facet_item_proj == "linear":
            xv = table[v] @ fb["facet_proj"][h]
          else:
            xv = table[v][h * dh:(h + 1) * dh]
          head_scores[h, v] = facets[h] @ xv
      scores[b, t, 1:] = sum(g[h] * head_scores[h, 1:] for h in range(hh))  # sum_h g_h s^h_v.
  return scores, gates, routers


def last_block_output_loop(params, items, positions, segments, s):
  """Model output ``u [B, L, d]`` for ``facet_heads=False`` by the loop blocks."""
  p = to_numpy(params)
  items, positions, segments = (np.asarray(a) for a in (items, positions, segments))
  batch, length = items.shape
  d = p["item_emb"]["embedding"].shape[1]
  u = np.zeros((batch, length, d))
  for b in range(batch):
    seg = segments[b]
    x = embed(p, items[b], positions[b], seg, s.layer_norm_eps)
    for i in range(s.num_layers - 1):
      x = transformer_block(x, p[f"block_{i}"], seg, s.num_heads, s.num_experts,
                            s.trunk_experts > 0, s.layer_norm_eps)
    u[b] = transformer_block(x, p["fame_block"], seg, s.num_heads, s.num_experts,
                             s.last_block_experts > 0, s.layer_norm_eps)
  return u


def sasrec_forward_matrix(params, items, positions, segments, num_heads, num_layers, eps):
  """RecBole-style SASRec forward in matrix form. Returns ``[B, L, d]``.

  Independent of the loop reference: each projection is one ``[d, d]``
  matrix (the Flax ``[d, H, d']`` kernel flattened head-major, as torch's
  ``Linear`` followed by ``view(B, L, H, d')``), and masking is RecBole's
  additive ``-10000``.
  """
  p = to_numpy(params)
  items, positions, segments = (np.asarray(a) for a in (items, positions, segments))
  batch, length = items.shape
  d = p["item_emb"]["embedding"].shape[1]
  dh = d // num_heads
  x = p["item_emb"]["embedding"][items] + p["pos_emb"]["embedding"][positions]
  x = layer_norm(x, p["embed_norm"], eps)
  causal = np.tril(np.ones((length, length), bool))
  allowed = causal[None] & (segments[:, :, None] == segments[:, None, :]) & (
      segments[:, None, :] != 0)
  additive = (1.0 - allowed[:, None].astype(np.float64)) * -10000.0  # [B, 1, L, L]
  names = [f"block_{i}" for i in range(num_layers - 1)] + ["fame_block"]
  for name in names:
    blk = p[name]
    att = blk["attention"]

    def linear(z, q):
      return z @ q["kernel"].reshape(d, d) + q["bias"].reshape(d)

    def split(z):
      return z.reshape(batch, length, num_heads, dh).transpose(0, 2, 1, 3)

    q, k, v = (split(linear(x, att[n])) for n in ("query", "key", "value"))
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + additive
    logits -= logits.max(-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(-1, keepdims=True)
    ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, d)
    out = ctx @ blk["out"]["kernel"].reshape(d, d) + blk["out"]["bias"]
    x = layer_norm(out + x, blk["attention_norm"], eps)
    h = gelu(x @ blk["ffn"]["dense_in"]["kernel"] + blk["ffn"]["dense_in"]["bias"])
    h = h @ blk["ffn"]["dense_out"]["kernel"] + blk["ffn"]["dense_out"]["bias"]
    x = layer_norm(h + x, blk["ffn_norm"], eps)
  return x


# ------------------------------------------------------------------ fixtures


def small_model_config(**overrides):
  """The base model config at test size (d 16, H 2, E 3, 2 layers), locked."""
  from configs.base import get_base_config  # Test-only import.

  cfg = get_base_config().model
  cfg.hidden_size = 16
  cfg.num_heads = 2
  cfg.num_experts = 3
  cfg.ffn_inner = 24
  cfg.max_len = 8
  cfg.dropout = 0.2
  for key, value in overrides.items():
    setattr(cfg, key, value)
  cfg.lock()
  return cfg


NUM_ITEMS = 25


def mixed_batch():
  """``(items, positions, segments)`` ``[4, 6]`` covering every row layout.

  Row 0 full; row 1 right-padded; row 2 two users packed (segments 1 and 2,
  positions restarting) then a pad; row 3 left-padded (``prefix_last``).
  """
  items = np.array([[3, 7, 1, 25, 9, 4],
                    [5, 2, 11, 6, 0, 0],
                    [8, 14, 3, 20, 19, 0],
                    [0, 0, 12, 5, 17, 2]], np.int32)
  positions = np.array([[0, 1, 2, 3, 4, 5],
                        [0, 1, 2, 3, 4, 5],
                        [0, 1, 2, 0, 1, 0],
                        [0, 1, 2, 3, 4, 5]], np.int32)
  segments = np.array([[1, 1, 1, 1, 1, 1],
                       [1, 1, 1, 1, 0, 0],
                       [1, 1, 1, 2, 2, 0],
                       [0, 0, 1, 1, 1, 1]], np.int32)
  return items, positions, segments


def randomize(params, seed, std=0.3):
  """Every leaf replaced by N(0, std) (LayerNorm scales around 1).

  Init leaves biases at 0 and LayerNorm at identity, which would let a wrong
  bias or LayerNorm wiring pass; random values make every weight count.
  """
  leaves, treedef = jax.tree.flatten_with_path(params)
  rng = np.random.default_rng(seed)
  out = []
  for path, leaf in leaves:
    value = rng.normal(0.0, std, leaf.shape)
    if getattr(path[-1], "key", None) == "scale":
      value += 1.0
    out.append(np.asarray(value, np.float32))
  return jax.tree.unflatten(treedef, out)
