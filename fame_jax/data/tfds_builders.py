"""tensorflow-datasets builders for the benchmarks and the synthetic world.

Why: a built tfds dataset is a versioned, random-access ``array_record`` copy
of a preprocessed :class:`Dataset` that ``tfds.data_source`` (no TensorFlow
needed) can serve to many hosts. The builders call the same readers as
:func:`fame_jax.data.load_dataset`, so a build is the direct read, stored.

Layout of every builder (one config, version 1.0.0):
  * split ``users``: one example per user, ``{"index": int64 row in
    Dataset.sequences, "user_raw_id": str, "items": int32[L] item ids}``.
  * split ``items``: one example per item ``1..N``, ``{"item_id": int64,
    "raw_id": str, "meta_json": str}`` (that item's ``item_meta`` fields as a
    JSON object; facets have heterogeneous types, so JSON keeps them simple).
  * ``info.metadata``: ``name``, ``num_items``, ``report``, ``ground_truth``
    (JSON lists) and ``item_meta_fields`` (so fields that are None for every
    item survive the round trip).

Benchmarks are built from local files (they are licensed; nothing is
downloaded), from the command line (no TensorFlow needed)::

  python -m fame_jax.data.tfds_builders fame_beauty \
      --manual_dir ../shared/data/beauty --data_dir ~/tfds

or from Python, ``tfds_builders.build("fame_beauty", data_dir="~/tfds",
manual_dir="../shared/data/beauty")``, and read back by ``load_dataset`` with
``format="tfds"``, ``tfds_name="fame_beauty"``, ``tfds_data_dir="~/tfds"``.

Importing this module registers the builders with tfds under their names
(``fame_beauty``, ``fame_sports``, ``fame_toys``, ``fame_ml1m``,
``fame_synthetic``), which is how tfds's own command finds them::

  tfds build fame_beauty --imports fame_jax.data.tfds_builders \
      --manual_dir ../shared/data/beauty --data_dir ~/tfds

(with tensorflow-datasets 4.9.10 the ``tfds`` command itself needs
``tensorflow-cpu``, ``apache-beam`` and ``mlcroissant``, which it imports when
it starts and fame_jax does not need; ``python -m`` above builds the same
files without them). Builds default to ``array_record``, the random-access
format :func:`load_tfds` reads.

``fame_synthetic`` takes its world through ``synthetic_cfg`` (default: the
``data.synthetic`` section of configs/base.py); a world with other settings
must be built into its own ``data_dir``, because name and version are shared.
"""

from __future__ import annotations

import inspect
import json
import pathlib
from typing import Any

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from fame_jax.data.dataset import Dataset
from fame_jax.data.errors import DataError

_MANUAL = ("Place the dataset's files (e.g. ../shared/data/beauty) in a "
           "directory and pass it as DownloadConfig(manual_dir=...).")


def _jsonable(x: Any) -> Any:
  """numpy arrays/scalars -> lists/Python scalars for JSON metadata."""
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  return x


class _FameBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared layout; subclasses say how to produce the :class:`Dataset`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Users and items splits, report as metadata."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL

  def __init__(self, *, file_format: str | None = None, **kwargs):
    # load_tfds reads through tfds.data_source, which needs a random-access
    # format; tfds's own default (tfrecord) is not one, so a plain
    # `tfds build` without --file_format would make an unreadable dataset.
    super().__init__(file_format=file_format or "array_record", **kwargs)

  # tfds locates a builder's source through importlib_resources, which is not
  # a dependency (and not needed offline); the class's file is the same path.
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(inspect.getfile(cls))

  def _make_dataset(self, dl_manager: tfds.download.DownloadManager) -> Dataset:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=tfds.features.FeaturesDict({
            # Both splits share one feature spec; unused fields stay empty.
            "index": np.int64,
            "user_raw_id": tfds.features.Text(),
            "items": tfds.features.Sequence(np.int32),
            "item_id": np.int64,
            "raw_id": tfds.features.Text(),
            "meta_json": tfds.features.Text(),
        }),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,  # Keep user order; "index" is the real key.
    )

  def _split_generators(self, dl_manager):
    ds = self._make_dataset(dl_manager)
    self.info.metadata.update({
        "name": ds.name,
        "num_items": ds.num_items,
        "report": _jsonable(ds.report),
        "ground_truth": _jsonable(ds.ground_truth),
        "item_meta_fields": sorted(ds.item_meta),
    })
    return {"users": self._generate_examples(ds=ds, split="users"),
            "items": self._generate_examples(ds=ds, split="items")}

  def _generate_examples(self, ds: Dataset, split: str):
    empty_seq = np.zeros(0, np.int32)
    if split == "users":
      for u, seq in enumerate(ds.sequences):
        yield u, {"index": u, "user_raw_id": str(ds.user_raw_ids[u]),
                  "items": np.asarray(seq, np.int32), "item_id": 0,
                  "raw_id": "", "meta_json": ""}
    else:
      fields = sorted(ds.item_meta)
      for i in range(1, ds.num_items + 1):
        meta = {f: _jsonable(ds.item_meta[f][i]) for f in fields}
        yield i, {"index": 0, "user_raw_id": "", "items": empty_seq,
                  "item_id": i, "raw_id": str(ds.item_raw_ids[i]),
                  "meta_json": json.dumps(meta, ensure_ascii=False)}


