"""Process counters and histograms of CONTRACT §2.12, defined once and imported where the work happens.

The families exposed at scrape time from the database (cameras, open batches, queue depths, ...) are collected by
the metrics endpoint, not here. With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client merges these across the
processes of one host.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

files_ingested = Counter("hsi_files_ingested", "Files seen by ingest, by result", ["result"])
detections_total = Counter("hsi_detections", "Detections stored, by object type", ["object_type"])
detector_inference_seconds = Histogram(
    "hsi_detector_inference_seconds", "Detector call duration", ["backend"], buckets=STAGE_BUCKETS
)
llm_request_seconds = Histogram(
    "hsi_llm_request_seconds", "LLM call duration, by outcome", ["backend", "outcome"], buckets=STAGE_BUCKETS
)
batches_closed = Counter("hsi_batches_closed", "Batches closed, by reason", ["reason"])
events_created = Counter("hsi_events_created", "Events created", ["analysis_status", "risk_level"])
alerts_created = Counter("hsi_alerts_created", "Alerts created, by severity", ["severity"])
notifications_total = Counter("hsi_notifications", "Notification attempts", ["kind", "result"])
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
