"""The FAME sequential recommender (SPEC sections 1-3) and its score function.

``FAME`` is a SASRec-style post-LN causal transformer whose last block is the
FAME block: per head, ``E`` query experts share keys and values, a dense
router mixes them, a head-wise residual + FFN' keeps the ``H`` heads separate
(no ``W_O``), and a gate mixes the heads' item scores. Because the score
``s_t(v) = sum_h g_{t,h} <F^h_t, x_v^h>`` is linear in ``item_emb[v]``, the
model returns one user vector ``u_t`` per position in item-embedding space and
:func:`score_items` is a single matmul -- the one score function that training
and evaluation share.

With ``num_experts = 1`` and ``facet_heads = False`` the last block is a
standard SASRec block and the model is exactly (RecBole) SASRec.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from fame_jax.models import layers

# Rows of the position table when a (pre-``max_len``) config lacks the key.
_DEFAULT_MAX_LEN = 50


@dataclasses.dataclass(frozen=True)
class ModelSettings:
  """The model section of the config, validated and with defaults resolved.

  Frozen and hashable, so modules can hold it as an attribute; see
  ``configs/base.py`` for what each field means.
  """
  hidden_size: int
  num_layers: int
  num_heads: int
  num_experts: int
  ffn_inner: int
  ffn_head_inner: int  # Resolved: never 0.
  dropout: float
  fame_dropout: float  # Resolved: never negative.
  facet_heads: bool
  facet_item_proj: str
  facet_proj_init: str
  facet_proj_scale: float
  output_norm_scale: float
  moe_residual: str
  gate: str
  mix: str
  moe_all_layers: bool
  head_mix: bool
  head_ffn: str
  head_norm: str
  layer_norm_eps: float
  init_std: float
  max_len: int

  @property
  def head_size(self) -> int:
    """``d' = d / H``."""
    return self.hidden_size // self.num_heads

  @property
  def trunk_experts(self) -> int:
    """Experts of the trunk blocks' attention; 0 = standard attention.

    One expert is no MoE, so ``moe_all_layers`` only changes the trunk when
    ``E > 1``; that keeps ``E = 1`` trunks exactly SASRec.
    """
    return self.num_experts if self.moe_all_layers and self.num_experts > 1 else 0

  @property
  def last_block_experts(self) -> int:
    """Experts of the last block when ``facet_heads=False``; 0 = standard."""
    return self.num_experts if self.num_experts > 1 else 0


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
  if value not in allowed:
    raise ValueError(f"model.{name} = {value!r}; expected one of {allowed}")
  return value


