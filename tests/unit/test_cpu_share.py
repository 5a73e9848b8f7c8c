"""The engine's CPU share: thread count against outside load, cgroup quota, scheduling class.

The cause of the busy-server and restart slowdowns (issue 20): llama.cpp's threads ran at
nice 10 and, built without OpenMP, spin at every graph barrier; any nice-0 process beside
them (a busy loop, the parse child of a resumed upload) took their share, and the thread
left waiting spun its slice away (25x slower). These tests pin the fix: the engine runs at
the API's nice in SCHED_BATCH, and gives up threads while other processes hold cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.config import load_settings
from appliance.engine.cpu_share import (
    CpuSample,
    ThreadBudget,
    cgroup_cpu_limit,
    outside_cores,
    parse_proc_stat,
    parse_self_stat,
    threads_for,
)

PROC_STAT = """cpu  300 0 100 600 0 0 0 0 0 0
cpu0 100 0 50 300 0 0 0 0 0 0
cpu1 200 0 50 300 10 0 0 0 0 0
cpu2 7 0 7 7 0 0 0 0 0 0
intr 12345
"""


def test_proc_stat_sums_only_the_cpus_of_the_mask() -> None:
    assert parse_proc_stat(PROC_STAT, frozenset({0, 1})) == (400, 1010)
    assert parse_proc_stat(PROC_STAT, frozenset({2})) == (14, 21)


def test_niced_processes_can_be_left_out() -> None:
    text = "cpu0 100 40 50 300 0 0 0 0 0 0\n"
    assert parse_proc_stat(text, frozenset({0})) == (190, 490)
    assert parse_proc_stat(text, frozenset({0}), niced=False) == (150, 490)


def test_self_stat_reads_utime_and_stime_after_a_hostile_name() -> None:
    # a thread name may hold spaces and ")": fields are counted from the last ")"
    fields = ["S"] + ["0"] * 10 + ["70", "30"] + ["0"] * 30
    assert parse_self_stat("42 (a) b) c) " + " ".join(fields)) == 100


def sample(busy: int, total: int, own: int) -> CpuSample:
    return CpuSample(busy=busy, total=total, own=own)


def test_outside_load_excludes_this_process() -> None:
    # 2 CPUs, 200 jiffies elapsed over both: 150 busy, 50 of them ours -> 1 core outside
    assert outside_cores(sample(0, 0, 0), sample(150, 200, 50), 2) == pytest.approx(1.0)
    assert outside_cores(sample(0, 0, 0), sample(50, 200, 60), 2) == 0.0  # never negative
    assert outside_cores(sample(5, 5, 0), sample(5, 5, 0), 2) == 0.0  # no time passed


@pytest.mark.parametrize(
    ("most", "cpus", "outside", "expected"),
    [
        (2, 2, 0.0, 2),  # idle
        (2, 2, 0.3, 2),  # probe noise, a short parse: keep both
        (2, 2, 0.4, 1),  # past GIVE_UP_ABOVE (0.35) of a core: give one up
        (2, 2, 0.5, 1),
        (2, 2, 0.67, 1),  # one busy loop against our two threads gets 2/3 of a core
        (2, 2, 1.33, 1),  # two busy loops against our one thread
        (2, 2, 2.0, 1),  # never fewer than one
        (8, 8, 2.0, 6),  # one thread fewer for each core held
        (2, 64, 10.0, 2),  # a busy host with cores to spare changes nothing
    ],
)
def test_threads_for(most: int, cpus: int, outside: float, expected: int) -> None:
    assert threads_for(most, cpus, outside) == expected


class FakeProc:
    """A /proc that advances by given (busy, own) jiffies per 0.5 s on 2 CPUs (HZ 100)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.busy = self.total = self.own = 0
        self.rate = (0, 0)

    def advance(self, busy_cores: float, own_cores: float) -> None:
        self.now += 0.5
        self.busy += int(busy_cores * 50)
        self.own += int(own_cores * 50)
        self.total += 100

    def read(self, cpus: frozenset[int], niced: bool) -> CpuSample:
        return CpuSample(self.busy, self.total, self.own)


