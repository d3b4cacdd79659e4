"""Shared pytest fixtures for fame_jax tests."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
  """``../shared/data`` next to the repo (licensed data, never copied in)."""
  path = (REPO_ROOT / ".." / "shared" / "data").resolve()
  if not path.is_dir():
    pytest.skip(f"shared benchmark data not found at {path} (it lives outside "
                "the repo for licence reasons; see docs)")
  return path


def _same_value(a, b) -> bool:
  if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
    return np.array_equal(np.asarray(a), np.asarray(b))
  if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
    return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
  if isinstance(a, dict) and isinstance(b, dict):
    return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
  return type(a) is type(b) and a == b


@pytest.fixture(scope="session")
def assert_same_dataset():
  """Returns ``check(a, b)`` asserting two Datasets hold identical content."""

  def check(a, b):
    assert a.name == b.name
    assert a.num_items == b.num_items
    assert len(a.sequences) == len(b.sequences)
    for sa, sb in zip(a.sequences, b.sequences):
      assert sa.dtype == sb.dtype == np.int32
      np.testing.assert_array_equal(sa, sb)
    assert list(a.user_raw_ids) == list(b.user_raw_ids)
    assert list(a.item_raw_ids) == list(b.item_raw_ids)
    assert sorted(a.item_meta) == sorted(b.item_meta)
    for field in a.item_meta:
      assert _same_value(a.item_meta[field], b.item_meta[field]), field
    assert _same_value(a.report, b.report)
    assert (a.ground_truth is None) == (b.ground_truth is None)
    if a.ground_truth is not None:
      assert _same_value(a.ground_truth, b.ground_truth)

  return check
