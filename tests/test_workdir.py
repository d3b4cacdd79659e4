"""Self-contained workdirs (fame_jax/workdir.py): the files training writes,
evaluation from them alone, the config and data checks, and a tabular log
with string ids trained end to end."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs import tiny
from fame_jax import workdir as wd
from fame_jax.data import DataError, load_dataset
from fame_jax.errors import WorkdirError
from fame_jax.training import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_KEYS = ("test/HR@5", "test/HR@10", "test/HR@20", "test/NDCG@5", "test/NDCG@10", "test/NDCG@20")


def _evaluate_py(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "evaluate.py"), *args], cwd=REPO,
                        capture_output=True, text=True, timeout=180)


# ------------------------------------------------------------------ files of the shared tiny run


def test_vocab_and_histories_round_trip_the_dataset(tiny_trained_run):
  config, workdir, _ = tiny_trained_run
  dataset, split = loop.load_data(config)
  vocab, histories = wd.load_vocab(workdir), wd.load_histories(workdir)
  # The synthetic world's ids are integers: JSON ints, in index order.
  assert vocab.users == [int(u) for u in dataset.user_raw_ids]
  assert vocab.items == [None] + [int(i) for i in dataset.item_raw_ids[1:]]
  assert vocab.num_items == dataset.num_items == 120
  assert len(histories) == dataset.num_users
  assert histories.offsets.dtype == np.int64 and histories.items.dtype == np.int32
  for u, seq in enumerate(dataset.sequences):
    np.testing.assert_array_equal(histories[u], seq)  # Whole history: train + valid + test.
  rebuilt = wd.dataset_from_files(workdir, config)
  assert [s.tolist() for s in rebuilt.sequences] == [s.tolist() for s in dataset.sequences]
  assert rebuilt.user_raw_ids.tolist() == dataset.user_raw_ids.tolist()
  assert rebuilt.item_raw_ids.tolist() == dataset.item_raw_ids.tolist()
  assert rebuilt.ground_truth is not None  # Regenerated for export's facet recovery.
  report = wd.load_report(workdir)
  assert report["choices"]["format"] == "synthetic"
  assert report["reader"]["function"].endswith("generate_facet_world")
  assert report["dropped"][-1] == {"step": "leave_one_out", "users": split.dropped_users,
                                   "why": report["dropped"][-1]["why"]}
  assert report["result"]["interactions"] == dataset.num_interactions
  for name in (wd.VOCAB_FILE, wd.HISTORIES_FILE, wd.REPORT_FILE, wd.CONFIG_FILE):
    assert not os.path.exists(os.path.join(workdir, name + ".tmp"))  # Renamed into place.
  stored = wd.load_config(workdir)
  assert stored.model.num_heads == config.model.num_heads and stored.eval.ks == (5, 10, 20)


def test_evaluate_py_needs_only_the_workdir(tiny_trained_run, tmp_path):
  _, workdir, results = tiny_trained_run
  out = _evaluate_py(f"--workdir={workdir}", f"--export={tmp_path / 'export'}")
  assert out.returncode == 0, out.stderr
  metrics = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("{")))
  assert sorted(metrics) == sorted(TEST_KEYS)
  with open(tmp_path / "export" / "manifest.json") as f:
    exported = json.load(f)["metrics"]
  for k in TEST_KEYS:
    assert metrics[k] == pytest.approx(results[k], abs=1e-6), k
    assert exported[k] == pytest.approx(results[k], abs=1e-6), k


def test_a_differing_config_is_one_line_naming_the_keys(tiny_trained_run):
  config, workdir, _ = tiny_trained_run
  out = _evaluate_py("--config=configs/tiny.py", "--config.model.num_heads=4",
                     f"--workdir={workdir}")
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]
  assert "model.num_heads: 2 -> 4" in last and "config.json" in last, out.stderr
  # In process: every differing key, stored -> given, on one line.
  given = tiny.get_config()
  given.model.num_heads, given.train.learning_rate = 4, 0.5
  with pytest.raises(WorkdirError) as e:
    wd.resolve_config(workdir, given, loop._RESUMABLE_DIFFS)
  assert "\n" not in str(e.value)
  assert "model.num_heads: 2 -> 4" in str(e.value) and "train.learning_rate: 0.01 -> 0.5" in str(e.value)
  # Bookkeeping keys may differ: the given config is used as is.
  given = tiny.get_config()
  given.eval.batch_size, given.train.max_epochs = 7, 99
  assert wd.resolve_config(workdir, given, loop._RESUMABLE_DIFFS) is given


def test_a_run_from_before_the_data_files_loads_its_configs_data(tiny_trained_run, tmp_path):
  config, workdir, _ = tiny_trained_run
  old = tmp_path / "old"
  old.mkdir()
  shutil.copy(os.path.join(workdir, wd.CONFIG_FILE), old / wd.CONFIG_FILE)
  assert not wd.has_data_files(str(old))
  dataset, split = wd.load_run_data(wd.load_config(str(old)), str(old))
  want, want_split = loop.load_data(config)
  assert [s.tolist() for s in dataset.sequences] == [s.tolist() for s in want.sequences]
  assert split.users.tolist() == want_split.users.tolist()


def test_missing_workdir_names_the_file(tmp_path):
  with pytest.raises(WorkdirError, match=r"nowhere.config\.json not found"):
    wd.load_config(str(tmp_path / "nowhere"))


def test_resumed_run_refuses_changed_data(tiny_trained_run, tmp_path):
  config, workdir, _ = tiny_trained_run
  copy = tmp_path / "run"
  copy.mkdir()
  for name in (wd.CONFIG_FILE, wd.VOCAB_FILE, wd.HISTORIES_FILE, wd.REPORT_FILE, "results.json"):
    shutil.copy(os.path.join(workdir, name), copy / name)
  loop._load_data(config, str(copy))  # Same data: accepted, files kept.
  changed = tiny.get_config()
  changed.data.synthetic.seed = 1  # Same sizes and ids, other histories.
  with pytest.raises(WorkdirError, match=r"the data changed.*histories\.npz differs"):
    loop._load_data(changed, str(copy))
  # Nothing trained yet (no results, no checkpoint): a fresh start rewrites them.
  os.remove(copy / "results.json")
  loop._load_data(changed, str(copy))
  assert wd.load_report(str(copy))["steps"][0]["seed"] == 1


# ------------------------------------------------------------------ a tabular log


def _write_log(path):
  """3,000 rows of 300 users and 200 items, string ids, ISO-8601 times.

  Each user has 9 distinct items at distinct times (2,700 rows); then 240
  rows repeat a (user, item) pair at a later time and 60 rows repeat an
  earlier row exactly, spread over the file.
  """
  rng = np.random.default_rng(0)
  rows = []
  for u in rng.permutation(300):
    items = rng.choice(200, size=9, replace=False)
    days = np.sort(rng.choice(365, size=9, replace=False))
    for it, day in zip(items, days):
      t = np.datetime64("2021-01-01T00:00:00") + np.timedelta64(int(day), "D") \
          + np.timedelta64(int(rng.integers(86_400)), "s")
      rows.append((f"user_{u}", f"item_{it}", f"{t}Z"))
  again = [(u, i, "2022-06-01T12:00:00Z") for u, i, _ in
           (rows[k] for k in rng.choice(len(rows), size=240, replace=False))]
  exact = [rows[k] for k in rng.choice(len(rows), size=60, replace=False)]
  extra = again + exact
  for k in rng.permutation(len(extra)):  # Anywhere after the row they repeat.
    rows.append(extra[k])
  path.write_text("user_id,item_id,timestamp,rating\n"
                  + "".join(f"{u},{i},{t},5\n" for u, i, t in rows))
  return rows


def _log_config(path, **data):
  config = tiny.get_config()
  config.data.format, config.data.path, config.data.name = "csv", str(path), "log"
  config.train.max_epochs, config.train.eval_every_epochs = 1, 1
  for k, v in data.items():
    setattr(config.data, k, v)
  return config


def test_string_id_log_trains_and_evaluates_without_the_file(tmp_path):
  log = tmp_path / "log.csv"
  rows = _write_log(log)
  assert len(rows) == 3000 and len({u for u, _, _ in rows}) == 300
  assert len({i for _, i, _ in rows}) == 200
  config = _log_config(log, dedup="exact")
  workdir = str(tmp_path / "run")
  results = loop.train_and_evaluate(config, workdir)
  vocab = wd.load_vocab(workdir)
  # Users in order of first appearance, items in ascending string order: as read.
  assert vocab.users == list(dict.fromkeys(u for u, _, _ in rows))
  assert vocab.items == [None] + sorted({i for _, i, _ in rows})
  assert all(isinstance(u, str) and u.startswith("user_") for u in vocab.users)
  report = wd.load_report(workdir)
  assert report["choices"]["columns_used"] == {"user": "user_id", "item": "item_id",
                                               "time": "timestamp"}
  assert report["choices"]["dedup"] == "exact" and report["choices"]["time_format_used"] == "iso8601"
  assert report["reader"]["rows_read"] == 3000 and report["reader"]["duplicates_dropped"] == 60
  assert report["result"]["interactions"] == 2940 and report["result"]["name"] == "log"
  loop._load_data(config, workdir)  # A resume that reads the same log: accepted.
  with open(log, "a") as f:
    f.write("user_new,item_1,2023-01-01T00:00:00Z,5\n")
  with pytest.raises(WorkdirError, match=rf"the data changed.*vocab\.json differs.*users has "
                     rf"{len(vocab.users) + 1} entries, the stored {len(vocab.users)}"):
    loop._load_data(config, workdir)
  os.remove(log)  # The workdir alone evaluates the run.
  metrics = loop.evaluate_workdir(None, workdir, "test")
  for k in TEST_KEYS:
    assert metrics[k] == pytest.approx(results[k], abs=1e-6), k


@pytest.mark.parametrize("mode,dropped", [("keep", 0), ("exact", 60), ("user_item", 300)])
def test_each_dedup_mode_is_recorded(tmp_path, mode, dropped):
  log = tmp_path / "log.csv"
  _write_log(log)
  config = _log_config(log, dedup=mode, kcore=2)
  dataset, split = loop.load_data(config)
  out = tmp_path / "w"
  out.mkdir()
  wd.write_or_check_data_files(str(out), config.data, dataset, split)
  report = wd.load_report(str(out))
  assert report["choices"]["dedup"] == report["reader"]["dedup"] == mode
  assert report["choices"]["kcore"] == 2
  assert report["reader"]["duplicates_dropped"] == dropped
  assert report["reader"]["rows"] == 3000 - dropped
  steps = [d["step"] for d in report["dropped"]]
  assert steps == ([f"dedup({mode})"] if dropped else []) + ["kcore(2)", "leave_one_out"]


def test_log_columns_by_name_or_given(tmp_path):
  log = tmp_path / "log.tsv"
  log.write_text("when\tuserId\tasin\n2020-01-02\tu1\tA\n2020-01-01\tu1\tB\n"
                 "2020-01-03\tu2\tA\n")
  config = _log_config(log, format="tsv")
  with pytest.raises(DataError) as e:  # userId and asin are found by name; "when" is not.
    load_dataset(config.data)
  assert str(e.value) == (f"{log}, line 1: no time column found by name (looked for "
                          "timestamp, time, ts, unixReviewTime, datetime, date, event_time, "
                          "created_at, timestamp:float); the header's columns are "
                          "['when', 'userId', 'asin']; name it with data.columns.time")
  config.data.columns.time = "when"
  ds = load_dataset(config.data)
  assert [s.tolist() for s in ds.sequences] == [[2, 1], [1]]  # u1: B (Jan 1) then A.
  assert ds.report[0]["columns"] == {"user": "userId", "item": "asin", "time": "when"}
  assert ds.report[0]["columns_rule"]["time"] == "given"