def model_settings(cfg: Any) -> ModelSettings:
  """Validates the model config and resolves its defaults.

  Args:
    cfg: ``config.model`` (a ``ConfigDict``, possibly locked or frozen; only
      read).

  Returns:
    The :class:`ModelSettings`.

  Raises:
    ValueError: on a value the model cannot build (``d`` not divisible by
      ``H``, unknown choice strings, non-positive sizes).
  """
  d, hh, ee = int(cfg.hidden_size), int(cfg.num_heads), int(cfg.num_experts)
  if d <= 0 or hh <= 0 or d % hh:
    raise ValueError(f"model.hidden_size ({d}) must be a positive multiple of "
                     f"model.num_heads ({hh})")
  if ee < 1 or int(cfg.num_layers) < 1 or int(cfg.ffn_inner) < 1:
    raise ValueError("model.num_experts, model.num_layers and model.ffn_inner must be >= 1, got "
                     f"{ee}, {cfg.num_layers}, {cfg.ffn_inner}")
  dropout = float(cfg.dropout)
  fame_dropout = float(cfg.fame_dropout)
  head_inner = int(cfg.ffn_head_inner)
  head_ffn = _choice("head_ffn", getattr(cfg, "head_ffn", "head"), ("head", "full", "dense"))
  if head_inner <= 0:  # Default: d' for FFN', the trunk's width for the dense FFN.
    head_inner = int(cfg.ffn_inner) if head_ffn == "dense" else d // hh
  return ModelSettings(
      hidden_size=d,
      num_layers=int(cfg.num_layers),
      num_heads=hh,
      num_experts=ee,
      ffn_inner=int(cfg.ffn_inner),
      ffn_head_inner=head_inner,
      dropout=dropout,
      fame_dropout=fame_dropout if fame_dropout >= 0 else dropout,
      facet_heads=bool(cfg.facet_heads),
      facet_item_proj=_choice("facet_item_proj", cfg.facet_item_proj, ("linear", "slice")),
      facet_proj_init=_choice("facet_proj_init", cfg.facet_proj_init, ("normal", "selector")),
      # Configs written before these options existed lack their keys; the
      # defaults are those of config_check.ADDED_DEFAULTS (the old behaviour).
      facet_proj_scale=float(getattr(cfg, "facet_proj_scale", 1.0)),
      output_norm_scale=float(getattr(cfg, "output_norm_scale", 1.0)),
      moe_residual=_choice("moe_residual", cfg.moe_residual, ("slice", "key_proj")),
      gate=_choice("gate", cfg.gate, ("learned", "uniform")),
      mix=_choice("mix", getattr(cfg, "mix", "logits"), ("logits", "probs")),
      moe_all_layers=bool(cfg.moe_all_layers),
      head_mix=bool(getattr(cfg, "head_mix", False)),
      head_ffn=head_ffn,
      head_norm=_choice("head_norm", getattr(cfg, "head_norm", "head"), ("head", "full")),
      layer_norm_eps=float(cfg.layer_norm_eps),
      init_std=float(cfg.init_std),
      max_len=int(getattr(cfg, "max_len", _DEFAULT_MAX_LEN)),
  )


def selector_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
  """``W_f`` init whose head ``h`` picks chunk ``h``: ``W[h][h*d' + i, i] = 1``.

  With it, ``linear`` facet projection starts equal to ``slice`` (SPEC 3),
  and it is the layout the pre-training hand-off writes.

  Args:
    key: unused (deterministic init).
    shape: ``(H, d, d')``.
    dtype: parameter dtype.

  Returns:
    ``[H, d, d']``.
  """
  del key
  hh, d, dh = shape
  # eye(d) viewed as [d, H, d'] has [j, h, i] = 1 iff j == h * d' + i.
  return jnp.eye(d, dtype=dtype).reshape(d, hh, dh).transpose(1, 0, 2)


def item_embedding_init(std: float) -> nn.initializers.Initializer:
  """N(0, std) with the pad row 0 set to zero (SPEC section 4)."""
  base = layers.normal_init(std)

  def init(key, shape, dtype=jnp.float32):
    return base(key, shape, dtype).at[0].set(0.0)

  return init


