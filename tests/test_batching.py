"""Batching: packing keeps every example intact, regimes build what docs/protocol.md §4 says."""

import numpy as np
import pytest

from fame_jax.data import batching


def _train(seed=0, users=60, max_n=30):
  rng = np.random.default_rng(seed)
  return [rng.integers(1, 50, size=rng.integers(1, max_n)).astype(np.int32) for _ in range(users)]


def _examples_in(batch):
  """Recovers (inputs, targets, positions) of every segment of a batch."""
  out = []
  for r in range(batch["items"].shape[0]):
    for s in np.unique(batch["segments"][r]):
      if s == 0:
        continue
      m = batch["segments"][r] == s
      out.append((tuple(batch["items"][r][m]), tuple(batch["targets"][r][m]),
                  tuple(batch["positions"][r][m]), tuple(batch["weights"][r][m])))
  return out


@pytest.mark.parametrize("packing", [False, True])
def test_all_positions_covers_each_example_once(packing):
  train = _train()
  b = batching.make_batcher(train, examples="all_positions", max_len=12, batch_size=8, packing=packing)
  got = sorted(e[:2] for batch in b.epoch(seed=1, epoch=3) for e in _examples_in(batch))
  want = sorted((tuple(s[:-1][-12:]), tuple(s[1:][-12:])) for s in train if len(s) >= 2)
  assert got == want
  for batch in b.epoch(seed=1, epoch=3):
    assert batch["items"].shape == (b.rows_per_batch, 12)
    for x, y, pos, w in _examples_in(batch):
      assert pos == tuple(range(len(x)))  # Positions restart per segment.
      assert all(v == 1.0 for v in w)
    # Pad positions carry neither input nor loss.
    pad = batch["segments"] == 0
    assert (batch["items"][pad] == 0).all() and (batch["weights"][pad] == 0).all()


def test_packing_fills_rows_and_is_deterministic():
  train = _train(users=300, max_n=10)
  b = batching.make_batcher(train, examples="all_positions", max_len=50, batch_size=64, packing=True)
  e1, e2 = b.epoch(0, 1), b.epoch(0, 1)
  for x, y in zip(e1, e2):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  fill = sum(bt["weights"].sum() for bt in e1) / sum(bt["weights"].size for bt in e1)
  assert fill > 0.75, fill
  other = b.epoch(0, 2)
  assert any((x["items"] != y["items"]).any() for x, y in zip(e1, other))


def test_rows_rounded_to_device_multiple_and_unpacked_divisibility_error():
  train = _train()
  b = batching.make_batcher(train, examples="all_positions", max_len=12, batch_size=10, packing=True,
                            row_multiple=8)
  assert b.rows_per_batch % 8 == 0
  with pytest.raises(ValueError, match="not divisible"):
    batching.make_batcher(train, examples="all_positions", max_len=12, batch_size=10, packing=False,
                          row_multiple=8)


def test_prefix_last_every_prefix_once_left_padded():
  train = [np.array([5, 6, 7, 8], np.int32), np.array([9, 10], np.int32), np.array([3], np.int32)]
  b = batching.make_batcher(train, examples="prefix_last", max_len=3, batch_size=2, packing=False)
  seen = []
  for batch in b.epoch(0, 1):
    w = batch["items"].shape[1]
    assert (batch["positions"][:, -1] == 2).all()  # Last column = position L - 1.
    assert batch["positions"][0, 0] == 3 - w
    for r in range(batch["items"].shape[0]):
      if batch["weights"][r].sum() == 0:
        continue
      assert batch["weights"][r, -1] == 1 and batch["weights"][r, :-1].sum() == 0
      items = tuple(int(v) for v in batch["items"][r] if v)
      assert batch["items"][r, -1] != 0  # Most recent item in the last column.
      seen.append((items, int(batch["targets"][r, -1])))
  assert sorted(seen) == sorted([((5,), 6), ((5, 6), 7), ((5, 6, 7), 8), ((9,), 10)])


def test_prefix_last_truncates_to_max_len():
  train = [np.arange(1, 12, dtype=np.int32)]
  b = batching.make_batcher(train, examples="prefix_last", max_len=4, batch_size=16, packing=False)
  rows = [(tuple(int(v) for v in bt["items"][r] if v), int(bt["targets"][r, -1]))
          for bt in b.epoch(0, 0) for r in range(16) if bt["weights"][r].sum()]
  assert ((7, 8, 9, 10), 11) in rows and all(len(x) <= 4 for x, _ in rows)
  assert len(rows) == 10


def test_unknown_regime_is_a_clear_error():
  with pytest.raises(ValueError, match="train.examples"):
    batching.make_batcher(_train(), examples="nope", max_len=5, batch_size=4, packing=False)


@pytest.mark.parametrize("examples,packing", [("all_positions", True), ("all_positions", False),
                                              ("prefix_last", False)])
def test_epoch_is_lazy_and_list_like(examples, packing):
  """epoch() builds a batch only when read; indexing, slicing and iteration agree."""
  b = batching.make_batcher(_train(), examples=examples, max_len=12, batch_size=8, packing=packing)
  built = []
  original = b._assemble
  b._assemble = lambda *a, **k: built.append(1) or original(*a, **k)
  batches = b.epoch(0, 1)
  assert isinstance(batches, batching.LazyBatches) and len(batches) > 3
  assert not built  # Nothing assembled before it is read.
  listed = list(batches)
  assert len(built) == len(batches)
  sliced = batches[1:3]
  assert len(sliced) == 2
  for got, i in [(batches[0], 0), (batches[-1], len(batches) - 1), (sliced[0], 1), (sliced[1], 2)]:
    for k in listed[i]:
      np.testing.assert_array_equal(got[k], listed[i][k])
