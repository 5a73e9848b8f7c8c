"""The configured models, located and sized for this machine (shared by the server's
start, `appliance models`, `doctor` and `restore`)."""

from __future__ import annotations

from appliance.config.paths import models_dir
from appliance.config.schema import Settings
from appliance.models.locate import resolve_model
from appliance.models.sizing import GgufInfo, MachineInfo, SizingPlan, plan_models, read_gguf_info


def plan_for(settings: Settings, prepare: bool = True, verify: bool = True) -> SizingPlan:
    """Resolve (and by default prepare and verify) the model files and size them."""
    m = settings.models
    directory = models_dir(settings)
    chat_path = resolve_model(m.chat_model, "chat", directory, prepare, verify)
    embed_path = resolve_model(m.embedding_model, "embedding", directory, prepare, verify)
    return plan_with(settings, read_gguf_info(chat_path), read_gguf_info(embed_path))


def plan_with(settings: Settings, chat: GgufInfo, embedding: GgufInfo) -> SizingPlan:
    """Size these two models for this machine with the config's knobs (the chat model
    takes no RAM when an external server runs it)."""
    m, g = settings.models, settings.generation
    external = g.backend == "openai"
    return plan_models(
        chat,
        embedding,
        machine=MachineInfo.read(),
        budget_fraction=m.ram_budget_fraction,
        n_threads=m.n_threads,
        chat_ctx=g.n_ctx if external else m.chat_ctx,
        chat_batch=m.chat_batch,
        embed_batch=m.embed_batch,
        parallel=g.external_slots() if external else g.parallel,
        embed_contexts=2 if m.query_thread else 1,
        prompt_tokens=prompt_budget(settings),
        chat_loaded=not external,
    )


def prompt_budget(settings: Settings) -> int:
    """Document text plus answer of the default prompt strategy, in chat tokens."""
    strategy = settings.strategy()
    context = strategy.context_tokens or settings.retrieval.context_tokens
    answer = strategy.max_tokens or settings.generation.max_tokens
    return context + min(answer, settings.generation.max_tokens_ceiling)
