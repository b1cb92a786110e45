"""vid2vid_fast/ops/build_flags.py: the GCC-only flag goes to GCC alone, as CXX names the compiler."""

import pytest

from vid2vid_fast.ops import build_flags

GCC_ONLY = "--param=vect-epilogues-nomask=0"


def fake_compiler(tmp_path, version_text):
    path = tmp_path / "cxx"
    path.write_text(f"#!/bin/sh\ncat <<'END'\n{version_text}\nEND\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("version_text, gcc", [
    ("c++ (Debian 12.2.0-14+deb12u1) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.", True),
    ("Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu", False),
    ("Apple clang version 15.0.0 (clang-1500.1.0.2.5)", False),
])
def test_the_gcc_only_flag_follows_the_compiler(tmp_path, monkeypatch, version_text, gcc):
    monkeypatch.setenv("CXX", fake_compiler(tmp_path, version_text))
    assert build_flags.compiler_is_gcc() is gcc
    assert (GCC_ONLY in build_flags.cxx_flags()) is gcc


def test_a_missing_compiler_is_not_gcc(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    assert not build_flags.compiler_is_gcc()


def test_debug_information_on_request(monkeypatch):
    monkeypatch.delenv("VID2VID_FAST_DEBUG_INFO", raising=False)
    assert "-g0" in build_flags.cxx_flags()
    monkeypatch.setenv("VID2VID_FAST_DEBUG_INFO", "1")
    assert "-g0" not in build_flags.cxx_flags()
