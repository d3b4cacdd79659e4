"""Stage 1 of FAME+: text-enhanced facet-aware pre-training (docs/protocol.md §5).

* :mod:`.item_text`: item texts from templates, facet label sets, dataset defaults.
* :mod:`.supcon`: projection heads ``P_h`` and the SupCon / NT-Xent losses.
* :mod:`.pretrain`: ``run_pretraining(config, dataset, workdir)`` and the
  facet-neighbour agreement metric.
* :mod:`.handoff`: ``apply_pretrained_item_embeddings`` and
  ``item_emb_trainable_mask`` for stage 2.
"""

from fame_jax.pretraining.handoff import apply_pretrained_item_embeddings
from fame_jax.pretraining.handoff import item_emb_trainable_mask
from fame_jax.pretraining.item_text import facet_labels
from fame_jax.pretraining.item_text import item_texts
from fame_jax.pretraining.pretrain import facet_neighbour_agreement
from fame_jax.pretraining.pretrain import run_pretraining
