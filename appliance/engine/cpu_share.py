"""How many llama.cpp compute threads to use now, given what else the machine is running.

ggml built without OpenMP makes its threads spin at a barrier after every graph node. When
another process holds one of the cores, the thread that shares that core is descheduled
for a whole time slice while its partners spin: measured here (MiniLM, 2 cores, two nice-0
busy loops beside it) 2 threads embed at 0.18x their idle rate, 1 thread at 0.71x of its
own (0.40x of the idle 2-thread rate). So the engine measures the CPU that processes
other than the appliance use, and gives llama.cpp one thread fewer for each core they
hold, never fewer than one; back up when they stop. Only the CPUs of the affinity mask
are counted, so a busy host outside this process's cpuset changes nothing.

The ceiling is the cgroup's CPU quota (`cpu.max`, as systemd's `CPUQuota=` sets it) and
the affinity mask, so a container limited to 1.5 CPUs does not start 8 threads.

The appliance's own second compute thread counts too: while the query thread embeds (a
search's question, a prompt's candidate sentences), it borrows one thread of the budget
(`ThreadBudget.lent`) and the engine's next graphs run on one fewer. Without that, three
spinning threads share two cores: 8 answers asked together with the `sentences` prompt
(12 candidate sentences embedded per question) reached their first token after 8.4 s
(p50) against 0.68 s one at a time, and 16 together ran at 0.78x the one-at-a-time tok/s.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Cores' worth of outside CPU use above which one thread is given up (0.35: measured
# headroom for the appliance's own parse child and the probe noise of an idle box).
GIVE_UP_ABOVE = 0.35
# Seconds between two reads of /proc (each costs ~30 us; a decode step ~5-50 ms).
SAMPLE_EVERY = 0.5
# Smoothing of the outside load: the weight of the newest sample.
SMOOTHING = 0.5


def cgroup_cpu_limit(
    proc_self_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> float | None:
    """The tightest `cpu.max` quota (in CPUs) on this process's cgroup v2 path, if any."""
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    rel = next((line[3:] for line in lines if line.startswith("0::")), None)
    if rel is None:
        return None
    limit: float | None = None
    folder = root / rel.lstrip("/")
    while True:
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            if quota != "max" and int(period) > 0:
                cpus = int(quota) / int(period)
                limit = cpus if limit is None else min(limit, cpus)
        except (OSError, ValueError):
            pass
        if folder == root or root not in folder.parents:
            return limit
        folder = folder.parent


def usable_cores() -> int:
    """CPUs this process may run on: the affinity mask, capped by the cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def parse_proc_stat(text: str, cpus: frozenset[int], *, niced: bool = True) -> tuple[int, int]:
    """(busy, total) jiffies summed over the CPUs in `cpus` from /proc/stat's `cpuN` lines.

    `niced=False` leaves out the time of processes at a nice above 0 (the `nice` column):
    they take little from threads at nice 0 (a nice-10 loop gets ~10% of a shared core),
    so a backup the sysadmin niced does not cost the appliance a thread."""
    busy = total = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if int(name[3:]) not in cpus:
            continue
        fields = [int(v) for v in rest.split()]
        line_total = sum(fields[:8])  # guest time is already inside user/nice
        busy += line_total - fields[3] - fields[4] - (0 if niced else fields[1])
        total += line_total
    return busy, total


def parse_self_stat(text: str) -> int:
    """utime + stime jiffies of a process from /proc/<pid>/stat (every thread, dead or alive)."""
    after_name = text.rsplit(")", 1)[1].split()
    return int(after_name[11]) + int(after_name[12])


@dataclass(frozen=True)
class CpuSample:
    busy: int  # jiffies every CPU spent busy
    total: int  # jiffies of every CPU
    own: int  # jiffies this process used


def read_sample(cpus: frozenset[int], niced: bool) -> CpuSample:
    with open("/proc/stat") as f:
        busy, total = parse_proc_stat(f.read(), cpus, niced=niced)
    with open("/proc/self/stat") as f:
        own = parse_self_stat(f.read())
    return CpuSample(busy, total, own)


def outside_cores(before: CpuSample, after: CpuSample, cpus: int) -> float:
    """Cores' worth of CPU that processes other than this one used between two samples,
    over `cpus` CPUs (those the samples sum)."""
    elapsed = after.total - before.total
    if elapsed <= 0:
        return 0.0
    others = (after.busy - before.busy) - (after.own - before.own)
    return max(0.0, others * cpus / elapsed)


def threads_for(most: int, cpus: int, outside: float) -> int:
    """Threads to run when other processes keep `outside` of our `cpus` cores busy: one per
    core they leave free, a core counting as free while they hold < GIVE_UP_ABOVE of it."""
    free = cpus - outside
    return max(1, min(most, math.floor(free + GIVE_UP_ABOVE)))


class ThreadBudget:
    """Thread count for the next llama.cpp graph: `most` on an idle machine, fewer while
    other processes keep our CPUs busy, at least one. Safe to call from any thread."""

    def __init__(
        self,
        most: int,
        *,
        adaptive: bool = True,
        sample: Callable[[frozenset[int], bool], CpuSample] = read_sample,
        thread_nice: int = 0,
        clock: Callable[[], float] = time.monotonic,
        cpus: frozenset[int] | None = None,
    ) -> None:
        self.most = max(1, most)
        self._adaptive = adaptive and self.most > 1
        self._sample = sample
        self._clock = clock
        self._cpus = cpus if cpus is not None else frozenset(os.sched_getaffinity(0))
        # When any of our own time lands in the `nice` column, count that column
        # (else our time would be subtracted from a sum that leaves it out).
        self._niced = thread_nice > 0 or os.getpriority(os.PRIO_PROCESS, 0) > 0
        self._lock = threading.Lock()
        self._last: CpuSample | None = None
        self._last_at = -math.inf
        self.outside = 0.0
        self._threads = self.most
        self._lent = 0

    def threads(self) -> int:
        """The count for the graph about to run: what other processes leave free, less the
        threads lent to the appliance's own other compute threads, at least one."""
        return max(1, self.machine_threads() - self._lent)

    def machine_threads(self) -> int:
        """The threads other processes leave free (re-reads /proc at most every
        SAMPLE_EVERY), lending aside."""
        if not self._adaptive:
            return self.most
        now = self._clock()
        if now - self._last_at < SAMPLE_EVERY:
            return self._threads
        with self._lock:
            if now - self._last_at >= SAMPLE_EVERY:
                self._update(now)
            return self._threads

    @contextlib.contextmanager
    def lent(self) -> Iterator[None]:
        """Borrow one thread while a second owner thread computes (the query thread): the
        graphs started meanwhile by the budget's other users run on one thread fewer."""
        with self._lock:
            self._lent += 1
        try:
            yield
        finally:
            with self._lock:
                self._lent -= 1

    def _update(self, now: float) -> None:
        try:
            sample = self._sample(self._cpus, self._niced)
        except (OSError, ValueError, IndexError):  # no /proc: keep the configured count
            self._adaptive = False
            self._threads = self.most
            return
        if self._last is not None:
            fresh = outside_cores(self._last, sample, len(self._cpus))
            self.outside = SMOOTHING * fresh + (1 - SMOOTHING) * self.outside
            self._threads = threads_for(self.most, len(self._cpus), self.outside)
        self._last, self._last_at = sample, now
