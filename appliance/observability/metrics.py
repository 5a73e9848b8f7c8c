"""Every Prometheus metric of the appliance, in one registry per app instance.

HTTP request counts and latencies come from Litestar's Prometheus middleware
(default registry); `/metrics` exposes both registries.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from appliance.observability.live_gauges import LiveGauges, Watched

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram(
            "appliance_stage_seconds",
            "Latency of one pipeline stage.",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "appliance_time_to_first_token_seconds",
            "From question received to first answer token.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens_generated = Counter(
            "appliance_tokens_generated", "Answer tokens generated.", registry=r
        )
        self.prompt_tokens = Counter(
            "appliance_prompt_tokens", "Prompt tokens read by the chat model.", registry=r
        )
        self.prompt_tokens_cached = Counter(
            "appliance_prompt_tokens_cached",
            "Prompt tokens reused from a slot's KV cache instead of read again.",
            registry=r,
        )
        self.answer_grounded = Histogram(
            "appliance_answer_grounded",
            "Share of answer sentences supported by the passages the model read.",
            buckets=(0.0, 0.25, 0.5, 0.75, 0.999, 1.0),
            registry=r,
        )
        self.questions = Counter(
            "appliance_questions", "Questions answered, by outcome.", ["outcome"], registry=r
        )
        self.documents_ingested = Counter(
            "appliance_documents_ingested", "Documents stored.", registry=r
        )
        self.chunks_ingested = Counter(
            "appliance_chunks_ingested", "Chunks embedded and stored.", registry=r
        )
        self.files_failed = Counter(
            "appliance_ingest_files_failed", "Uploaded files that failed.", registry=r
        )
        self.ocr_pages = Counter(
            "appliance_ocr_pages", "Pages (and images) read by OCR.", registry=r
        )
        self.source_scans = Counter(
            "appliance_source_scans", "Scans of synced folders, by outcome.", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.source_files = Counter(
            "appliance_source_files", "Files synced folders' scans acted on, by action.",
            ["action"], registry=r,
        )  # fmt: skip
        self.jobs = Gauge(
            "appliance_ingest_jobs", "Ingestion jobs by state.", ["state"], registry=r
        )
        self.queue_depth = Gauge(
            "appliance_queue_depth", "Requests waiting for a worker thread.", ["worker"], registry=r
        )
        self.active_generations = Gauge(
            "appliance_active_generations", "Answers being generated now.", registry=r
        )
        self.slots_active = Gauge(
            "appliance_generation_slots_active", "Continuous-batching slots in use.", registry=r
        )
        self.slots_total = Gauge(
            "appliance_generation_slots", "Continuous-batching slots configured.", registry=r
        )
        self.batch_tokens = Histogram(
            "appliance_decode_batch_tokens",
            "Tokens per llama_decode call (decode tokens + prompt chunk).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.batch_sequences = Histogram(
            "appliance_decode_batch_sequences",
            "Sequences sampled per llama_decode call.",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
            registry=r,
        )
        self.rejections = Counter(
            "appliance_rejections", "Requests refused because a queue was full.", ["worker"],
            registry=r,
        )  # fmt: skip
        self.reconciled = Counter(
            "appliance_reconciled",
            "Repairs made at start: delete_finished (an interrupted delete), "
            "orphan_points_removed (points of no journaled document).",
            ["action"],
            registry=r,
        )
        self.jobs_resumed = Counter(
            "appliance_jobs_resumed", "Ingestion jobs resumed from the journal at start.",
            registry=r,
        )  # fmt: skip
        self.audit_dropped = Gauge(
            "appliance_audit_dropped",
            "Audit records dropped because the audit queue was full (a flood of failures).",
            registry=r,
        )
        self.auth_failures = Counter(
            "appliance_auth_failures",
            "Requests refused at the door: auth_failed (401), forbidden (403, wrong role), "
            "origin_refused (403, foreign Origin).",
            ["reason"],
            registry=r,
        )
        self.model_info = Info("appliance_model", "Loaded models.", ["role"], registry=r)
        self.model_size_bytes = Gauge(
            "appliance_model_size_bytes", "Model file size.", ["role", "name"], registry=r
        )
        self.model_context = Gauge(
            "appliance_model_context_tokens", "Context length in use.", ["role", "name"], registry=r
        )
        self.store_points = Gauge(
            "appliance_store_points", "Chunks in the vector store.", registry=r
        )

    def watch(self, services: Watched) -> None:
        """Export `appliance_ready`, `appliance_part_ready` and `appliance_data_disk_*`,
        read from `services` at each scrape (observability/live_gauges.py)."""
        self.registry.register(LiveGauges(services))

    def observe_step(self, batch_tokens: int, batch_sequences: int) -> None:
        """Called by the engine thread after every decode step."""
        if batch_tokens:
            self.batch_tokens.observe(batch_tokens)
            self.batch_sequences.observe(batch_sequences)
