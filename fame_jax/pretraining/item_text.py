"""Item text and facet labels from item metadata (docs/protocol.md §5).

Only ``Dataset.item_meta`` is read here -- never interactions -- so pre-training
cannot see validation or test targets (docs/protocol.md trap 7).

Template language
-----------------
A template is a list of *segments* separated by ``|``. A segment is literal text
with ``{field}`` placeholders; it is dropped as a whole when any of its fields
is missing for the item (``None``, empty string, empty list, or a derived field
with no value). Kept segments are joined with ``". "`` (just ``" "`` when the
previous piece already ends in ``.``, ``!`` or ``?``). Example::

  "{title}|Brand: {brand}|Categories: {categories}"
  -> "OPI Nail Lacquer, 0.5-Fluid Ounce. Brand: OPI. Categories: Beauty > Makeup"
  -> "Some Cream. Categories: Beauty > Skin Care"          (no brand)

Values are rendered as: strings HTML-unescaped (``&amp;`` -> ``&``) and
whitespace-collapsed; numbers with ``str``; a list of strings joined with
``", "``; a list of category paths (list of lists) as each path joined with
``" > "`` and the paths joined with ``"; "`` (duplicates removed).

Facet fields
------------
``facet_labels(dataset, name)`` gives each item a set of string labels. A field
present in ``item_meta`` is used as stored (lists are multi-valued). These
derived fields exist when the raw field is absent:

* ``leaf_category``: last element of every path in ``categories`` (Beauty).
* ``category``: leaf categories when ``categories`` exists (Beauty, Toys),
  otherwise the ``attributes`` names other than the brand (Sports).
* ``decade``: ``"1990s"`` from ``year`` (MovieLens).

Brand values ``""`` and ``"Unknown"`` count as missing (Beauty labels 1,700+
items "Unknown": as a label it would make unrelated items positives).
Values carried by more than ``MAX_LABEL_FRACTION`` of the labelled items (e.g.
the root category "Sports & Outdoors" on every Sports item) are dropped: a
value shared by nearly everyone makes every pair a positive and says nothing.
"""

from __future__ import annotations

import html
import re
import string
from typing import Any, Callable, Sequence

import numpy as np

from fame_jax.data.dataset import Dataset

# A facet value on more than this fraction of labelled items is not a label.
MAX_LABEL_FRACTION = 0.9

# Values that mean "no brand" in the Amazon metadata.
_MISSING_BRANDS = frozenset({"", "unknown"})

# Per-dataset defaults, keyed by the normalised dataset name (lower case,
# alphanumerics only, matched as a prefix of ``Dataset.name``):
#   template: item text (pretrain.text_template = "" selects it);
#   facets: one metadata field per head (pretrain.facets = () selects it).
# Sports has no titles: its short phrase (idgenrec_text) stands in.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "beauty": {
        "template": "{title}|Brand: {brand}|Categories: {categories}",
        "facets": ("leaf_category", "brand"),
    },
    "sports": {
        "template": "{idgenrec_text}|Brand: {brand}|Categories: {category}",
        "facets": ("category", "brand"),
    },
    "toys": {
        "template": "{title}|Categories: {categories}",
        "facets": ("category", "brand_attribute_id"),
    },
    "ml1m": {
        "template": "{title}|Genres: {genres}",
        "facets": ("genres", "decade"),
    },
    "synthetic": {
        "template": "{text}",
        "facets": (),  # The synthetic world's facet fields; set in the config.
    },
}


def _norm_name(name: str) -> str:
  return re.sub(r"[^a-z0-9]", "", name.lower())


def dataset_defaults(name: str) -> dict[str, Any] | None:
  """The ``DATASET_DEFAULTS`` entry whose key prefixes ``name``, or ``None``."""
  n = _norm_name(name)
  for key, value in DATASET_DEFAULTS.items():
    if n.startswith(key):
      return value
  return None


def _missing(value: Any) -> bool:
  if value is None:
    return True
  if isinstance(value, float) and np.isnan(value):
    return True
  if isinstance(value, str):
    return not value.strip()
  if isinstance(value, (list, tuple, set, frozenset)):
    return all(_missing(v) for v in value)
  return False


def _clean(text: str) -> str:
  return " ".join(html.unescape(text).split())


def _leaves(categories: Any) -> list[str]:
  """Last element of each category path (a flat list counts as one path)."""
  if _missing(categories):
    return []
  paths = categories if isinstance(categories[0], (list, tuple)) else [categories]
  return [str(p[-1]) for p in paths if p]


def _brand(meta: dict[str, list[Any]], item: int) -> str | None:
  b = meta.get("brand", [None] * (item + 1))[item]
  if b is None or _clean(str(b)).lower() in _MISSING_BRANDS:
    return None
  return str(b)


def _derived_category(meta: dict[str, list[Any]], item: int) -> Any:
  if "categories" in meta:
    return _leaves(meta["categories"][item])
  attrs = meta.get("attributes", [None] * (item + 1))[item]
  if _missing(attrs):
    return None
  brand = meta.get("brand", [None] * (item + 1))[item]
  return [a for a in attrs if a != brand and not _missing(a)]


def _derived_decade(meta: dict[str, list[Any]], item: int) -> Any:
  year = meta["year"][item] if "year" in meta else None
  if _missing(year):
    return None
  return f"{int(year) // 10 * 10}s"


# name -> (required raw field, function(meta, item) -> value or None).
_DERIVED: dict[str, tuple[str, Callable[[dict[str, list[Any]], int], Any]]] = {
    "leaf_category": ("categories", lambda m, i: _leaves(m["categories"][i])),
    "category": ("", _derived_category),
    "decade": ("year", _derived_decade),
}


