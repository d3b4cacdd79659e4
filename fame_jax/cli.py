"""The one error path of the command lines: a user's mistake ends as one line.

Every entry point (``train.py``, ``evaluate.py``, ``python -m fame_jax.sweep``,
and any later one) starts with ``fame_jax.cli.run(main)`` instead of
``absl.app.run(main)``. Then:

* a :class:`fame_jax.errors.UserError` raised anywhere (bad data line, missing
  file, invalid config value, missing workdir, damaged checkpoint, a run that
  diverged), a flag absl cannot parse (``--config.train.batch_size=abc``, a
  missing config file, a missing required flag), an override naming no config
  key, and ``absl.app.UsageError`` each end the command with ONE line on
  stderr, ``<command>: error: <what and where>; <what to do>``, and a non-zero
  exit status: 2 for usage and config errors, 1 for data, workdir, checkpoint
  and divergence (:data:`fame_jax.errors.EXIT_USAGE`, ``EXIT_USER``);
* the traceback is printed above that line only with ``--verbose`` (a flag
  every such command has) or the environment variable ``FAME_JAX_VERBOSE=1``;
* any other exception is a bug in fame_jax and keeps Python's traceback
  (exit 1);
* absl logging runs at WARNING unless ``--verbosity`` is given
  (:func:`quiet_library_logs`).

``train.py`` and ``evaluate.py`` re-execute themselves once before parsing
(fame_jax/runtime.py, huge pages); ``os.execve`` replaces the process, so the
exit status and the line on stderr are those of the re-executed command.

This module imports neither JAX nor fame_jax.training: flag and config errors
are reported before anything heavy loads.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Callable, Sequence

from fame_jax import errors

VERBOSE_ENV = "FAME_JAX_VERBOSE"
_TRUE = ("1", "true", "t", "yes", "y")

# What to do, where the message of a common error does not already say it.
_DATA_HINT = "fix the file, or point --config.data.path / --config.data.format at the right one"
_CONFIG_HINT = "set it in the config file or with --config.<key>=<value>"


def _hint(error: BaseException, message: str) -> str | None:
  names = {cls.__name__ for cls in type(error).__mro__}
  if "DataError" in names:
    return _DATA_HINT
  if isinstance(error, errors.ConfigError) and message.startswith("invalid config"):
    return _CONFIG_HINT  # validate_config names the key and the rule.
  return None


def verbose_requested(argv: Sequence[str], environ: dict[str, str] | None = None) -> bool:
  """Whether ``argv`` (before any ``--``) asks for ``--verbose``, or the
  environment sets ``FAME_JAX_VERBOSE`` to a true value. Read from the raw
  arguments so that even a flag-parsing error can show its traceback."""
  env = os.environ if environ is None else environ
  verbose = env.get(VERBOSE_ENV, "").strip().lower() in _TRUE
  for arg in argv[1:]:
    if arg == "--":
      break
    if arg == "--verbose":
      verbose = True
    elif arg == "--noverbose":
      verbose = False
    elif arg.startswith("--verbose="):
      verbose = arg.split("=", 1)[1].strip().lower() in _TRUE
  return verbose


def one_line(message: str) -> str:
  """``message`` on one line: ``head:\\n  a\\n  b`` becomes ``head: a; b``."""
  lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
  if not lines:
    return ""
  head, rest = lines[0], lines[1:]
  if not rest:
    return head
  return (f"{head} " if head.endswith(":") else f"{head}; ") + "; ".join(rest)


def _message(error: BaseException) -> str:
  if isinstance(error, KeyError) and error.args:  # str(KeyError) is the repr of its argument.
    return str(error.args[0])
  return str(error)


def format_error(prog: str, error: BaseException) -> str:
  """The one line printed for ``error``: ``prog: error: message; hint``."""
  message = one_line(_message(error)) or type(error).__name__
  hint = _hint(error, message)
  if hint:
    message = f"{message}; {hint}"
  return f"{prog}: error: {message}"


def exit_code(error: BaseException) -> int:
  """The exit status for a reported error (see :mod:`fame_jax.errors`)."""
  if isinstance(error, errors.UserError):
    return int(error.exit_code)
  return errors.EXIT_USAGE  # Flag errors and absl's UsageError.


def report(prog: str, error: BaseException, verbose: bool) -> int:
  """Prints ``error`` as one line on stderr (its traceback above it when
  ``verbose``) and returns the exit status."""
  sys.stdout.flush()
  if verbose:
    traceback.print_exception(error, file=sys.stderr)
  else:
    sys.stderr.flush()
  print(format_error(prog, error), file=sys.stderr, flush=True)
  return exit_code(error)


def _flag_error(error: Exception, argv: Sequence[str]) -> errors.ConfigError:
  """absl's flag error as a ConfigError; a bad ``--config.<key>=value`` gets
  the type and current value of that key when the config file loads."""
  message = one_line(str(error))
  if message.startswith("Unknown command line flag 'config."):  # An override without --config.
    key = message.split("'")[1]
    return errors.ConfigError(f"--{key}: an override of a config key needs --config FILE on the "
                              "same command line (e.g. --config configs/tiny.py)")
  prefix = "flag --config."
  if message.startswith(prefix) and "=" in message:
    key = message[len(prefix):].split("=", 1)[0].split("[", 1)[0]
    try:
      from fame_jax import config_tools
      spec = config_tools.config_spec(argv[1:])
      value = config_tools.flatten(config_tools.load_config_file(spec))[key]
      kind = type(value).__name__
      message += (f"; config.{key} takes {'an' if kind[0] in 'aeiou' else 'a'} {kind} "
                  f"({value!r} in {spec.split(':', 1)[0]})")
    except Exception:  # pylint: disable=broad-except  # Only a hint: absl's message stands.
      pass
  return errors.ConfigError(message)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with errors raised instead of printed: an override
  naming no config key first (closest valid keys), then absl's own errors
  (bad values, a config file that does not load, missing required flags)."""
  from absl import flags

  from fame_jax import config_tools
  spec = config_tools.config_spec(argv[1:])
  if spec is not None and not os.path.isfile(spec.split(":", 1)[0]):
    raise errors.ConfigError(f"config file {spec.split(':', 1)[0]!r} (--config {spec}) not found "
                             f"from {os.getcwd()}; give a file such as configs/tiny.py")
  unknown = config_tools.unknown_override_error(argv)
  if unknown:
    raise errors.ConfigError(unknown)
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    raise _flag_error(e, argv) from e
  if spec is not None and "config" in flags.FLAGS:
    try:  # ml_collections defers a config file's own error to the first use of the config.
      flags.FLAGS["config"].value  # pylint: disable=expression-not-assigned
    except Exception as e:  # pylint: disable=broad-except
      raise errors.ConfigError(f"config file {spec} does not load: {one_line(str(e))}") from e
  return rest


