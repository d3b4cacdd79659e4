"""fame_jax.recommender and recommend.py: the evaluator's scores, as raw-id recommendations.

The reference everywhere is the evaluator's own path: ``steps.make_score_fn``
scores, history items set to ``-inf`` as docs/protocol.md §7 masks them, and
``evaluation.evaluate``'s ranks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fame_jax import evaluation
from fame_jax.errors import UserError, WorkdirError
from fame_jax.models import FAME
from fame_jax import recommender
from fame_jax.recommender import Recommender, RecommendError, UnknownIdsError
from fame_jax.training import steps

import recommend_workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 10


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """``(workdir, config, dataset, split, params, recommender)`` of a fresh-init tiny model."""
  workdir = str(tmp_path_factory.mktemp("rec_workdir"))
  config, dataset, split, params = recommend_workdir.make_workdir(workdir)
  return workdir, config, dataset, split, params, Recommender.load(workdir)


@pytest.fixture(scope="module")
def score_fn(run):
  """The evaluator's ``score_fn(inputs, lengths) -> [B, N + 1]`` (one jit for the module)."""
  _, config, dataset, _, params, _ = run
  model = FAME(cfg=config.model, num_items=dataset.num_items)
  return steps.make_score_fn(model, params, config.train.examples, config.data.max_len)


def _reference_scores(score_fn, max_len, histories, mask_history=True):
  """``[U, N + 1]`` evaluator scores of right-padded windows, history items -inf."""
  inputs = np.zeros((len(histories), max_len), np.int32)
  lengths = np.zeros(len(histories), np.int32)
  for b, h in enumerate(histories):
    window = np.asarray(h[-max_len:])
    inputs[b, :len(window)] = window
    lengths[b] = len(window)
  scores = np.array(score_fn(inputs, lengths))
  if mask_history:
    for b, h in enumerate(histories):
      scores[b, np.asarray(h)] = -np.inf
  return scores


def _raw(rec, histories):
  return [[rec.item_ids[i] for i in h] for h in histories]


@pytest.mark.parametrize("which", ["valid", "test"])
def test_scores_and_top_k_are_the_evaluators(run, score_fn, which):
  _, config, dataset, split, params, rec = run
  histories, targets = split.eval_examples(which)
  recs = rec.recommend(_raw(rec, histories), k=K)
  ref = _reference_scores(score_fn, config.data.max_len, histories)
  ref_top = np.argsort(-ref, axis=1, kind="stable")[:, :K]
  assert recs.ids.shape == recs.scores.shape == (len(histories), K)
  np.testing.assert_array_equal(recs.ids, np.asarray(rec.item_ids, object)[ref_top])
  np.testing.assert_allclose(recs.scores, np.take_along_axis(ref, ref_top, 1), rtol=1e-6, atol=1e-6)
  # No history item and never the pad.
  for b, h in enumerate(histories):
    assert not set(recs.ids[b]) & {rec.item_ids[i] for i in h} and None not in recs.ids[b]

  # The evaluator's ranks: a target the history does not hold is a hit at 10
  # exactly when the recommender lists it.
  _, ranks = evaluation.evaluate(score_fn, histories, targets, dataset.num_items, batch_size=512,
                                 mask_history=True, ks=(K,), max_len=config.data.max_len,
                                 return_ranks=True)
  fresh = [b for b, h in enumerate(histories) if targets[b] not in h]
  listed = np.array([rec.item_ids[targets[b]] in recs.ids[b] for b in fresh])
  np.testing.assert_array_equal(listed, ranks[fresh] < K)
  assert listed.sum() >= 5  # Not a vacuous check.


def test_results_do_not_depend_on_chunking(run):
  *_, split, _, rec = run
  histories = _raw(rec, split.eval_examples("test")[0])
  whole = rec.recommend(histories, k=K)
  chunked = rec.recommend(histories, k=K, chunk_users=256)  # Two chunks of other widths.
  np.testing.assert_array_equal(chunked.ids, whole.ids)
  np.testing.assert_allclose(chunked.scores, whole.scores, rtol=1e-5, atol=1e-5)