class FameBlock(nn.Module):
  """The FAME block (SPEC section 2) plus the gate and facet projection (3).

  With ``head_ffn="full"`` the params are instead ``block`` (a
  :class:`layers.TransformerBlock` with MoE attention, whose output split into
  ``H`` chunks of ``d'`` gives the ``F^h``), ``gate`` and ``facet_proj``.
  Otherwise: ``attention`` (:class:`layers.MoEAttention`), ``head_mix``
  (Linear(d, d) over the concatenated head outputs, only with
  ``head_mix=True``), ``residual_norm`` and
  ``head_ffn_norm`` (LayerNorm over d', shared by heads; over all d with
  ``head_norm="full"``), ``head_ffn`` (FFN', shared by heads; with
  ``head_ffn="dense"`` one FFN d -> ffn_head_inner -> d over the
  concatenated heads), ``gate`` (Linear(d, H), only with ``gate="learned"``) and
  ``facet_proj [H, d, d']`` (``W_f^h``, only with
  ``facet_item_proj="linear"``).

  Attributes:
    s: the model settings.
  """
  s: ModelSettings

  def _head_ffn(self, x, mask, train, query_index):
    """SPEC section 2: MoE attention, head-wise residual + LN, FFN', LN.

    Returns ``(facets [B, Q, H, d'], router [B, Q, H, E])``.
    """
    s = self.s
    hh, dh = s.num_heads, s.head_size
    deterministic = not train
    mixed, router, keys = layers.MoEAttention(
        hh, s.num_experts, s.fame_dropout, s.init_std, name="attention")(x, mask, train,
                                                                         query_index)
    x = layers.take_rows(x, query_index)
    b, l, d = x.shape
    if s.head_mix:
      # A W_O before the split: head h's FFN' then sees every head's attention
      # output (a SASRec block mixes heads here; the SPEC FAME block does not).
      mixed = nn.Dense(d, kernel_init=layers.normal_init(s.init_std), name="head_mix")(
          mixed.reshape(b, l, d)).reshape(b, l, hh, dh)
    drop = nn.Dropout(s.fame_dropout)
    # X^h: the h-th d' slice of the input, or the shared key K^h.
    residual = x.reshape(b, l, hh, dh) if s.moe_residual == "slice" else keys
    # LayerNorm and FFN' act on the last (d') axis, so one set of weights
    # serves every head. The diagnostics head_norm="full" (LayerNorms) and
    # head_ffn="dense" (FFN) act on the H heads together, over all d.
    def apply(module, z, joint):
      return module(z.reshape(b, l, d)).reshape(z.shape) if joint else module(z)

    joint_norm = s.head_norm == "full"
    r = apply(nn.LayerNorm(s.layer_norm_eps, name="residual_norm"),
              residual + drop(mixed, deterministic=deterministic), joint_norm)
    ffn = apply(layers.FeedForward(s.ffn_head_inner, s.init_std, name="head_ffn"), r,
                s.head_ffn == "dense")
    facets = apply(nn.LayerNorm(s.layer_norm_eps,
                                scale_init=nn.initializers.constant(s.output_norm_scale),
                                name="head_ffn_norm"),
                   r + drop(ffn, deterministic=deterministic), joint_norm)  # F^h: [B, L, H, d']
    return facets, router

  def _full_block(self, x, mask, train, query_index):
    """``head_ffn="full"``: the standard block (MoE attention, W_O, full-width
    residual + LN, FFN d -> ffn_inner -> d, LN) split into the H chunks F^h.

    The facet heads then differ from a no-facet last block only in the gate
    and W_f^h, not in a d'-wide FFN' per head. Returns what :meth:`_head_ffn`
    returns.
    """
    s = self.s
    y, inter = layers.TransformerBlock(
        s.num_heads, s.num_experts, s.ffn_inner, s.fame_dropout, s.layer_norm_eps, s.init_std,
        s.output_norm_scale, name="block")(x, mask, train, query_index)
    return y.reshape(y.shape[:-1] + (s.num_heads, s.head_size)), inter["router"]

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, train: bool,
               query_index: jax.Array | None = None):
    """Per-head facet representations and the user vector.

    Args:
      x: ``[B, L, d]`` block input.
      mask: ``[B, L, L]`` bool attention mask.
      train: enables dropout.
      query_index: optional ``[B]`` int: compute only row ``query_index[b]``
        (the outputs below then have ``L = 1``).

    Returns:
      ``(u, intermediates)``: with ``mix="logits"``, ``u [B, L, d]`` with
      ``u_t = sum_h g_{t,h} W_f^h F^h_t`` (or ``F^h_t`` placed in chunk ``h``
      for ``slice``); with ``mix="probs"``, the ungated per-head vectors
      ``u [B, L, H, d]``, ``u^h_t = W_f^h F^h_t`` (head ``h``'s score of item
      ``v`` is ``<u^h_t, item_emb[v]>``), and ``intermediates["log_gate"]
      [B, L, H]`` (``log g``). ``intermediates`` also holds ``gate [B, L, H]``,
      ``router [B, L, H, E]``, ``head_outputs [B, L, H, d']`` (the ``F^h``).
    """
    s = self.s
    hh, dh = s.num_heads, s.head_size
    make_facets = self._full_block if s.head_ffn == "full" else self._head_ffn
    facets, router = make_facets(x, mask, train, query_index)
    b, l, _, _ = facets.shape
    d = s.hidden_size
    if s.gate == "learned":
      gate_logits = nn.Dense(hh, kernel_init=layers.normal_init(s.init_std), name="gate")(
          facets.reshape(b, l, d))  # [F^1 || ... || F^H]
      gate = jax.nn.softmax(gate_logits, axis=-1)
      log_gate = jax.nn.log_softmax(gate_logits, axis=-1)
    else:
      gate = jnp.full((b, l, hh), 1.0 / hh, facets.dtype)
      log_gate = jnp.full((b, l, hh), -jnp.log(float(hh)), facets.dtype)
    inter = {"gate": gate, "router": router, "head_outputs": facets}
    if s.mix == "probs":
      # Each head scores on its own and is normalised on its own; the gate
      # then mixes probabilities (losses.mixture_ce, score_items).
      inter["log_gate"] = log_gate

    if s.facet_item_proj == "linear":
      if s.facet_proj_init == "selector":
        init = lambda key, shape, dtype=jnp.float32: s.facet_proj_scale * selector_init(
            key, shape, dtype)
      else:
        init = layers.normal_init(s.init_std)
      # <F^h, item_emb[v] W_f^h> = <W_f^h F^h, item_emb[v]>: move the
      # projection to the user side so scoring stays one matmul.
      w_f = self.param("facet_proj", init, (hh, d, dh))
      if s.mix == "probs":
        return jnp.einsum("blhk,hdk->blhd", facets, w_f), inter
      u = jnp.einsum("blh,blhk,hdk->bld", gate, facets, w_f)
    elif s.mix == "probs":
      # Slice: W_f^h is the fixed selector of chunk h.
      u = jnp.einsum("blhk,hdk->blhd", facets, selector_init(None, (hh, d, dh), facets.dtype))
    else:
      u = (gate[..., None] * facets).reshape(b, l, d)
    return u, inter


