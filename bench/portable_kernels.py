"""What the bundle's portable llama.cpp costs against the native build, on this machine.

The venv's llama-cpp-python is built `-march=native`; the bundle's is built with
GGML_BACKEND_DL and per-CPU kernel variants (packaging/build_llama_portable.sh). Each
configuration runs in its own process (a process loads one libllama), on the default
chat model, same prompt, greedy, 2 threads:
- native: the venv's libraries;
- portable (best): the bundle's libraries, llama.cpp picking the variant (zen4 here);
- portable (haswell) and portable (sandybridge): only that variant offered, i.e. what
  an AVX2 or an AVX-only Xeon would run, timed on this CPU.
Prints prefill and decode tokens/s and their ratio to native from the same run.

Usage: python bench/portable_kernels.py [LIBDIR]   (default: the per-machine build)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PORTABLE = Path.home() / ".cache" / "rag-appliance" / "llama-portable-0.3.36"
MODELS = REPO / ".cache" / "models"
PROMPT_WORDS = 350
NEW_TOKENS = 128
RUNS = 3


def child() -> None:
    """Time prefill and decode in this process (the libraries are already chosen)."""
    from appliance.engine.cpu_backends import ensure_loaded
    from appliance.engine.llama_loader import load_llama
    from appliance.models.locate import prepare_default_chat

    variant = ensure_loaded()
    model = prepare_default_chat(MODELS)  # the shipped default chat model (prepared: a path)
    llama = load_llama(str(model), n_ctx=1024, n_batch=512, n_threads=2, n_threads_batch=2)
    text = " ".join(["the backup server keeps nightly copies for thirty days"] * 40)
    prompt = llama.tokenize(text.encode())[:PROMPT_WORDS]
    prefill, decode = [], []
    for _ in range(RUNS):
        llama.reset()
        start = time.perf_counter()
        llama.eval(prompt)
        prefill.append(len(prompt) / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(NEW_TOKENS):
            token = llama.sample(temp=0.0)
            llama.eval([token])
        decode.append(NEW_TOKENS / (time.perf_counter() - start))
    llama.close()
    print(json.dumps({"variant": variant, "prefill": max(prefill), "decode": max(decode)}))


def only_variant(libs: Path, variant: str, into: Path) -> Path:
    """A lib dir offering llama.cpp one kernel variant (symlinks to the real files)."""
    into.mkdir()
    for path in libs.iterdir():
        if path.name.startswith("libggml-cpu-") and path.name != f"libggml-cpu-{variant}.so":
            continue
        (into / path.name).symlink_to(path.resolve())
    return into


def measure(lib_path: Path | None) -> dict[str, float | str]:
    env = dict(os.environ)
    env.pop("LLAMA_CPP_LIB_PATH", None)
    if lib_path is not None:
        env["LLAMA_CPP_LIB_PATH"] = str(lib_path)
    run = subprocess.run(
        [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True,
        check=True, timeout=600,
    )  # fmt: skip
    result: dict[str, float | str] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    libs = Path(sys.argv[1]) if len(sys.argv) > 1 else PORTABLE
    if not (libs / "libllama.so").exists():
        sys.exit(f"no portable build in {libs}: run `make bundle` first")
    from appliance.models.locate import prepare_default_chat

    prepare_default_chat(MODELS)  # once, before the children read it
    with tempfile.TemporaryDirectory() as tmp:
        configs = {
            "native (venv, -march=native)": None,
            "portable, best variant": libs,
            "portable, haswell only (AVX2)": only_variant(libs, "haswell", Path(tmp) / "h"),
            "portable, sandybridge only (AVX)": only_variant(libs, "sandybridge", Path(tmp) / "s"),
        }
        results = {name: measure(path) for name, path in configs.items()}
    base = results["native (venv, -march=native)"]
    from appliance.models.locate import CHAT_FILE

    print(f"{CHAT_FILE}, {PROMPT_WORDS}-token prompt, {NEW_TOKENS} new tokens, "
          f"2 threads, best of {RUNS}")  # fmt: skip
    print("| build | kernels | prefill tok/s | x native | decode tok/s | x native |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} | {r['variant']} | {float(r['prefill']):.0f} | "
            f"{float(r['prefill']) / float(base['prefill']):.2f} | {float(r['decode']):.1f} | "
            f"{float(r['decode']) / float(base['decode']):.2f} |"
        )


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
