"""Command line of fame_jax/analysis/score_scale.py (its docstring gives the usage)."""

import os
import sys

# Runs from a checkout without `pip install -e .`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fame_jax import runtime  # noqa: E402

runtime.use_huge_pages()  # Before JAX loads (fame_jax/runtime.py).

from fame_jax.analysis import score_scale  # noqa: E402

if __name__ == "__main__":
  score_scale.main()
