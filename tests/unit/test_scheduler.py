"""The continuous-batching scheduler without a model: slot states, admission, batch plans."""

from __future__ import annotations

import random

from appliance.engine.scheduler import Move, Request, Scheduler, SlotState, repeats


def request(prompt: list[int], max_tokens: int = 4) -> Request:
    return Request(
        prompt_tokens=prompt, max_tokens=max_tokens, temperature=0.0,
        emit=lambda _: None, cancelled=lambda: False,
    )  # fmt: skip


def run_to_decode(s: Scheduler) -> None:
    """Decode plans until no slot is prefilling; every sampled token is 100."""
    while any(slot.state is SlotState.PREFILL for slot in s.active):
        plan = s.plan()
        s.decoded(plan)
        for slot in plan.sample:
            s.on_token(slot, 100, end_of_generation=False)


def test_prompts_are_read_in_chunks_first_come_first_served() -> None:
    s = Scheduler(slots=2, n_ctx=200, n_batch=8)
    a = s.admit(request(list(range(10)))).slot
    b = s.admit(request(list(range(50, 55)))).slot
    plan = s.plan()
    assert [(r.seq_id, r.pos) for r in plan.rows] == [(a.seq_id, i) for i in range(8)]
    assert plan.sample == []  # no prompt is complete yet: nothing is sampled
    s.decoded(plan)
    plan = s.plan()  # the rest of a (2 tokens), then b's 5 within the batch of 8
    assert [(r.seq_id, r.pos, r.logits) for r in plan.rows] == [
        (a.seq_id, 8, False), (a.seq_id, 9, True),
        *[(b.seq_id, i, i == 4) for i in range(5)],
    ]  # fmt: skip
    assert plan.sample == [a, b]
    assert [plan.rows[slot.batch_index].pos for slot in plan.sample] == [9, 4]


def test_decoding_slots_get_one_row_each_before_prompt_chunks() -> None:
    s = Scheduler(slots=3, n_ctx=300, n_batch=6)
    first = s.admit(request([1, 2, 3])).slot
    run_to_decode(s)
    assert first.state is SlotState.DECODE
    late = s.admit(request(list(range(20, 30)))).slot
    plan = s.plan()
    assert plan.rows[0].seq_id == first.seq_id and plan.rows[0].pos == 3
    assert [r.seq_id for r in plan.rows[1:]] == [late.seq_id] * 5  # 6 - 1 decode row
    assert plan.sample == [first]


def test_admission_reuses_the_longest_cached_prefix() -> None:
    s = Scheduler(slots=2, n_ctx=200, n_batch=64)
    system = [7] * 20
    one = s.admit(request([*system, 1, 1, 1])).slot
    other = s.admit(request([9, 9, 9, 9])).slot
    run_to_decode(s)
    for slot in (one, other):
        s.release(slot)
    assert one.cached == [*system, 1, 1, 1]  # the prompt stays in the cells (the sample not fed)
    admission = s.admit(request([*system, 2, 2]))
    assert admission.slot is one and admission.keep == 20
    plan = s.plan()
    assert [r.pos for r in plan.rows] == [20, 21]  # only what differs is read
    s.decoded(plan)
    s.on_token(one, 5, end_of_generation=False)
    assert s.finished(one, "stop").cached_tokens == 20


def test_an_identical_prompt_still_decodes_its_last_token() -> None:
    s = Scheduler(slots=1, n_ctx=100, n_batch=64)
    prompt = [3, 4, 5, 6]
    slot = s.admit(request(prompt)).slot
    run_to_decode(s)
    s.release(slot)
    admission = s.admit(request(prompt))
    assert admission.keep == 3  # the logits of the last prompt token are needed
    assert [r.pos for r in s.plan().rows] == [3]


def test_without_prefix_cache_nothing_is_kept() -> None:
    for s in (
        Scheduler(slots=2, n_ctx=200, n_batch=64, prefix_cache=False),
        Scheduler(slots=2, n_ctx=200, n_batch=64, unified_kv=True),  # a shared cache
    ):
        slot = s.admit(request([1, 2, 3, 4])).slot
        run_to_decode(s)
        s.release(slot)
        assert s.admit(request([1, 2, 3, 4, 5])).keep == 0


def test_reservation_bounds_admission() -> None:
    s = Scheduler(slots=4, n_ctx=40, n_batch=8)  # 10 cells per slot
    assert not s.can_admit(request([1] * 8, max_tokens=4))  # 12 > 10 cells of one slot
    assert s.can_admit(request([1] * 6, max_tokens=4))
    for _ in range(4):
        s.admit(request([1] * 6, max_tokens=4))
    assert not s.can_admit(request([1], max_tokens=1))  # no free slot
    assert not s.can_admit(request([], max_tokens=1))


def test_finish_reasons_count_tokens() -> None:
    s = Scheduler(slots=1, n_ctx=100, n_batch=16)
    slot = s.admit(request([1, 2], max_tokens=3)).slot
    plan = s.plan()
    s.decoded(plan)
    assert s.on_token(slot, 10, end_of_generation=False) is None
    assert s.on_token(slot, 11, end_of_generation=False) is None
    assert s.on_token(slot, 12, end_of_generation=False) == "length"
    assert s.finished(slot, "length").completion_tokens == 3
    s.release(slot)
    slot = s.admit(request([1, 2], max_tokens=3)).slot
    s.decoded(s.plan())
    assert s.on_token(slot, 0, end_of_generation=True) == "stop"
    assert s.finished(slot, "stop").completion_tokens == 0  # end-of-generation is not counted