class FAME(nn.Module):
  """FAME (or, by config, SASRec) over item sequences.

  Param tree: ``item_emb/embedding [N+1, d]``, ``pos_emb/embedding
  [max_len, d]``, ``embed_norm``, ``block_0 .. block_{num_layers-2}``
  (:class:`layers.TransformerBlock`) and ``fame_block`` (:class:`FameBlock`,
  or a ``TransformerBlock`` when ``facet_heads=False``).

  Attributes:
    cfg: ``config.model`` (only read; see :func:`model_settings`).
    num_items: ``N``; the item table has ``N + 1`` rows, row 0 the pad.
  """
  cfg: Any
  num_items: int

  @nn.compact
  def __call__(self, items: jax.Array, positions: jax.Array, segments: jax.Array,
               train: bool = False, query_index: jax.Array | None = None):
    """Encodes sequences into per-position user vectors.

    Args:
      items: ``[B, L]`` int32 item ids, 0 = pad.
      positions: ``[B, L]`` int32 rows of the position table, in
        ``0..max_len-1``.
      segments: ``[B, L]`` int32, 0 = pad; a token attends to tokens at an
        earlier-or-equal row index with the same nonzero segment id (packed
        rows hold several users as segments 1, 2, ...).
      train: enables dropout (needs the ``"dropout"`` rng).
      query_index: optional ``[B]`` int32: the last block computes only row
        ``query_index[b]`` of each sequence (the earlier blocks still run on
        every row, which that row attends to), and every output below has
        ``L = 1``: the scored position at evaluation, for a fraction of the
        last block's cost. Equal to that row of the full outputs.

    Returns:
      ``(u, intermediates)``: ``u [B, L, d]`` float32 user vectors (zero at
      pad positions), scored by :func:`score_items`; ``intermediates`` =
      ``router [B, L, H, E]`` and ``head_outputs [B, L, H, d']`` of the last
      block, plus ``gate [B, L, H]`` when ``facet_heads=True``.

    Raises:
      ValueError: if ``L`` exceeds ``max_len``.
    """
    s = model_settings(self.cfg)
    if items.shape[-1] > s.max_len:
      raise ValueError(f"sequence length {items.shape[-1]} exceeds model.max_len {s.max_len}")
    d, std, eps = s.hidden_size, s.init_std, s.layer_norm_eps
    real = (segments != 0)[..., None]

    item_emb = nn.Embed(self.num_items + 1, d, embedding_init=item_embedding_init(std),
                        name="item_emb")
    pos_emb = nn.Embed(s.max_len, d, embedding_init=layers.normal_init(std), name="pos_emb")
    # Pads look up row 0 whatever they hold: an out-of-range id or position
    # would give a NaN embedding (jnp.take fills), and NaN * 0 reaches real
    # positions through 0-weight attention terms and LayerNorm gradients.
    pad = ~real[..., 0]
    x = item_emb(jnp.where(pad, 0, items)) + pos_emb(jnp.where(pad, 0, positions))
    x = nn.LayerNorm(eps, name="embed_norm")(x)
    x = jnp.where(real, nn.Dropout(s.dropout)(x, deterministic=not train), 0.0)

    mask = layers.attention_mask(segments)
    for i in range(s.num_layers - 1):  # Layers differ in weights; heads never loop.
      x, _ = layers.TransformerBlock(s.num_heads, s.trunk_experts, s.ffn_inner, s.dropout, eps,
                                     std, name=f"block_{i}")(x, mask, train)
    if s.facet_heads:
      u, intermediates = FameBlock(s, name="fame_block")(x, mask, train, query_index)
    else:
      u, intermediates = layers.TransformerBlock(
          s.num_heads, s.last_block_experts, s.ffn_inner, s.fame_dropout, eps, std,
          s.output_norm_scale, name="fame_block")(x, mask, train, query_index)
    real = layers.take_rows(real, query_index)
    if u.ndim == 4:  # mix="probs": [B, L, H, d].
      real = real[..., None]
    return jnp.where(real, u, 0.0), intermediates


