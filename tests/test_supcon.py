"""SupCon / NT-Xent against literal NumPy loops; projection heads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fame_jax.pretraining import supcon


def supcon_reference(z, label_sets, tau):
  """Khosla et al. L_out with explicit loops; label_sets[i] empty = no label."""
  b = len(z)
  losses = []
  for i in range(b):
    if not label_sets[i]:
      continue
    pos = [p for p in range(b) if p != i and label_sets[i] & label_sets[p]]
    if not pos:
      continue
    denom = sum(np.exp(z[i] @ z[a] / tau) for a in range(b) if a != i)
    losses.append(-np.mean([np.log(np.exp(z[i] @ z[p] / tau) / denom) for p in pos]))
  return float(np.mean(losses)) if losses else 0.0


def _random_batch(rng, b=12, d=5, vocab=4):
  z = rng.normal(size=(b, d))
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  sets = []
  for i in range(b):
    r = rng.random()
    if r < 0.25:
      sets.append(set())  # Anchor without label.
    else:  # One or two values: multi-label positives.
      sets.append(set(rng.choice(vocab, size=1 + (r > 0.6), replace=False).tolist()))
  return z, sets


def _masks(sets):
  vocab = sorted(set().union(*sets)) if any(sets) else []
  m = np.array([[v in s for v in vocab] for s in sets], np.float32).reshape(len(sets), -1)
  return supcon.positives_from_multihot(jnp.asarray(m)), jnp.asarray([bool(s) for s in sets])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_supcon_matches_loops(seed):
  rng = np.random.default_rng(seed)
  z, sets = _random_batch(rng)
  pos, has = _masks(sets)
  loss, n = supcon.supcon_loss(jnp.asarray(z, jnp.float32), pos, has, 0.1)
  assert float(loss) == pytest.approx(supcon_reference(z, sets, 0.1), rel=1e-5, abs=1e-5)
  expected_anchors = sum(1 for i, s in enumerate(sets)
                         if s and any(s & t for j, t in enumerate(sets) if j != i))
  assert int(n) == expected_anchors


def test_batch_without_positive_pair_is_finite_zero():
  rng = np.random.default_rng(3)
  z, _ = _random_batch(rng, b=6)
  sets = [{0}, {1}, set(), {2}, {3}, set()]  # All labels distinct.
  pos, has = _masks(sets)

  def f(zz):
    return supcon.supcon_loss(zz, pos, has, 0.1)[0]

  loss, grad = jax.value_and_grad(f)(jnp.asarray(z, jnp.float32))
  assert float(loss) == 0.0 and supcon_reference(z, sets, 0.1) == 0.0
  assert np.all(np.isfinite(np.asarray(grad)))
  # Nothing labelled at all: also finite.
  loss2, n2 = supcon.supcon_loss(jnp.asarray(z, jnp.float32), jnp.zeros((6, 6), bool),
                                 jnp.zeros(6, bool), 0.1)
  assert float(loss2) == 0.0 and int(n2) == 0


def test_nt_xent_matches_loops():
  rng = np.random.default_rng(4)
  z = rng.normal(size=(10, 6))
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  b = 5
  # As label sets: view k and view k+b share the label k, nothing else.
  sets = [{k % b} for k in range(2 * b)]
  loss, n = supcon.nt_xent_loss(jnp.asarray(z[:b], jnp.float32),
                                jnp.asarray(z[b:], jnp.float32), 0.2)
  assert float(loss) == pytest.approx(supcon_reference(z, sets, 0.2), rel=1e-5)
  assert int(n) == 2 * b


def test_batch_positives_equals_set_intersection():
  from fame_jax.pretraining import item_text
  rng = np.random.default_rng(5)
  labels = [frozenset()] + [frozenset(f"v{x}" for x in rng.choice(6, size=rng.integers(0, 3),
                                                                  replace=False))
                            for _ in range(30)]
  indptr, values, _ = item_text.label_index(labels)
  ids = rng.integers(1, 31, size=16)
  pos, has = supcon.batch_positives(ids, indptr, values)
  for a in range(16):
    assert has[a] == bool(labels[ids[a]])
    for b in range(16):
      assert pos[a, b] == bool(labels[ids[a]] & labels[ids[b]])


def test_projection_heads_stack_equals_single_heads():
  m = supcon.FacetProjectionHeads(num_heads=3, hidden_size=8, out_size=4)
  x = jax.random.normal(jax.random.PRNGKey(0), (5, 384))
  p = m.init(jax.random.PRNGKey(1), x)["params"]
  assert p["w1"].shape == (3, 384, 8) and p["w2"].shape == (3, 8, 4)
  y = m.apply({"params": p}, x)
  assert y.shape == (5, 3, 4)
  one = m.clone(num_heads=1)
  for h in range(3):
    ph = jax.tree.map(lambda a: a[h:h + 1], p)
    np.testing.assert_allclose(one.apply({"params": ph}, x)[:, 0], y[:, h], rtol=1e-5, atol=1e-4)
  assert not np.allclose(p["w1"][0], p["w1"][1])  # Heads start different.
