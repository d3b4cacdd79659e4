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
  with pytest.raises(ValueError, match="loss_impl"):
    losses.get_loss_fn("sampled", 8)
  with pytest.raises(ValueError, match="model.mix"):
    losses.get_loss_fn("dense", 8, mix="sum")


def _mixture_case(seed=2, t=29, hh=3, n=52, d=16):
  rng = np.random.default_rng(seed)
  u = rng.normal(size=(t, hh, d)).astype(np.float32)
  gate_logits = rng.normal(size=(t, hh)) * 2.0
  log_gate = (gate_logits - np.log(np.exp(gate_logits).sum(-1, keepdims=True))).astype(np.float32)
  _, table, targets, weights = _case(seed, t, n, d)
  return u, log_gate, table, targets, weights


def _numpy_mixture_ce(u, log_gate, table, targets, weights):
  """Literal: per head a softmax over items 1..N, gated sum, -log at the target."""
  total, wsum = 0.0, 0.0
  for t in range(u.shape[0]):
    w = weights[t] if targets[t] > 0 else 0.0
    wsum += w
    if w == 0:
      continue
    p = 0.0
    for h in range(u.shape[1]):
      logits = table[1:].astype(np.float64) @ u[t, h].astype(np.float64)
      e = np.exp(logits - logits.max())
      p += np.exp(log_gate[t, h]) * e[targets[t] - 1] / e.sum()
    total += -w * np.log(p)
  return total, wsum


@pytest.mark.parametrize("name,chunk", [("dense", 8), ("chunked", 8), ("chunked", 17)])
def test_mixture_ce_matches_literal_and_dense(name, chunk):
  u, log_gate, table, targets, weights = _mixture_case()
  ce = losses.get_loss_fn(name, chunk, mix="probs")

  def f(u, log_gate, table):
    return ce(u, log_gate, table, jnp.asarray(targets), jnp.asarray(weights))[0]

  args = (jnp.asarray(u), jnp.asarray(log_gate), jnp.asarray(table))
  loss, grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(*args)
  want, want_w = _numpy_mixture_ce(u, log_gate, table, targets, weights)
  assert float(loss) == pytest.approx(want, rel=1e-5)
  assert float(ce(*args, jnp.asarray(targets), jnp.asarray(weights))[1]) == pytest.approx(want_w)
  dense = losses.get_loss_fn("dense", mix="probs")
  _, dense_grads = jax.jit(jax.value_and_grad(
      lambda u, g, tb: dense(u, g, tb, jnp.asarray(targets), jnp.asarray(weights))[0],
      argnums=(0, 1, 2)))(*args)
  for a, b in zip(grads, dense_grads):
    _assert_close(a, b)
  assert np.all(np.asarray(grads[2])[0] == 0.0)  # The pad item takes no part.
  # Gradient of the literal loss wrt the gate by finite differences (float64 numpy).
  eps = 1e-3
  t0 = int(np.flatnonzero((targets > 0) & (weights > 0))[0])
  bumped = log_gate.astype(np.float64).copy()
  bumped[t0, 0] += eps
  fd = (_numpy_mixture_ce(u, bumped, table, targets, weights)[0] - want) / eps
  assert float(grads[1][t0, 0]) == pytest.approx(fd, rel=2e-2, abs=1e-3)


def test_mixture_ce_with_one_head_is_plain_ce():
  h, table, targets, weights = _case(seed=4)
  plain = losses.dense_ce(jnp.asarray(h), jnp.asarray(table), jnp.asarray(targets),
                          jnp.asarray(weights))
  mixed = losses.get_loss_fn("dense", mix="probs")(
      jnp.asarray(h)[:, None], jnp.zeros((h.shape[0], 1)), jnp.asarray(table),
      jnp.asarray(targets), jnp.asarray(weights))
  assert float(mixed[0]) == pytest.approx(float(plain[0]), rel=1e-6)
