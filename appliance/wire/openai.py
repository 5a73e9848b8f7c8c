"""The OpenAI wire format of /v1/models, /v1/chat/completions and /v1/embeddings (msgspec).

Requests are lenient where OpenAI clients need it: unknown fields are ignored (SDKs and
frameworks send fields newer than this server), and common sampling fields are accepted
and ignored (`top_p`, `stop`, `seed`, penalties, `user`...). What would silently change
the answer is refused by the schema, naming the field: `n` > 1, `tools`, a
`response_format` other than text, content parts other than text (images, audio, files),
token arrays as embedding input.

The appliance's own request fields (the OpenAI SDK sends them with `extra_body`) and its
response field `rag` (citations, evidence, timings) ride beside OpenAI's: clients that
do not know them ignore them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from appliance.wire.answers import Citation, Evidence, FinishReason, Timings
from appliance.wire.ask import AnswerTokens, PassageCount, StrategyName, Temperature
from appliance.wire.search import DocumentIds, Filters

# Bounds a schema can state (the conversation's length in tokens it cannot: that is
# checked against the chat model's context, 400 `context_length_exceeded`).
MAX_MESSAGES = 256
MAX_CONTENT_CHARS = 32_768  # one message's text, or one text part
MAX_CONTENT_PARTS = 16
MAX_CHAT_CHARS = 262_144  # the text of all messages together (checked in code)
MAX_EMBEDDING_INPUTS = 2048  # as OpenAI
APPLIANCE_MODEL = "appliance"  # RAG over every collection the key reads; `appliance/NAME`: one
MAX_EMBEDDING_CHARS = 32_768  # one input; the model reads its context's worth of tokens

Text = Annotated[str, Meta(min_length=1, max_length=MAX_CONTENT_CHARS)]
MaxTokens = Annotated[
    AnswerTokens,
    Meta(description="Answer length cap; clamped to generation.max_tokens_ceiling."),
]
Ignored = "Accepted for compatibility and ignored."


# ----------------------------------------------------------------- chat: request


class TextPart(msgspec.Struct, frozen=True):
    """A text part of a message's content (no other part types are read)."""

    type: Literal["text"]
    text: Text


class ChatMessage(msgspec.Struct, frozen=True):
    """One turn. `developer` is read as `system`. Content is a string or text parts."""

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | Annotated[list[TextPart], Meta(min_length=1, max_length=MAX_CONTENT_PARTS)]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class StreamOptions(msgspec.Struct, frozen=True):
    include_usage: Annotated[
        bool, Meta(description="A last chunk with `usage` and no choices, before [DONE].")
    ] = False


class ResponseFormat(msgspec.Struct, frozen=True):
    type: Annotated[Literal["text"], Meta(description="Only plain text is produced.")] = "text"


class ChatCompletionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An OpenAI chat completion request, plus the appliance's `rag`, `top_k`,
    `document_ids`, `filters` and `strategy` (send them with the SDK's `extra_body`)."""

    model: Annotated[
        str,
        Meta(
            max_length=256,
            description="`appliance/NAME` searches only the collection NAME; any other name "
            "(`appliance`, or the chat model's) searches every collection the key reads. "
            "The appliance answers with its one chat model and says which in the response.",
        ),
    ]
    messages: Annotated[list[ChatMessage], Meta(min_length=1, max_length=MAX_MESSAGES)]
    stream: Annotated[bool, Meta(description="Server-Sent Events `data:` chunks.")] = False
    stream_options: StreamOptions | None = None
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None  # OpenAI's newer name; wins over max_tokens
    temperature: (
        Annotated[
            Temperature, Meta(description="Sampling temperature; default generation.temperature.")
        ]
        | None
    ) = None
    n: Annotated[int, Meta(ge=1, le=1, description="One choice only.")] | None = None
    tools: (
        Annotated[list[dict[str, Any]], Meta(max_length=0, description="Not supported.")] | None
    ) = None
    response_format: ResponseFormat | None = None
    top_p: Annotated[float, Meta(ge=0.0, le=1.0, description=Ignored)] | None = None
    stop: Annotated[str, Meta(description=Ignored)] | list[str] | None = None
    presence_penalty: Annotated[float, Meta(ge=-2.0, le=2.0, description=Ignored)] | None = None
    frequency_penalty: Annotated[float, Meta(ge=-2.0, le=2.0, description=Ignored)] | None = None
    seed: Annotated[int, Meta(ge=-(2**63), le=2**63 - 1, description=Ignored)] | None = None
    user: Annotated[str, Meta(description=Ignored)] | None = None
    # the appliance's own fields
    rag: Annotated[
        bool,
        Meta(
            description="true (default): answer from the indexed documents, the last user "
            "message being the question, with citations and evidence in `rag`; false: plain "
            "chat with the model over the messages, no retrieval."
        ),
    ] = True
    top_k: Annotated[PassageCount, Meta(description="Search hits (rag).")] | None = None
    document_ids: DocumentIds | None = None
    filters: Filters | None = None
    strategy: (
        Annotated[
            StrategyName,
            Meta(
                description="A prompt strategy of the config ([prompts.*]), `extract` (the "
                "documents' sentences, no model) or `generate` (the default prompt); default: "
                "generation.answer_mode (rag)."
            ),
        ]
        | None
    ) = None


# ----------------------------------------------------------------- chat: response


class RagExtra(msgspec.Struct, frozen=True):
    """What a RAG answer rests on; OpenAI clients ignore it, the SDK keeps it
    (`completion.model_extra["rag"]`)."""

    query: Annotated[str, Meta(description="What was searched: the last user message.")]
    citations: list[Citation]
    evidence: list[Evidence]
    grounded: Annotated[float, Meta(ge=0.0, le=1.0)]
    unsupported: list[str]
    strategy: str
    timings: Timings
    finish_reason: Annotated[
        FinishReason, Meta(description="The appliance's own reason (e.g. `repetition`).")
    ]


class RagEvidence(msgspec.Struct, frozen=True):
    """The `rag` of a streamed RAG answer's first chunk, before any word: what was searched
    and the sentences of the retrieved passages that best answer it."""

    query: Annotated[str, Meta(description="What was searched: the last user message.")]
    evidence: list[Evidence]


class PromptTokensDetails(msgspec.Struct, frozen=True):
    cached_tokens: int


class CompletionUsage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


OpenAIFinish = Literal["stop", "length"]


class AssistantMessage(msgspec.Struct, frozen=True):
    content: str
    role: Literal["assistant"] = "assistant"
    refusal: None = None


class Choice(msgspec.Struct, frozen=True):
    index: int
    message: AssistantMessage
    finish_reason: OpenAIFinish
    logprobs: None = None


class ChatCompletion(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    rag: RagExtra | UnsetType = UNSET  # RAG answers only


class Delta(msgspec.Struct, frozen=True):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType = UNSET


class ChunkChoice(msgspec.Struct, frozen=True):
    index: int
    delta: Delta
    finish_reason: OpenAIFinish | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct, frozen=True, kw_only=True):
    """One `data:` event. In a RAG answer the first chunk carries `rag` with the first
    evidence (`RagEvidence`) and the chunk with `finish_reason` the whole `rag`; with
    `stream_options.include_usage` every chunk has `usage` (null but in the last one,
    which has no choices)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | UnsetType | None = UNSET
    rag: RagExtra | RagEvidence | UnsetType = UNSET


# ----------------------------------------------------------------- models, embeddings


class ModelCard(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "appliance"


class ModelList(msgspec.Struct, frozen=True):
    data: list[ModelCard]
    object: Literal["list"] = "list"


EmbeddingText = Annotated[str, Meta(min_length=1, max_length=MAX_EMBEDDING_CHARS)]


class EmbeddingRequest(msgspec.Struct, frozen=True, kw_only=True):
    model: Annotated[
        str, Meta(max_length=256, description="Any name: the live embedding model answers.")
    ]
    input: Annotated[
        EmbeddingText
        | Annotated[list[EmbeddingText], Meta(min_length=1, max_length=MAX_EMBEDDING_INPUTS)],
        Meta(
            description="A text or a list of texts (not token arrays). A text longer than the "
            "embedding model's context is embedded from its start, as ingestion does."
        ),
    ]
    encoding_format: Annotated[
        Literal["float", "base64"],
        Meta(description="`base64`: little-endian float32 (what the OpenAI SDK asks for)."),
    ] = "float"
    dimensions: (
        Annotated[
            int,
            Meta(
                ge=1,
                description="Shorter vectors: the first `dimensions` values, re-normalized; "
                "at most the model's.",
            ),
        ]
        | None
    ) = None
    user: Annotated[str, Meta(description=Ignored)] | None = None


class Embedding(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    object: Literal["list"] = "list"


# ----------------------------------------------------------------- errors


class OpenAIErrorDetail(msgspec.Struct, frozen=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(msgspec.Struct, frozen=True):
    """Every refusal of these routes: what OpenAI clients read (`error.message`)."""

    error: OpenAIErrorDetail
