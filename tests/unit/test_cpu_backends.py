"""The CPU check: a portable llama.cpp build refuses a CPU below its baseline by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.engine import cpu_backends
from appliance.engine.cpu_backends import CpuError, check_cpu, cpu_flags, cpu_model

IVY_BRIDGE = """processor	: 0
model name	: Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz
flags		: fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt aes avx f16c rdrand
"""
CORE2 = """model name	: Intel(R) Core(TM)2 Duo CPU E8400
flags		: fpu sse sse2 ssse3 sse4_1
"""


def portable_dir(tmp_path: Path) -> Path:
    """A directory laid out as the bundle's llama_cpp/lib (kernel files by name)."""
    (tmp_path / "libggml-cpu-sandybridge.so").write_bytes(b"")
    (tmp_path / "libggml-cpu-haswell.so").write_bytes(b"")
    return tmp_path


def test_flags_and_model_are_read_from_cpuinfo() -> None:
    assert {"avx", "f16c", "sse4_2"} <= cpu_flags(IVY_BRIDGE)
    assert "avx2" not in cpu_flags(IVY_BRIDGE)
    assert cpu_model(IVY_BRIDGE).endswith("E5-2680 v2 @ 2.80GHz")


def test_an_avx_xeon_passes_the_portable_build(tmp_path: Path) -> None:
    check_cpu(cpu_flags(IVY_BRIDGE), portable_dir(tmp_path))


def test_a_cpu_without_avx_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(CpuError, match=r"lacks SSE4\.2, AVX") as info:
        check_cpu(cpu_flags(CORE2), portable_dir(tmp_path))
    assert "Sandy Bridge" in str(info.value)


def test_a_native_build_declares_nothing_to_check(tmp_path: Path) -> None:
    check_cpu(cpu_flags(CORE2), tmp_path)  # no kernel files: the build machine's own code
    assert not cpu_backends.is_portable(tmp_path)
