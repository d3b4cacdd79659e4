"""The one exception type for bad input data."""

from __future__ import annotations

import os

from fame_jax.errors import UserError


class DataError(UserError, ValueError):
  """Bad input data: names the file, the 1-based line (when known) and the problem.

  Readers raise this instead of skipping bad lines or letting numpy fail deep
  inside, so a user can open the file at the reported line and fix it. A
  :class:`fame_jax.errors.UserError`: the command lines print it as one line.
  """

  def __init__(self, path: str | os.PathLike[str], problem: str,
               line: int | None = None):
    self.path = str(path)
    self.line = line
    self.problem = problem
    where = f"{self.path}, line {line}" if line is not None else self.path
    super().__init__(f"{where}: {problem}")
