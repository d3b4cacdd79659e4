"""Tests for fame_jax.evaluation: ranks and metrics against brute force."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from fame_jax import evaluation


def _brute_ranks(scores, targets, histories, mask_history):
  """Literal reference: -inf masking, then a full sort with ties against the target."""
  ranks = []
  for s, t, h in zip(scores, targets, histories):
    s = np.asarray(s, np.float64).copy()
    s[0] = -np.inf
    if mask_history:
      for item in h:
        if item != t:
          s[item] = -np.inf
    is_target = (np.arange(len(s)) == t)
    # lexsort: primary key last. Descending score; among ties the target last.
    order = np.lexsort((is_target, -s))
    ranks.append(int(np.nonzero(order == t)[0][0]))
  return np.asarray(ranks)


def _brute_metrics(ranks, ks):
  out = {}
  for k in ks:
    out[f"HR@{k}"] = float(np.mean([r < k for r in ranks]))
    out[f"NDCG@{k}"] = float(np.mean([1 / math.log2(r + 2) if r < k else 0.0 for r in ranks]))
  return out


def _pad(histories, width=None):
  width = width or max(1, max(len(h) for h in histories))
  out = np.zeros((len(histories), width), np.int32)
  for r, h in enumerate(histories):
    out[r, :len(h)] = h
  return out


def _random_case(rng, b=40, n=60, ties=True):
  scores = rng.normal(size=(b, n + 1)).astype(np.float32)
  if ties:
    # Coarse rounding creates many exact ties, including with the target.
    scores = np.round(scores * 2) / 2
  targets = rng.integers(1, n + 1, size=b).astype(np.int32)
  histories = []
  for r in range(b):
    h = rng.integers(1, n + 1, size=rng.integers(0, 25))
    if r % 3 == 0:
      h = np.append(h, targets[r])  # Target inside the history: must stay ranked.
    if r % 4 == 0 and len(h):
      h = np.append(h, h[0])  # Repeats.
    histories.append(h.astype(np.int32))
  return scores, targets, histories


@pytest.mark.parametrize("mask_history", [True, False])
def test_compute_ranks_matches_brute_force(mask_history):
  rng = np.random.default_rng(0)
  scores, targets, histories = _random_case(rng)
  got = np.asarray(evaluation.compute_ranks(jnp.asarray(scores), jnp.asarray(targets),
                                            jnp.asarray(_pad(histories)), mask_history))
  want = _brute_ranks(scores, targets, histories, mask_history)
  np.testing.assert_array_equal(got, want)
  ks = (1, 5, 10, 20)
  assert evaluation.metrics_from_ranks(got, ks) == pytest.approx(_brute_metrics(want, ks), abs=1e-12)


def test_masking_changes_ranks_on_this_data():
  # Guards the test above against a case where masking is a no-op.
  rng = np.random.default_rng(0)
  scores, targets, histories = _random_case(rng)
  a = _brute_ranks(scores, targets, histories, True)
  b = _brute_ranks(scores, targets, histories, False)
  assert (a < b).sum() > 10


def test_hand_computed_fixture():
  # Items 1..6; pad column holds a huge score that must never be ranked.
  row = np.array([100.0, 0.9, 0.5, 0.7, 0.7, 0.1, 0.3], np.float32)
  scores = np.stack([row, row])
  targets = np.array([3, 4], np.int32)
  # Row 0: history holds item 1 (twice), item 5 and the target 3 itself.
  # Row 1: history holds item 3, which ties with target 4.
  history = np.array([[1, 3, 5, 1], [3, 0, 0, 0]], np.int32)
  unmasked = evaluation.compute_ranks(jnp.asarray(scores), jnp.asarray(targets),
                                      jnp.asarray(history), mask_history=False)
  # Row 0, target 3 (0.7): item 1 higher, item 4 tied -> 2. Row 1 likewise -> 2.
  np.testing.assert_array_equal(np.asarray(unmasked), [2, 2])
  masked = evaluation.compute_ranks(jnp.asarray(scores), jnp.asarray(targets),
                                    jnp.asarray(history), mask_history=True)
  # Row 0: item 1 masked, target 3 NOT masked, item 4 still tied -> 1.
  # Row 1: tied item 3 masked, item 1 still higher -> 1.
  np.testing.assert_array_equal(np.asarray(masked), [1, 1])
  m = evaluation.metrics_from_ranks(np.asarray(masked), ks=(1, 5))
  assert m["HR@1"] == 0.0 and m["HR@5"] == 1.0
  assert m["NDCG@5"] == pytest.approx(1 / math.log2(3))


def test_constant_scores_rank_last():
  n, b = 30, 4
  scores = jnp.zeros((b, n + 1))
  targets = jnp.array([1, 7, 15, 30], jnp.int32)
  history = jnp.asarray(np.array([[2, 3, 4, 5, 6]] * b, np.int32))
  ranks = np.asarray(evaluation.compute_ranks(scores, targets, history, mask_history=False))
  np.testing.assert_array_equal(ranks, [n - 1] * b)
  assert evaluation.metrics_from_ranks(ranks)["HR@10"] == 0.0
  assert evaluation.metrics_from_ranks(ranks)["NDCG@20"] == 0.0
  masked = np.asarray(evaluation.compute_ranks(scores, targets, history, mask_history=True))
  np.testing.assert_array_equal(masked, [n - 6] * b)  # 5 excluded, none is a target.


def test_per_user_metrics_closed_form():
  ranks = np.array([0, 1, 4, 5, 9, 10, 19, 20, 1000])
  pu = evaluation.per_user_metrics(ranks, ks=(5, 10, 20))
  np.testing.assert_array_equal(pu["HR@5"], [1, 1, 1, 0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(pu["HR@20"], [1, 1, 1, 1, 1, 1, 1, 0, 0])
  np.testing.assert_allclose(pu["NDCG@10"][:5], 1 / np.log2(ranks[:5] + 2))
  assert pu["NDCG@10"][5:].sum() == 0.0


@pytest.mark.parametrize("mask_history", [True, False])
def test_item_chunked_ranks_equal_full(mask_history):
  rng = np.random.default_rng(1)
  b, n, d = 24, 49, 8  # N + 1 = 50: not a multiple of the tile sizes below.
  for integer in (True, False):
    if integer:
      # Small integers: every dot is exact and ties are everywhere.
      u = rng.integers(-2, 3, size=(b, d)).astype(np.float32)
      table = rng.integers(-2, 3, size=(n + 1, d)).astype(np.float32)
    else:
      u = rng.normal(size=(b, d)).astype(np.float32)
      table = rng.normal(size=(n + 1, d)).astype(np.float32)
    _, targets, histories = _random_case(rng, b=b, n=n)
    hist = jnp.asarray(_pad(histories))
    full = evaluation.compute_ranks(jnp.asarray(u) @ jnp.asarray(table).T, jnp.asarray(targets),
                                    hist, mask_history)
    want = _brute_ranks(np.asarray(jnp.asarray(u) @ jnp.asarray(table).T), targets, histories,
                        mask_history)
    np.testing.assert_array_equal(np.asarray(full), want)
    for chunk in (1, 7, 16, 64):
      got = evaluation.compute_ranks_from_user_vectors(
          jnp.asarray(u), jnp.asarray(table), jnp.asarray(targets), hist,
          mask_history=mask_history, item_chunk=chunk)
      np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"chunk={chunk}")


def _eval_world(seed=2, users=100, n=80, d=6):
  rng = np.random.default_rng(seed)
  emb = rng.normal(size=(n + 1, d)).astype(np.float32)
  # Lengths cross max_len and several power-of-two history buckets.
  histories = [rng.integers(1, n + 1, size=rng.integers(1, 70)).astype(np.int32)
               for _ in range(users)]
  targets = rng.integers(1, n + 1, size=users).astype(np.int32)
  targets[::5] = [h[0] for h in histories[::5]]  # Some targets inside the history.
  return emb, histories, targets


def _numpy_score_fn(emb, shapes):
  def score_fn(inputs, lengths):
    shapes.add((inputs.shape, lengths.shape))
    assert inputs.dtype == np.int32 and lengths.dtype == np.int32
    u = emb[inputs].sum(axis=1)  # pad row 0 of emb is added for pad slots; harmless
    scores = np.round(u @ emb.T)  # rounding injects ties
    return scores.astype(np.float32)
  return score_fn


@pytest.mark.parametrize("mask_history", [True, False])
def test_evaluate_independent_of_batch_size(mask_history):
  emb, histories, targets = _eval_world()
  n = emb.shape[0] - 1
  results = {}
  for bs in (1, 7, 64):
    shapes = set()
    m, r = evaluation.evaluate(_numpy_score_fn(emb, shapes), histories, targets, n,
                               batch_size=bs, mask_history=mask_history, max_len=10,
                               return_ranks=True)
    assert shapes == {((bs, 10), (bs,))}  # static shapes: the last chunk is padded
    results[bs] = (m, r)
  for bs in (7, 64):
    np.testing.assert_array_equal(results[bs][1], results[1][1])
    assert results[bs][0] == results[1][0]  # bitwise-equal floats
  # And equal to the brute-force reference on the same scores.
  max_len = 10
  inputs = np.zeros((len(histories), max_len), np.int32)
  for i, h in enumerate(histories):
    x = h[-max_len:]
    inputs[i, :len(x)] = x
  scores = _numpy_score_fn(emb, set())(inputs, np.zeros(len(histories), np.int32))
  want = _brute_ranks(scores, targets, histories, mask_history)
  np.testing.assert_array_equal(results[7][1], want)


def test_evaluate_inputs_are_right_padded_windows():
  emb, histories, targets = _eval_world(users=20)
  n = emb.shape[0] - 1
  max_len = 10
  seen = []

  def score_fn(inputs, lengths, user_index):
    for x, n_, ui in zip(inputs, lengths, user_index):
      if n_ == 0:  # pad row of the last chunk (every real history is non-empty)
        assert ui == 0 and (x == 0).all()
        continue
      h = histories[ui][-max_len:]
      assert n_ == len(h)
      np.testing.assert_array_equal(x[:n_], h)
      assert (x[n_:] == 0).all()
      seen.append(int(ui))
    return np.zeros((inputs.shape[0], n + 1), np.float32)

  evaluation.evaluate(score_fn, histories, targets, n, batch_size=8, max_len=max_len,
                      pass_user_index=True)
  assert sorted(seen) == list(range(20))


def test_evaluate_rejects_bad_inputs():
  emb, histories, targets = _eval_world(users=5)
  n = emb.shape[0] - 1
  fn = _numpy_score_fn(emb, set())
  with pytest.raises(ValueError, match="targets"):
    evaluation.evaluate(fn, histories, targets[:4], n)
  bad = targets.copy()
  bad[0] = 0
  with pytest.raises(ValueError, match="1..80"):
    evaluation.evaluate(fn, histories, bad, n)
  with pytest.raises(ValueError, match="shape"):
    evaluation.evaluate(lambda x, l: np.zeros((x.shape[0], n)), histories, targets, n)


def test_popularity_scores():
  pop = evaluation.popularity_scores([np.array([1, 2, 2]), np.array([3, 2])], num_items=4)
  np.testing.assert_array_equal(pop, [0, 1, 3, 1, 0])


def test_nan_target_score_ranks_worst():
  scores = jnp.asarray(np.array([[0.0, 1.0, np.nan, 0.5]], np.float32))
  ranks = evaluation.compute_ranks(scores, jnp.array([2], jnp.int32), jnp.zeros((1, 1), jnp.int32))
  assert int(ranks[0]) == 3
  chunked = evaluation.compute_ranks_from_user_vectors(
      jnp.array([[np.nan]], jnp.float32), jnp.ones((4, 1)), jnp.array([2], jnp.int32),
      jnp.zeros((1, 1), jnp.int32), item_chunk=3)
  assert int(chunked[0]) == 3


def test_padded_chunk_matches_literal_rows():
  rng = np.random.default_rng(0)
  hists = [rng.integers(1, 50, size=n).astype(np.int32) for n in (0, 3, 7, 1, 12)]
  h = evaluation._Histories(hists)  # pylint: disable=protected-access
  rows, real, lengths, inputs, full = h.padded_chunk(2, 5, 4, max_len=5, width=16)
  assert rows.tolist() == [2, 3, 4, 0] and real.tolist() == [True, True, True, False]
  assert lengths.tolist() == [5, 1, 5, 0]
  for i, u in enumerate((2, 3, 4)):
    last = hists[u][-5:]
    assert inputs[i, :len(last)].tolist() == last.tolist() and not inputs[i, len(last):].any()
    assert full[i, :len(hists[u])].tolist() == hists[u].tolist()
    assert not full[i, len(hists[u]):].any()
  assert not inputs[3].any() and not full[3].any()
  _, _, _, _, none = h.padded_chunk(0, 2, 4, max_len=5, width=0)
  assert none.shape == (4, 1) and not none.any()
