"""Serving a trained model: a self-contained ``jax.export`` artifact and an HTTP app.

``python recommend.py --workdir W --export-serving DIR`` writes (:func:`export_serving`):

* ``DIR/model.jaxexport``: ``jax.export`` (StableHLO) of
  ``history [B, T] int32 -> (items [B, max_k] int32, scores [B, max_k] float32)``
  with the parameters baked in. ``history`` holds item indices (positions in
  ``vocab.json``'s ``"items"``) in chronological order, right-padded with 0;
  ``B`` and ``T`` are symbolic, so any batch and history length run. Inside:
  the model reads the last ``max_len`` items, every history item and the pad
  are set to ``-inf``, and ``jax.lax.top_k`` returns the best ``max_k``, best
  first (a caller wanting ``k < max_k`` takes the first ``k``).
* ``DIR/vocab.json``: the workdir's vocabulary (raw ids of the item indices).
* ``DIR/serving.json``: what the artifact takes and returns (``max_len``,
  ``max_k``, ``max_history``, the batch and history sizes, platforms).

Running it needs ``jax`` and ``numpy`` only (``tests/test_serving.py`` does so
in a process that imports no fame_jax module)::

  exported = jax.export.deserialize(open("DIR/model.jaxexport", "rb").read())
  items, scores = exported.call(np.asarray([[5, 17, 3, 0]], np.int32))

:class:`ServingModel` adds the raw-id mapping and request checks, and
:func:`make_app` the aiohttp application that ``serve.py`` runs. Neither
imports the model code: a server needs only the directory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
from typing import Any, Sequence

import jax
import numpy as np

ARTIFACT = "model.jaxexport"
SERVING_JSON = "serving.json"
VOCAB_JSON = "vocab.json"
FORMAT_VERSION = 1
# Requests are padded to these sizes so each pair compiles once per process.
_MIN_HISTORY_WIDTH = 16
_MIN_BATCH_ROWS = 8


def _next_pow2(n: int) -> int:
  return 1 << max(0, int(n) - 1).bit_length()


# --------------------------------------------------------------------- export


def export_serving(recommender: Any, directory: str, max_k: int = 100, max_history: int = 1024,
                   platforms: Sequence[str] | None = None) -> dict[str, Any]:
  """Writes the serving directory of a :class:`fame_jax.recommender.Recommender`.

  Args:
    recommender: the loaded model.
    directory: created if missing; its three files are overwritten.
    max_k: items the artifact returns per history (at most ``N``: a smaller
      catalogue is returned whole).
    max_history: longest history a server accepts (requests beyond it get a
      400); the artifact itself takes any length.
    platforms: ``jax.export`` platforms (default: the current backend).

  Returns:
    The ``serving.json`` content.
  """
  import jax.numpy as jnp
  from fame_jax.models import score_items

  num_items, max_len = recommender.num_items, recommender.max_len
  if max_k < 1 or max_history < 1:
    raise ValueError(f"max_k and max_history must be >= 1, got {max_k}, {max_history}")
  max_k = min(max_k, num_items)  # A catalogue smaller than max_k: all of it, ranked.
  params, user_vectors = recommender.params, recommender._user_vectors

  def top_items(history):
    """``history [B, T]`` right-padded indices -> top ``max_k`` (indices, scores)."""
    lengths = jnp.sum(history > 0, axis=1).astype(jnp.int32)
    n = jnp.minimum(lengths, max_len)
    col = jnp.arange(max_len, dtype=jnp.int32)[None, :]
    # The model window: the last n items, right-padded to max_len (the
    # evaluator's layout; make_user_vector_fn handles prefix_last models).
    src = lengths[:, None] - n[:, None] + col
    window = jnp.where(col < n[:, None], jnp.take_along_axis(history, src, axis=1, mode="clip"), 0)
    u = user_vectors(params, window, n)
    scores = score_items(u, params["item_emb"]["embedding"])
    rows = jax.lax.broadcasted_iota(jnp.int32, history.shape, 0)
    scores = scores.at[rows, history].set(-jnp.inf)  # Column 0 (pad) is -inf already.
    top_scores, top_items = jax.lax.top_k(scores, max_k)
    return top_items.astype(jnp.int32), top_scores

  b, t = jax.export.symbolic_shape("b, t")
  exported = jax.export.export(jax.jit(top_items), platforms=platforms)(
      jax.ShapeDtypeStruct((b, t), jnp.int32))
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, ARTIFACT), "wb") as f:
    f.write(exported.serialize())
  with open(os.path.join(directory, VOCAB_JSON), "w") as f:
    json.dump({"format_version": 1, "users": recommender.user_ids,
               "items": recommender.item_ids}, f)
  info = {
      "format_version": FORMAT_VERSION,
      "artifact": ARTIFACT,
      "inputs": {"history": "[B, T] int32 item indices (positions in vocab.json 'items'), "
                            "chronological, right-padded with 0; B and T symbolic (any >= 1)"},
      "outputs": {"items": "[B, max_k] int32 item indices, best first",
                  "scores": "[B, max_k] float32, -inf for excluded items"},
      "excludes": "every history item and the pad item 0",
      "max_len": max_len,
      "max_k": int(max_k),
      "max_history": int(max_history),
      "batch_sizes": "any (symbolic batch dimension)",
      "num_items": num_items,
      "platforms": list(exported.platforms),
      "jax_version": jax.__version__,
      "workdir": recommender.workdir,
      "model": {k: recommender.config.model[k] for k in ("hidden_size", "num_layers",
                                                         "num_heads", "num_experts")},
  }
  with open(os.path.join(directory, SERVING_JSON), "w") as f:
    json.dump(info, f, indent=2)
  return info


# --------------------------------------------------------------------- loading


class RequestError(ValueError):
  """A request the server answers with a 4xx; ``status`` is the HTTP code."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


