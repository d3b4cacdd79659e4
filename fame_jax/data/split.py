"""Leave-one-out split (docs/protocol.md §6): the one place the split is defined."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Split:
  """Leave-one-out split of a dataset's sequences.

  For user ``u`` with sequence ``s`` (``len(s) >= 3``):
  ``train[u] = s[:-2]``, validation input ``s[:-2]`` with target ``s[-2]``,
  test input ``s[:-1]`` with target ``s[-1]``. Inputs double as the history
  that is masked at evaluation (the whole history, not only the last
  ``max_len`` items).

  Attributes:
    users: ``[U']`` indices into ``Dataset.sequences`` of the evaluable users.
    train: per evaluable user, ``s[:-2]`` (int32).
    valid_targets: ``[U']`` int32.
    test_inputs: per evaluable user, ``s[:-1]`` (int32).
    test_targets: ``[U']`` int32.
    dropped_users: number of users with fewer than 3 interactions.
  """

  users: np.ndarray
  train: list[np.ndarray]
  valid_targets: np.ndarray
  test_inputs: list[np.ndarray]
  test_targets: np.ndarray
  dropped_users: int

  def eval_examples(self, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Returns ``(histories, targets)`` for ``split`` in ``{"valid", "test"}``."""
    if split == "valid":
      return self.train, self.valid_targets
    if split == "test":
      return self.test_inputs, self.test_targets
    raise ValueError(f"split must be 'valid' or 'test', got {split!r}")


def leave_one_out(sequences: list[np.ndarray]) -> Split:
  """Splits chronological sequences by leave-one-out.

  Users with fewer than 3 interactions cannot be evaluated and are dropped
  (counted in ``dropped_users``).
  """
  users, train, valid_t, test_in, test_t = [], [], [], [], []
  dropped = 0
  for u, seq in enumerate(sequences):
    seq = np.asarray(seq, dtype=np.int32)
    if len(seq) < 3:
      dropped += 1
      continue
    users.append(u)
    train.append(seq[:-2])
    valid_t.append(seq[-2])
    test_in.append(seq[:-1])
    test_t.append(seq[-1])
  return Split(
      users=np.asarray(users, dtype=np.int64),
      train=train,
      valid_targets=np.asarray(valid_t, dtype=np.int32),
      test_inputs=test_in,
      test_targets=np.asarray(test_t, dtype=np.int32),
      dropped_users=dropped,
  )
