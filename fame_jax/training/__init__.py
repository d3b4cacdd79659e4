"""Training: state, jitted steps, Orbax checkpoints and the train/eval loop."""

from fame_jax.training.loop import train_and_evaluate, evaluate_workdir

__all__ = ["train_and_evaluate", "evaluate_workdir"]
