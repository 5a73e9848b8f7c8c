from __future__ import annotations

import pytest

from appliance.domain.types import Hit
from appliance.query.prompt import PromptTooLong, build_prompt, messages_for


def hit(i: int, words: int) -> Hit:
    return Hit(
        point_id=str(i), score=1.0 - i / 100, document_id="d", file_name=f"f{i}.pdf",
        chunk_index=i, text=" ".join(["w"] * words), page=i,
    )  # fmt: skip


def render(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"<{m['role']}>{m['content']}" for m in messages)


def tokenize(text: str) -> list[int]:
    return list(range(len(text.split())))


def test_all_hits_fit_when_there_is_room() -> None:
    hits = [hit(i, 10) for i in range(3)]
    built = build_prompt(
        system_prompt="Answer.", question="q?", hits=hits, render=render, tokenize=tokenize,
        n_ctx=1000, max_tokens=100,
    )  # fmt: skip
    assert built.hits == hits
    assert "[3] (f2.pdf, page 2)" in built.text


def test_lowest_ranked_hits_are_dropped_first() -> None:
    hits = [hit(i, 50) for i in range(5)]
    built = build_prompt(
        system_prompt="Answer.", question="q?", hits=hits, render=render, tokenize=tokenize,
        n_ctx=220, max_tokens=50,
    )  # fmt: skip
    assert built.hits == hits[: len(built.hits)]
    assert 0 < len(built.hits) < 5
    assert len(built.tokens) + built.max_tokens <= 220


def test_answer_budget_shrinks_before_failing() -> None:
    built = build_prompt(
        system_prompt="Answer.", question="q " * 100, hits=[hit(0, 50)], render=render,
        tokenize=tokenize, n_ctx=160, max_tokens=100,
    )  # fmt: skip
    assert built.hits == []
    assert len(built.tokens) + built.max_tokens <= 160


def test_question_too_long_is_an_error() -> None:
    with pytest.raises(PromptTooLong):
        build_prompt(
            system_prompt="Answer.", question="q " * 500, hits=[], render=render,
            tokenize=tokenize, n_ctx=200, max_tokens=10,
        )  # fmt: skip


def test_prompt_tells_model_to_stay_in_context() -> None:
    from appliance.config.schema import GenerationSettings

    [system, user] = messages_for(GenerationSettings().system_prompt, "Why?", [hit(0, 3)])
    assert "only" in system["content"] and "does not contain" in system["content"]
    assert user == {"role": "user", "content": "Why?"}
