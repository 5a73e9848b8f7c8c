# llama-cpp-python: its ctypes bindings load lib/libllama.so from beside the package.
# The bundle takes the portable build (packaging/build_llama_portable.sh: generic
# libllama/libggml/ggml-base plus one libggml-cpu-<variant>.so per CPU family) from
# $APPLIANCE_LLAMA_LIBS, never the venv's -march=native wheel, which would die with
# "Illegal instruction" on an AVX-only Xeon. libmtmd (vision models) is left out: the
# appliance never loads it, and `llama_cpp.mtmd_cpp` is imported only by vision handlers.
# The x64 and sse42 kernels are left out too: AVX is the bundle's declared baseline
# (appliance.engine.cpu_backends refuses a CPU without it, naming it).
import os
from pathlib import Path

libs = os.environ.get("APPLIANCE_LLAMA_LIBS")
if not libs or not Path(libs, "libllama.so").is_file():
    raise SystemExit(
        "hook-llama_cpp: set APPLIANCE_LLAMA_LIBS to the portable llama.cpp build "
        "(make bundle does; packaging/build_llama_portable.sh makes it)"
    )
binaries = [
    (str(p), "llama_cpp/lib")
    for p in sorted(Path(libs).iterdir())
    if p.name.startswith("lib")
    and ".so" in p.name
    and not any(skip in p.name for skip in ("mtmd", "cpu-x64", "cpu-sse42"))
]
excludedimports = ["llama_cpp.mtmd_cpp", "llama_cpp.server"]
