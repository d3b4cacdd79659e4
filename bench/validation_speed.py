"""Wall time of the in-training validation (model + full ranking). Prints one JSON line.

  .venv/bin/python bench/validation_speed.py --workdir runs/beauty/full/sasrec_seed0 --sasrec
  .venv/bin/python bench/validation_speed.py --config configs/sasrec.py:ml1m \
      --workdir runs/ml1m/full/sasrec_seed0

Loads a trained Beauty workdir's best checkpoint and runs the training loop's
own validation (``loop._evaluate_split``) three times: the first includes
compilation (one per history-width bucket), the others are what each epoch's
validation costs. Needs ../shared/data and a workdir with a checkpoint made
with ``--config`` (default ``configs/beauty.py``).
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fame_jax import runtime  # noqa: E402

runtime.use_huge_pages()  # Before JAX loads (fame_jax/runtime.py).

from fame_jax.data import stats  # noqa: E402
from fame_jax.models import FAME  # noqa: E402
from fame_jax.training import loop  # noqa: E402


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--config", default="configs/beauty.py",
                  help="config file of the run, optionally file.py:arg (as train.py)")
  ap.add_argument("--sasrec", action="store_true",
                  help="the workdir holds a SASRec run made with a FAME --config")
  args = ap.parse_args()
  c = stats.load_config(args.config, [])
  if args.sasrec:
    c.model.num_experts, c.model.facet_heads = 1, False
  dataset, split = loop.load_data(c)
  params = loop.restore_params(c, args.workdir, dataset.num_items)
  model = FAME(cfg=c.model, num_items=dataset.num_items)
  walls = []
  for _ in range(3):
    t = time.perf_counter()
    m = loop._evaluate_split(model, params, c, split, "valid", dataset.num_items, progress=False)
    walls.append(round(time.perf_counter() - t, 3))
  print(json.dumps({"bench": "validation_speed", "config": args.config, "workdir": args.workdir, "users": len(split.train),
                    "items": dataset.num_items, "wall_seconds": walls,
                    "valid/NDCG@10": m["valid/NDCG@10"],
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
  main()
