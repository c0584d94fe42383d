"""Process counters and histograms of CONTRACT §2.12, defined once and imported where the work happens.

The families exposed at scrape time from the database (cameras, open batches, queue depths, and the stored totals:
files ingested, detections, batches closed, events, alerts, notifications) are collected by the metrics endpoint,
not here, so they are right on every web process whichever process did the work (§10 on §2.12). With
``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client merges these across the processes of one host.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

# Only the ingest results that store no IngestedFile row (duplicate, ignored, skipped_disabled, a rejected upload):
# the metrics endpoint adds the stored rows to this family at scrape time.
files_not_stored = Counter("hsi_files_ingested", "Files ingest stored no row for, by result", ["result"])
detector_inference_seconds = Histogram(
    "hsi_detector_inference_seconds", "Detector call duration", ["backend"], buckets=STAGE_BUCKETS
)
llm_request_seconds = Histogram(
    "hsi_llm_request_seconds", "LLM call duration, by outcome", ["backend", "outcome"], buckets=STAGE_BUCKETS
)
files_per_task = Histogram(
    "hsi_pipeline_files_per_task",
    "Files claimed by one processing task (more than one: a burst processed in chunks)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 200),
)
pipeline_stage_seconds = Histogram(
    "hsi_pipeline_stage_duration_seconds",
    "Time spent per pipeline stage (ingest, detect, batch_wait, analyze, total)",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
http_requests = Counter(
    "hsi_http_requests", "HTTP requests, by method, route (URL pattern name) and status", ["method", "route", "status"]
)
http_request_duration_seconds = Histogram(
    "hsi_http_request_duration_seconds", "HTTP request duration, by route", ["route"], buckets=HTTP_BUCKETS
)
