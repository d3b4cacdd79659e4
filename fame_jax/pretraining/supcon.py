"""Facet projection heads and contrastive losses (docs/protocol.md §5).

* :class:`FacetProjectionHeads`: ``H`` two-layer MLPs ``P_h: 384 -> hidden ->
  d'`` (GELU) with stacked weights and einsums -- all heads at once, no Python
  loop. Applying it to a params tree sliced to one head (leading axis 1) runs
  that head alone; the alternating schedule uses that.
* :func:`supcon_loss`: supervised contrastive loss, Khosla et al. 2020, the
  ``L_out`` form, with multi-label positives given as a ``[B, B]`` mask.
* :func:`nt_xent_loss`: the instance-contrastive fallback for unlabelled heads
  (two dropout views of the same text embedding; the positive of a view is the
  other view of the same item), written as :func:`supcon_loss` on ``2B`` rows.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class FacetProjectionHeads(nn.Module):
  """``H`` stacked projection MLPs ``P_h(t) = W2_h gelu(W1_h t + b1_h) + b2_h``."""

  num_heads: int
  hidden_size: int
  out_size: int

  @nn.compact
  def __call__(self, t: jax.Array) -> jax.Array:
    """Projects text embeddings.

    Args:
      t: [B, D_text] frozen text embeddings.

    Returns:
      [B, H, d'] un-normalised facet embeddings ``P_h(t)``. ``H`` is taken from
      the params, so a tree sliced to ``[1, ...]`` leaves gives one head.
    """
    # Per-head fan-in init: the head axis is a batch axis, not a fan axis.
    init = nn.initializers.lecun_normal(batch_axis=(0,))
    w1 = self.param("w1", init, (self.num_heads, t.shape[-1], self.hidden_size))
    b1 = self.param("b1", nn.initializers.zeros, (self.num_heads, self.hidden_size))
    w2 = self.param("w2", init, (self.num_heads, self.hidden_size, self.out_size))
    b2 = self.param("b2", nn.initializers.zeros, (self.num_heads, self.out_size))
    # Text embeddings are unit-norm; sqrt(D) brings components to ~unit scale.
    t = t * jnp.sqrt(jnp.float32(t.shape[-1]))
    h = jnp.einsum("bi,hij->bhj", t, w1) + b1
    h = jax.nn.gelu(h, approximate=False)
    return jnp.einsum("bhj,hjk->bhk", h, w2) + b2


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


def positives_from_multihot(labels: jax.Array) -> jax.Array:
  """[B, V] multi-hot labels -> [B, B] bool "share at least one value"."""
  m = labels.astype(jnp.float32)
  return (m @ m.T) > 0


def supcon_loss(z: jax.Array, positives: jax.Array, has_label: jax.Array,
                temperature: float) -> tuple[jax.Array, jax.Array]:
  """Supervised contrastive loss (Khosla et al. 2020, ``L_out``).

  For each anchor ``i`` with a label and at least one positive ``p != i``::

    l_i = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau) )

  and the loss is the mean of ``l_i`` over those anchors. Every other row of the
  batch (labelled or not) is in the denominator. A batch without any positive
  pair gives 0 (finite, zero gradient).

  Args:
    z: [B, D] L2-normalised embeddings.
    positives: [B, B] bool, ``positives[i, j]`` = i and j share a facet value
      (the diagonal is ignored).
    has_label: [B] bool; rows without a label are never anchors or positives.
    temperature: ``tau``.

  Returns:
    (loss scalar, number of anchors that contributed).
  """
  b = z.shape[0]
  eye = jnp.eye(b, dtype=bool)
  logits = (z @ z.T) / temperature
  denom = jax.nn.logsumexp(jnp.where(eye, -jnp.inf, logits), axis=1, keepdims=True)
  log_prob = logits - denom
  pos = positives & ~eye & has_label[:, None] & has_label[None, :]
  n_pos = pos.sum(axis=1)
  anchor = has_label & (n_pos > 0)
  # where(), not multiply: keeps any non-positive entry out of the sum exactly.
  per_anchor = -jnp.where(pos, log_prob, 0.0).sum(axis=1) / jnp.maximum(n_pos, 1)
  n_anchor = anchor.sum()
  loss = jnp.where(anchor, per_anchor, 0.0).sum() / jnp.maximum(n_anchor, 1)
  return loss, n_anchor


def nt_xent_loss(z1: jax.Array, z2: jax.Array, temperature: float
                 ) -> tuple[jax.Array, jax.Array]:
  """Instance contrastive (NT-Xent) loss of two views.

  Args:
    z1, z2: [B, D] L2-normalised embeddings of two views of the same ``B`` rows.
    temperature: ``tau``.

  Returns:
    (loss, 2B): :func:`supcon_loss` over the ``2B`` views where the only
    positive of a view is the other view of the same row.
  """
  b = z1.shape[0]
  z = jnp.concatenate([z1, z2], axis=0)
  idx = jnp.arange(2 * b)
  partner = (idx + b) % (2 * b)
  positives = idx[None, :] == partner[:, None]
  return supcon_loss(z, positives, jnp.ones(2 * b, bool), temperature)


def batch_positives(ids: np.ndarray, indptr: np.ndarray, values: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Host-side positives of a batch from one facet's CSR labels.

  Args:
    ids: [B] item ids.
    indptr, values: :func:`fame_jax.pretraining.item_text.label_index` output.

  Returns:
    positives [B, B] bool (share >= 1 value; diagonal true where labelled) and
    has_label [B] bool.
  """
  counts = indptr[ids + 1] - indptr[ids]
  has_label = counts > 0
  if not has_label.any():
    b = len(ids)
    return np.zeros((b, b), bool), has_label
  rows = np.repeat(np.arange(len(ids)), counts)
  cols = np.concatenate([values[indptr[i]:indptr[i + 1]] for i in ids])
  # Batch-local vocabulary keeps the multi-hot matrix [B, <= B*K] small.
  _, local = np.unique(cols, return_inverse=True)
  m = np.zeros((len(ids), local.max() + 1), np.float32)
  m[rows, local] = 1.0
  return (m @ m.T) > 0, has_label
