"""Command line of fame_jax/analysis/fit_curves.py (its docstring gives the usage)."""

import os
import sys

# Runs from a checkout without `pip install -e .`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fame_jax.analysis import fit_curves  # noqa: E402

if __name__ == "__main__":
  fit_curves.main()
