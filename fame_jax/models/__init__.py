"""Models: the FAME / SASRec encoder, its score function and parameter counts.

``text_encoder`` (MiniLM for pre-training) is not imported here: it needs the
weights package, which sequential training does not.
"""

from fame_jax.models.fame import FAME
from fame_jax.models.fame import FameBlock
from fame_jax.models.fame import ModelSettings
from fame_jax.models.fame import model_settings
from fame_jax.models.fame import score_items
from fame_jax.models.params import count_params
from fame_jax.models.params import extra_params_formula

__all__ = [
    "FAME",
    "FameBlock",
    "ModelSettings",
    "count_params",
    "extra_params_formula",
    "model_settings",
    "score_items",
]
