"""The seed's stack, kept as the benchmark baseline: FastAPI + pydantic, llama-cpp-python
embeddings and qdrant-client local mode, one request at a time (a global lock, the
usual way to share one llama context). Run: uvicorn bench.reference.app:app.

Environment: REFERENCE_MODEL (embedding GGUF), REFERENCE_STORE (qdrant-client path).
"""

from __future__ import annotations

import os
import threading

from fastapi import FastAPI
from llama_cpp import Llama
from pydantic import BaseModel, Field
from qdrant_client import QdrantClient

app = FastAPI()
_lock = threading.Lock()
_llm = Llama(
    model_path=os.environ["REFERENCE_MODEL"], embedding=True, n_ctx=512, n_batch=512,
    n_ubatch=512, n_threads=len(os.sched_getaffinity(0)), verbose=False,
)  # fmt: skip
_client = QdrantClient(path=os.environ["REFERENCE_STORE"])


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    top_k: int = Field(default=5, ge=1, le=100)


class Hit(BaseModel):
    score: float
    text: str


class SearchResponse(BaseModel):
    hits: list[Hit]


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/search")
def search(body: SearchRequest) -> SearchResponse:
    with _lock:
        vector = _llm.embed(body.query, normalize=True)
        points = _client.query_points("c", query=vector, limit=body.top_k, with_payload=True)
    return SearchResponse(
        hits=[
            Hit(score=p.score, text=str((p.payload or {}).get("text", ""))) for p in points.points
        ]
    )
