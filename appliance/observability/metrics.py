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
        # every metric is named appliance_<name>
        counter = partial(Counter, namespace="appliance", registry=self.registry)
        gauge = partial(Gauge, namespace="appliance", registry=self.registry)
        histogram = partial(Histogram, namespace="appliance", registry=self.registry)
        latency = partial(histogram, buckets=_LATENCY_BUCKETS)
        self.stage_seconds = latency("stage_seconds", "Latency of one pipeline stage.", ["stage"])
        self.time_to_first_token = latency(
            "time_to_first_token_seconds", "From question received to first answer token."
        )
        self.tokens_generated = counter("tokens_generated", "Answer tokens generated.")
        self.prompt_tokens = counter("prompt_tokens", "Prompt tokens read by the chat model.")
        self.prompt_tokens_cached = counter(
            "prompt_tokens_cached",
            "Prompt tokens reused from a slot's KV cache instead of read again.",
        )
        self.answer_grounded = histogram(
            "answer_grounded",
            "Share of answer sentences supported by the passages the model read.",
            buckets=(0.0, 0.25, 0.5, 0.75, 0.999, 1.0),
        )
        self.questions = counter("questions", "Questions answered, by outcome.", ["outcome"])
        self.documents_ingested = counter("documents_ingested", "Documents stored.")
        self.chunks_ingested = counter("chunks_ingested", "Chunks embedded and stored.")
        self.files_failed = counter("ingest_files_failed", "Uploaded files that failed.")
        self.ocr_pages = counter("ocr_pages", "Pages (and images) read by OCR.")
        self.source_scans = counter(
            "source_scans", "Scans of synced folders, by outcome.", ["outcome"]
        )
        self.source_files = counter(
            "source_files", "Files synced folders' scans acted on, by action.", ["action"]
        )
        self.jobs = gauge("ingest_jobs", "Ingestion jobs by state.", ["state"])
        self.queue_depth = gauge("queue_depth", "Requests waiting for a worker thread.", ["worker"])
        self.active_generations = gauge("active_generations", "Answers being generated now.")
        self.slots_active = gauge("generation_slots_active", "Continuous-batching slots in use.")
        self.slots_total = gauge("generation_slots", "Continuous-batching slots configured.")
        self.batch_tokens = histogram(
            "decode_batch_tokens",
            "Tokens per llama_decode call (decode tokens + prompt chunk).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.batch_sequences = histogram(
            "decode_batch_sequences",
            "Sequences sampled per llama_decode call.",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
        )
        self.rejections = counter(
            "rejections", "Requests refused because a queue was full.", ["worker"]
        )
        self.reconciled = counter(
            "reconciled",
            "Repairs made at start: delete_finished (an interrupted delete), "
            "orphan_points_removed (points of no journaled document).",
            ["action"],
        )
        self.jobs_resumed = counter(
            "jobs_resumed", "Ingestion jobs resumed from the journal at start."
        )
        self.audit_dropped = gauge(
            "audit_dropped",
            "Audit records dropped because the audit queue was full (a flood of failures).",
        )
        self.auth_failures = counter(
            "auth_failures",
            "Requests refused at the door: auth_failed (401), forbidden (403, wrong role), "
            "origin_refused (403, foreign Origin).",
            ["reason"],
        )
        self.model_info = Info(
            "model", "Loaded models.", ["role"], namespace="appliance", registry=self.registry
        )
        self.model_size_bytes = gauge("model_size_bytes", "Model file size.", ["role", "name"])
        self.model_context = gauge(
            "model_context_tokens", "Context length in use.", ["role", "name"]
        )
        self.store_points = gauge("store_points", "Chunks in the vector store.")

    def watch(self, services: Watched) -> None:
        """Export `appliance_ready`, `appliance_part_ready` and `appliance_data_disk_*`,
        read from `services` at each scrape (observability/live_gauges.py)."""
        self.registry.register(LiveGauges(services))

    def observe_step(self, batch_tokens: int, batch_sequences: int) -> None:
        """Called by the engine thread after every decode step."""
        if batch_tokens:
            self.batch_tokens.observe(batch_tokens)
            self.batch_sequences.observe(batch_sequences)
