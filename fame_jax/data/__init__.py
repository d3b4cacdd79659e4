"""Data: readers (one per format), preprocessing, split, synthetic world, tfds.

Entry points (in :mod:`fame_jax.data.loading`): :func:`load_dataset`, driven
by the ``data`` section of a config (see ``configs/base.py``), and
:func:`load_data`, which adds the leave-one-out split. tensorflow-datasets is
imported only for ``format="tfds"`` so that importing this package stays cheap.
"""

from __future__ import annotations

from fame_jax.data.dataset import Dataset
from fame_jax.data.errors import DataError
from fame_jax.data.loading import FORMATS, load_data, load_dataset, read_raw

__all__ = ["Dataset", "DataError", "FORMATS", "load_data", "load_dataset", "read_raw"]