def field_value(dataset: Dataset, name: str, item: int) -> Any:
  """Raw or derived metadata value of ``item`` (``None`` when missing).

  Raises:
    KeyError: ``name`` is neither an ``item_meta`` field nor derivable.
  """
  meta = dataset.item_meta
  if name == "brand" and "brand" in meta:
    return _brand(meta, item)
  if name in meta:
    return meta[name][item]
  if name in _DERIVED:
    needs, fn = _DERIVED[name]
    if not needs or needs in meta:
      return fn(meta, item)
  raise KeyError(
      f"item field {name!r} is not in dataset {dataset.name!r}: item_meta has "
      f"{sorted(meta)}; derived fields are {sorted(_DERIVED)}")


def _render(value: Any) -> str:
  if isinstance(value, (list, tuple)):
    if value and isinstance(value[0], (list, tuple)):  # Category paths.
      paths = []
      for p in value:
        s = " > ".join(_clean(str(x)) for x in p if not _missing(x))
        if s and s not in paths:
          paths.append(s)
      return "; ".join(paths)
    return ", ".join(_clean(str(v)) for v in value if not _missing(v))
  return _clean(str(value))


def parse_template(template: str) -> list[tuple[str, list[str]]]:
  """Splits a template into (segment, field names) pairs.

  Raises:
    ValueError: a segment has malformed braces or a format spec.
  """
  out = []
  for seg in template.split("|"):
    try:
      parsed = list(string.Formatter().parse(seg))
    except ValueError as e:
      raise ValueError(f"bad text template segment {seg!r}: {e}") from None
    fields = []
    for _, name, spec, conv in parsed:
      if name is None:
        continue
      if not name or spec or conv:
        raise ValueError(
            f"template segment {seg!r}: use plain {{field}} placeholders")
      fields.append(name)
    out.append((seg, fields))
  return out


def render_item_text(dataset: Dataset, template: str, item: int) -> str:
  """The text of one item (see the module docstring for the rules)."""
  text = ""
  for seg, fields in parse_template(template):
    values = {}
    for f in fields:
      v = field_value(dataset, f, item)
      if _missing(v):
        break
      values[f] = _render(v)
    else:
      piece = seg.format(**values).strip()
      if not piece:
        continue
      if not text:
        text = piece
      else:
        text += (" " if text[-1] in ".!?" else ". ") + piece
  return text


def item_texts(dataset: Dataset, template: str) -> list[str]:
  """One text per item.

  Args:
    dataset: any :class:`Dataset`; only ``item_meta`` is read.
    template: ``|``-separated segments with ``{field}`` placeholders.

  Returns:
    ``N + 1`` strings; entry 0 (padding) is ``""``.
  """
  parse_template(template)  # Fail on a bad template before the loop.
  fields = {f for _, fs in parse_template(template) for f in fs}
  for f in fields:  # Unknown fields fail once, with the list of known ones.
    field_value(dataset, f, 1 if dataset.num_items else 0)
  # Parse once per item is cheap next to encoding; keep it simple.
  return [""] + [render_item_text(dataset, template, i)
                 for i in range(1, dataset.num_items + 1)]


def _as_labels(value: Any) -> set[str]:
  if _missing(value):
    return set()
  if isinstance(value, (list, tuple, set, frozenset)):
    out = set()
    for v in value:
      if isinstance(v, (list, tuple)):  # A category path: its leaf.
        v = v[-1] if v else None
      if not _missing(v):
        out.add(_clean(str(v)))
    return out
  return {_clean(str(value))}


def facet_labels(dataset: Dataset, facet: str,
                 max_fraction: float = MAX_LABEL_FRACTION) -> list[frozenset[str]]:
  """Label set of every item for one facet.

  Args:
    dataset: any :class:`Dataset`; only ``item_meta`` is read.
    facet: raw or derived field name (module docstring); ``""`` = unlabelled.
    max_fraction: values carried by more than this fraction of the labelled
      items are dropped (1.0 keeps all).

  Returns:
    ``N + 1`` frozensets of string labels; entry 0 and unlabelled items are
    empty. Multi-valued fields give several labels.
  """
  n = dataset.num_items
  if not facet:
    return [frozenset()] * (n + 1)
  labels = [set()] + [_as_labels(field_value(dataset, facet, i))
                      for i in range(1, n + 1)]
  labelled = sum(1 for s in labels if s)
  if labelled and max_fraction < 1.0:
    counts: dict[str, int] = {}
    for s in labels:
      for v in s:
        counts[v] = counts.get(v, 0) + 1
    common = {v for v, c in counts.items() if c > max_fraction * labelled}
    if common:
      labels = [s - common for s in labels]
  return [frozenset(s) for s in labels]


def all_facet_labels(dataset: Dataset, facets: Sequence[str],
                     max_fraction: float = MAX_LABEL_FRACTION
                     ) -> list[list[frozenset[str]]]:
  """``facet_labels`` for each facet (one list per head; ``""`` = unlabelled)."""
  return [facet_labels(dataset, f, max_fraction) for f in facets]


def label_index(labels: Sequence[frozenset[str]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Integer (CSR) form of one facet's label sets.

  Returns:
    indptr [N + 2] int64, values [nnz] int32 (value ids), vocabulary (id -> name,
    sorted). Item ``i``'s values are ``values[indptr[i]:indptr[i + 1]]``.
  """
  vocab = sorted({v for s in labels for v in s})
  vid = {v: k for k, v in enumerate(vocab)}
  indptr = np.zeros(len(labels) + 1, np.int64)
  vals = []
  for i, s in enumerate(labels):
    ids = sorted(vid[v] for v in s)
    vals.extend(ids)
    indptr[i + 1] = indptr[i] + len(ids)
  return indptr, np.asarray(vals, np.int32), vocab
