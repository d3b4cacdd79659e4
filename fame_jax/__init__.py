"""fame_jax: a JAX/Flax implementation of FAME (Facet-Aware Multi-Head MoE).

Data flows one way: raw files -> ``fame_jax.data`` -> batches -> ``fame_jax.models``
-> ``fame_jax.losses`` / ``fame_jax.evaluation`` -> metrics. Lower modules never
import higher ones.
"""

__version__ = "0.1.0"
