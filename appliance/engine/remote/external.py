"""The engine when answers come from an external server (`generation.backend = "openai"`).

The embedding model runs as with the in-process engine: ingestion texts on the engine
thread, search queries on their own thread when `models.query_thread` is set. The
engine thread gets `NoChat` instead of a chat model, so no chat GGUF is loaded; answers
go to `OpenAIGenerator`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.config.generation import GenerationSettings
from appliance.engine.build import EngineCore, EngineSpec, build_core
from appliance.engine.remote.generator import OpenAIGenerator


class NoChat:
    """What the engine thread holds in place of `BatchedChat`: no slot, no work."""

    slots = 0
    active = 0
    last_batch_tokens = 0
    last_batch_sequences = 0

    def can_admit(self, request: Any) -> bool:
        return False

    def admit(self, request: Any) -> None:  # pragma: no cover - never admitted
        raise RuntimeError("no chat model in this process (generation.backend = openai)")

    def step(self) -> None:
        return None

    def cancel_all(self, error: BaseException) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class ExternalEngine(EngineCore):
    """The embedding engine plus the external server's generator; `Engine`'s shape."""

    generator: OpenAIGenerator  # `aclose()` closes its connections: it is async


def build_external_engine(
    spec: EngineSpec,
    generator: OpenAIGenerator,
    *,
    on_step: Callable[[int, int], None] | None = None,
) -> ExternalEngine:
    """`build_engine` without a chat model: `spec`'s chat fields are not read."""
    thread, embedding, embedder = build_core(spec, NoChat, generation_queue_size=1, on_step=on_step)
    return ExternalEngine(spec, thread, embedding, embedder, generator)


def external_generator(g: GenerationSettings) -> OpenAIGenerator:
    """The generator of `[generation]` with backend = "openai"."""
    return OpenAIGenerator(
        url=g.url,
        model=g.model,
        api_key=g.api_key,
        n_ctx=g.n_ctx,
        timeout_s=g.timeout_s,
        parallel=g.external_slots(),
        queue_size=g.queue_size,
    )
