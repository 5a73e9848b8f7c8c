"""Thread priority for llama.cpp work: decoding and embedding yield to the event loop."""

from __future__ import annotations

import os
import threading


def lower_this_thread(nice: int) -> None:
    """Raise the calling thread's nice value by `nice` (0: unchanged).

    Linux keeps nice per thread, and the compute threads llama.cpp starts from this
    thread inherit it, so the API keeps the CPU first when every core is busy.
    """
    if nice:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
