"""The `[retrieval]` section: chunking and search."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from appliance.config.base import Base


class RetrievalSettings(Base, frozen=True):
    chunk_tokens: Annotated[
        int, Meta(ge=16, le=500, description="Chunk size, in embedding-model tokens.")
    ] = 200
    chunk_overlap: Annotated[
        int, Meta(ge=0, le=250, description="Tokens shared by consecutive chunks.")
    ] = 40
    top_k: Annotated[
        int,
        Meta(
            ge=1,
            le=50,
            description=(
                "Search hits per question; the prompt strategy gives the model at most its "
                "`passages` of them."
            ),
        ),
    ] = 5
    min_score: Annotated[
        float,
        Meta(
            ge=-1.0,
            le=1.0,
            description=(
                "Passages scoring below this cosine similarity are not given to the model "
                "(search still returns them). Fewer distractors, better answers from small models."
            ),
        ),
    ] = 0.3
    max_top_k: Annotated[
        int, Meta(ge=1, le=1000, description="Largest top_k a search request may ask for.")
    ] = 50
    embed_batch_size: Annotated[
        int, Meta(ge=1, le=512, description="Chunks embedded per llama.cpp call in ingestion.")
    ] = 16
    context_tokens: Annotated[
        int,
        Meta(
            ge=32,
            le=32768,
            description=(
                "Most chat-model tokens of document text in one prompt (a prompt strategy "
                "may set its own). Also sizes models.chat_ctx when that is 0."
            ),
        ),
    ] = 240
    html_main_content: Annotated[
        bool,
        Meta(
            description=(
                "Index the main content of HTML pages only: drop navigation, headers, footers, "
                "sidebars (nav/header/footer/aside, ARIA roles, DocBook nav tables)."
            )
        ),
    ] = True
    mode: Annotated[
        Literal["dense", "hybrid"],
        Meta(
            description=(
                "Default search: 'dense' (nearest chunks by cosine) or 'hybrid' (dense and BM25 "
                "rankings fused by reciprocal rank: finds exact tokens such as error codes, part "
                "numbers, settings). A request may choose (`retrieval`); both use the same index."
            )
        ),
    ] = "hybrid"
    bm25_weight: Annotated[
        float,
        Meta(
            ge=0,
            le=10,
            description=(
                "Weight of the BM25 ranking in the fusion, the dense ranking's being 1 "
                "(reciprocal rank fusion, k = 60). 0.5 measured best on the project's questions "
                "(bench/hybrid.py): exact tokens still found, fewer off-topic passages."
            ),
        ),
    ] = 0.5
    bm25_avg_len: Annotated[
        float,
        Meta(
            gt=0,
            le=100000,
            description=(
                "BM25 average chunk length, in words. Baked into the stored sparse vectors: a "
                "change re-encodes every chunk at the next start (from the stored text)."
            ),
        ),
    ] = 100.0
    bm25_k: Annotated[
        float, Meta(ge=0, le=10, description="BM25 term-frequency saturation k1 (as bm25_avg_len).")
    ] = 1.2
    bm25_b: Annotated[
        float, Meta(ge=0, le=1, description="BM25 length normalisation b (as bm25_avg_len).")
    ] = 0.75

    def __post_init__(self) -> None:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("`chunk_overlap` must be smaller than `chunk_tokens`")
