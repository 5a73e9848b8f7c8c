"""Scheduling class and priority of the threads that run llama.cpp."""

from __future__ import annotations

import contextlib
import os
import threading


def prepare_compute_thread(nice: int) -> None:
    """Make the calling thread a batch thread, `nice` steps nicer than it was.

    Linux keeps both per thread, and the compute threads llama.cpp starts from this thread
    inherit them. SCHED_BATCH tells the scheduler these threads are CPU-bound: they keep
    their fair share but do not preempt a thread that wakes up (the event loop answering
    /healthz), which measured 3.7 vs 3.0 texts/s for 2 threads beside two busy loops.
    `nice` defaults to 0 (`models.thread_nice`): above it, any nice-0 process on the
    server takes the threads' share, and ggml's threads spin at their barriers while one
    of them waits for its core (docs/architecture.md, "CPU share").
    """
    tid = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or refused: stay as is
        os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
    if nice:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
