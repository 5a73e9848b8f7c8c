"""Which llama.cpp CPU kernels this process runs, and whether this CPU can run them.

Two builds of llama.cpp's libraries exist:
- the pip wheel of a source checkout: ggml's CPU kernels are compiled into
  `libggml-cpu.so` for the build machine (`-march=native`); nothing to choose.
- the bundle's portable build (packaging/build_llama_portable.sh, GGML_BACKEND_DL):
  `libllama`, `libggml` and `libggml-base` are generic x86-64, and the kernels are
  `libggml-cpu-<variant>.so` files. llama.cpp loads none of them by itself: before the
  first model load, `ensure_loaded()` calls `ggml_backend_load_all_from_path`, which
  scores each variant against the CPU (`ggml_backend_score`) and loads the best.

The portable build's baseline is AVX (`sandybridge`): `check_cpu()` refuses a CPU
without it by name, before any kernel runs.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

VARIANT_PREFIX = "libggml-cpu-"
# The instruction sets every library of the portable build may use unconditionally
# (the `sandybridge` variant): /proc/cpuinfo flag -> the name a sysadmin knows.
BASELINE_FLAGS = {"sse4_2": "SSE4.2", "avx": "AVX"}
_LOAD_LOCK = threading.Lock()


class CpuError(Exception):
    """This CPU cannot run the llama.cpp build at hand; the message names what is missing."""


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path
    score: int  # ggml_backend_score(): 0 = this CPU cannot run it


def lib_dir() -> Path:
    """llama-cpp-python's `lib/` directory, found without importing (and loading) it;
    `$LLAMA_CPP_LIB_PATH` when set (llama-cpp-python loads libllama from there then)."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise CpuError("llama_cpp is not installed")
    return Path(spec.origin).parent / "lib"


def variant_files(directory: Path | None = None) -> list[Path]:
    """The per-CPU kernel libraries of a portable build (none in a native build)."""
    return sorted((directory or lib_dir()).glob(f"{VARIANT_PREFIX}*.so"))


def is_portable(directory: Path | None = None) -> bool:
    return bool(variant_files(directory))


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The feature flags of the first CPU in /proc/cpuinfo."""
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model(cpuinfo: str | None = None) -> str:
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def missing_baseline(flags: set[str]) -> list[str]:
    """Names of the baseline instruction sets this CPU lacks (empty: it can run)."""
    return [name for flag, name in BASELINE_FLAGS.items() if flag not in flags]


def check_cpu(flags: set[str] | None = None, directory: Path | None = None) -> None:
    """Refuse, naming the instruction set, a CPU the portable build cannot run on."""
    if not is_portable(directory):
        return  # a native build runs where it was built: nothing declared to check
    missing = missing_baseline(cpu_flags() if flags is None else flags)
    if missing:
        raise CpuError(
            f"this CPU lacks {', '.join(missing)}: the appliance's llama.cpp needs at least "
            f"{' and '.join(BASELINE_FLAGS.values())} (Intel Sandy Bridge / AMD Bulldozer or newer)"
        )


def score_variants(directory: Path | None = None) -> list[Variant]:
    """Each kernel variant with llama.cpp's own score for this CPU, as its loader does."""
    found = []
    for path in variant_files(directory):
        lib = ctypes.CDLL(str(path))
        score_fn = lib.ggml_backend_score
        score_fn.restype = ctypes.c_int
        name = path.name.removeprefix(VARIANT_PREFIX).removesuffix(".so")
        found.append(Variant(name, path, int(score_fn())))
    return found


def best_variant(directory: Path | None = None) -> Variant | None:
    """The variant llama.cpp picks here (the highest non-zero score), or None."""
    usable = [v for v in score_variants(directory) if v.score > 0]
    return max(usable, key=lambda v: v.score) if usable else None


def ensure_loaded() -> str:
    """Load llama.cpp's CPU backend once per process; returns what runs ('native' or the
    variant). Call before the first model load: a portable build has no backend before."""
    with _LOAD_LOCK:
        return _load_once()


def _loaded_ggml(directory: Path) -> ctypes.CDLL:
    """The libggml that libllama itself uses. Registering backends in another copy (the
    bundle holds two: PyInstaller also puts libllama's dependencies at its top level)
    would leave libllama with none, so take the one already loaded, by its soname."""
    import llama_cpp  # noqa: F401  (loads libllama and, through it, libggml)

    for soname in [*sorted(p.name for p in directory.glob("libggml.so.*")), "libggml.so"]:
        try:
            return ctypes.CDLL(soname, mode=os.RTLD_NOLOAD | ctypes.RTLD_GLOBAL)
        except OSError:
            continue
    return ctypes.CDLL(str(directory / "libggml.so"))


@functools.cache
def _load_once() -> str:
    directory = lib_dir()
    if not is_portable(directory):
        return "native"
    check_cpu(directory=directory)
    ggml = _loaded_ggml(directory)
    ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    if ggml.ggml_backend_reg_count() == 0:
        ggml.ggml_backend_load_all_from_path(str(directory).encode())
    if ggml.ggml_backend_reg_count() == 0:
        raise CpuError(f"no llama.cpp CPU kernels in {directory} run on {cpu_model()}")
    best = best_variant(directory)
    return best.name if best else "unknown"
