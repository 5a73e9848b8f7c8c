"""Probe a URL from its own process: `python -m bench.probe URL SECONDS` prints latencies (s).

The load generators run in the benchmark's event loop; a probe sharing that loop would time
the client's own scheduling delays, not the server's. A separate process keeps them apart.
"""

from __future__ import annotations

import json
import sys
import time

import httpx


def main(url: str, seconds: float, every: float = 0.05) -> None:
    out: list[float] = []
    with httpx.Client(timeout=30) as client:
        client.get(url)  # open the connection before timing
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            client.get(url).raise_for_status()
            out.append(time.perf_counter() - t0)
            time.sleep(every)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
