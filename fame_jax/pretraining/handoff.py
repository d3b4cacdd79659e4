"""Hand-off from pre-training to the sequential model (docs/protocol.md §5).

``apply_pretrained_item_embeddings`` replaces, in the model's params,

* ``item_emb/embedding`` [N+1, d] by ``concat_h c_h * P_h(t_v)``, where
  ``c_h = model_cfg.init_std / rms_h`` and ``rms_h`` is the root mean square of
  head ``h``'s pre-trained embeddings over items ``1..N`` and its ``d'``
  components. So every chunk has the per-component scale of the model's
  ``N(0, init_std)`` initialisation (the scale the rest of the network was
  initialised for), each head keeps the relative norms and all the directions
  it learned, and the pad row 0 stays 0;
* with ``facet_item_proj == "linear"``, ``fame_block/facet_proj`` [H, d, d'] by
  the chunk selectors ``facet_proj[h][h*d' + i, i] = 1``, so the model's head
  ``h`` item facet embedding ``item_emb[v] @ facet_proj[h]`` starts as
  ``c_h P_h(t_v)``. With ``"slice"`` it is chunk ``h`` directly.

The factors ``c_h`` are returned by :func:`pretrained_item_table`.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

EMBEDDINGS_FILE = "item_facet_embeddings.npy"


def load_item_facet_embeddings(pretrain_workdir: str) -> np.ndarray:
  """[N+1, H, d'] from ``<workdir>/pretrain/`` (or the ``pretrain`` dir itself)."""
  for path in (os.path.join(pretrain_workdir, "pretrain", EMBEDDINGS_FILE),
               os.path.join(pretrain_workdir, EMBEDDINGS_FILE)):
    if os.path.isfile(path):
      return np.load(path)
  raise FileNotFoundError(
      f"no {EMBEDDINGS_FILE} under {pretrain_workdir!r} (or its pretrain/ "
      f"folder): run pre-training first (config.pretrain.enabled=True, or "
      f"fame_jax.pretraining.run_pretraining) with that workdir")


def pretrained_item_table(emb: np.ndarray, init_std: float
                          ) -> tuple[np.ndarray, np.ndarray]:
  """Rescales and concatenates per-head embeddings.

  Args:
    emb: [N+1, H, d'] ``P_h(t_v)``.
    init_std: target per-component root mean square.

  Returns:
    (table [N+1, H*d'] float32 with row 0 zero, scales [H] = ``c_h``).
  """
  emb = np.asarray(emb, np.float32)
  rms = np.sqrt(np.mean(np.square(emb[1:].astype(np.float64)), axis=(0, 2)))
  scales = (init_std / np.maximum(rms, 1e-12)).astype(np.float32)
  table = (emb * scales[None, :, None]).reshape(emb.shape[0], -1)
  table[0] = 0.0
  return table, scales


def chunk_selectors(num_heads: int, head_dim: int) -> np.ndarray:
  """[H, d, d'] with ``sel[h][h*d' + i, i] = 1`` (picks chunk ``h``)."""
  d = num_heads * head_dim
  sel = np.zeros((num_heads, d, head_dim), np.float32)
  for h in range(num_heads):
    sel[h, h * head_dim:(h + 1) * head_dim, :] = np.eye(head_dim, dtype=np.float32)
  return sel


def _inner(params: Any) -> Any:
  """The params dict holding ``item_emb`` (accepts ``{"params": ...}`` too)."""
  if "item_emb" not in params and "params" in params:
    return params["params"]
  return params


def _to_dict(tree: Any) -> Any:
  if hasattr(tree, "items"):
    return {k: _to_dict(v) for k, v in tree.items()}
  return tree


def apply_pretrained_item_embeddings(params: Any, pretrain_workdir: str,
                                     model_cfg: Any) -> dict:
  """Initialises the item table (and W_f) from pre-training.

  Args:
    params: model params with ``item_emb/embedding`` [N+1, d] and, for
      ``facet_item_proj == "linear"``, ``fame_block/facet_proj`` [H, d, d'].
      May be wrapped as ``{"params": ...}`` (the wrapper is kept).
    pretrain_workdir: workdir given to ``run_pretraining``.
    model_cfg: ``config.model`` (``hidden_size``, ``num_heads``, ``init_std``,
      ``facet_item_proj``).

  Returns:
    A new params dict (the input is not modified).

  Raises:
    ValueError: item count, ``d`` or ``H`` disagree between the pre-trained
      embeddings, the params and the config.
  """
  emb = load_item_facet_embeddings(pretrain_workdir)
  num_heads, d = int(model_cfg.num_heads), int(model_cfg.hidden_size)
  if emb.ndim != 3:
    raise ValueError(f"pre-trained embeddings have shape {emb.shape}, expected [N+1, H, d']")
  n1, h_pre, d_pre = emb.shape
  if h_pre != num_heads or h_pre * d_pre != d:
    raise ValueError(
        f"pre-trained embeddings [N+1={n1}, H={h_pre}, d'={d_pre}] do not fit the "
        f"model: num_heads={num_heads}, hidden_size={d} (needs H={num_heads}, "
        f"d'={d // max(num_heads, 1)}); pre-train with the same model section")
  out = _to_dict(params)
  inner = _inner(out)
  table_shape = tuple(np.shape(inner["item_emb"]["embedding"]))
  if table_shape != (n1, d):
    raise ValueError(
        f"params item_emb/embedding has shape {table_shape} but the pre-trained "
        f"table is ({n1}, {d}): different item count (pre-trained on "
        f"{n1 - 1} items) or hidden size")
  table, _ = pretrained_item_table(emb, float(model_cfg.init_std))
  dtype = inner["item_emb"]["embedding"].dtype
  inner["item_emb"]["embedding"] = jax.numpy.asarray(table, dtype)
  # Without facet heads (SASRec, or FAME's no-facet-heads ablation) there is
  # no W_f: the pre-trained table is the whole hand-off.
  if model_cfg.facet_item_proj == "linear" and model_cfg.get("facet_heads", True):
    if "fame_block" not in inner or "facet_proj" not in inner["fame_block"]:
      raise ValueError("facet_item_proj='linear' but params have no "
                       "fame_block/facet_proj to set to the chunk selectors")
    shape = tuple(np.shape(inner["fame_block"]["facet_proj"]))
    if shape != (num_heads, d, d_pre):
      raise ValueError(f"fame_block/facet_proj has shape {shape}, expected "
                       f"{(num_heads, d, d_pre)}")
    inner["fame_block"]["facet_proj"] = jax.numpy.asarray(
        chunk_selectors(num_heads, d_pre), inner["fame_block"]["facet_proj"].dtype)
  return out


def item_emb_trainable_mask(params: Any, freeze: bool) -> Any:
  """Optax-style mask: ``False`` on the ``item_emb`` leaves when ``freeze``.

  Use with ``optax.masked(opt, mask)`` or as the labels of
  ``optax.multi_transform`` (``True`` = trainable). Same structure as ``params``.
  """
  def mark(path, _):
    names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
    return not (freeze and "item_emb" in names)
  return jax.tree_util.tree_map_with_path(mark, params)
