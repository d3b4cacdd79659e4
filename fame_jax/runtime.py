"""Process set-up for the command-line entry points: huge pages for malloc.

XLA on CPU gets every large intermediate of a step (the ``[T, N + 1]`` logits
of the loss and their softmax: 72 MB each per Beauty step) from ``malloc``.
glibc serves blocks that large with a fresh ``mmap`` and unmaps them on
``free``, so each step touches them anew and the kernel faults them in 4 KiB
at a time, which in a VM costs more than the arithmetic: on the 2-core
development CPU writing a fresh ``[1500, 12102]`` float32 array took 30 ms,
against 10 ms with huge pages (``results/bench/step_profile.md``), and a whole
Beauty FAME step (dense loss) 145.6 ms against 85.5 ms
(``results/bench/train_throughput.jsonl``).

glibc >= 2.35 has a tunable, ``glibc.malloc.hugetlb=1``, that makes malloc
ask for transparent huge pages (2 MiB) on its mappings. Tunables are read only
when a process starts, so :func:`use_huge_pages` re-executes the current
command once with the tunable added to ``GLIBC_TUNABLES``. It is called first
thing by ``train.py``, ``evaluate.py`` and the ``bench/`` scripts; it does
nothing elsewhere (library use, tests), on other C libraries, when the
tunable is already set, or when ``FAME_JAX_HUGEPAGES=0``.

This module must not import JAX: it runs before the re-execution.
"""

from __future__ import annotations

import os
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb"
_GUARD = "FAME_JAX_REEXECUTED"


def _glibc_version() -> tuple[int, int] | None:
  """``(major, minor)`` of the running glibc, or None if not glibc."""
  lib, version = platform.libc_ver()
  if lib != "glibc" or not version:
    return None
  try:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)
  except ValueError:
    return None


def huge_pages_command(environ: dict[str, str] | None = None) -> dict[str, str] | None:
  """The environment to re-execute with, or None if nothing is to be done.

  Args:
    environ: the current environment (default ``os.environ``).

  Returns:
    A copy of ``environ`` with ``glibc.malloc.hugetlb=1`` appended to
    ``GLIBC_TUNABLES`` (keeping any tunables already there), or None when the
    platform is not Linux with glibc >= 2.35, the tunable is already set, this
    process is already the re-executed one, or ``FAME_JAX_HUGEPAGES=0``.
  """
  env = dict(os.environ if environ is None else environ)
  if env.get("FAME_JAX_HUGEPAGES", "1") == "0" or env.get(_GUARD):
    return None
  if not sys.platform.startswith("linux"):
    return None
  version = _glibc_version()
  if version is None or version < (2, 35):
    return None
  tunables = env.get("GLIBC_TUNABLES", "")
  if TUNABLE in tunables:
    return None
  env["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}=1" if tunables else f"{TUNABLE}=1"
  env[_GUARD] = "1"
  return env


def use_huge_pages() -> None:
  """Re-executes this command once with malloc on huge pages (see module doc).

  Uses ``sys.orig_argv``, so ``python -m pkg.mod`` and ``python script.py``
  are both re-run as they were started. Returns normally when there is
  nothing to do.
  """
  env = huge_pages_command()
  if env is None:
    return
  argv = [sys.executable] + list(sys.orig_argv[1:])
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, argv, env)
