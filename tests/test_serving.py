"""fame_jax.serving and serve.py: the exported artifact and the HTTP server give the API's answer."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import numpy as np
import pytest

from fame_jax import serving
from fame_jax.recommender import Recommender

import recommend_workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_K = 20
MAX_HISTORY = 30


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """``(recommender, serving directory)`` of a fresh-init tiny model."""
  workdir = str(tmp_path_factory.mktemp("serve_workdir"))
  recommend_workdir.make_workdir(workdir)
  rec = Recommender.load(workdir)
  directory = str(tmp_path_factory.mktemp("serving"))
  serving.export_serving(rec, directory, max_k=MAX_K, max_history=MAX_HISTORY,
                         platforms=("cpu",))
  return rec, directory


def _histories(rec):
  """Raw-id histories of several lengths, one past the model window (20)."""
  items = rec.item_ids[1:]
  return [items[:3], items[40:41], items[5:30], [items[7], items[2], items[7]]]


def test_serving_directory_describes_the_artifact(exported):
  rec, directory = exported
  assert sorted(os.listdir(directory)) == ["model.jaxexport", "serving.json", "vocab.json"]
  with open(os.path.join(directory, "serving.json")) as f:
    info = json.load(f)
  assert (info["max_len"], info["max_k"], info["max_history"], info["num_items"]) == (
      rec.max_len, MAX_K, MAX_HISTORY, rec.num_items)
  assert info["platforms"] == ["cpu"] and "symbolic" in info["batch_sizes"]
  with open(os.path.join(directory, "vocab.json")) as f:
    assert json.load(f)["items"] == rec.item_ids


# Runs in a fresh interpreter: jax and numpy only, never a fame_jax module.
_STANDALONE = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    directory, histories = sys.argv[1], json.loads(sys.argv[2])
    items = json.load(open(directory + "/vocab.json"))["items"]
    index = {raw: i for i, raw in enumerate(items) if i > 0}
    exported = jax.export.deserialize(bytearray(open(directory + "/model.jaxexport", "rb").read()))
    out = []
    for batch in (histories, histories[:1]):  # Two batch sizes, two widths: symbolic shapes.
      rows = np.zeros((len(batch), max(map(len, batch))), np.int32)
      for b, h in enumerate(batch):
        rows[b, :len(h)] = [index[raw] for raw in h]
      top, scores = exported.call(rows)
      out.append({"ids": [[items[i] for i in r] for r in np.asarray(top).tolist()],
                  "scores": np.asarray(scores).tolist()})
    assert not [m for m in sys.modules if m.startswith("fame_jax")]
    print(json.dumps(out))
""")


def test_artifact_runs_with_jax_and_numpy_alone(exported):
  rec, directory = exported
  histories = _histories(rec)
  done = subprocess.run([sys.executable, "-c", _STANDALONE, directory, json.dumps(histories)],
                        capture_output=True, text=True, timeout=120, cwd="/")
  assert done.returncode == 0, done.stderr
  every, first = json.loads(done.stdout)
  api = rec.recommend(histories, k=MAX_K)
  assert every["ids"] == api.ids.tolist() and first["ids"] == api.ids[:1].tolist()
  np.testing.assert_allclose(every["scores"], api.scores, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def server(exported):
  """``(base url, recommender)`` of a running ``serve.py``; stopped after the module."""
  rec, directory = exported
  proc = subprocess.Popen([sys.executable, os.path.join(REPO, "serve.py"), "--serving", directory,
                           "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, cwd=REPO)
  line = proc.stdout.readline()  # "serve.py: ready on http://127.0.0.1:PORT" (blocks until up).
  if "ready on" not in line:
    proc.kill()
    pytest.fail(f"serve.py did not start: {line!r} {proc.stderr.read()[-2000:]}")
  yield line.split("ready on ")[1].strip(), rec
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=30) == 0, proc.stderr.read()[-2000:]


def _post(url, body, raw=False):
  data = body if raw else json.dumps(body).encode()
  request = urllib.request.Request(url + "/recommend", data=data,
                                   headers={"Content-Type": "application/json"})
  try:
    with urllib.request.urlopen(request, timeout=60) as r:
      return r.status, json.loads(r.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def test_server_answers_as_the_api(server):
  url, rec = server
  histories = _histories(rec)
  api = rec.recommend(histories, k=MAX_K)
  for b, h in enumerate(histories):
    status, body = _post(url, {"history": h, "k": 5})
    assert status == 200 and body["ids"] == api.ids[b][:5].tolist() and "unknown" not in body
    np.testing.assert_allclose(body["scores"], api.scores[b][:5], rtol=1e-5, atol=1e-5)
  # Text forms of integer ids name the same items; skipped ids are reported.
  status, body = _post(url, {"history": [str(i) for i in histories[0]] + ["nope"],
                             "unknown": "skip"})
  assert status == 200 and body["unknown"] == ["nope"]
  assert body["ids"] == api.ids[0][:10].tolist()  # k defaults to 10.


def test_concurrent_requests_are_batched_and_answered_alike(server):
  url, rec = server
  histories = [rec.item_ids[1 + i:4 + i + i % 10] for i in range(24)]  # 3..12 items.
  api = rec.recommend(histories, k=MAX_K)
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    answers = list(pool.map(lambda h: _post(url, {"history": h, "k": MAX_K}), histories))
  assert [a[0] for a in answers] == [200] * len(histories)
  assert [a[1]["ids"] for a in answers] == api.ids.tolist()


@pytest.mark.parametrize("body,status,message", [
    ({"history": ["nope", "nada"]}, 422, "unknown item ids: 'nope', 'nada'"),
    ({"history": []}, 400, "'history' is empty"),
    ({"history": list(range(1, MAX_HISTORY + 2))}, 413, f"at most {MAX_HISTORY}"),
    ({"history": "1,2"}, 400, "must be a list"),
    ({"history": [1, [2]]}, 400, "strings or integers"),
    ({"history": [1, True]}, 400, "strings or integers"),
    ({"history": [1], "k": MAX_K + 1}, 400, f"'k' must be an integer in 1..{MAX_K}"),
    ({"history": [1], "k": "5"}, 400, "'k' must be an integer"),
    ({"history": [1], "unknown": "drop"}, 400, "'unknown' must be"),
    ({"history": [1], "user": 3}, 400, "unknown field(s) ['user']"),
    ({"k": 5}, 400, "missing field 'history'"),
    ([1, 2], 400, "must be a JSON object"),
    (b'{"history": [1, 2', 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
])
def test_bad_requests_get_a_4xx_and_the_server_stays_up(server, body, status, message):
  url, rec = server
  got, answer = _post(url, body, raw=isinstance(body, bytes))
  assert got == status and message in answer["error"] and "\n" not in answer["error"]
  got, answer = _post(url, {"history": [rec.item_ids[1]]})
  assert got == 200 and len(answer["ids"]) == 10


def test_health_and_unknown_paths(server):
  url, _ = server
  with urllib.request.urlopen(url + "/health", timeout=30) as r:
    assert json.loads(r.read())["status"] == "ok"
  with pytest.raises(urllib.error.HTTPError) as err:
    urllib.request.urlopen(url + "/nothing", timeout=30)
  assert err.value.code == 404 and "error" in json.loads(err.value.read())
