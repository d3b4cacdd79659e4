"""Packaging: pyproject.toml and requirements.txt agree; the install imports from anywhere."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import pathlib
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = pathlib.Path(__file__).resolve().parents[1]
# Pinned in requirements.txt for other packages' sake; fame_jax imports none.
_TRANSITIVE_PINS = {"psutil", "execnet"}


def _pyproject() -> dict:
  with open(REPO / "pyproject.toml", "rb") as f:
    return tomllib.load(f)


def _pins() -> dict[str, dict[str, str]]:
  """requirements.txt pins by section: {"runtime": {name: version}, "test-only": {...}}."""
  sections: dict[str, dict[str, str]] = {}
  current = None
  for ln, line in enumerate((REPO / "requirements.txt").read_text().splitlines(), 1):
    if line.startswith("# ---"):
      current = line[5:].split()[0]
      sections[current] = {}
    elif line.strip() and not line.startswith("#"):
      assert current is not None, f"requirements.txt line {ln}: a pin before any '# ---' section"
      name, sep, version = line.strip().partition("==")
      assert sep, f"requirements.txt line {ln}: {line!r} is not pinned with =="
      sections[current][canonicalize_name(name)] = version
  return sections


def test_runtime_and_test_dependencies_match_the_pins():
  project = _pyproject()["project"]
  pins = _pins()
  assert set(pins) == {"runtime", "test-only"}
  runtime = {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}
  test = {canonicalize_name(r.name): r
          for r in map(Requirement, project["optional-dependencies"]["test"])}
  # The same packages on both sides, test-only ones apart from the runtime.
  assert set(runtime) == set(pins["runtime"]) - _TRANSITIVE_PINS
  assert set(test) == set(pins["test-only"]) - _TRANSITIVE_PINS == {"pytest", "pytest-xdist"}
  # Each pin satisfies the bound pyproject.toml declares.
  for reqs, section in ((runtime, "runtime"), (test, "test-only")):
    for name, req in reqs.items():
      assert req.specifier, f"pyproject.toml: {name} has no version bound"
      assert req.specifier.contains(pins[section][name]), (name, str(req.specifier),
                                                           pins[section][name])


def test_every_module_directory_is_an_installed_package():
  # setuptools installs the packages whose dotted names match these patterns
  # (fnmatch); a folder of modules outside them would import from the repo
  # root but not when installed.
  include = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
  dirs = {str(p.parent.relative_to(REPO)).replace(os.sep, ".")
          for p in (REPO / "fame_jax").rglob("*.py") if "__pycache__" not in p.parts}
  assert {"fame_jax", "fame_jax.training", "fame_jax.data"} <= dirs
  missed = [d for d in dirs if not any(fnmatch.fnmatchcase(d, pat) for pat in include)]
  assert not missed, missed


def test_installed_package_imports_from_another_directory(tmp_path):
  try:
    dist = importlib.metadata.distribution("fame_jax")
  except importlib.metadata.PackageNotFoundError:
    pytest.skip("fame_jax is not installed (pip install -e .); .ci/run installs it")
  assert dist.version == _pyproject()["project"]["version"]
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  out = subprocess.run(
      [sys.executable, "-c",
       "import fame_jax, fame_jax.training, fame_jax.data.loading; print(fame_jax.__file__)"],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-3000:]
  assert pathlib.Path(out.stdout.strip()) == REPO / "fame_jax" / "__init__.py"