def _benchmark_cfg(manual_dir: pathlib.Path, name: str, files: dict[str, str],
                   id_field: str) -> Any:
  """The ``data`` config the direct reader would get for these files."""
  import ml_collections
  cfg = ml_collections.ConfigDict({
      "format": "s3rec", "name": name, "path": "", "item_text_path": "",
      "item_text_id_field": id_field, "attributes_path": "",
      "attribute_names_path": "", "metadata_path": "", "kcore": 0})
  for key, fname in files.items():
    p = manual_dir / fname
    if not p.is_file():
      raise DataError(p, f"missing file for tfds dataset {name!r} "
                      f"(manual_dir={manual_dir})")
    cfg[key] = str(p)
  return cfg


def _make_benchmark(name: str, files: dict[str, str], id_field: str = "item_id"):
  """Defines ``make_dataset`` for one benchmark builder."""

  def make(self, dl_manager):
    from fame_jax.data import load_dataset
    cfg = _benchmark_cfg(pathlib.Path(dl_manager.manual_dir), name, files,
                         id_field)
    return load_dataset(cfg)

  return make


def benchmark_data_cfg(name: str, manual_dir: str) -> Any:
  """Direct-reader ``data`` config equal to what builder ``name`` reads."""
  cls = _BENCHMARKS[name]
  return _benchmark_cfg(pathlib.Path(manual_dir), cls.SHORT, cls.FILES,
                        cls.ID_FIELD)


class FameBeauty(_FameBuilder):
  """Amazon Beauty (S3-Rec 5-core ids) with item text and attributes."""
  SHORT, ID_FIELD = "beauty", "item_id"
  FILES = {"path": "Beauty.txt",
           "item_text_path": "Beauty_item_text.jsonl",
           "attributes_path": "Beauty_item2attributes.json",
           "attribute_names_path": "Beauty_attribute_names.tsv"}
  _make_dataset = _make_benchmark(SHORT, FILES, ID_FIELD)


class FameSports(_FameBuilder):
  """Amazon Sports_and_Outdoors (S3-Rec 5-core ids), text and attributes."""
  SHORT, ID_FIELD = "sports", "item_id"
  FILES = {"path": "Sports_and_Outdoors.txt",
           "item_text_path": "Sports_and_Outdoors_item_text.jsonl",
           "attributes_path": "Sports_and_Outdoors_item2attributes.json",
           "attribute_names_path": "Sports_and_Outdoors_attribute_names.tsv"}
  _make_dataset = _make_benchmark(SHORT, FILES, ID_FIELD)


class FameToys(_FameBuilder):
  """Amazon Toys_and_Games (S3-Rec 5-core ids), text and attributes."""
  SHORT, ID_FIELD = "toys", "item_id"
  FILES = {"path": "Toys_and_Games.txt",
           "item_text_path": "Toys_and_Games_item_text.jsonl",
           "attributes_path": "Toys_and_Games_item2attributes.json",
           "attribute_names_path": "Toys_and_Games_attribute_names.tsv"}
  _make_dataset = _make_benchmark(SHORT, FILES, ID_FIELD)


class FameMl1m(_FameBuilder):
  """MovieLens-1M, 3,416 items with >= 5 ratings (SASRec/S3-Rec statistics)."""
  SHORT, ID_FIELD = "ml1m", "item5_3416_id"
  FILES = {"path": "ml-1m_item5_3416.txt",
           "item_text_path": "ml-1m_item_text.jsonl"}
  _make_dataset = _make_benchmark(SHORT, FILES, ID_FIELD)


_BENCHMARKS = {"fame_beauty": FameBeauty, "fame_sports": FameSports,
               "fame_toys": FameToys, "fame_ml1m": FameMl1m}


