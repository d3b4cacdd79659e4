"""The FAME sequential recommender (docs/protocol.md §1-3) and its score function.

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

from fame_jax import options
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
  dropout: float
  facet_heads: bool
  facet_item_proj: str
  facet_proj_init: str
  output_norm_scale: float
  gate: str
  moe_all_layers: bool
  layer_norm_eps: float
  init_std: float
  max_len: int

  @property
  def head_size(self) -> int:
    """``d' = d / H``, also the inner width of FFN' (docs/protocol.md §2)."""
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


def model_settings(cfg: Any) -> ModelSettings:
  """Validates the model config and resolves its defaults.

  Choice values are checked against ``fame_jax.options`` (the one list of
  allowed values). Keys of options deleted after a run was made
  (``options.DELETED``) are not read: ``config_check.with_added_defaults``
  refuses a stored config that sets one to anything but its no-op value.

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
  choice = lambda name: options.check_choice(f"model.{name}", cfg[name])  # noqa: E731
  return ModelSettings(
      hidden_size=d,
      num_layers=int(cfg.num_layers),
      num_heads=hh,
      num_experts=ee,
      ffn_inner=int(cfg.ffn_inner),
      dropout=float(cfg.dropout),
      facet_heads=bool(cfg.facet_heads),
      facet_item_proj=choice("facet_item_proj"),
      facet_proj_init=choice("facet_proj_init"),
      # Configs written before this option existed lack its key; the default
      # is that of config_check.ADDED_DEFAULTS (the old behaviour).
      output_norm_scale=float(getattr(cfg, "output_norm_scale", 1.0)),
      gate=choice("gate"),
      moe_all_layers=bool(cfg.moe_all_layers),
      layer_norm_eps=float(cfg.layer_norm_eps),
      init_std=float(cfg.init_std),
      max_len=int(getattr(cfg, "max_len", _DEFAULT_MAX_LEN)),
  )


def selector_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
  """``W_f`` init whose head ``h`` picks chunk ``h``: ``W[h][h*d' + i, i] = 1``.

  With it, ``linear`` facet projection starts equal to ``slice`` (docs/protocol.md §3),
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
  """N(0, std) with the pad row 0 set to zero (docs/protocol.md §4)."""
  base = layers.normal_init(std)

  def init(key, shape, dtype=jnp.float32):
    return base(key, shape, dtype).at[0].set(0.0)

  return init


class FameBlock(nn.Module):
  """The FAME block (docs/protocol.md §2) plus the gate and facet projection (§3).

  Params: ``attention`` (:class:`layers.MoEAttention`, no biases),
  ``residual_norm`` and ``head_ffn_norm`` (LayerNorm over d', shared by the
  heads), ``head_ffn`` (FFN' d' -> d' -> d', shared by the heads), ``gate``
  (Linear(d, H), only with ``gate="learned"``) and ``facet_proj [H, d, d']``
  (``W_f^h``, only with ``facet_item_proj="linear"``).

  Attributes:
    s: the model settings.
  """
  s: ModelSettings

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
      ``(u, intermediates)``: ``u [B, L, d]`` with
      ``u_t = sum_h g_{t,h} W_f^h F^h_t`` (or ``F^h_t`` placed in chunk ``h``
      for ``slice``); ``intermediates`` holds ``gate [B, L, H]``,
      ``router [B, L, H, E]`` and ``head_outputs [B, L, H, d']`` (the ``F^h``).
    """
    s = self.s
    hh, dh, d = s.num_heads, s.head_size, s.hidden_size
    deterministic = not train
    mixed, router = layers.MoEAttention(hh, s.num_experts, s.dropout, s.init_std,
                                        name="attention")(x, mask, train, query_index)
    x = layers.take_rows(x, query_index)
    b, l, _ = x.shape
    drop = nn.Dropout(s.dropout)
    # Head-wise residual: X^h is the h-th d' slice of the block input. The
    # LayerNorms and FFN' act on the last (d') axis, so one set of weights
    # serves every head and the heads never mix (there is no W_O).
    r = nn.LayerNorm(s.layer_norm_eps, name="residual_norm")(
        x.reshape(b, l, hh, dh) + drop(mixed, deterministic=deterministic))
    ffn = layers.FeedForward(dh, s.init_std, name="head_ffn")(r)
    facets = nn.LayerNorm(s.layer_norm_eps,
                          scale_init=nn.initializers.constant(s.output_norm_scale),
                          name="head_ffn_norm")(
                              r + drop(ffn, deterministic=deterministic))  # F^h: [B, L, H, d']
    if s.gate == "learned":
      gate = jax.nn.softmax(
          nn.Dense(hh, kernel_init=layers.normal_init(s.init_std), name="gate")(
              facets.reshape(b, l, d)),  # [F^1 || ... || F^H]
          axis=-1)
    else:
      gate = jnp.full((b, l, hh), 1.0 / hh, facets.dtype)
    inter = {"gate": gate, "router": router, "head_outputs": facets}

    if s.facet_item_proj == "linear":
      init = (selector_init if s.facet_proj_init == "selector"
              else layers.normal_init(s.init_std))
      # <F^h, item_emb[v] W_f^h> = <W_f^h F^h, item_emb[v]>: move the
      # projection to the user side so scoring stays one matmul.
      w_f = self.param("facet_proj", init, (hh, d, dh))
      u = jnp.einsum("blh,blhk,hdk->bld", gate, facets, w_f)
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
          s.num_heads, s.last_block_experts, s.ffn_inner, s.dropout, eps, std,
          s.output_norm_scale, name="fame_block")(x, mask, train, query_index)
    real = layers.take_rows(real, query_index)
    return jnp.where(real, u, 0.0), intermediates


def score_items(u: jax.Array, item_table: jax.Array) -> jax.Array:
  """Scores every item for every user vector: ``u @ item_table.T``.

  The one score function that evaluation and export call (training calls
  ``losses``, which computes the same logits). The pad column 0 is ``-inf``
  so the pad item is never a candidate (docs/protocol.md trap 4).

  Args:
    u: ``[..., d]`` from :class:`FAME`.
    item_table: ``[N+1, d]``, ``params["item_emb"]["embedding"]``.

  Returns:
    ``[..., N+1]`` float scores, column 0 ``-inf``.
  """
  scores = jnp.einsum("...d,nd->...n", u, item_table)
  return scores.at[..., 0].set(-jnp.inf)
