"""OpenAI-compatible API: GET /v1/models, POST /v1/chat/completions, POST /v1/embeddings.

Any OpenAI client works unchanged with `base_url` at `/v1` and an API key of the `query`
role (same keys, rate limits and body limit as the rest of the API). Chat completions
answer with RAG over the indexed documents by default, through the query service as
/v1/ask does, with citations and evidence in an extra `rag` field; `"rag": false` is
plain chat with the model (`appliance.query.chat`). Every refusal of these routes has
OpenAI's error shape (`errors.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from appliance.config.schema import Settings
from appliance.domain.errors import FieldError
from appliance.ingest.collections import CollectionService
from appliance.query.pipeline import QueryService
from appliance.security.keys import KeyRecord, Role
from appliance.server.errors import retry_after
from appliance.server.reader import Reader
from appliance.server.routes.openai.completions import complete, start
from appliance.server.routes.openai.embeddings import embed, vectors_out
from appliance.server.routes.openai.errors import EXCEPTION_HANDLERS, openai_errors, strictly
from appliance.server.routes.openai.stream import sse
from appliance.server.services import ServedModels
from appliance.wire.openai import (
    APPLIANCE_MODEL,
    ChatCompletion,
    ChatCompletionRequest,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
)


class OpenAIController(Controller):
    path = "/v1"
    tags = ("openai",)
    opt = {"role": Role.QUERY}  # noqa: RUF012 - Litestar's own attribute
    exception_handlers = EXCEPTION_HANDLERS  # OpenAI's error shape, on these routes only

    @get(
        "/models", summary="The chat and embedding models, OpenAI-style (query)",
        responses=openai_errors(),
    )  # fmt: skip
    async def models(
        self, served: ServedModels, collection_service: CollectionService, reader: Reader
    ) -> ModelList:
        """The chat and embedding models, `appliance` (RAG over every collection the key
        reads) and `appliance/NAME` for each of them."""
        readable = [
            f"{APPLIANCE_MODEL}/{r.name}" for r, _ in await collection_service.listing(reader.scope)
        ]
        names = (served.chat, served.embedding, APPLIANCE_MODEL, *readable)
        return ModelList(data=[ModelCard(id=m, created=served.created) for m in names])

    @post(
        "/chat/completions",
        status_code=200,
        summary="Chat completions, OpenAI-compatible; RAG over the documents (query)",
        description=(
            "The last user message is the question; the answer streams as `data:` chunks "
            "when `stream` is true, ending with `data: [DONE]`. The response (the final "
            "chunk when streaming) carries `rag`: citations, evidence, timings. "
            '`"rag": false`: plain chat over the messages, no retrieval.'
        ),
        responses={
            200: ResponseSpec(
                data_container=ChatCompletion,
                description="A chat.completion; with `stream`, text/event-stream of chunks",
            ),
            **openai_errors(400, 404, 413, 503, 504),
        },
    )
    async def chat_completions(
        self,
        data: ChatCompletionRequest,
        query_service: QueryService,
        settings: Settings,
        served: ServedModels,
        request: Request[KeyRecord, Any, Any],
        reader: Reader,
    ) -> Response[Any]:
        data = await strictly(request, ChatCompletionRequest)
        run = await start(data, query_service, settings, reader)
        if data.stream:
            include_usage = data.stream_options is not None and data.stream_options.include_usage
            return Stream(
                sse(run, served.chat, include_usage), media_type="text/event-stream",
                headers=retry_after(
                    run.retry_after, **{"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
                ),
            )  # fmt: skip
        return Response(await complete(run, served.chat), headers=retry_after(run.retry_after))

    @post(
        "/embeddings", status_code=200,
        summary="Embeddings with the live embedding model, OpenAI-compatible (query)",
        responses=openai_errors(400, 413, 503),
    )  # fmt: skip
    async def embeddings(
        self, data: EmbeddingRequest, served: ServedModels, request: Request[Any, Any, Any]
    ) -> EmbeddingList:
        data = await strictly(request, EmbeddingRequest)
        texts = [data.input] if isinstance(data.input, str) else data.input
        embedder, model = served.embedder, served.embedding
        if data.dimensions is not None and data.dimensions > embedder.dim:
            raise FieldError(
                "dimensions", f"the embedding model {model} gives {embedder.dim} values"
            )
        vectors = await embed(embedder, texts)
        encoded, tokens = await asyncio.gather(
            asyncio.to_thread(vectors_out, vectors, data.dimensions, data.encoding_format),
            asyncio.to_thread(lambda: sum(embedder.count_tokens(t) for t in texts)),
        )
        return EmbeddingList(
            data=[Embedding(index=i, embedding=e) for i, e in enumerate(encoded)],
            model=model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )  # fmt: skip
