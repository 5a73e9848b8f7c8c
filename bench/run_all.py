"""`make bench`: every benchmark in one run; writes bench/RESULTS.md (never edit it by hand).

`python bench/run_all.py serve_load engine_models` reruns only those; the other
sections come from their last run on this machine (kept under ~/.cache/rag-appliance/bench).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.store_engines import CACHE  # noqa: E402

RESULTS = REPO / "bench" / "RESULTS.md"
SCRIPTS = ["serve_load", "query_thread", "query_path", "store_engines", "engine_models"]
TITLES = {
    "query_thread": "Search while answers stream: query embeddings on their own thread (bench/query_thread.py)",
    "query_path": "Query path: appliance code vs raw library calls (bench/query_path.py)",
    "store_engines": "Embedded vector engines (bench/store_engines.py)",
    "engine_models": "Continuous batching engine vs llama-server, both models (bench/engine_models.py)",
}


def run(name: str) -> str:
    print(f"== {name}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / f"{name}.py")], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=sys.stderr, check=False,
    )  # fmt: skip
    print(proc.stdout, flush=True)
    if proc.returncode != 0:
        out = f"`{name}.py` failed with exit code {proc.returncode}.\n"
    else:
        out = proc.stdout.strip() + f"\n\n({name}.py: {time.monotonic() - t0:.0f} s)\n"
    (CACHE / f"{name}.out").write_text(out)
    return out


def main() -> None:
    wanted = sys.argv[1:] or SCRIPTS
    CACHE.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for name in SCRIPTS:
        if name in wanted:
            outputs[name] = run(name)
        else:
            cached = CACHE / f"{name}.out"
            outputs[name] = cached.read_text() if cached.is_file() else "(not run)\n"
    serving = (CACHE / "serve_load.md").read_text() if (CACHE / "serve_load.md").is_file() else ""
    parts = [serving.rstrip()]
    for name in SCRIPTS[1:]:
        parts.append(f"## {TITLES[name]}\n\n```\n{outputs[name].strip()}\n```")
    RESULTS.write_text("\n\n".join(parts) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