def score_items(u: jax.Array, item_table: jax.Array,
                log_gate: jax.Array | None = None) -> jax.Array:
  """Scores every item for every user vector.

  The one score function that evaluation and export call (training calls
  ``losses``, which computes the same quantities). The pad column 0 is
  ``-inf`` so the pad item is never a candidate (TRAPS 4).

  * ``log_gate is None`` (``mix="logits"``): ``u @ item_table.T``.
  * ``mix="probs"``: ``u [..., H, d]`` are the per-head vectors and the score
    is the log of the gated mixture of per-head softmaxes,
    ``log sum_h g_h softmax_v(<u^h, e_v>)`` over the real items ``1..N``: the
    log-probability the training loss maximises, so ranks follow it.

  Args:
    u: ``[..., d]`` (or ``[..., H, d]`` with ``log_gate``) from :class:`FAME`.
    item_table: ``[N+1, d]``, ``params["item_emb"]["embedding"]``.
    log_gate: ``[..., H]`` log gate weights (``intermediates["log_gate"]``).

  Returns:
    ``[..., N+1]`` float scores, column 0 ``-inf``.
  """
  scores = jnp.einsum("...d,nd->...n", u, item_table)
  scores = scores.at[..., 0].set(-jnp.inf)
  if log_gate is None:
    return scores
  log_p = jax.nn.log_softmax(scores, axis=-1)  # Per head; the pad column stays -inf.
  return jax.nn.logsumexp(log_gate[..., None] + log_p, axis=-2)
