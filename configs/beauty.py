"""FAME on Amazon Beauty (S3-Rec 5-core file, 22,363 users, 12,101 items).

  python train.py --config configs/beauty.py --workdir runs/beauty
  # SASRec baseline (same code path):
  python train.py --config configs/sasrec.py:beauty --workdir runs/beauty_sasrec

Data is read from ../shared/data (override with --config.data.path=...).
SPEC section 4 defaults except where a comment points at the evidence (the
Beauty variant study, results/beauty/, chosen on validation NDCG@10 only).
"""

from configs.base import get_base_config

_ROOT = "../shared/data/beauty"


def get_config():
  c = get_base_config()
  c.data.format = "s3rec"  # `user item item ...` lines, chronological.
  c.data.name = "beauty"
  c.data.path = f"{_ROOT}/Beauty.txt"
  c.data.item_text_path = f"{_ROOT}/Beauty_item_text.jsonl"  # Titles, brand, categories.
  c.data.attributes_path = f"{_ROOT}/Beauty_item2attributes.json"
  c.data.attribute_names_path = f"{_ROOT}/Beauty_attribute_names.tsv"
  c.model.dropout = 0.5  # SPEC default for Amazon.
  # Selector init of W_f^h (head h starts reading its own d' chunk): valid
  # NDCG@10 at epoch 8 0.0441 vs 0.0239 with the normal init
  # (results/beauty/probe8/fame_selector vs fame_default); full run valid
  # 0.0679 (results/beauty/full/fame_selector_seed0). FAME+ overwrites W_f with
  # the same selectors at hand-off, so this changes nothing there.
  c.model.facet_proj_init = "selector"
  # Selector entries = H (2): with a near-uniform softmax gate, u starts at 1/H
  # of the concatenated heads; H restores SASRec's output scale. Epoch 8:
  # FAME 0.0538 vs 0.0441, FAME+ 0.0630 vs 0.0539 (results/beauty/probe8/
  # *_pscale2); full FAME+ runs, 3 seeds: valid NDCG@10 0.0716 +- 0.0003 vs
  # 0.0706 +- 0.0007 at 1 and SASRec 0.0694 +- 0.0006 (results/beauty/full/
  # fame_text_pscale2_seed*). Set it to the head count when overriding
  # num_heads with the learned W_f (--config.model.facet_item_proj=linear
  # --config.model.facet_proj_scale=2.0 --config.model.output_norm_scale=1.0
  # is the FAME of sessions 16-22).
  # Session 23: no learned facet projection W_f^h. facet_item_proj="slice"
  # scores head h against chunk h of the item embedding (SPEC 2's fixed
  # selector); facet_proj_scale scales only the learned W_f, so 1, and the F^h
  # LayerNorm starts at scale 2 instead, so u starts where the selectors at 2
  # put it (1x the heads with the near-uniform learned gate). Full runs, 3
  # seeds: valid NDCG@10 0.0715 +- 0.0002 (0.07164, 0.07136, 0.07136) vs
  # 0.0690 +- 0.0009 with the learned W_f (0.0701, 0.0684, 0.0686), every seed
  # above every seed; best epochs 55, 64, 69 instead of 29, 36, 34
  # (results/beauty/full/fame_slice_oscale2_seed* vs
  # fame_selector_d128_pscale2_lr2.5e-4_seed*). Scale 4, seed 0: 0.0688
  # (fame_slice_oscale4_seed0). Still below SASRec (0.0721 +- 0.0004).
  # configs/beauty_text.py sets its own slice scale (4, uniform gate).
  c.model.facet_item_proj = "slice"
  c.model.facet_proj_scale = 1.0
  c.model.output_norm_scale = 2.0
  # d 128 (each facet head 64 dims) for every Beauty model, SASRec included
  # (configs/sasrec.py reads this file). Full runs, 3 seeds each, valid
  # NDCG@10: SASRec 0.0702 +- 0.0002 vs 0.0694 +- 0.0006 at d 64
  # (results/beauty/full/sasrec_d128_seed*); FAME+ 0.0742 +- 0.0003 at scale 4
  # and 0.0730 +- 0.0003 at 2 vs 0.0722 +- 0.0004 at d 64
  # (fame_text_d128_pscale*_seed*). FAME without text: epoch 8 0.0622 at d 128
  # vs 0.0441 at d 64 (results/beauty/probe8/fame_selector_d128); its full
  # runs at d 128 are fame_selector_d128_pscale2_lr*_seed*.
  c.model.hidden_size = 128
  # Learning rate 5e-4 (SPEC 4's other value) at d 128, for every Beauty model.
  # Full runs, 3 seeds each, valid NDCG@10: SASRec 0.0714 +- 0.0003 vs
  # 0.0702 +- 0.0002 at 1e-3 (results/beauty/full/sasrec_d128_lr5e-4_seed*);
  # FAME+ 0.0756 +- 0.0002 vs 0.0742 +- 0.0003
  # (fame_text_d128_pscale4_lr5e-4_seed*).
  # Then 2.5e-4, for every Beauty model. Full runs, 3 seeds each, valid
  # NDCG@10 at 2.5e-4 vs 5e-4: SASRec 0.0721 +- 0.0004 vs 0.0714 +- 0.0003
  # (results/beauty/full/sasrec_d128_lr2.5e-4_seed*); FAME 0.0690 +- 0.0009 vs
  # 0.0685 +- 0.0008 (seeds 0.0701, 0.0684, 0.0686 vs 0.0693, 0.0686, 0.0677;
  # fame_selector_d128_pscale2_lr2.5e-4_seed*); FAME+ 0.0774 +- 0.0001 vs
  # 0.0762 +- 0.0002 (fame_text_lr2.5e-4_seed* vs fame_text_gate_uniform_seed*);
  # SASRec+text 0.0778 +- 0.0001 vs 0.0775 +- 0.0002 (sasrec_text_lr2.5e-4_seed*
  # vs sasrec_text_seed*). One step lower, 1.25e-4, gained nothing: FAME+
  # 0.0774 +- 0.0004 (3 seeds, best epochs 36-48), SASRec+text 0.0775 (seed 0)
  # against 0.0778 (fame_text_lr1.25e-4_seed*, sasrec_text_lr1.25e-4_seed0).
  c.train.learning_rate = 2.5e-4
  # MoE attention in every layer, not only the last (what FAME+ took in
  # session 18), for FAME without text too (session 24). Full runs on top of
  # slice at scale 2, 3 seeds: valid NDCG@10 0.07207, 0.07168, 0.07192
  # (0.0719 +- 0.0002) vs 0.07164, 0.07136, 0.07136 (0.0715 +- 0.0002) in the
  # last layer only, every seed above every seed; best epochs 55, 55, 60
  # (results/beauty/full/fame_slice_oscale2_allmoe_seed* vs
  # fame_slice_oscale2_seed*). Test was not better (0.0558 +- 0.0002 vs
  # 0.0561 +- 0.0009), and it is still below SASRec (valid 0.0721 +- 0.0004).
  # SASRec has one expert, where the switch changes nothing.
  c.model.moe_all_layers = True
  # Uniform gate (session 25): the learned gate of the model above collapses
  # onto head 1 (mean weight 0.97, entropy 0.007 of 0.693; head 1 alone
  # 0.0706 vs fused 0.0721; results/beauty/analysis/
  # fame_slice_oscale2_allmoe_seed0_valid_routing.json), so with slice it
  # scores on 64 of 128 dims. Full runs, 3 seeds: valid NDCG@10 0.07404,
  # 0.07326, 0.07382 (0.0737 +- 0.0004) vs 0.0719 +- 0.0002 with the learned
  # gate and SASRec's 0.0721 +- 0.0004, every seed above every seed
  # (results/beauty/full/fame_allmoe_gate_uniform_seed*). Scale 4 with it,
  # seed 0: 0.07297 (fame_allmoe_gate_uniform_oscale4_seed0).
  c.model.gate = "uniform"
  # Session 29: 4 facet heads (each 32 dims) instead of 2, with the F^h
  # LayerNorm starting at 4 = H (the uniform gate scales u by 1/H; at 2 the
  # H 4 model learned at half the speed, valid 0.0261 vs 0.0471 at epoch 15,
  # results/beauty/in_progress/fame_uniform_h4_seed0). Full runs, 3 seeds:
  # valid NDCG@10 0.07454, 0.07354, 0.07504 (0.0744 +- 0.0008) vs 0.07404,
  # 0.07326, 0.07382 (0.0737 +- 0.0004) with H 2, each seed above its H 2
  # seed (results/beauty/full/fame_uniform_h4_oscale4_seed* vs
  # fame_allmoe_gate_uniform_seed*). 8 experts instead of 4 gave nothing
  # (0.07386, seed 0, fame_uniform_e8_seed0). SASRec takes 4 attention heads
  # too (session 30, evidence in configs/sasrec.py); FAME+ keeps 2 heads, one
  # per pre-training facet (configs/beauty_text.py).
  c.model.num_heads = 4
  c.model.output_norm_scale = 4.0
  c.pretrain.facets = ("leaf_category", "brand")  # One facet per head.
  # head_ffn stays "head" (SPEC 2's per-head FFN'). One FFN over the
  # concatenated heads (head_ffn="dense", outside the SPEC; it removes FAME's
  # ML-1M deficit, configs/ml1m.py) changes nothing here (session 35, 3 seeds):
  # valid NDCG@10 0.0746 +- 0.0007 vs 0.0744 +- 0.0008, test NDCG@10 0.0596 vs 0.0596
  # (results/beauty/full/fame_uniform_h4_oscale4_headffn_dense_seed*).
  return c
