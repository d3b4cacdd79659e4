"""fame_jax: a JAX/Flax implementation of FAME (Facet-Aware Multi-Head MoE).

Data flows one way: raw files -> ``fame_jax.data`` -> batches -> ``fame_jax.models``
-> ``fame_jax.losses`` / ``fame_jax.evaluation`` -> metrics. Lower modules never
import higher ones.
"""

__version__ = "0.1.0"

__all__ = ["Recommender"]


def __getattr__(name: str):
  # ``from fame_jax import Recommender`` loads JAX and the model; a plain
  # ``import fame_jax`` (the command lines' error path, configs) stays cheap.
  if name == "Recommender":
    from fame_jax.recommender import Recommender
    return Recommender
  raise AttributeError(f"module 'fame_jax' has no attribute {name!r}")
