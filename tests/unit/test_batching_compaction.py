"""Sequences moved between slots on the real chat model: greedy answers do not change."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.engine.batching import BatchedChat
from appliance.engine.chat_prompt import ChatPromptEncoder
from appliance.engine.llama_loader import load_llama
from appliance.engine.scheduler import Request

pytestmark = pytest.mark.slow

MAX_TOKENS = 32


@pytest.fixture(scope="module")
def prompts(chat_model: Path) -> list[list[int]]:
    vocab = load_llama(str(chat_model), vocab_only=True)
    try:
        encoder = ChatPromptEncoder(vocab, vocab.metadata["tokenizer.chat_template"])
        return [
            encoder.encode([{"role": "user", "content": f"Tell a story about lighthouse {n}."}])
            for n in range(4)
        ]
    finally:
        vocab.close()


def answers(chat: BatchedChat, prompts: dict[int, list[int]], cancel: int | None = None,
            cancel_at: int = 4) -> dict[int, str]:  # fmt: skip
    """Greedy answers of `prompts` admitted together; `cancel` is cancelled after
    `cancel_at` steps (its slot frees below the others)."""
    out: dict[int, list[object]] = {n: [] for n in prompts}
    stop = {n: False for n in prompts}
    for n, tokens in prompts.items():
        chat.admit(Request(
            prompt_tokens=tokens, max_tokens=MAX_TOKENS, temperature=0.0,
            emit=out[n].append, cancelled=lambda n=n: stop[n],  # type: ignore[misc]
        ))  # fmt: skip
    steps = 0
    while chat.active:
        stop[cancel] = cancel is not None and steps >= cancel_at  # type: ignore[index]
        chat.step()
        steps += 1
    return {n: "".join(p for p in pieces if isinstance(p, str)) for n, pieces in out.items()}


def test_moved_and_copied_sequences_answer_as_if_they_had_stayed(
    chat_model: Path, prompts: list[list[int]]
) -> None:
    chat = BatchedChat(chat_model, slots=4, n_ctx=4 * 512, n_batch=256, n_threads=2)
    fixed = BatchedChat(chat_model, slots=4, n_ctx=4 * 512, n_batch=256, n_threads=2)
    fixed.scheduler.compact = False  # the same runs with every sequence kept in its slot
    try:
        everyone = dict(enumerate(prompts))
        expected = answers(fixed, everyone, cancel=1)
        got = answers(chat, everyone, cancel=1)
        # slot 1 freed under slots 2 and 3: slot 3's sequence moved down into it
        assert chat.scheduler.slots[1].cached[: len(prompts[3])] == prompts[3]
        assert fixed.scheduler.slots[1].cached[: len(prompts[1])] == prompts[1]
        assert {n: got[n] for n in (0, 2, 3)} == {n: expected[n] for n in (0, 2, 3)}
        assert all(len(got[n]) > 20 for n in (0, 2, 3))  # they ran on after the move
        # the prompt of 3 is cached in slot 1 now (moved) and slot 3 (left behind): a
        # repeat starts in slot 0, its prefix copied there; unmoved, it reuses slot 3
        again = {3: prompts[3]}
        assert answers(chat, again) == answers(fixed, again)
        assert chat.scheduler.slots[0].cached[: len(prompts[3])] == prompts[3]
    finally:
        chat.close()
        fixed.close()
