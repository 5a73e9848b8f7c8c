"""`POST /v1/ask` (and its stream and WebSocket): the question with its options, and the
answer with what it rests on."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from appliance.wire.answers import Citation, Evidence, FinishReason, Timings
from appliance.wire.search import DocumentIds, Filters, Retrieval

# The bounds of an answer's options, the same for /v1/ask and chat completions (each
# field says what it means there).
PassageCount = Annotated[int, Meta(ge=1, le=50)]
AnswerTokens = Annotated[int, Meta(ge=1, le=8192)]
Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]
StrategyName = Annotated[str, Meta(min_length=1, max_length=64)]

ConversationId = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description=(
            "Ask within a conversation (a new id starts one; a UUID is a good choice): a "
            "follow-up question is searched together with the question before it. The "
            "history is kept per API key: GET /v1/conversations."
        ),
    ),
]


Question = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=1000,
        description=(
            "The question. Refused (400) when, in the chat model's tokens, it leaves no "
            "room for an answer in the context."
        ),
    ),
]


class AskRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    query: Question
    top_k: Annotated[PassageCount, Meta(description="Passages given to the model.")] | None = None
    max_tokens: (
        Annotated[
            AnswerTokens, Meta(description="Answer length cap; clamped to the server ceiling.")
        ]
        | None
    ) = None
    temperature: Annotated[Temperature, Meta(description="Sampling temperature.")] | None = None
    document_ids: DocumentIds | None = None
    filters: Filters | None = None
    retrieval: Retrieval | None = None
    conversation_id: ConversationId | None = None
    strategy: (
        Annotated[
            StrategyName,
            Meta(
                description="A prompt strategy of the config ([prompts.*]); `extract`: the "
                "passages' sentences that best answer the question, verbatim with citation "
                "markers, without the chat model; `generate`: the default prompt strategy "
                "(generation.prompt), the chat model writes. Default: generation.answer_mode."
            ),
        ]
        | None
    ) = None


class AskResponse(msgspec.Struct, frozen=True):
    answer: str
    citations: list[Citation]
    timings: Timings
    finish_reason: FinishReason
    evidence: Annotated[
        list[Evidence],
        Meta(
            description="Sentences of the passages that support the answer; `start`/`end` "
            "cut `text` out of the chunk's stored text."
        ),
    ]
    grounded: Annotated[
        float,
        Meta(
            ge=0.0,
            le=1.0,
            description="Share of the answer's sentences supported by the passages read.",
        ),
    ]
    unsupported: Annotated[
        list[str], Meta(description="Answer sentences with no support in the passages.")
    ]
    strategy: str
    conversation_id: str | None = None
    searched: Annotated[
        str | None,
        Meta(description="In a conversation: the question as searched (a follow-up joined "
             "to the question before it)."),
    ] = None  # fmt: skip
    first_evidence: Annotated[
        list[Evidence],
        Meta(description="The evidence a stream sends first, before the answer's words: the "
             "sentences of the retrieved passages that best answer the question."),
    ] = msgspec.field(default_factory=list)  # fmt: skip