def test_recommend_users_follows_the_whole_history(run, score_fn):
  _, config, dataset, _, params, rec = run
  all_users = rec.recommend_users(k=K)
  assert all_users.users == rec.user_ids and len(all_users) == dataset.num_users
  # The whole history is train + valid + test items: the dataset's sequences.
  ref = _reference_scores(score_fn, config.data.max_len, dataset.sequences)
  ref_top = np.argsort(-ref, axis=1, kind="stable")[:, :K]
  np.testing.assert_array_equal(all_users.ids, np.asarray(rec.item_ids, object)[ref_top])
  some = [rec.user_ids[5], str(rec.user_ids[2])]  # Text ids name the same users.
  picked = rec.recommend_users(some, k=K)
  assert picked.users == [rec.user_ids[5], rec.user_ids[2]]
  np.testing.assert_array_equal(picked.ids, all_users.ids[[5, 2]])


def test_exclude_none_and_a_list(run, score_fn):
  _, config, dataset, split, params, rec = run
  histories = split.eval_examples("test")[0]
  raw = _raw(rec, histories)
  open_recs = rec.recommend(raw, k=K, exclude=None)
  ref = _reference_scores(score_fn, config.data.max_len, histories, mask_history=False)
  ref_top = np.argsort(-ref, axis=1, kind="stable")[:, :K]
  np.testing.assert_array_equal(open_recs.ids, np.asarray(rec.item_ids, object)[ref_top])
  # Unmasked, some history items come back (else exclude=None would be untested).
  assert any(set(open_recs.ids[b]) & set(raw[b]) for b in range(len(raw)))

  banned = list(open_recs.ids[0][:3])
  recs = rec.recommend(raw, k=K, exclude=banned)
  open_top = np.argsort(-ref, axis=1, kind="stable")[:, :K + 3]
  for b in range(len(raw)):
    assert not set(recs.ids[b]) & set(banned)
    wider = [rec.item_ids[i] for i in open_top[b]]
    assert list(recs.ids[b]) == [i for i in wider if i not in banned][:K]


def test_unknown_item_ids_raise_or_are_reported(run):
  *_, rec = run
  known = [rec.item_ids[1], rec.item_ids[7]]
  with pytest.raises(UnknownIdsError) as err:
    rec.recommend([known + ["no-such-item", 987654]], k=K)
  message = str(err.value)
  assert "'no-such-item'" in message and "987654" in message and "\n" not in message
  assert isinstance(err.value, UserError)
  skipped = rec.recommend([known + ["no-such-item"], known], k=K, unknown="skip")
  assert skipped.unknown == [["no-such-item"], []]
  np.testing.assert_array_equal(skipped.ids[0], skipped.ids[1])
  assert list(skipped.rows())[0]["unknown"] == ["no-such-item"]
  with pytest.raises(RecommendError, match="history 0 is empty.*unknown"):
    rec.recommend([["no-such-item"]], unknown="skip")


def test_bad_arguments_are_one_line_errors(run, tmp_path):
  *_, rec = run
  h = [[rec.item_ids[1]]]
  for bad in (dict(k=0), dict(k=rec.num_items + 1), dict(k=2.5), dict(exclude="everything"),
              dict(unknown="ignore")):
    with pytest.raises(RecommendError):
      rec.recommend(h, **bad)
  with pytest.raises(RecommendError, match="history 1 is empty"):
    rec.recommend([h[0], []])
  with pytest.raises(UnknownIdsError, match="unknown user id: 'nobody'"):
    rec.recommend_users(["nobody"])
  (tmp_path / "config.json").write_text("{}")
  with pytest.raises(WorkdirError, match="vocab.json not found"):
    Recommender.load(str(tmp_path))


def test_user_vectors_times_item_embeddings_are_the_scores(run):
  *_, rec = run
  ids, u = rec.user_vectors(user_ids=rec.user_ids)
  items, table = rec.item_embeddings()
  assert ids == rec.user_ids and items == rec.item_ids[1:]
  assert u.shape == (len(ids), rec.config.model.hidden_size) and table.shape[0] == rec.num_items
  scores = u @ table.T
  top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
  recs = rec.recommend_users(k=K, exclude=None)
  np.testing.assert_array_equal(recs.ids, np.asarray(items, object)[top])
  np.testing.assert_allclose(recs.scores, np.take_along_axis(scores, top, 1), rtol=1e-5, atol=1e-5)
  # From raw histories: the same vectors.
  h = rec._user_histories
  hist = [[rec.item_ids[i] for i in h.flat[s:s + n]] for s, n in zip(h.starts, h.lens)]
  np.testing.assert_allclose(rec.user_vectors(hist)[1], u, rtol=1e-6, atol=1e-6)


