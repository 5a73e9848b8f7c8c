"""Static instruction-set audit of ELF files: does any use more than an AVX CPU has?

Running a bundle under `qemu-x86_64 -cpu IvyBridge` proves nothing (measured: it runs
AVX2 code without complaint), so this disassembles each file (`objdump -d`) and counts
the instructions beyond the declared baseline, x86-64 + SSE4.2 + AVX (Sandy/Ivy Bridge,
e.g. a Xeon E5-2680 v2):
- AVX-512: any zmm or opmask register, masking/broadcast decorations, EVEX-only mnemonics;
- AVX2: 256-bit integer ops (vp* on ymm), gathers, vpbroadcast, vperm2i128, vinserti128,
  vextracti128, vpblendd, variable shifts, vpmaskmov;
- FMA (FMA3/FMA4), F16C, BMI1/BMI2/LZCNT, AVX-VNNI and AMX.

Usage: python packaging/isa_audit.py FILE_OR_DIR... [--allow NAME ...] [--refresh | --no-cache]
exits 1 when a file has any such instruction, printing the first few per file.

Disassembling a bundle takes ~4 min of CPU, and `make test` audits it twice (the built
bundle, then the installed one), so files are audited in parallel (files of the same
bytes once) and each result is kept under `ISA_AUDIT_CACHE` (default
~/.cache/rag-appliance/isa-audit, mode 0700), keyed by the sha256 of the file's bytes,
of this script and of objdump's version: a result is reused only for the same bytes read
by the same audit. `make_bundle` passes `--refresh` (the audit that decides what ships
reads no kept result); the installed bundle's audit in tests/bundle reuses its results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from appliance.runtime.files import sha256_file, write_private

AVX512_PREFIXES = (
    "vmovdqu8",
    "vmovdqu16",
    "vmovdqu32",
    "vmovdqu64",
    "vmovdqa32",
    "vmovdqa64",
    "vpternlog",
    "vpermt2",
    "vpermi2",
    "vpcompress",
    "vpexpand",
    "vcompress",
    "vexpand",
    "vpmovdb",
    "vpmovdw",
    "vpmovqb",
    "vpmovqw",
    "vpmovqd",
    "vpmovwb",
    "vpmovsdb",
    "vpmovsdw",
    "vpmovsqb",
    "vpmovsqd",
    "vpmovsqw",
    "vpmovswb",
    "vpmovus",
    "vprol",
    "vpror",
    "vpsraq",
    "vpabsq",
    "vpmaxsq",
    "vpmaxuq",
    "vpminsq",
    "vpminuq",
    "vpmullq",
    "vcvtusi2",
    "vcvtqq2",
    "vcvtuqq2",
    "vcvtps2qq",
    "vcvtpd2qq",
    "vcvttps2qq",
    "vfixupimm",
    "vgetexp",
    "vgetmant",
    "vrndscale",
    "vreduce",
    "vscalef",
    "vrcp14",
    "vrsqrt14",
    "vpconflict",
    "vplzcnt",
    "vbroadcasti32x",
    "vbroadcasti64x",
    "vbroadcastf32x",
    "vbroadcastf64x",
    "vshufi32x4",
    "vshufi64x2",
    "vshuff32x4",
    "vshuff64x2",
    "vextracti32x",
    "vextracti64x",
    "vextractf32x",
    "vextractf64x",
    "vinserti32x",
    "vinserti64x",
    "vinsertf32x",
    "vinsertf64x",
    "vcvtne2ps2bf16",
    "vcvtneps2bf16",
    "vdpbf16ps",
    "vpmadd52",
    "vpermb",
    "vpermw",
    "vpmultishiftqb",
    "vpshld",
    "vpshrd",
    "vpopcnt",
    "vpdpbusd",
    "vpdpwssd",
    "kmov",
    "kand",
    "kor",
    "kxor",
    "kxnor",
    "knot",
    "kortest",
    "ktest",
    "kshift",
    "kunpck",
    "kadd",
)
AVX2_ANY_WIDTH = (
    "vpbroadcast",
    "vbroadcasti128",
    "vperm2i128",
    "vinserti128",
    "vextracti128",
    "vpblendd",
    "vpsllv",
    "vpsrlv",
    "vpsrav",
    "vpmaskmov",
    "vpgather",
    "vgather",
    "vpermd",
    "vpermq",
    "vpermpd",
    "vpermps",
)
# vp* mnemonics that AVX (1) has for ymm operands
AVX1_YMM_VP = ("vpermilps", "vpermilpd", "vperm2f128", "vptest")
FMA_PREFIXES = ("vfmadd", "vfmsub", "vfnmadd", "vfnmsub")
OTHER = {
    "F16C": ("vcvtph2ps", "vcvtps2ph"),
    "AMX": ("tdp", "tileload", "tilestore", "tilezero", "ldtilecfg", "sttilecfg", "tilerelease"),
}
# whole mnemonics (an AT&T l/q size suffix allowed): "andn" must not match SSE's andnps
BMI = re.compile(
    r"(andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|lzcnt)[lq]?"
)
# Files of the bundle that may hold instructions beyond the baseline because nothing runs
# them unless the CPU has what they need:
# - llama.cpp's kernel variants above `sandybridge`: ggml_backend_load_all_from_path loads
#   one only where its ggml_backend_score() says this CPU runs it (sandybridge itself is
#   audited like every other file);
# - upstream manylinux wheels and the libraries they vendor, each of which checks the
#   CPU (CPUID) before running a wider code path:
#   numpy's _multiarray_umath and _simd (baseline SSE4.2, AVX2/AVX-512 loops behind its
#   dispatcher: numpy.show_runtime()), OpenBLAS (DYNAMIC_ARCH kernels), libgfortran
#   (matmul variants picked by __builtin_cpu_supports), OpenSSL's libcrypto and gRPC's
#   BoringSSL (OPENSSL_ia32cap), Rust extensions (Qdrant Edge, pydantic-core,
#   safetensors, cryptography with its static OpenSSL: is_x86_feature_detected! and
#   OPENSSL_ia32cap before SIMD paths); the parsers' and OCR's native code: Pillow's
#   codecs (libjpeg-turbo's jsimd_can_*, libavif's dav1d/aom cpu flags, zstd's
#   DYNAMIC_BMI2), ONNX Runtime (MLAS picks its kernels from CPUID at start) and
#   OpenCV (CV_CPU_DISPATCH: baseline SSE3, wider loops behind checkHardwareSupport),
#   PDFium (its *_AVX2 compositing targets, libyuv's TestCpuFlag, libjpeg-turbo's jsimd).
BUNDLE_RUNTIME_SELECTED = (
    "libggml-cpu-ivybridge.so",
    "libggml-cpu-piledriver.so",
    "libggml-cpu-haswell.so",
    "libggml-cpu-skylakex.so",
    "libggml-cpu-cannonlake.so",
    "libggml-cpu-cascadelake.so",
    "libggml-cpu-icelake.so",
    "libggml-cpu-cooperlake.so",
    "libggml-cpu-zen4.so",
    "libggml-cpu-alderlake.so",
    "libggml-cpu-sapphirerapids.so",
    "numpy/_core/_multiarray_umath.*.so",
    "numpy/_core/_simd.*.so",
    "numpy.libs/libscipy_openblas*.so",
    "numpy.libs/libgfortran*.so*",
    "libcrypto.so*",
    "grpc/_cython/cygrpc*.so",
    "qdrant_edge/qdrant_edge*.so",
    "pydantic_core/_pydantic_core*.so",
    "safetensors/_safetensors_rust*.so",
    "cryptography/hazmat/bindings/_rust*.so",
    "pillow.libs/libjpeg-*.so*",
    "pillow.libs/libavif-*.so*",
    "pillow.libs/libzstd-*.so*",
    "onnxruntime/capi/onnxruntime_pybind11_state*.so",
    "onnxruntime/capi/libonnxruntime*.so*",
    "cv2/cv2*.so",
    "opencv_python_headless.libs/*.so*",
    "pypdfium2_raw/libpdfium.so",
)
LINE = re.compile(r"^\s*[0-9a-f]+:\s+(?P<insn>[a-z][a-z0-9.]*)\s*(?P<ops>.*)$")
OPMASK = re.compile(r"%k[0-7]\b|\{%k[0-7]\}|\{1to\d+\}|\{z\}|\{[rs]")


def classify(mnemonic: str, operands: str) -> str | None:
    """The instruction set beyond the AVX baseline that this instruction needs, or None."""
    if mnemonic.startswith("{evex}") or "%zmm" in operands or OPMASK.search(operands):
        return "AVX-512"
    if mnemonic.startswith(AVX512_PREFIXES):
        return "AVX-512"
    if mnemonic.startswith(FMA_PREFIXES) or mnemonic.startswith("vfmaddsub"):
        return "FMA"
    if mnemonic.startswith(AVX2_ANY_WIDTH):
        return "AVX2"
    if mnemonic.startswith("vp") and "%ymm" in operands and not mnemonic.startswith(AVX1_YMM_VP):
        return "AVX2"
    if mnemonic in ("vbroadcastss", "vbroadcastsd") and re.match(r"\s*%xmm", operands):
        return "AVX2"  # register source: AVX2 (AVX1 broadcasts from memory only)
    if BMI.fullmatch(mnemonic):
        return "BMI"
    for name, prefixes in OTHER.items():
        if mnemonic.startswith(prefixes):
            return name
    return None


@dataclass
class FileAudit:
    path: Path
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.counts


def audit_file(path: Path) -> FileAudit:
    result = FileAudit(path)
    proc = subprocess.Popen(
        ["objdump", "-d", "--no-show-raw-insn", "-M", "att", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        match = LINE.match(line)
        if not match:
            continue
        mnemonic, operands = match["insn"], match["ops"]
        if mnemonic in ("rex", "lock", "rep", "repz", "repnz", "notrack", "bnd", "data16"):
            parts = operands.split(None, 1)
            if not parts:
                continue
            mnemonic, operands = parts[0], parts[1] if len(parts) > 1 else ""
        isa = classify(mnemonic, operands)
        if isa:
            result.counts[isa] += 1
            if len(result.examples) < 3:
                result.examples.append(line.strip())
    if proc.wait() != 0:  # an unreadable file must not pass as clean
        raise RuntimeError(f"objdump -d {path} failed with exit code {proc.returncode}")
    return result


def default_cache() -> Path:
    return Path(
        os.environ.get("ISA_AUDIT_CACHE") or Path.home() / ".cache" / "rag-appliance" / "isa-audit"
    )


def audit_salt() -> bytes:
    """What else decides a file's result: this script's code and objdump's version."""
    objdump = subprocess.run(
        ["objdump", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    return hashlib.sha256(Path(__file__).read_bytes() + objdump.encode()).digest()


def cache_key(path: Path, salt: bytes) -> str:
    return hashlib.sha256(salt + sha256_file(path).encode()).hexdigest()


def read_kept(entry: Path, path: Path) -> FileAudit | None:
    """The result kept in `entry`, if it is whole and well-formed."""
    try:
        kept = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict):
        return None
    counts, examples = kept.get("counts"), kept.get("examples")
    if not isinstance(counts, dict) or not isinstance(examples, list):
        return None
    if not all(isinstance(k, str) and type(n) is int and n > 0 for k, n in counts.items()):
        return None
    return FileAudit(path, Counter(counts), [str(e) for e in examples])


def keep(entry: Path, audit: FileAudit) -> None:
    """Write `audit` to `entry` whole (`write_private`: a temporary file renamed), or not
    at all: a cache that cannot be written (read-only home, full disk) only costs time."""
    try:
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(entry, json.dumps({"counts": audit.counts, "examples": audit.examples}))
    except OSError as exc:
        print(f"isa_audit: result not kept ({exc})", file=sys.stderr)


def audit_keyed(path: Path, entry: Path | None, read: bool) -> FileAudit:
    """`audit_file`, or (`read`) the result kept in `entry` for the same bytes and the
    same audit; a fresh result is kept there."""
    if entry is not None and read and (kept := read_kept(entry, path)) is not None:
        return kept
    audit = audit_file(path)
    if entry is not None:
        keep(entry, audit)
    return audit


def audit_all(files: list[Path], cache: Path | None, read: bool = True) -> list[FileAudit]:
    """Every file's audit, in `files`' order: files of the same bytes once, the largest
    first, one per core. `cache`: where results are kept (None: nowhere); `read`: whether
    a kept result is reused (False: every file disassembled, its result kept)."""
    salt = audit_salt() if files and cache is not None else b""
    entry_of = {p: cache / f"{cache_key(p, salt)}.json" if cache else None for p in files}
    same = {p: entry_of[p] or p for p in files}  # what files of the same bytes share
    unique = {same[p]: p for p in files}  # one file of each
    todo = sorted(unique.values(), key=lambda p: p.stat().st_size, reverse=True)
    workers = max(1, min(len(os.sched_getaffinity(0)), len(todo)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {p: pool.submit(audit_keyed, p, entry_of[p], read) for p in todo}
        try:
            done = {p: f.result() for p, f in futures.items()}
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return [replace(done[unique[same[p]]], path=p) for p in files]


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def elf_files(targets: list[Path]) -> list[Path]:
    found: list[Path] = []
    for target in targets:
        candidates = [target] if target.is_file() else sorted(target.rglob("*"))
        found += [p for p in candidates if p.is_file() and not p.is_symlink() and is_elf(p)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", type=Path)
    parser.add_argument(
        "--allow", action="append", default=[],
        help="file name (glob) loaded only on a CPU that has what it needs (e.g. a "
        "llama.cpp kernel variant above the baseline); listed, not failed",
    )  # fmt: skip
    parser.add_argument(
        "--no-cache", action="store_true",
        help="disassemble every file, reusing no kept result (and keeping none)",
    )  # fmt: skip
    parser.add_argument(
        "--refresh", action="store_true",
        help="disassemble every file, reusing no kept result, and keep the results (what "
        "make_bundle does: the audit that decides what ships is always fresh)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    files = elf_files(args.targets)
    failed = 0
    try:
        audits = audit_all(files, None if args.no_cache else default_cache(), not args.refresh)
    except RuntimeError as exc:  # objdump could not read a file: nothing passes unread
        print(f"AUDIT FAILED      {exc}")
        return 1
    for audit in audits:
        path = audit.path
        allowed = any(path.match(pattern) for pattern in args.allow)
        if audit.clean:
            continue
        summary = ", ".join(f"{isa} x{n}" for isa, n in audit.counts.most_common())
        if allowed:
            print(f"runtime-selected  {path}: {summary}")
            continue
        failed += 1
        print(f"BEYOND AVX        {path}: {summary}")
        for example in audit.examples:
            print(f"                    {example}")
    print(f"{len(files)} ELF files audited, {failed} use instructions beyond the AVX baseline")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
