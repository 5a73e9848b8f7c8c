"""The `[generation]` section: who writes answers, how long, how many at once."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from msgspec import Meta

from appliance.config.base import Base


class GenerationSettings(Base, frozen=True):
    backend: Annotated[
        Literal["local", "openai"],
        Meta(
            description=(
                "Who generates answers: 'local' (the chat model of [models], in this process) "
                "or 'openai' (an external OpenAI-compatible server at `url`: llama-server, "
                "vLLM, Ollama; the chat model is then neither loaded nor counted in RAM)."
            )
        ),
    ] = "local"
    url: Annotated[
        str,
        Meta(
            description=(
                'Base URL of the OpenAI-compatible API for backend = "openai", with its /v1 '
                "(e.g. http://10.0.0.5:8000/v1); required then."
            )
        ),
    ] = ""
    api_key: Annotated[
        str,
        Meta(
            description=(
                "Bearer token for `url`; empty for none. Never logged; better set with the "
                "environment variable APPLIANCE__GENERATION__API_KEY than in this file."
            )
        ),
    ] = ""
    model: Annotated[
        str,
        Meta(
            description=(
                'Model name sent to the server (backend = "openai"; required then): '
                "GET <url>/models lists what it serves."
            )
        ),
    ] = ""
    n_ctx: Annotated[
        int,
        Meta(
            ge=256,
            le=1_048_576,
            description=(
                'Context window of one request on the external server (backend = "openai"), '
                "in tokens: prompts are fitted to 90% of it (token counts are estimated here). "
                "llama-server: --ctx-size / --parallel; vLLM: --max-model-len; Ollama: num_ctx."
            ),
        ),
    ] = 4096
    timeout_s: Annotated[
        float,
        Meta(
            gt=0,
            le=300,
            description=(
                'Seconds to connect to the external server (backend = "openai") and for its '
                "readiness check (GET <url>/models, cached 5 s) to answer."
            ),
        ),
    ] = 3.0
    max_tokens: Annotated[
        int,
        Meta(
            ge=1,
            le=8192,
            description=(
                "Tokens generated when neither the request nor the prompt strategy says. "
                "Short: the default prompts ask for short answers."
            ),
        ),
    ] = 128
    max_tokens_ceiling: Annotated[
        int, Meta(ge=1, le=8192, description="Server ceiling: larger requests are clamped to it.")
    ] = 512
    temperature: Annotated[
        float, Meta(ge=0.0, le=2.0, description="Sampling temperature when a request does not say.")
    ] = 0.2
    parallel: Annotated[
        int,
        Meta(
            ge=0,
            le=64,
            description=(
                "Answers generated at once (continuous-batching slots); 0 picks up to 16 "
                "as the RAM budget allows (each slot holds a KV cache of models.chat_ctx). "
                'With backend = "openai": requests in flight to the server at most; 0 = '
                "external_parallel."
            ),
        ),
    ] = 0
    external_parallel: Annotated[
        int,
        Meta(
            ge=1,
            le=64,
            description=(
                'Requests in flight to the external server (backend = "openai") at most when '
                "parallel = 0."
            ),
        ),
    ] = 4
    unified_kv: Annotated[
        bool,
        Meta(
            description=(
                "One KV cache shared by all slots instead of one per slot. Attention then spans "
                "every slot's cells, and at temperature 0 answers may differ in rare near-ties "
                "from the same question asked alone. false: identical answers."
            )
        ),
    ] = False
    queue_size: Annotated[
        int,
        Meta(
            ge=1,
            le=10000,
            description=(
                "Questions waiting for a free slot at most; beyond, a question gets the "
                'extractive answer (its evidence quoted), finish_reason "busy", Retry-After.'
            ),
        ),
    ] = 64
    deadline_s: Annotated[
        float,
        Meta(gt=0, le=3600, description="Seconds a question may wait and run before it fails."),
    ] = 300.0
    prompt: Annotated[
        str,
        Meta(
            min_length=1,
            description=(
                "Name of the default prompt strategy, one of the [prompts.*] tables; a request "
                "may name another (`strategy`)."
            ),
        ),
    ] = "brief"
    answer_mode: Annotated[
        Literal["auto", "generate", "extract"],
        Meta(
            description=(
                "How a question is answered when the request names no strategy: 'generate' "
                "(the chat model writes it, from the prompt strategy), 'extract' (the "
                "passages' sentences that best answer it, verbatim with citation markers; "
                "the chat model is not called) or 'auto': extract with a chat model smaller "
                "than generate_from_params (the default 135M one: right 0.62 / 0.57 of the "
                "time by extract, 0.40 / 0.15 generated), generate with a larger one or an "
                'external server. A request may ask for either (`"strategy": "extract"` or '
                '`"generate"`).'
            )
        ),
    ] = "auto"
    generate_from_params: Annotated[
        int,
        Meta(
            ge=0,
            description=(
                "With answer_mode 'auto': the chat model's size (weights) from which it "
                "writes the answers. Not measured here (no such model installs offline): "
                "compare `appliance eval --strategy generate` and `--strategy extract` on yours."
            ),
        ),
    ] = 1_000_000_000
    prefix_cache: Annotated[
        bool,
        Meta(
            description=(
                "Keep each slot's last prompt in its KV cache and read only what a new prompt "
                "does not share with it (the template and instructions are read once per slot)."
            )
        ),
    ] = True
    repetition_stop: Annotated[
        bool,
        Meta(
            description=(
                "End an answer that repeats itself (the same tokens looping over 24+ tokens): "
                'finish_reason "repetition".'
            )
        ),
    ] = True
    evidence_sentences: Annotated[
        int,
        Meta(
            ge=0,
            le=20,
            description="Sentences of the passages returned as evidence with each answer.",
        ),
    ] = 5
    support_cosine: Annotated[
        float,
        Meta(
            ge=0.0,
            le=1.0,
            description=(
                "An answer sentence counts as supported when its embedding is at least this "
                "similar to a sentence the model read (see bench/answers.py)."
            ),
        ),
    ] = 0.7
    support_overlap: Annotated[
        float,
        Meta(
            ge=0.0,
            le=1.0,
            description=(
                "...or when at least this share of its content words occurs in what the model read."
            ),
        ),
    ] = 0.8

    def __post_init__(self) -> None:
        if self.url:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"`generation.url` must be an http:// or https:// URL such as "
                    f"http://10.0.0.5:8000/v1, not {self.url!r}"
                )
        if self.backend == "openai":
            for key, value in (("url", self.url), ("model", self.model)):
                if not value:
                    raise ValueError(
                        f'`generation.{key}` is required when `generation.backend` = "openai"'
                    )

    def external_slots(self) -> int:
        """Requests in flight to the external server at most (`parallel`, 0 resolved)."""
        return self.parallel or self.external_parallel
