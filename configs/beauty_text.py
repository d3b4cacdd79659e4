"""FAME+ on Beauty: text-enhanced facet-aware pre-training, then FAME training.

  python train.py --config configs/beauty_text.py --workdir runs/beauty_text

Stage 1 encodes every item's text once with the Flax MiniLM encoder (cached
in pretrain.text_cache_dir, shared by all runs of this dataset), trains one
projection head per facet with alternating supervised contrastive learning,
and hands the heads' outputs to FAME as its item embeddings (head h starts
on facet h). Stage 2 is configs/beauty.py's FAME training. To run stage 2 from
an existing stage-1 workdir instead:
  --config.pretrain.enabled=False --config.init.item_embeddings_from=<workdir>
"""

from configs import beauty


def get_config():
  c = beauty.get_config()
  c.pretrain.enabled = True  # Run stage 1 inside train.py.
  c.pretrain.text_cache_dir = "runs/text_cache/beauty"  # Encode once per dataset.
  # Hand-off selectors at 4 (u starts at 2x the concatenated heads): full runs,
  # 3 seeds each, at d 128 and lr 1e-3 valid NDCG@10 0.0742 +- 0.0003 at 4 vs
  # 0.0730 +- 0.0003 at 2 (results/beauty/full/fame_text_d128_pscale*), and
  # 0.0756 +- 0.0002 at 4 with lr 5e-4 (configs/beauty.py's d 128 and lr);
  # at d 64 0.0722 +- 0.0004 at 4 vs 0.0716 +- 0.0003 at 2 and 0.0706 +- 0.0007
  # at 1 (results/beauty/full/fame_text_pscale*_seed*).
  # SASRec at the same initial scale (output_norm_scale 2) ends lower than at
  # 1 (valid 0.0686 +- 0.0008 vs 0.0694 +- 0.0006, 3 seeds, d 64; 0.0686 vs
  # 0.0702 at d 128, seed 0: sasrec_d128_oscale2_seed0), so SASRec keeps 1;
  # SASRec+text takes 2 (configs/sasrec.py).
  # Session 21: no learned W_f^h, so no selectors to scale. facet_item_proj="slice" scores head h
  # against chunk h of the item embedding (SPEC 2's alternative, the fixed
  # selector), and the F^h LayerNorm starts at scale 4 instead, so u starts
  # where the hand-off selectors at 4 put it (2x the heads with the uniform
  # gate). Full runs, 3 seeds, valid NDCG@10 0.0790 +- 0.0002 (0.07918,
  # 0.07909, 0.07872) vs 0.0776 +- 0.0000 with the learned W_f and 0.0778 +-
  # 0.0001 for SASRec+text (results/beauty/full/fame_text_slice_oscale4_seed*
  # vs fame_text_allmoe_seed*). The learned W_f grew a few output directions
  # to ~2x the median gain (singular values of the LayerNorm-to-u map: top
  # 5.8, median 2.9, fame_text_linear_seed0, a rerun of fame_text_allmoe_seed0
  # with identical results); the slice model's map stays isotropic (top 2.44,
  # median 2.42, fame_text_config_seed0, a rerun of this file that reproduced
  # fame_text_slice_oscale4_seed0 exactly; results/beauty/analysis/
  # output_map.jsonl, scripts/output_map.py).
  c.model.facet_item_proj = "slice"
  c.model.facet_proj_scale = 1.0  # Scales the selector W_f, which slice has not.
  c.model.output_norm_scale = 4.0
  # Two facet heads, one per pre-training facet (configs/beauty.py takes 4
  # since session 29, for FAME without text only; FAME+ runs used 2).
  c.model.num_heads = 2
  # Uniform gate (the paper's ablation: u is the mean of the facet heads, no
  # learned weights). A GPU study at seed 0 had it at valid NDCG@10 0.0760 vs
  # 0.0753 learned (results/beauty/gpu_h200/fame_text*); full CPU runs, 3
  # seeds: 0.0762 +- 0.0002 (0.0761, 0.0761, 0.0764), every seed above every
  # learned-gate seed (0.0753, 0.0757, 0.0757; results/beauty/full/
  # fame_text_gate_uniform_seed* vs fame_text_d128_pscale4_lr5e-4_seed*).
  # configs/beauty.py sets it for every Beauty model since session 25 (FAME
  # without text: its learned gate collapsed onto one head; the evidence is
  # there). With the learned W_f it had made no difference there (0.0700 vs
  # 0.0701, seed 0, fame_selector_d128_pscale2_lr2.5e-4_gate_uniform_seed0).
  # Learning rate: configs/beauty.py's 2.5e-4 (the evidence is there). FAME+
  # moved first (session 15): it peaked at epoch 10-12 at 5e-4 and then
  # overfitted; at 2.5e-4 its best epochs are 18-22.
  # MoE attention in every layer, not only the last (session 18): full runs,
  # 3 seeds, valid NDCG@10 0.07757, 0.07757, 0.07759 (0.0776 +- 0.0000), every
  # seed above every last-layer-only seed (0.07739, 0.07750, 0.07736; 0.0774
  # +- 0.0001). A small gain (+0.0002), still below SASRec+text (0.0778 +-
  # 0.0001). Evidence: results/beauty/
  # full/fame_text_allmoe_seed* vs fame_text_lr2.5e-4_seed*. With one expert
  # (configs/sasrec.py:beauty_text) the switch changes nothing. Set in
  # configs/beauty.py since session 24.
  return c
