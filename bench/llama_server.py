"""Build llama.cpp's own `llama-server` from the sources vendored in the llama-cpp-python
sdist (same llama.cpp version as the appliance), once per machine, for comparison.

Nothing of the build is committed: it lives in ~/.cache/rag-appliance/. Returns None
(the benchmark then skips the column) when it cannot be built here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

LLAMA_VERSION = "0.3.36"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rag-appliance"
BUILD = CACHE / f"llama-server-{LLAMA_VERSION}"
BINARY = BUILD / "build" / "bin" / "llama-server"


def build_llama_server(log: Path | None = None) -> Path | None:
    if BINARY.is_file():
        return BINARY
    if not shutil.which("cmake") or not shutil.which("g++"):
        print("llama-server: cmake or g++ missing, skipping that column", file=sys.stderr)
        return None
    BUILD.mkdir(parents=True, exist_ok=True)
    out = open(log or BUILD / "build.log", "ab")  # noqa: SIM115 - closed below
    try:
        sdist = next(BUILD.glob("llama_cpp_python-*.tar.gz"), None)
        if sdist is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 f"llama-cpp-python=={LLAMA_VERSION}", "-d", str(BUILD)],
                check=True, stdout=out, stderr=out,
            )  # fmt: skip
            sdist = next(BUILD.glob("llama_cpp_python-*.tar.gz"))
        src = BUILD / "src"
        if not src.is_dir():
            with tarfile.open(sdist) as tar:
                members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
                tar.extractall(BUILD / "extract", members, filter="data")
            (
                BUILD / "extract" / f"llama_cpp_python-{LLAMA_VERSION}" / "vendor" / "llama.cpp"
            ).rename(src)
        jobs = str(len(os.sched_getaffinity(0)))
        subprocess.run(
            ["cmake", "-S", str(src), "-B", str(BUILD / "build"), "-DCMAKE_BUILD_TYPE=Release",
             "-DLLAMA_CURL=OFF", "-DGGML_OPENMP=OFF", "-DLLAMA_BUILD_TESTS=OFF",
             "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON"],
            check=True, stdout=out, stderr=out,
        )  # fmt: skip
        subprocess.run(
            ["cmake", "--build", str(BUILD / "build"), "--target", "llama-server", "-j", jobs],
            check=True, stdout=out, stderr=out,
        )  # fmt: skip
    except (subprocess.CalledProcessError, OSError, StopIteration) as exc:
        print(f"llama-server: build failed ({exc}); see {BUILD / 'build.log'}", file=sys.stderr)
        return None
    finally:
        out.close()
    return BINARY if BINARY.is_file() else None


if __name__ == "__main__":
    print(build_llama_server() or "not built")
