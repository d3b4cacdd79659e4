"""The entry points' one-time re-execution with malloc on huge pages."""

import os
import subprocess
import sys
import textwrap

import pytest

from fame_jax import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def linux_glibc(monkeypatch):
  monkeypatch.setattr(runtime.sys, "platform", "linux")
  monkeypatch.setattr(runtime, "_glibc_version", lambda: (2, 36))


def test_adds_tunable_and_keeps_existing_ones(linux_glibc):
  env = runtime.huge_pages_command({"PATH": "/bin"})
  assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
  assert env["PATH"] == "/bin" and env["FAME_JAX_REEXECUTED"] == "1"
  env = runtime.huge_pages_command({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
  assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize("environ", [
    {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"},  # The user chose a value.
    {"FAME_JAX_HUGEPAGES": "0"},  # Opt-out.
    {"FAME_JAX_REEXECUTED": "1"},  # Already the re-executed process: never loop.
])
def test_nothing_to_do(linux_glibc, environ):
  assert runtime.huge_pages_command(environ) is None


@pytest.mark.parametrize("platform_name,version", [("darwin", (2, 36)), ("linux", None),
                                                   ("linux", (2, 31))])
def test_other_platforms_untouched(monkeypatch, platform_name, version):
  monkeypatch.setattr(runtime.sys, "platform", platform_name)
  monkeypatch.setattr(runtime, "_glibc_version", lambda: version)
  assert runtime.huge_pages_command({}) is None


@pytest.mark.skipif(runtime.huge_pages_command({}) is None,
                    reason="needs Linux with glibc >= 2.35 (the tunable would be a no-op)")
@pytest.mark.parametrize("as_module", [False, True])
def test_reexecutes_once_with_the_same_command(tmp_path, as_module):
  (tmp_path / "probe_mod.py").write_text(textwrap.dedent("""
      import os, sys
      print("start", os.environ.get("GLIBC_TUNABLES"), flush=True)
      from fame_jax import runtime
      runtime.use_huge_pages()
      print("args", sys.argv[1:], os.environ.get("GLIBC_TUNABLES"))
  """))
  env = {k: v for k, v in os.environ.items()
         if k not in ("GLIBC_TUNABLES", "FAME_JAX_REEXECUTED", "FAME_JAX_HUGEPAGES")}
  env["PYTHONPATH"] = os.pathsep.join([ROOT, str(tmp_path)])
  cmd = ([sys.executable, "-m", "probe_mod"] if as_module
         else [sys.executable, str(tmp_path / "probe_mod.py")]) + ["--a=1", "b c"]
  out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
  lines = out.splitlines()
  # Started twice (the original and the re-executed process), finished once.
  assert lines == ["start None", "start glibc.malloc.hugetlb=1",
                   "args ['--a=1', 'b c'] glibc.malloc.hugetlb=1"], out
