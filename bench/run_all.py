"""`make bench`: every benchmark in one run; writes bench/RESULTS.md (never edit it by hand)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"


def run(script: str) -> str:
    print(f"== {script}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script)], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=sys.stderr, check=False,
    )  # fmt: skip
    print(proc.stdout, flush=True)
    if proc.returncode != 0:
        return f"`{script}` failed with exit code {proc.returncode}.\n"
    return proc.stdout + f"\n({script}: {time.monotonic() - t0:.0f} s)\n"


def main() -> None:
    serve = run("serve_load.py")  # writes the serving report to RESULTS.md
    serving = RESULTS.read_text() if RESULTS.is_file() else serve
    query = run("query_path.py")
    stores = run("store_engines.py")
    engines = run("engine_models.py")
    RESULTS.write_text(
        serving.rstrip()
        + "\n\n## Query path: appliance code vs raw library calls (bench/query_path.py)\n\n```\n"
        + query.strip()
        + "\n```\n\n## Embedded vector engines (bench/store_engines.py)\n\n```\n"
        + stores.strip()
        + "\n```\n\n## Continuous batching engine vs llama-server, both models"
        + " (bench/engine_models.py)\n\n```\n"
        + engines.strip()
        + "\n```\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
