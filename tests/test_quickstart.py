"""README's "Your own CSV -> ... -> serve" section runs as written.

The section's fenced ``bash`` blocks run as one script and its ``python``
blocks after them, in a scratch directory that holds the repository's entry
points and configs (so ``runs/``, ``recs.jsonl`` and ``serving/`` land there),
with ``.venv/bin/python`` read as this interpreter and port 8000 as a free
one. Nothing else is changed: the commands, overrides and the generated log
are the README's.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
TITLE = "## Your own CSV -> train FAME and SASRec -> evaluate -> recommend -> serve"


def _section_blocks() -> list[tuple[str, str]]:
  text = (REPO / "README.md").read_text()
  assert TITLE in text, f"README.md lost its section {TITLE!r}"
  section = text.split(TITLE, 1)[1].split("\n## ", 1)[0]
  return re.findall(r"```(bash|python)\n(.*?)```", section, flags=re.S)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_the_section_has_every_step():
  commands = "\n".join(code for lang, code in _section_blocks() if lang == "bash")
  for step in ("> my_log.csv", "train.py --config configs/tiny.py",
               "train.py --config configs/sasrec.py:tiny", "evaluate.py", "recommend.py --workdir",
               "--export-serving", "serve.py", "curl"):
    assert step in commands, step
  assert any(lang == "python" for lang, _ in _section_blocks())


def test_readme_section_runs(tmp_path):
  for name in ("train.py", "evaluate.py", "recommend.py", "serve.py", "configs"):
    (tmp_path / name).symlink_to(REPO / name)
  blocks = _section_blocks()
  port = str(_free_port())
  bash = "\n".join(code for lang, code in blocks if lang == "bash")
  bash = bash.replace(".venv/bin/python", sys.executable).replace("8000", port)
  # The server runs in the background: stop it however the script ends.
  script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + bash
  env = dict(os.environ, PYTHONPATH=str(REPO))
  done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                        env=env, timeout=600)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

  # The curl answer is the last line of stdout; evaluate.py printed metrics before it.
  answer = json.loads(done.stdout.strip().splitlines()[-1])
  assert len(answer["ids"]) == 5 and not {"item_3", "item_5"} & set(answer["ids"])
  metrics = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"test/')]
  assert len(metrics) == 2 and all(0 <= m["test/NDCG@10"] <= 1 for m in metrics)
  recs = [json.loads(line) for line in (tmp_path / "recs.jsonl").read_text().splitlines()]
  assert len(recs) == 200 and recs[0]["user"] == "user_0" and len(recs[0]["items"]) == 10
  assert (tmp_path / "serving" / "mine" / "model.jaxexport").stat().st_size > 0

  for lang, code in blocks:
    if lang == "python":
      ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                           text=True, env=env, timeout=300)
      assert ran.returncode == 0, ran.stderr[-3000:]
