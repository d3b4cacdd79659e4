"""Command line of fame_jax/analysis/make_tables.py (its docstring gives the usage)."""

import os
import sys

# Runs from a checkout without `pip install -e .`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fame_jax.analysis import make_tables  # noqa: E402

if __name__ == "__main__":
  make_tables.main()