def test_budget_gives_threads_up_under_outside_load_and_takes_them_back() -> None:
    proc = FakeProc()
    budget = ThreadBudget(2, sample=proc.read, clock=lambda: proc.now, cpus=frozenset({0, 1}))
    seen = [budget.threads()]
    for _ in range(4):  # we use both cores, nobody else does
        proc.advance(busy_cores=2.0, own_cores=2.0)
        seen.append(budget.threads())
    for _ in range(4):  # two busy loops start: they get 1.33 cores
        proc.advance(busy_cores=2.0, own_cores=0.67)
        seen.append(budget.threads())
    for _ in range(6):  # they stop
        proc.advance(busy_cores=2.0, own_cores=2.0)
        seen.append(budget.threads())
    assert seen[:5] == [2] * 5
    assert seen[6:9] == [1, 1, 1]
    assert seen[-1] == 2


def test_budget_reads_proc_at_most_every_half_second() -> None:
    proc = FakeProc()
    reads = []

    def read(cpus: frozenset[int], niced: bool) -> CpuSample:
        reads.append(proc.now)
        return proc.read(cpus, niced)

    budget = ThreadBudget(2, sample=read, clock=lambda: proc.now, cpus=frozenset({0, 1}))
    for _ in range(100):
        budget.threads()
    assert len(reads) == 1


def test_a_fixed_budget_never_reads_proc() -> None:
    def read(cpus: frozenset[int], niced: bool) -> CpuSample:
        raise AssertionError("read /proc")

    assert ThreadBudget(3, adaptive=False, sample=read).threads() == 3
    assert ThreadBudget(1, sample=read).threads() == 1  # one thread has nothing to give up