class ServingModel:
  """A serving directory loaded for answering requests (jax, numpy, json only).

  Attributes:
    info: ``serving.json``.
    item_ids: raw item ids by index (``item_ids[0]`` the pad, ``None``).
  """

  def __init__(self, directory: str):
    for name in (SERVING_JSON, VOCAB_JSON, ARTIFACT):
      if not os.path.isfile(os.path.join(directory, name)):
        raise FileNotFoundError(f"{os.path.join(directory, name)} not found: make the directory "
                                "with python recommend.py --workdir W --export-serving DIR")
    with open(os.path.join(directory, SERVING_JSON)) as f:
      self.info = json.load(f)
    with open(os.path.join(directory, VOCAB_JSON)) as f:
      self.item_ids = json.load(f)["items"]
    with open(os.path.join(directory, ARTIFACT), "rb") as f:
      self._exported = jax.export.deserialize(bytearray(f.read()))
    self.max_k = int(self.info["max_k"])
    self.max_history = int(self.info["max_history"])
    # Same text keys as fame_jax.recommender.id_key: 12 and "12" are one item.
    self._index = {(r if isinstance(r, str) else str(r)): i
                   for i, r in enumerate(self.item_ids) if i > 0}
    self._call = jax.jit(self._exported.call)

  def indices(self, history: Any, unknown: str = "error") -> tuple[np.ndarray, list[Any]]:
    """Checks one request's history; returns ``(item indices, skipped raw ids)``.

    Raises:
      RequestError: not a list of ids, empty, too long, or (``unknown="error"``)
        ids the model does not know (422, naming them).
    """
    if not isinstance(history, list):
      raise RequestError(f"'history' must be a list of raw item ids, got {type(history).__name__}")
    if not history:
      raise RequestError("'history' is empty: give at least one item id")
    if len(history) > self.max_history:
      raise RequestError(f"'history' has {len(history)} items; this server takes at most "
                         f"{self.max_history}", status=413)
    bad = [h for h in history if isinstance(h, bool) or not isinstance(h, (str, int))]
    if bad:
      raise RequestError(f"item ids must be strings or integers, got {bad[0]!r}")
    idx, missing = [], []
    for raw in history:
      i = self._index.get(raw if isinstance(raw, str) else str(raw))
      (missing if i is None else idx).append(raw if i is None else i)
    if missing and unknown == "error":
      shown = ", ".join(repr(m) for m in missing[:10])
      more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
      raise RequestError(f"unknown item ids: {shown}{more} (not in the model's vocab.json; "
                         "send \"unknown\": \"skip\" to drop them)", status=422)
    if not idx:
      raise RequestError("none of the history's item ids is known to the model", status=422)
    return np.asarray(idx, np.int32), missing

  def top_k(self, histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(item indices [B, max_k], scores [B, max_k])`` for index histories.

    One history runs alone; more are padded to a power of two rows (at least
    8), and the history width to a power of two (at least 16), so a server
    compiles a handful of shapes.
    """
    b = len(histories)
    longest = max(len(h) for h in histories)
    rows = 1 if b == 1 else max(_MIN_BATCH_ROWS, _next_pow2(b))
    width = max(_MIN_HISTORY_WIDTH, _next_pow2(longest))
    batch = np.zeros((rows, width), np.int32)
    for i, h in enumerate(histories):
      batch[i, :len(h)] = h
    # Pad rows get one item so they are ordinary histories (their answers are dropped).
    batch[b:, 0] = 1
    items, scores = self._call(batch)
    return np.asarray(items)[:b], np.asarray(scores)[:b]

  def answer(self, idx: np.ndarray, items: np.ndarray, scores: np.ndarray, k: int
             ) -> dict[str, Any]:
    keep = np.isfinite(scores[:k])
    return {"ids": [self.item_ids[int(i)] for i in items[:k][keep]],
            "scores": [float(s) for s in scores[:k][keep]]}


# --------------------------------------------------------------------- HTTP


def parse_request(body: Any, model: ServingModel) -> tuple[Any, int, str]:
  """``(history, k, unknown)`` of a request body, or :class:`RequestError`."""
  if not isinstance(body, dict):
    raise RequestError(f"the body must be a JSON object, got {type(body).__name__}")
  extra = sorted(set(body) - {"history", "k", "unknown"})
  if extra:
    raise RequestError(f"unknown field(s) {extra}; expected 'history', 'k', 'unknown'")
  if "history" not in body:
    raise RequestError("missing field 'history' (a list of raw item ids)")
  k = body.get("k", 10)
  if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= model.max_k:
    raise RequestError(f"'k' must be an integer in 1..{model.max_k}, got {k!r}")
  unknown = body.get("unknown", "error")
  if unknown not in ("error", "skip"):
    raise RequestError(f"'unknown' must be 'error' or 'skip', got {unknown!r}")
  return body["history"], k, unknown


class _Batcher:
  """Runs queued requests as one batched call, one call at a time.

  While a call runs, new requests queue; the next call takes all of them (up
  to ``max_batch``), so under load the model sees batches instead of single
  histories. Calls run in one worker thread, so the event loop keeps parsing
  requests meanwhile.
  """

  def __init__(self, model: ServingModel, max_batch: int = 64):
    self.model, self.max_batch = model, max_batch
    self.queue: asyncio.Queue | None = None
    self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    self.task: asyncio.Task | None = None

  async def start(self, app=None) -> None:
    self.queue = asyncio.Queue()
    self.task = asyncio.get_running_loop().create_task(self._run())

  async def stop(self, app=None) -> None:
    if self.task is not None:
      self.task.cancel()
    self.pool.shutdown(wait=False)

  async def submit(self, idx: np.ndarray):
    future = asyncio.get_running_loop().create_future()
    await self.queue.put((idx, future))
    return await future

  async def _run(self) -> None:
    loop = asyncio.get_running_loop()
    while True:
      jobs = [await self.queue.get()]
      while len(jobs) < self.max_batch and not self.queue.empty():
        jobs.append(self.queue.get_nowait())
      try:
        items, scores = await loop.run_in_executor(self.pool, self.model.top_k,
                                                   [idx for idx, _ in jobs])
        for b, (_, fut) in enumerate(jobs):
          if not fut.done():
            fut.set_result((items[b], scores[b]))
      except Exception as e:  # noqa: BLE001 - the requests fail, the server stays up.
        for _, fut in jobs:
          if not fut.done():
            fut.set_exception(e)


def make_app(model: ServingModel, max_batch: int = 64):
  """The aiohttp application: ``POST /recommend``, ``GET /health``.

  ``POST /recommend`` takes ``{"history": [raw ids], "k": 10, "unknown":
  "error"|"skip"}`` and answers ``{"ids": [...], "scores": [...]}`` (plus
  ``"unknown": [...]`` when ids were skipped). Bad requests get a 4xx with
  ``{"error": "<one line>"}``; the server keeps running.
  """
  from aiohttp import web

  batcher = _Batcher(model, max_batch)

  @web.middleware
  async def json_errors(request, handler):
    try:
      return await handler(request)
    except RequestError as e:
      return web.json_response({"error": str(e)}, status=e.status)
    except web.HTTPException as e:  # 404, 405, 413 from aiohttp itself.
      return web.json_response({"error": e.reason}, status=e.status)
    except Exception as e:  # noqa: BLE001 - one failed request, not a dead server.
      return web.json_response({"error": f"internal error: {type(e).__name__}: {e}"}, status=500)

  async def recommend(request):
    try:
      body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise RequestError(f"the body is not valid JSON: {e}") from None
    history, k, unknown = parse_request(body, model)
    idx, skipped = model.indices(history, unknown)
    items, scores = await batcher.submit(idx)
    out = model.answer(idx, items, scores, k)
    if skipped:
      out["unknown"] = skipped
    return web.json_response(out)

  async def health(request):
    return web.json_response({"status": "ok", "max_k": model.max_k,
                              "max_history": model.max_history,
                              "num_items": model.info["num_items"]})

  # Bodies beyond what max_history raw ids can take are refused before parsing.
  app = web.Application(middlewares=[json_errors],
                        client_max_size=max(1 << 20, 256 * model.max_history))
  app.router.add_post("/recommend", recommend)
  app.router.add_get("/health", health)
  app.on_startup.append(batcher.start)
  app.on_cleanup.append(batcher.stop)
  return app
