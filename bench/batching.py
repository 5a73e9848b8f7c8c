"""Batching as shipped (issue 20): `bench/serve_load.py --section generation` on its own,
so `make bench` (bench/run_all.py) keeps it as a section and it can be rerun alone:
`python bench/run_all.py batching`."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import serve_load  # noqa: E402

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "--section", "generation", *sys.argv[1:]]
    serve_load.main()
