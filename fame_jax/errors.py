"""Errors a user caused and can fix, each reported by the command lines as one line.

Every exception that a bad input, config, workdir or checkpoint raises derives
from :class:`UserError`. :func:`fame_jax.cli.run` (the error path of
``train.py``, ``evaluate.py``, ``python -m fame_jax.sweep``) prints such an
error as one line on stderr, ``<command>: error: <message>``, and exits with
the class's :attr:`~UserError.exit_code` (2 for usage and config, 1 for the
rest); the traceback is shown only with ``--verbose`` or
``FAME_JAX_VERBOSE=1``. Any other exception is a bug and keeps its traceback.

A message names what is wrong, where (file and line, config key, folder) and,
when it is not obvious, what to do. It should be one line; a multi-line
message is joined into one by the command line.

The classes also derive from the builtin exception the code raised before
(``ValueError``, ``FloatingPointError``), so ``except ValueError`` in callers
and ``pytest.raises(ValueError)`` in tests keep working.

This module imports nothing from fame_jax, so every layer (data, training,
checkpoints) may import it.
"""

from __future__ import annotations

# Exit codes of the command lines (fame_jax/cli.py).
EXIT_USER = 1  # Bad data, workdir, checkpoint, or a run that diverged.
EXIT_USAGE = 2  # Bad flags or config (absl and argparse use 2 for usage errors).


class UserError(Exception):
  """Base class: an error the user can act on (not a bug in fame_jax).

  Attributes:
    exit_code: the command-line exit status for this error.
  """

  exit_code = EXIT_USER


class ConfigError(UserError, ValueError):
  """An invalid config value or combination, an unknown config key, or a bad
  flag value; the message names the key (``config.train.batch_size=-1 ...``)."""

  exit_code = EXIT_USAGE


class WorkdirError(UserError, ValueError):
  """A ``--workdir`` that is missing, is not a training workdir, or was made by
  a different config; the message names the folder."""


class CheckpointError(UserError, ValueError):
  """A checkpoint that is missing, damaged or does not fit the config; the
  message names the checkpoint folder."""


class DivergedError(UserError, FloatingPointError):
  """Training stopped on a non-finite loss; the message says which checkpoint
  (if any) is kept and what setting to change."""
