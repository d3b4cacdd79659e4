"""Tests for fame_jax.losses: dense vs numpy, chunked vs dense (value and grads)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fame_jax import losses


def _case(seed=0, t=37, n=52, d=16):
  rng = np.random.default_rng(seed)
  h = rng.normal(size=(t, d)).astype(np.float32)
  table = (rng.normal(size=(n + 1, d)) * 0.5).astype(np.float32)
  targets = rng.integers(1, n + 1, size=t).astype(np.int32)
  targets[::6] = 0  # pad targets
  weights = rng.uniform(0.5, 2.0, size=t).astype(np.float32)
  weights[1::5] = 0.0  # zero-weight rows with real targets
  return h, table, targets, weights


def _numpy_ce(h, table, targets, weights):
  logits = h.astype(np.float64) @ table.astype(np.float64).T
  real = logits[:, 1:]  # items 1..N only
  m = real.max(axis=1, keepdims=True)
  lse = (m + np.log(np.exp(real - m).sum(axis=1, keepdims=True)))[:, 0]
  w = np.where(targets > 0, weights, 0.0)
  tgt = logits[np.arange(len(targets)), targets]
  per = np.where(w > 0, lse - tgt, 0.0)
  return (w * per).sum(), w.sum()


def test_dense_matches_numpy():
  h, table, targets, weights = _case()
  loss, wsum = losses.dense_ce(jnp.asarray(h), jnp.asarray(table), jnp.asarray(targets),
                               jnp.asarray(weights))
  want_loss, want_w = _numpy_ce(h, table, targets, weights)
  assert float(loss) == pytest.approx(want_loss, rel=1e-5)
  assert float(wsum) == pytest.approx(want_w, rel=1e-6)


def _grads(fn, h, table, targets, weights):
  def f(h, table):
    return fn(h, table, jnp.asarray(targets), jnp.asarray(weights))[0]
  return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(jnp.asarray(h), jnp.asarray(table))


def _assert_close(a, b, rtol=1e-5):
  a, b = np.asarray(a), np.asarray(b)
  # Relative to the tensor's scale so near-zero entries do not dominate.
  np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("chunk", [1, 8, 17, 1000])
def test_chunked_matches_dense(chunk):
  # N + 1 = 53: 8 and 17 leave a ragged last tile; 1 gives an all-pad tile;
  # 1000 is clipped to one tile of 53.
  h, table, targets, weights = _case()
  dense_loss, (dense_dh, dense_dt) = _grads(losses.dense_ce, h, table, targets, weights)
  ce = losses.get_loss_fn("chunked", chunk)
  loss, (dh, dt) = _grads(ce, h, table, targets, weights)
  _assert_close(loss, dense_loss)
  _assert_close(dh, dense_dh)
  _assert_close(dt, dense_dt)
  assert float(ce(jnp.asarray(h), jnp.asarray(table), jnp.asarray(targets),
                  jnp.asarray(weights))[1]) == pytest.approx(float(np.where(targets > 0, weights, 0).sum()))
  # Zero-weight rows and pad-target rows get exactly zero gradient.
  dead = (weights == 0) | (targets == 0)
  assert dead.sum() > 3
  assert np.all(np.asarray(dh)[dead] == 0.0)
  # The pad item never takes part: its embedding gets no gradient.
  assert np.all(np.asarray(dt)[0] == 0.0)
  assert np.all(np.asarray(dense_dt)[0] == 0.0)


@pytest.mark.parametrize("name", ["dense", "chunked"])
def test_pad_item_never_contributes(name):
  h, table, targets, weights = _case(seed=1)
  ce = jax.jit(losses.get_loss_fn(name, 8))
  base = ce(jnp.asarray(h), jnp.asarray(table), jnp.asarray(targets), jnp.asarray(weights))
  for value in (1e4, np.inf):
    poisoned = table.copy()
    poisoned[0] = value
    got = ce(jnp.asarray(h), jnp.asarray(poisoned), jnp.asarray(targets), jnp.asarray(weights))
    assert float(got[0]) == float(base[0]), value
    assert float(got[1]) == float(base[1])
  # Gradients wrt h do not see the pad row either (a finite poison: with inf,
  # the matmul backward's 0 * inf is NaN in any implementation).
  poisoned = table.copy()
  poisoned[0] = 1e4
  _, (dh, dt) = _grads(losses.get_loss_fn(name, 8), h, table, targets, weights)
  _, (dh_p, dt_p) = _grads(losses.get_loss_fn(name, 8), h, poisoned, targets, weights)
  np.testing.assert_array_equal(np.asarray(dh_p), np.asarray(dh))
  np.testing.assert_array_equal(np.asarray(dt_p), np.asarray(dt))
  # A pad target with a nonzero weight is still ignored.
  heavy = weights.copy()
  heavy[targets == 0] = 100.0
  got = ce(jnp.asarray(h), jnp.asarray(table), jnp.asarray(targets), jnp.asarray(heavy))
  assert float(got[0]) == float(base[0]) and float(got[1]) == float(base[1])


def test_get_loss_fn_rejects_unknown():
  with pytest.raises(ValueError, match="train.loss_impl='sampled': must be one of"):
    losses.get_loss_fn("sampled", 8)
