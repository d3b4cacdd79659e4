"""Mean ± std over seeds, formatted the one way every table of the project uses."""

from __future__ import annotations

import json
from typing import Iterator, Sequence

import numpy as np

# The sample standard deviation (ddof 1, the n - 1 denominator): an estimate of
# the seed-to-seed spread from the few seeds run, not the spread of these seeds.
STD_DDOF = 1
STD_NAME = "sample standard deviation (n - 1 denominator)"


def mean_std(values: Sequence[float], digits: int = 4) -> str:
  """``"0.0583 ± 0.0004"`` for two or more values, the value alone for one, ``"-"`` for none."""
  if not len(values):
    return "-"
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=STD_DDOF):.{digits}f}"


def jsonl_rows(path: str) -> Iterator[tuple[int, dict]]:
  """``(line number, row)`` of each non-blank line of a run's JSON-lines file
  (``metrics.jsonl``); a line that is not JSON stops with ``FILE:LINE:``."""
  with open(path) as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        yield n, json.loads(line)
      except json.JSONDecodeError as e:
        raise SystemExit(f"{path}:{n}: not JSON ({e.msg})") from None