def test_a_looping_answer_stops_with_repetition() -> None:
    s = Scheduler(slots=1, n_ctx=400, n_batch=16)
    slot = s.admit(request([1], max_tokens=200)).slot
    s.decoded(s.plan())
    loop = [5, 6, 7, 8, 9, 10]
    reasons = [s.on_token(slot, t, end_of_generation=False) for t in (loop * 10)]
    stopped_at = next(i for i, r in enumerate(reasons) if r is not None)
    assert reasons[stopped_at] == "repetition"
    assert stopped_at + 1 == 24  # four copies of the 6-token loop: 24 tokens


def test_repeats_needs_a_long_enough_loop() -> None:
    assert not repeats([1, 1, 1, 1, 1])  # "very very very" is not a loop yet
    assert repeats([1] * 24)
    assert not repeats(list(range(60)))
    assert repeats([9, 8] + list(range(30)) * 2)
    assert not repeats(list(range(10)) * 2)  # 20 tokens: below the 24-token span


def test_a_cancel_mid_prefill_keeps_only_what_was_read() -> None:
    s = Scheduler(slots=1, n_ctx=100, n_batch=4)
    prompt = list(range(10))
    slot = s.admit(request(prompt)).slot
    s.decoded(s.plan())  # 4 of 10 prompt tokens read
    s.release(slot)  # cancelled before the prompt was read in full
    assert slot.cached == prompt[:4] and slot.state is SlotState.FREE
    admission = s.admit(request([*prompt[:6], 99]))
    assert admission.keep == 4  # only the cells really filled are reused
    assert [r.pos for r in s.plan().rows] == [4, 5, 6]


def test_reservations_return_to_zero_and_restart_reads_everything() -> None:
    s = Scheduler(slots=2, n_ctx=100, n_batch=64)
    slots = [s.admit(request([1, 2, 3, 4], max_tokens=6)).slot for _ in range(2)]
    assert not s.can_admit(request([1], max_tokens=1))
    run_to_decode(s)
    for slot in slots:
        s.release(slot)
    assert s._reserved == 0 and s.can_admit(request([1] * 44, max_tokens=6))
    admission = s.admit(request([1, 2, 3, 4, 5]))
    assert admission.keep == 4
    s.restart(admission.slot)  # the executor could not keep the prefix
    assert [r.pos for r in s.plan().rows] == [0, 1, 2, 3, 4]
    assert s.finished(admission.slot, "stop").cached_tokens == 0


def test_a_request_starts_in_the_lowest_free_slot_with_its_prefix_copied_there() -> None:
    """Active slots stay at the lowest seq ids (one llama.cpp micro-batch per step); the
    longest cached prefix still counts, copied from the free slot that holds it."""
    s = Scheduler(slots=4, n_ctx=400, n_batch=64)
    system = [7] * 20
    slots = [s.admit(request([*system, n, n])).slot for n in (1, 2, 3)]
    run_to_decode(s)
    for slot in slots:
        s.release(slot)
    admission = s.admit(request([*system, 3, 3, 9]))  # slot 2 holds [*system, 3, 3]
    assert admission.slot.seq_id == 0 and admission.source == 2 and admission.keep == 22
    assert admission.slot.cached == [*system, 3, 3]
    assert slots[2].cached == [*system, 3, 3]  # the source keeps its cells: still a cache
    assert [(r.seq_id, r.pos) for r in s.plan().rows] == [(0, 22)]
    second = s.admit(request([*system, 2, 2, 9]))  # its prefix is in the lowest free slot
    assert second.slot.seq_id == 1 and second.source is None and second.keep == 22
    third = s.admit(request([5, 5]))
    assert third.slot.seq_id == 2 and third.source is None and third.keep == 0


def test_a_freed_slot_below_an_active_one_takes_the_highest_active_sequence() -> None:
    s = Scheduler(slots=4, n_ctx=400, n_batch=64)
    slots = [s.admit(request([n, n, n], max_tokens=8)).slot for n in range(4)]
    run_to_decode(s)
    moved = slots[3].request
    generated, n_past = list(slots[3].generated), slots[3].n_past
    reserved, freed = s._reserved, slots[1].reserved
    s.release(slots[1])
    assert s.compaction() == [Move(source=3, target=1)]
    assert slots[1].request is moved and slots[1].state is SlotState.DECODE
    assert slots[1].generated == generated and slots[1].n_past == n_past
    assert slots[3].state is SlotState.FREE and slots[3].cached == slots[1].cached
    assert s._reserved == reserved - freed and slots[3].reserved == 0
    assert [r.seq_id for r in s.plan().rows] == [0, 1, 2]
    assert [(r.seq_id, r.pos) for r in s.plan().rows][1] == (1, n_past)
    assert s.compaction() == []


def test_slots_stay_packed_through_any_arrivals_and_departures() -> None:
    rng = random.Random(20)
    s = Scheduler(slots=8, n_ctx=8 * 64, n_batch=32)
    for _ in range(500):
        active = s.active
        if active and rng.random() < 0.4:
            s.release(rng.choice(active))
            s.compaction()
        elif s.can_admit(request([1, 2, rng.randrange(4)], max_tokens=8)):
            s.admit(request([1, 2, rng.randrange(4)], max_tokens=8))
        run_to_decode(s)
        assert [slot.seq_id for slot in s.active] == list(range(len(s.active)))
        assert s._reserved == sum(slot.reserved for slot in s.active)


def test_one_shared_cache_never_moves_sequences() -> None:
    s = Scheduler(slots=3, n_ctx=300, n_batch=64, unified_kv=True)
    slots = [s.admit(request([n, n])).slot for n in range(3)]
    s.release(slots[0])
    assert s.compaction() == []
    assert [slot.seq_id for slot in s.active] == [1, 2]