def test_calls_of_one_bucket_compile_once(run):
  *_, split, _, rec = run
  histories = _raw(rec, split.eval_examples("test")[0])
  one_chunk = 512
  rec.recommend(histories, k=K, chunk_users=one_chunk)
  compiled = rec.compiled_shapes()
  # 257..512 histories, the longest over 16 items: the same (rows, width,
  # history width) bucket, so no new program.
  rec.recommend(histories[:300], k=K, chunk_users=one_chunk)
  rec.recommend(histories[100:], k=K, chunk_users=one_chunk)
  assert rec.compiled_shapes() == compiled
  rec.recommend(histories[:300], k=K + 1, chunk_users=one_chunk)  # k is static: a new program.
  assert rec.compiled_shapes() == compiled + 1


@pytest.mark.parametrize("n, k, group", [(3001, 10, 32), (1000, 1, 8), (333, 7, 4), (120, 10, 32)])
def test_two_stage_top_k_is_jax_top_k(n, k, group):
  import jax
  rng = np.random.default_rng(n)
  scores = np.round(rng.normal(size=(24, n)), 1).astype(np.float32)  # Many equal scores.
  scores[:, 0] = -np.inf  # The pad column.
  scores[3, 2:] = -np.inf  # Fewer real candidates than k.
  scores[5] = 0.5  # One score everywhere: ties resolve lowest index first.
  scores[6, -k:] = 9.0  # The best items in the last, partial, group.
  values, index = jax.jit(recommender.top_k, static_argnums=(1, 2))(scores, k, group)
  want_values, want_index = jax.lax.top_k(scores, k)
  np.testing.assert_array_equal(values, want_values)
  np.testing.assert_array_equal(index, want_index)
  assert index.dtype == np.int32


def test_width_buckets():
  widths = [recommender.width_bucket(n, 50) for n in range(1, 60)]
  assert widths[:4] == [1, 2, 3, 4]  # The shortest windows run at their own width.
  assert sorted(set(widths[4:])) == [6, 8, 12, 16, 24, 32, 48, 50]
  for n, w in enumerate(widths, 1):
    assert min(n, 50) <= w < 1.5 * min(n, 50)  # Holds the window, wastes under a third.


def _cli(*args):
  env = {k: v for k, v in os.environ.items() if k != "FAME_JAX_VERBOSE"}
  return subprocess.run([sys.executable, os.path.join(REPO, "recommend.py"), *args],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def test_cli_writes_jsonl_for_every_user_and_csv_for_some(run, tmp_path):
  workdir, *_, rec = run
  # First, so the command finds these programs in this test run's compilation cache.
  expected = rec.recommend_users(k=5)
  some = rec.recommend_users([rec.user_ids[3], rec.user_ids[0]], k=3)
  out = tmp_path / "recs.jsonl"
  done = _cli("--workdir", workdir, "--k", "5", "--out", str(out))
  assert done.returncode == 0, done.stderr
  assert f"recommend.py: {len(rec.user_ids)}/{len(rec.user_ids)} users" in done.stderr  # Not a tty.
  lines = [json.loads(line) for line in out.read_text().splitlines()]
  assert [r["user"] for r in lines] == rec.user_ids
  assert [r["items"] for r in lines] == expected.ids.tolist()
  np.testing.assert_allclose([r["scores"] for r in lines], expected.scores, atol=1e-5)

  users_file = tmp_path / "users.txt"
  users_file.write_text(f"{rec.user_ids[3]}\n\n{rec.user_ids[0]}\n")
  out_csv = tmp_path / "recs.csv"
  done = _cli("--workdir", workdir, "--k", "3", "--out", str(out_csv), "--users", str(users_file))
  assert done.returncode == 0, done.stderr
  rows = out_csv.read_text().splitlines()
  assert rows[0] == "user,item_1,item_2,item_3,score_1,score_2,score_3"
  first = rows[1].split(",")
  assert first[0] == str(rec.user_ids[3])
  assert first[1:4] == [str(i) for i in some.ids[0]]
  np.testing.assert_allclose([float(s) for s in first[4:]], some.scores[0], rtol=1e-5)
  assert len(rows) == 3
