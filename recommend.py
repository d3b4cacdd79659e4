"""Top-k recommendations from a trained workdir, for every user or some, to JSONL or CSV.

  python recommend.py --workdir runs/beauty --k 10 --out recs.jsonl
  python recommend.py --workdir runs/beauty --users 12,77,301 --out recs.csv
  python recommend.py --workdir runs/beauty --users users.txt --out recs.jsonl   # one id a line
  python recommend.py --workdir runs/beauty --export-serving serving/beauty      # for serve.py

Each user's recommendations follow their whole history (train, validation and
test items) with those items excluded (fame_jax.recommender.Recommender).
JSONL: one line per user, {"user": id, "items": [...], "scores": [...]};
CSV: one line per user, user,item_1..item_k,score_1..score_k.
"""

if __name__ == "__main__":  # Before JAX loads: re-runs once with malloc on huge pages.
  from fame_jax import runtime
  runtime.use_huge_pages()

import csv
import json
import os
import sys

from absl import flags, logging

from fame_jax import cli
from fame_jax.errors import ConfigError

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by train.py.")
_K = flags.DEFINE_integer("k", 10, "Items per user.")
_OUT = flags.DEFINE_string("out", None, "Output file: .jsonl or .csv.")
_USERS = flags.DEFINE_string("users", None, "A file of raw user ids (one a line) or id,id,...; "
                             "default: every user.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "'best', 'latest' or an epoch number.")
_EXPORT = flags.DEFINE_string("export-serving", None, "Write a serving directory (jax.export "
                              "artifact, vocab.json, serving.json) for serve.py.")
_MAX_K = flags.DEFINE_integer("max-k", 100, "With --export-serving: items the artifact returns.")
_PLATFORMS = flags.DEFINE_list("platforms", ["cpu", "cuda"], "With --export-serving: platforms "
                               "the artifact is lowered for.")
flags.mark_flag_as_required("workdir")

_BLOCK_USERS = 4096  # Users per progress step (and per output flush).


def _read_users(spec: str) -> list[str]:
  if os.path.isfile(spec):
    with open(spec) as f:
      return [line.strip() for line in f if line.strip()]
  users = [u.strip() for u in spec.split(",") if u.strip()]
  if not users:
    raise ConfigError(f"--users {spec!r} is neither a file nor a comma-separated list of ids")
  return users


class _Progress:
  """A tqdm bar on a terminal; plain lines (about every tenth) otherwise."""

  def __init__(self, total: int):
    self.total, self.done, self.next_line = total, 0, total / 10
    self.bar = None
    if sys.stderr.isatty():
      from tqdm.auto import tqdm
      self.bar = tqdm(total=total, unit="user", desc="recommend")

  def update(self, n: int) -> None:
    self.done += n
    if self.bar is not None:
      self.bar.update(n)
    elif self.done >= self.next_line or self.done == self.total:
      print(f"recommend.py: {self.done}/{self.total} users", file=sys.stderr, flush=True)
      self.next_line = self.done + self.total / 10

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def _write(rec, users, k: int, out: str) -> None:
  kind = os.path.splitext(out)[1].lower()
  if kind not in (".jsonl", ".csv"):
    raise ConfigError(f"--out {out!r}: the extension must be .jsonl or .csv")
  progress = _Progress(len(users))
  with open(out, "w", newline="") as f:
    writer = None
    if kind == ".csv":
      writer = csv.writer(f)
      writer.writerow(["user"] + [f"item_{i}" for i in range(1, k + 1)]
                      + [f"score_{i}" for i in range(1, k + 1)])
    for lo in range(0, len(users), _BLOCK_USERS):
      recs = rec.recommend_users(users[lo:lo + _BLOCK_USERS], k=k)
      for row in recs.rows():
        if writer is None:
          f.write(json.dumps({"user": row["user"], "items": row["ids"],
                              "scores": [round(s, 6) for s in row["scores"]]}) + "\n")
        else:
          pad = k - len(row["ids"])
          writer.writerow([row["user"], *row["ids"], *[""] * pad,
                           *[f"{s:.6g}" for s in row["scores"]], *[""] * pad])
      progress.update(len(recs))
  progress.close()


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO.
  if not _OUT.value and not _EXPORT.value:
    raise ConfigError("give --out FILE (.jsonl or .csv) and/or --export-serving DIR")
  from fame_jax.recommender import Recommender  # JAX loads only now.
  rec = Recommender.load(_WORKDIR.value, _CHECKPOINT.value)
  if _EXPORT.value:
    from fame_jax import serving
    info = serving.export_serving(rec, _EXPORT.value, max_k=_MAX_K.value,
                                  platforms=_PLATFORMS.value)
    print(f"wrote {_EXPORT.value}: {info['artifact']} (top {info['max_k']} of "
          f"{info['num_items']} items, platforms {','.join(info['platforms'])}), vocab.json, "
          "serving.json", file=sys.stderr)
  if _OUT.value:
    users = _read_users(_USERS.value) if _USERS.value else list(rec.user_ids)
    _write(rec, users, _K.value, _OUT.value)
    print(f"wrote {_OUT.value}: {len(users)} users, top {_K.value} items each", file=sys.stderr)


if __name__ == "__main__":
  cli.run(main)
