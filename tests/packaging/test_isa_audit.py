"""The instruction-set audit catches what an AVX-only Xeon cannot run, and passes what it can.

Real compilers and real objdump: the same loop built with -march=native on this machine
(AVX2/AVX-512/FMA here) must fail the audit; built for AVX (Sandy Bridge) it must pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
sys.path.insert(0, str(PACKAGING))

from isa_audit import audit_file, audit_salt, cache_key, classify, main  # noqa: E402

SOURCE = r"""
#include <stdint.h>
void axpy(float *restrict y, const float *restrict x, float a, int n) {
    for (int i = 0; i < n; i++) y[i] = a * x[i] + y[i];
}
void add_bytes(uint8_t *restrict y, const uint8_t *restrict x, int n) {
    for (int i = 0; i < n; i++) y[i] = (uint8_t)(y[i] + x[i]);
}
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Results kept under the test's own directory, not the machine's cache."""
    monkeypatch.setenv("ISA_AUDIT_CACHE", str(tmp_path / "cache"))


def build(tmp_path: Path, name: str, *flags: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler is needed (make system-deps installs build-essential)"
    src = tmp_path / "kernel.c"
    src.write_text(SOURCE)
    out = tmp_path / f"lib{name}.so"
    subprocess.run([compiler, "-O3", "-shared", "-fPIC", *flags, str(src), "-o", str(out)],
                   check=True)  # fmt: skip
    return out


def cpu_has(flag: str) -> bool:
    return any(flag in line.split() for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("flags"))  # fmt: skip


def test_a_native_build_fails_the_audit(tmp_path: Path) -> None:
    if not cpu_has("avx2"):
        pytest.skip("this CPU has no AVX2: -march=native emits nothing beyond AVX here")
    native = build(tmp_path, "native", "-march=native")
    audit = audit_file(native)
    assert not audit.clean and {"AVX2", "FMA"} & set(audit.counts), audit.counts
    assert main([str(native)]) == 1


def test_an_avx_build_passes_and_an_allowed_file_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    avx = build(tmp_path, "avx", "-march=sandybridge")
    assert audit_file(avx).clean, audit_file(avx).counts
    assert main([str(avx)]) == 0
    haswell = build(tmp_path, "haswell", "-march=haswell")
    assert main([str(haswell)]) == 1
    assert main([str(haswell), "--allow", "libhaswell.so"]) == 0
    assert "runtime-selected" in capsys.readouterr().out


def test_a_kept_result_is_reused_only_for_the_same_bytes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    avx = build(tmp_path / "avx", "avx", "-march=sandybridge")
    haswell = build(tmp_path / "haswell", "haswell", "-march=haswell")
    assert main([str(haswell)]) == 1 and main([str(avx)]) == 0
    assert len(list(cache.glob("*.json"))) == 2
    target = tmp_path / "libtarget.so"
    target.write_bytes(haswell.read_bytes())
    assert main([str(target)]) == 1  # the result kept for the same bytes, elsewhere...
    target.write_bytes(avx.read_bytes())
    assert main([str(target)]) == 0  # ...new bytes, their own result
    assert len(list(cache.glob("*.json"))) == 2  # both reused: nothing new kept
    assert (cache.stat().st_mode & 0o777) == 0o700
    # what is kept decides: a result planted for these bytes is believed...
    entry = cache / f"{cache_key(target, audit_salt())}.json"
    entry.write_text('{"counts": {"AVX2": 1}, "examples": ["planted"]}')
    assert main([str(target)]) == 1
    # ...but not by --no-cache (which keeps nothing) nor --refresh (which keeps afresh)
    assert main([str(target), "--no-cache"]) == 0
    assert "planted" in entry.read_text()
    assert main([str(target), "--refresh"]) == 0
    assert "planted" not in entry.read_text()


@pytest.mark.parametrize(
    "kept", ['{"counts": null, "examples": []}', "[]", '{"counts": {"AVX2": "x"}', ""]
)
def test_a_malformed_kept_result_is_audited_again(tmp_path: Path, kept: str) -> None:
    haswell = build(tmp_path, "haswell", "-march=haswell")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{cache_key(haswell, audit_salt())}.json").write_text(kept)
    assert main([str(haswell)]) == 1


def test_many_files_in_parallel_keep_their_own_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    avx = build(tmp_path / "a", "avx", "-march=sandybridge")
    haswell = build(tmp_path / "h", "haswell", "-march=haswell")
    twin = tmp_path / "libtwin.so"
    twin.write_bytes(haswell.read_bytes())  # the same bytes: audited once, reported twice
    assert main([str(avx), str(haswell), str(twin)]) == 1
    out = capsys.readouterr().out
    assert "BEYOND AVX" in out and str(haswell) in out and str(twin) in out
    assert str(avx) not in out and "3 ELF files audited, 2 use" in out
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2  # the twin's bytes once
    assert main([str(avx), str(haswell), str(twin), "--allow", "lib[ht]*.so"]) == 0


def test_a_file_objdump_cannot_read_fails_the_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "libbroken.so"
    broken.write_bytes(b"\x7fELF" + b"\0" * 60)
    assert main([str(tmp_path)]) == 1
    assert "AUDIT FAILED" in capsys.readouterr().out
    assert not list((tmp_path / "cache").glob("*.json"))  # nothing kept for it


@pytest.mark.parametrize(
    ("mnemonic", "operands", "isa"),
    [
        ("vfmadd231ps", "%ymm1,%ymm2,%ymm3", "FMA"),
        ("vpaddb", "%ymm1,%ymm2,%ymm3", "AVX2"),
        ("vpaddb", "%xmm1,%xmm2,%xmm3", None),  # AVX has 128-bit integer ops
        ("vaddps", "%ymm1,%ymm2,%ymm3", None),  # and 256-bit float ops
        ("vpermilps", "$0x1,%ymm1,%ymm2", None),
        ("vbroadcastss", "(%rax),%ymm0", None),
        ("vbroadcastss", "%xmm1,%ymm0", "AVX2"),
        ("vaddps", "%zmm1,%zmm2,%zmm3", "AVX-512"),
        ("vmovups", "%xmm1,(%rax){%k1}", "AVX-512"),
        ("vcvtph2ps", "%xmm1,%ymm0", "F16C"),
        ("andnps", "%xmm0,%xmm1", None),  # SSE, not BMI's andn
        ("andn", "%eax,%ebx,%ecx", "BMI"),
        ("shlx", "%rax,%rbx,%rcx", "BMI"),
        ("vpmovsxbd", "%xmm2,%xmm2", None),  # SSE4.1/AVX sign extension
    ],
)
def test_classify(mnemonic: str, operands: str, isa: str | None) -> None:
    assert classify(mnemonic, operands) == isa