def test_cgroup_quota_is_the_tightest_on_the_path(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    leaf = root / "system.slice" / "appliance.service"
    leaf.mkdir(parents=True)
    (root / "system.slice" / "cpu.max").write_text("150000 100000\n")
    (leaf / "cpu.max").write_text("max 100000\n")
    self_cgroup = tmp_path / "self_cgroup"
    self_cgroup.write_text("0::/system.slice/appliance.service\n")
    assert cgroup_cpu_limit(self_cgroup, root) == 1.5
    (leaf / "cpu.max").write_text("50000 100000\n")
    assert cgroup_cpu_limit(self_cgroup, root) == 0.5
    self_cgroup.write_text("12:cpu:/legacy\n")  # cgroup v1 only: no quota read
    assert cgroup_cpu_limit(self_cgroup, root) is None


@pytest.fixture
def busy_loops() -> Iterator[int]:
    """A nice-0 busy loop on every CPU of the mask, as a backup or a scan would run."""
    n = len(os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield n
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_real_busy_loops_take_the_engine_down_to_one_thread(busy_loops: int) -> None:
    if busy_loops < 2:
        pytest.skip("one CPU: there is no thread to give up")
    budget = ThreadBudget(busy_loops)
    # hang guard, not a timing: the budget needs two /proc samples 0.5 s apart to see
    # the loops; 10 s leaves room for a loaded CI box to start them
    deadline = time.monotonic() + 10
    while budget.threads() != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert budget.threads() == 1, f"outside load seen: {budget.outside:.2f} cores"


def test_the_shipped_config_runs_llama_at_the_apis_priority() -> None:
    settings = load_settings(Path(__file__).resolve().parents[2] / "configs" / "appliance.toml", {})
    assert settings.models.thread_nice == 0
    assert settings.models.adaptive_threads is True


def test_the_engine_thread_is_a_batch_thread_at_the_apis_nice(
    chat_model: Path, embedding_model: Path
) -> None:
    from tests.unit.test_engine import Engine

    engine = Engine(chat_model, embedding_model, queue_size=1)
    try:
        tid = engine.thread.native_id
        assert tid is not None
        assert os.sched_getscheduler(tid) == os.SCHED_BATCH
        assert os.getpriority(os.PRIO_PROCESS, tid) == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        engine.thread.stop()


def test_ingestion_splits_over_two_single_thread_contexts_while_cores_are_held(
    chat_model: Path, embedding_model: Path, busy_loops: int
) -> None:
    """Beside busy loops, ingestion texts go to the engine thread and the query thread at
    once, one thread each (no barrier to stall at), with the vectors they always had."""
    import asyncio

    import numpy as np

    from appliance.engine.build import EngineSpec, build_engine
    from appliance.runtime.worker import BACKGROUND

    if busy_loops < 2:
        pytest.skip("one CPU: there is no thread to give up")
    built = build_engine(
        EngineSpec(chat_path=chat_model, embedding_path=embedding_model, query_thread=True)
    ).start()
    embedder = built.embedder
    texts = [f"Part {i}: the nightly job copies every volume to the array. " * 6 for i in range(6)]
    beside: list[int] = []
    queries = embedder._queries
    assert queries is not None
    call = queries.call

    async def counting_call(job: Any, priority: int = 0) -> Any:
        if priority == BACKGROUND:
            beside.append(priority)
        return await call(job, priority)

    queries.call = counting_call  # type: ignore[method-assign]
    try:
        # hang guard, not a timing: two /proc samples 0.5 s apart show the loops
        deadline = time.monotonic() + 10
        while not built.embedding.down_to_one_thread() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert built.embedding.down_to_one_thread()
        vectors = asyncio.run(embedder.embed(texts, interactive=False))
        assert len(beside) == len(texts) // 2
        reference = built.embedding.context()
        for text, vector in zip(texts, vectors, strict=True):
            assert float(np.dot(vector, reference.embed_one(text))) > 0.9999
    finally:
        built.stop()


def test_a_lent_thread_is_taken_from_the_budget_while_it_is_lent() -> None:
    proc = FakeProc()
    budget = ThreadBudget(2, sample=proc.read, clock=lambda: proc.now, cpus=frozenset({0, 1}))
    with budget.lent():
        assert budget.threads() == 1
        assert budget.machine_threads() == 2  # what other processes leave is unchanged
        with budget.lent():
            assert budget.threads() == 1  # never fewer than one
    assert budget.threads() == 2
    with pytest.raises(RuntimeError), budget.lent():
        raise RuntimeError("an embedding failed")
    assert budget.threads() == 2  # given back on failure too
    assert ThreadBudget(1, adaptive=False).threads() == 1


def test_a_search_on_the_query_thread_borrows_a_thread_of_the_engine(
    chat_model: Path, embedding_model: Path
) -> None:
    """While the query thread embeds a question, on one thread, the engine's next decode
    steps get one thread fewer (three spinning threads on two cores stalled both: issue
    20's batching).
    The vector is the one a lone context computes."""
    import asyncio

    import numpy as np

    from appliance.engine.build import EngineSpec, build_engine

    built = build_engine(
        EngineSpec(chat_path=chat_model, embedding_path=embedding_model, query_thread=True)
    ).start()
    seen: list[tuple[int, int, bool]] = []
    context_type = type(built.embedding.context())
    embed_one = context_type.embed_one

    def recording(self: Any, text: str, *, one_thread: bool = False) -> list[float]:
        budget = built.embedding._budget
        seen.append((budget.threads(), budget.machine_threads(), one_thread))
        return embed_one(self, text, one_thread=one_thread)

    try:
        context_type.embed_one = recording  # type: ignore[method-assign]
        question = "How often are backups taken?"
        [vector] = asyncio.run(built.embedder.embed([question], interactive=True))
        context_type.embed_one = embed_one  # type: ignore[method-assign]
        assert seen and all(threads == max(1, free - 1) for threads, free, _ in seen)
        assert all(one for _, _, one in seen)  # on the one thread it borrowed
        assert built.embedding._budget.threads() == built.embedding._budget.machine_threads()
        reference = built.embedding.context().embed_one(question)
        assert float(np.dot(vector, reference)) > 0.9999
    finally:
        context_type.embed_one = embed_one  # type: ignore[method-assign]
        built.stop()
