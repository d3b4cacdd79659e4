"""From a config to a dataset and its split: the one way data is loaded.

* :func:`read_raw`: the interactions and metadata files named by a config's
  ``data`` section, read by the format's reader (:mod:`fame_jax.data.readers`).
* :func:`load_dataset`: the preprocessed :class:`Dataset` of a ``data``
  section, whatever the format (files, the synthetic world, a built tfds
  dataset). Tabular logs (``csv``, ``tsv``, ``parquet``) are read by the
  columnar reader :mod:`fame_jax.data.tabular` with the config's column
  mapping, dedup mode and time format.
* :func:`load_data`: the dataset of a full config and its leave-one-out split,
  what training, evaluation, export and the benchmarks start from.

tensorflow-datasets is imported only for ``format="tfds"``, so that loading
the other formats stays cheap.
"""

from __future__ import annotations

from typing import Any

from fame_jax import options
from fame_jax.data import preprocess as _preprocess  # Keep the name free.
from fame_jax.data import readers, tabular
from fame_jax.data.dataset import Dataset
from fame_jax.data.errors import DataError
from fame_jax.data.split import Split, leave_one_out

FORMATS = options.choices("data.format")  # Declared once, in fame_jax/options.py.
# Formats read by fame_jax.data.tabular (any interaction log with a header).
TABULAR_FORMATS = ("csv", "tsv", "parquet")
# Name of the Dataset.report entry holding read_table's report.
READ_TABLE_STEP = "read_table"


def read_raw(data_cfg: Any) -> readers.Interactions:
  """Reads the interactions and all metadata files named by ``data_cfg``.

  Args:
    data_cfg: the config's ``data`` section (``format``, ``path``,
      ``metadata_path``, ``item_text_path``, ``item_text_id_field``,
      ``attributes_path``, ``attribute_names_path``, ``name``). Relative paths
      resolve against the current working directory.

  Returns:
    Raw interactions with metadata attached, before preprocessing.
  """
  fmt, path, name = data_cfg.format, data_cfg.path, data_cfg.name
  if not path:
    raise DataError("<config>", f"data.path is empty for format {fmt!r}")
  meta = data_cfg.get("metadata_path", "")
  if fmt == "s3rec":
    inter = readers.read_s3rec(path, name)
  elif fmt in TABULAR_FORMATS:
    inter = read_tabular(data_cfg)[0].to_interactions()
  elif fmt == "movielens":
    inter = readers.read_movielens(path, meta, name)
  elif fmt == "amazon":
    inter = readers.read_amazon(path, meta, name)
  elif fmt == "recbole":
    inter = readers.read_recbole(path, meta, name)
  else:
    raise ValueError(f"data.format must be one of {FORMATS}, got {fmt!r}")
  _add_metadata(inter, data_cfg)
  return inter


def _add_metadata(inter: readers.Interactions, data_cfg: Any) -> None:
  """Attaches the item-text and attribute files named by ``data_cfg``."""
  if data_cfg.get("item_text_path", ""):
    readers.add_item_text(inter, data_cfg.item_text_path,
                          data_cfg.get("item_text_id_field", "item_id"))
  if data_cfg.get("attributes_path", ""):
    readers.add_attributes(inter, data_cfg.attributes_path,
                           data_cfg.get("attribute_names_path", ""))
  elif data_cfg.get("attribute_names_path", ""):
    raise DataError(data_cfg.attribute_names_path,
                    "attribute names given without data.attributes_path")


def read_tabular(data_cfg: Any) -> tuple[tabular.InteractionTable, dict[str, Any]]:
  """Reads a ``csv``/``tsv``/``parquet`` log with the config's choices.

  Args:
    data_cfg: the ``data`` section: ``path``, ``format``, ``name``,
      ``columns.{user,item,time}`` ("" = found by name), ``dedup``,
      ``time_format``.

  Returns:
    :func:`fame_jax.data.tabular.read_table`'s ``(table, report)``.
  """
  cols = data_cfg.get("columns", None)
  columns = {role: (cols.get(role, "") if cols is not None else "")
             for role in ("user", "item", "time")}
  return tabular.read_table(
      data_cfg.path, columns=columns, fmt=data_cfg.format,
      dedup=data_cfg.get("dedup", "keep"),
      time_format=data_cfg.get("time_format", "auto"),
      name=data_cfg.get("name", ""))


def load_dataset(data_cfg: Any) -> Dataset:
  """Loads the dataset described by a config's ``data`` section.

  Dispatches on ``data_cfg.format``: "synthetic" generates the facet world
  (``data_cfg.synthetic``); "tfds" reads a built tensorflow-datasets dataset
  (``tfds_name``, ``tfds_data_dir``); the file formats are read by
  :mod:`fame_jax.data.readers` (tabular logs by :mod:`fame_jax.data.tabular`)
  and then preprocessed (time order, k-core with ``data_cfg.kcore``,
  renumbering; see :mod:`fame_jax.data.preprocess`). A tabular log's reader
  report (columns, id types, time format, dedup, counts) becomes the first
  entry of ``Dataset.report``, ``{"step": "read_table", ...}``.

  Raises:
    DataError: bad input, naming the file, line and problem.
    ValueError: unknown format.
  """
  fmt = data_cfg.format
  if fmt == "synthetic":
    from fame_jax.data.synthetic import generate_facet_world
    ds = generate_facet_world(data_cfg.synthetic)
    if data_cfg.get("name", ""):
      ds.name = data_cfg.name
    return ds
  if fmt == "tfds":
    from fame_jax.data.tfds_builders import load_tfds
    return load_tfds(data_cfg.tfds_name, data_cfg.tfds_data_dir)
  kcore = int(data_cfg.get("kcore", 0))
  if fmt not in TABULAR_FORMATS:
    return _preprocess.preprocess(read_raw(data_cfg), kcore=kcore)
  if not data_cfg.path:
    raise DataError("<config>", f"data.path is empty for format {fmt!r}")
  table, read_report = read_tabular(data_cfg)
  if any(data_cfg.get(k, "") for k in ("item_text_path", "attributes_path",
                                        "attribute_names_path")):
    # Metadata is keyed by raw id, row by row: the general path (same result,
    # tests/test_tabular.py).
    inter = table.to_interactions()
    _add_metadata(inter, data_cfg)
    ds = _preprocess.preprocess(inter, kcore=kcore)
  else:
    ds = tabular.preprocess_table(table, kcore=kcore)
  ds.report.insert(0, {"step": READ_TABLE_STEP, **read_report})
  return ds


def load_data(config: Any) -> tuple[Dataset, Split]:
  """Loads the dataset of ``config.data`` and its leave-one-out split.

  Args:
    config: a full config (only its ``data`` section is read).

  Returns:
    ``(dataset, split)``; the split is the one of docs/protocol.md §6
    (:func:`fame_jax.data.split.leave_one_out`).
  """
  dataset = load_dataset(config.data)
  return dataset, leave_one_out(dataset.sequences)
