"""Command line of fame_jax/analysis/size_curve.py (its docstring gives the usage)."""

import os
import sys

# Runs from a checkout without `pip install -e .`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fame_jax.analysis import size_curve  # noqa: E402

if __name__ == "__main__":
  size_curve.main()
