from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli.models import format_plan
from appliance.models.sizing import MachineInfo, SizingError, plan_models, read_gguf_info

GiB = 1024**3


@pytest.mark.slow
def test_default_models_fit_8gb(chat_model: Path, embedding_model: Path) -> None:
    plan = plan_models(
        read_gguf_info(chat_model), read_gguf_info(embedding_model),
        machine=MachineInfo(8 * GiB, 6 * GiB, 4), budget_fraction=0.75,
    )  # fmt: skip
    assert plan.fits
    assert plan.chat.n_ctx == 4096 and plan.chat.n_threads == 4 and plan.chat.slots == 16
    assert plan.embedding.n_ctx == 512
    # SmolLM2: 30 layers x 3 kv heads x (64 + 64) x 2 bytes per token, for every slot
    assert plan.chat.kv_bytes == 30 * 3 * 128 * 2 * 4096 * 16
    assert "fits" in format_plan(plan)


@pytest.mark.slow
def test_slots_are_sized_from_the_prompt_budget(chat_model: Path, embedding_model: Path) -> None:
    """The default prompt (sentences: 240 context + 128 answer tokens) needs 768 cells, and
    top3 (700 + 128) 1024, not 4096."""
    from appliance.config import Settings
    from appliance.models.configured import prompt_budget

    budget = prompt_budget(Settings())
    assert budget == 240 + 128
    plan = plan_models(
        read_gguf_info(chat_model), read_gguf_info(embedding_model),
        machine=MachineInfo(8 * GiB, 6 * GiB, 4), budget_fraction=0.75, prompt_tokens=budget,
    )  # fmt: skip
    assert plan.chat.n_ctx == 768 and plan.chat.slots == 16  # 368 + 192, rounded up to 256s
    assert plan.chat.kv_bytes == 30 * 3 * 128 * 2 * 768 * 16  # 270 MiB for 16
    top3 = plan_models(
        read_gguf_info(chat_model), read_gguf_info(embedding_model),
        machine=MachineInfo(8 * GiB, 6 * GiB, 4), budget_fraction=0.75, prompt_tokens=700 + 128,
    )  # fmt: skip
    assert top3.chat.n_ctx == 1024 and top3.chat.slots == 16  # 828 + 192, rounded up
    assert top3.chat.kv_bytes == 30 * 3 * 128 * 2 * 1024 * 16  # 360 MiB for 16, not 720 for 8
    explicit = plan_models(
        read_gguf_info(chat_model), read_gguf_info(embedding_model),
        machine=MachineInfo(8 * GiB, 6 * GiB, 4), budget_fraction=0.75, prompt_tokens=budget,
        chat_ctx=2048,
    )  # fmt: skip
    assert explicit.chat.n_ctx == 2048  # models.chat_ctx wins


@pytest.mark.slow
def test_a_second_embedding_context_shares_the_weights(
    chat_model: Path, embedding_model: Path
) -> None:
    """models.query_thread adds a context's buffers, not a second copy of the file."""
    chat, embedding = read_gguf_info(chat_model), read_gguf_info(embedding_model)
    machine = MachineInfo(8 * GiB, 6 * GiB, 4)
    one, two = (
        plan_models(chat, embedding, machine=machine, budget_fraction=0.75, embed_contexts=n)
        for n in (1, 2)
    )
    extra = two.embedding.estimated_bytes - one.embedding.estimated_bytes
    assert 0 < extra < one.embedding.estimated_bytes - one.embedding.info.file_size + 1
    assert "x 2 contexts" in two.explain()


@pytest.mark.slow
def test_refuses_when_budget_is_too_small(chat_model: Path, embedding_model: Path) -> None:
    plan = plan_models(
        read_gguf_info(chat_model), read_gguf_info(embedding_model),
        machine=MachineInfo(512 * 1024**2, 256 * 1024**2, 2), budget_fraction=0.75,
    )  # fmt: skip
    assert not plan.fits
    assert "MiB" in plan.explain() and "ram_budget_fraction" in plan.explain()
    assert "DOES NOT FIT" in format_plan(plan)


@pytest.mark.slow
def test_auto_context_shrinks_to_the_budget(chat_model: Path, embedding_model: Path) -> None:
    plan = plan_models(
        read_gguf_info(chat_model), read_gguf_info(embedding_model),
        machine=MachineInfo(int(0.7 * GiB), GiB // 2, 2), budget_fraction=0.75,
    )  # fmt: skip
    assert plan.chat.slots < 16  # fewer slots first
    tight = plan_models(
        read_gguf_info(chat_model), read_gguf_info(embedding_model),
        machine=MachineInfo(int(0.6 * GiB), GiB // 2, 2), budget_fraction=0.75, parallel=2,
    )  # fmt: skip
    assert tight.chat.slots == 2 and tight.chat.n_ctx < 4096  # then a shorter context


@pytest.mark.slow
def test_configured_context_beyond_training_is_refused(
    chat_model: Path, embedding_model: Path
) -> None:
    with pytest.raises(SizingError, match="chat_ctx"):
        plan_models(
            read_gguf_info(chat_model), read_gguf_info(embedding_model),
            machine=MachineInfo(8 * GiB, 6 * GiB, 2), budget_fraction=0.75, chat_ctx=100_000,
        )  # fmt: skip


def test_not_a_gguf_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a gguf at all")
    with pytest.raises(ValueError, match=r"model\.gguf"):
        read_gguf_info(bogus)