class FameSynthetic(_FameBuilder):
  """The synthetic facet world (fame_jax.data.synthetic); needs no files."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = None

  def __init__(self, *, synthetic_cfg: Any = None, **kwargs):
    self._synthetic_cfg = synthetic_cfg
    super().__init__(**kwargs)

  def _make_dataset(self, dl_manager):
    from fame_jax.data.synthetic import generate_facet_world
    cfg = self._synthetic_cfg
    if cfg is None:
      from configs.base import get_base_config
      cfg = get_base_config().data.synthetic
    return generate_facet_world(cfg)


def build(name: str, data_dir: str, manual_dir: str = "",
          synthetic_cfg: Any = None) -> pathlib.Path:
  """Builds ``name`` ("fame_beauty", ..., "fame_synthetic") into ``data_dir``.

  Returns:
    The directory of the built version.
  """
  kwargs: dict[str, Any] = {"data_dir": data_dir, "file_format": "array_record"}
  if name == "fame_synthetic":
    builder = FameSynthetic(synthetic_cfg=synthetic_cfg, **kwargs)
  elif name in _BENCHMARKS:
    builder = _BENCHMARKS[name](**kwargs)
  else:
    raise ValueError(f"unknown builder {name!r}; known: "
                     f"{sorted(_BENCHMARKS) + ['fame_synthetic']}")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir or None))
  return pathlib.Path(builder.data_dir)


def main(argv: list[str] | None = None) -> None:
  """``python -m fame_jax.data.tfds_builders NAME --data_dir D [--manual_dir M]``."""
  import argparse
  parser = argparse.ArgumentParser(
      prog="python -m fame_jax.data.tfds_builders",
      description="Builds a fame_jax tfds dataset (array_record) into --data_dir.")
  parser.add_argument("name", choices=sorted(_BENCHMARKS) + ["fame_synthetic"])
  parser.add_argument("--data_dir", required=True, help="tfds data_dir to build into.")
  parser.add_argument("--manual_dir", default="",
                      help="Directory with the benchmark's files (e.g. ../shared/data/beauty); "
                           "not used by fame_synthetic, which builds configs/base.py's world.")
  args = parser.parse_args(argv)
  tfds.disable_progress_bar()
  try:
    print(build(args.name, data_dir=args.data_dir, manual_dir=args.manual_dir))
  except DataError as e:  # A missing or bad file: its one-line message, no traceback.
    parser.exit(2, f"error: {e}\n")


def _text(x: Any) -> str:
  return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def load_tfds(name: str, data_dir: str) -> Dataset:
  """Reads a built dataset back into a :class:`Dataset` via tfds.data_source.

  Args:
    name: builder name, e.g. "fame_beauty".
    data_dir: the tfds data_dir it was built into.

  Returns:
    The dataset, equal to the direct reader's.
  """
  if not name or not data_dir:
    raise ValueError("format='tfds' needs data.tfds_name and data.tfds_data_dir")
  try:
    sources = tfds.data_source(name, data_dir=data_dir)
    meta = tfds.builder(name, data_dir=data_dir).info.metadata
  except Exception as e:  # tfds raises several types for "not built".
    raise DataError(data_dir, f"cannot read tfds dataset {name!r}: {e}") from e
  users = sources["users"].__getitems__(range(len(sources["users"])))
  users.sort(key=lambda ex: int(ex["index"]))
  items = sources["items"].__getitems__(range(len(sources["items"])))
  items.sort(key=lambda ex: int(ex["item_id"]))
  n = int(meta["num_items"])
  if [int(ex["item_id"]) for ex in items] != list(range(1, n + 1)):
    raise DataError(data_dir, f"tfds dataset {name!r}: items split is not 1..N")
  fields = list(meta["item_meta_fields"])
  item_meta = {f: [None] * (n + 1) for f in fields}
  raw_ids = np.empty(n + 1, dtype=object)
  raw_ids[0] = "<pad>"
  for ex in items:
    i = int(ex["item_id"])
    raw_ids[i] = _text(ex["raw_id"])
    for f, v in json.loads(_text(ex["meta_json"])).items():
      item_meta[f][i] = v
  gt = meta.get("ground_truth")
  if gt is not None:
    gt = {
        "user_dominant_facet": np.asarray(gt["user_dominant_facet"], np.int64),
        "item_facets": np.asarray(gt["item_facets"], np.int64),
        "facet_names": list(gt["facet_names"]),
        "user_preferred_values": [np.asarray(v, np.int64)
                                  for v in gt["user_preferred_values"]],
    }
  return Dataset(
      name=meta["name"],
      sequences=[np.asarray(ex["items"], np.int32) for ex in users],
      num_items=n,
      user_raw_ids=np.asarray([_text(ex["user_raw_id"]) for ex in users],
                              dtype=object),
      item_raw_ids=raw_ids,
      item_meta=item_meta,
      report=list(meta["report"]),
      ground_truth=gt,
  )


if __name__ == "__main__":
  main()