def define_verbose_flag() -> None:
  """Defines ``--verbose`` (once) so absl accepts it on every command."""
  from absl import flags
  if "verbose" not in flags.FLAGS:
    flags.DEFINE_bool("verbose", False, f"On an error, print the traceback above the one-line "
                      f"message (also: {VERBOSE_ENV}=1).")


def quiet_library_logs() -> None:
  """absl logging at WARNING unless ``--verbosity`` (``-v``) was given:
  Orbax logs every checkpoint save and deletion at INFO, seven lines an epoch
  that would bury a long run's own progress lines."""
  from absl import flags, logging
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def run(main: Callable[[list[str]], Any], *, prog: str | None = None,
        argv: list[str] | None = None) -> None:
  """``absl.app.run(main)`` with the error path of this module.

  Args:
    main: the command's ``main(argv)``.
    prog: the command's name in error lines (default: the script's file name).
    argv: the arguments (default ``sys.argv``).

  Raises:
    SystemExit: always (absl exits after ``main``), with status 0, ``main``'s
      own status, or that of a reported error.
  """
  from absl import app

  argv = list(sys.argv if argv is None else argv)
  prog = prog or os.path.basename(argv[0])
  verbose = verbose_requested(argv)
  define_verbose_flag()

  def main_with_usage_errors(args: list[str]) -> Any:
    quiet_library_logs()
    try:
      return main(args)
    except app.UsageError as e:  # absl would print the whole flag help around it.
      raise errors.ConfigError(str(e)) from e

  try:
    app.run(main_with_usage_errors, argv=argv, flags_parser=_parse_flags)
  except errors.UserError as e:
    sys.exit(report(prog, e, verbose))
