"""Which vector store the settings name, and which collection is live."""

from __future__ import annotations

from pathlib import Path

from appliance.config.paths import data_dir, models_dir
from appliance.config.schema import Settings
from appliance.models.locate import ModelError
from appliance.models.registry import Registry
from appliance.runtime.files import sha256_file
from appliance.store.active_index import ActiveIndex, read_active_index, write_active_index
from appliance.store.edge import EdgeStore
from appliance.store.hybrid import NarrowedSearch
from appliance.store.journal import count_documents
from appliance.store.lexical import Bm25Params, LexicalEncoder
from appliance.store.qdrant import QdrantStore


def make_store(
    settings: Settings, dim: int, collection: str | None = None
) -> QdrantStore | EdgeStore:
    """A Qdrant server by URL, else the configured embedded engine under data_dir.
    `collection`: the live one (index.json after an embedding switch), else the config's."""
    s, r = settings.storage, settings.retrieval
    name = collection or s.collection
    lexical = LexicalEncoder(Bm25Params(avg_len=r.bm25_avg_len, k=r.bm25_k, b=r.bm25_b))
    narrowed = NarrowedSearch(ef=s.filtered_search_ef, acorn=s.filtered_search_acorn)
    if s.qdrant_url:
        return QdrantStore(
            collection=name, dim=dim, url=s.qdrant_url, api_key=s.qdrant_api_key,
            lexical=lexical, lexical_weight=r.bm25_weight, narrowed=narrowed,
        )  # fmt: skip
    if s.embedded_engine == "edge":
        return EdgeStore(
            path=data_dir(settings) / "edge" / name,
            dim=dim,
            search_threads=s.edge_search_threads,
            lexical=lexical,
            lexical_weight=r.bm25_weight,
            narrowed=narrowed,
        )
    return QdrantStore(
        collection=name, dim=dim, path=data_dir(settings) / "qdrant", lexical=lexical,
        lexical_weight=r.bm25_weight, narrowed=narrowed,
    )  # fmt: skip


def live_index(settings: Settings, embedding_path: Path) -> ActiveIndex:
    """The live collection, after checking that `embedding_path` is the model its vectors
    came from (by SHA-256, whatever the config or the registry names). An empty index
    takes the model it is given."""
    root = data_dir(settings)
    index = read_active_index(root, settings.storage.collection)
    digest = sha256_file(embedding_path)
    if index.embedding_sha256 != digest:
        documents = count_documents(root / "journal.sqlite3")
        if index.embedding_sha256 and documents:
            was = index.embedding or "the default model"
            raise ModelError(
                f"the index ({index.collection}, {documents} documents) holds vectors of "
                f"the embedding model {was} (sha256 {index.embedding_sha256[:16]}...), not of "
                f"{embedding_path.name} (sha256 {digest[:16]}...): vectors of two models "
                "cannot be searched together. Go back to that model (`appliance models use "
                "NAME`, or models.embedding_model), then switch through the running server"
            )
        index.embedding_sha256 = digest
        if not documents:
            index.embedding = Registry.load(models_dir(settings)).active.get("embedding") or ""
        write_active_index(root, index)
    return index
