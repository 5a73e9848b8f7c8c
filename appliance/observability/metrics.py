"""Every Prometheus metric of the appliance, in one registry per app instance.

HTTP request counts and latencies come from Litestar's Prometheus middleware
(default registry); `/metrics` exposes both registries.
"""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from appliance.observability.live_gauges import LiveGauges, Watched

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        counter = partial(Counter, registry=self.registry)
        gauge = partial(Gauge, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        latency = partial(histogram, buckets=_LATENCY_BUCKETS)
        self.stage_seconds = latency(
            "appliance_stage_seconds", "Latency of one pipeline stage.", ["stage"]
        )
        self.time_to_first_token = latency(
            "appliance_time_to_first_token_seconds", "From question received to first answer token."
        )
        self.tokens_generated = counter("appliance_tokens_generated", "Answer tokens generated.")
        self.prompt_tokens = counter(
            "appliance_prompt_tokens", "Prompt tokens read by the chat model."
        )
        self.prompt_tokens_cached = counter(
            "appliance_prompt_tokens_cached",
            "Prompt tokens reused from a slot's KV cache instead of read again.",
        )
        self.answer_grounded = histogram(
            "appliance_answer_grounded",
            "Share of answer sentences supported by the passages the model read.",
            buckets=(0.0, 0.25, 0.5, 0.75, 0.999, 1.0),
        )
        self.questions = counter(
            "appliance_questions", "Questions answered, by outcome.", ["outcome"]
        )
        self.documents_ingested = counter("appliance_documents_ingested", "Documents stored.")
        self.chunks_ingested = counter("appliance_chunks_ingested", "Chunks embedded and stored.")
        self.files_failed = counter("appliance_ingest_files_failed", "Uploaded files that failed.")
        self.ocr_pages = counter("appliance_ocr_pages", "Pages (and images) read by OCR.")
        self.source_scans = counter(
            "appliance_source_scans", "Scans of synced folders, by outcome.", ["outcome"]
        )
        self.source_files = counter(
            "appliance_source_files", "Files synced folders' scans acted on, by action.", ["action"]
        )
        self.jobs = gauge("appliance_ingest_jobs", "Ingestion jobs by state.", ["state"])
        self.queue_depth = gauge(
            "appliance_queue_depth", "Requests waiting for a worker thread.", ["worker"]
        )
        self.active_generations = gauge(
            "appliance_active_generations", "Answers being generated now."
        )
        self.slots_active = gauge(
            "appliance_generation_slots_active", "Continuous-batching slots in use."
        )
        self.slots_total = gauge(
            "appliance_generation_slots", "Continuous-batching slots configured."
        )
        self.batch_tokens = histogram(
            "appliance_decode_batch_tokens",
            "Tokens per llama_decode call (decode tokens + prompt chunk).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.batch_sequences = histogram(
            "appliance_decode_batch_sequences",
            "Sequences sampled per llama_decode call.",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
        )
        self.rejections = counter(
            "appliance_rejections", "Requests refused because a queue was full.", ["worker"]
        )
        self.reconciled = counter(
            "appliance_reconciled",
            "Repairs made at start: delete_finished (an interrupted delete), "
            "orphan_points_removed (points of no journaled document).",
            ["action"],
        )
        self.jobs_resumed = counter(
            "appliance_jobs_resumed", "Ingestion jobs resumed from the journal at start."
        )
        self.audit_dropped = gauge(
            "appliance_audit_dropped",
            "Audit records dropped because the audit queue was full (a flood of failures).",
        )
        self.auth_failures = counter(
            "appliance_auth_failures",
            "Requests refused at the door: auth_failed (401), forbidden (403, wrong role), "
            "origin_refused (403, foreign Origin).",
            ["reason"],
        )
        self.model_info = Info(
            "appliance_model", "Loaded models.", ["role"], registry=self.registry
        )
        self.model_size_bytes = gauge(
            "appliance_model_size_bytes", "Model file size.", ["role", "name"]
        )
        self.model_context = gauge(
            "appliance_model_context_tokens", "Context length in use.", ["role", "name"]
        )
        self.store_points = gauge("appliance_store_points", "Chunks in the vector store.")

    def watch(self, services: Watched) -> None:
        """Export `appliance_ready`, `appliance_part_ready` and `appliance_data_disk_*`,
        read from `services` at each scrape (observability/live_gauges.py)."""
        self.registry.register(LiveGauges(services))

    def observe_step(self, batch_tokens: int, batch_sequences: int) -> None:
        """Called by the engine thread after every decode step."""
        if batch_tokens:
            self.batch_tokens.observe(batch_tokens)
            self.batch_sequences.observe(batch_sequences)
