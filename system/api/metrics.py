"""``GET /api/metrics`` (CONTRACT §2.12): Prometheus text exposition.

Two sources are merged:

- ``ScrapeCollector``: families read at scrape time from the database, the broker, the circuit breakers and this
  process's WebSocket hubs (``hsi_cameras``, ``hsi_open_batches``, ``hsi_queue_depth``, ``hsi_dlq_jobs``,
  ``hsi_deliveries``, ``hsi_alerts``, ``hsi_events_last_24h``, ``hsi_circuit_breaker_state``,
  ``hsi_websocket_connections``, ``hsi_build_info``) and the stored totals, counters counted from the rows
  (``hsi_files_ingested``, ``hsi_detections``, ``hsi_batches_closed``, ``hsi_events_created``,
  ``hsi_alerts_created``, ``hsi_notifications``; one grouped query each, the set cached for 10 s so parallel
  scrapes share it). Stored totals are therefore right on every web process, whichever process did the work; they
  fall when retention deletes rows.
- the process counters and histograms of ``hsi.metrics``: the default registry, or, with
  ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client's ``MultiProcessCollector`` merging every process of the
  host. A family without samples yet still appears with its HELP and TYPE lines (§10 on §2.12). The one process
  counter sharing a stored family's name (``hsi_files_ingested`` of the ingest results that store no row:
  duplicate, ignored, skipped_disabled, a rejected upload) is added into that family, never exposed twice.

No API key unless ``METRICS_REQUIRE_API_KEY`` (``hsi.api.tiers``), never throttled.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from rest_framework.renderers import BaseRenderer, JSONRenderer

from hsi import metrics as process_metrics
from hsi.api.views import ApiView

logger = logging.getLogger("hsi.system.metrics")

WEBSOCKET_CHANNELS = ("events", "system")
STORED_TOTALS_CACHE_KEY = "hsi:metrics:stored_totals"
STORED_TOTALS_TTL_SECONDS = 10
NONE_LABEL = "none"  # the label value of a null column (the risk level of an event not analysed)


def _counts(queryset, field: str) -> dict[str, int]:
    return {str(key): int(n) for key, n in queryset.order_by().values_list(field).annotate(n=Count("pk"))}


def _gauge(name: str, documentation: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


def _grouped(queryset, *fields: str) -> dict[tuple[str, ...], int]:
    """Rows by the values of ``fields`` in one grouped query; a null value is ``"none"``."""
    rows = queryset.order_by().values_list(*fields).annotate(n=Count("pk"))
    return {tuple(NONE_LABEL if v is None else str(v) for v in row[:-1]): int(row[-1]) for row in rows}


def _with_zeros(counts: dict[tuple[str, ...], int], *known: Iterable[str]) -> dict[tuple[str, ...], int]:
    """``counts`` with every combination of the ``known`` label values present (0 when no row has it)."""
    return {**dict.fromkeys(itertools.product(*known), 0), **counts}


def stored_totals() -> dict[str, dict[tuple[str, ...], int]]:
    """The stored totals by family and label values, read from the database at most every 10 s (shared by the
    processes through the cache; read directly when the cache is unreachable)."""
    try:
        totals = cache.get(STORED_TOTALS_CACHE_KEY)
    except Exception:
        logger.warning("metrics: the stored totals cache is unreachable", exc_info=True)
        return _stored_totals_read()
    if totals is None:
        totals = _stored_totals_read()
        cache.set(STORED_TOTALS_CACHE_KEY, totals, STORED_TOTALS_TTL_SECONDS)
    return totals


def _stored_totals_read() -> dict[str, dict[tuple[str, ...], int]]:
    from alerts.models import Alert, ChannelKind, Delivery, DeliveryStatus
    from events.models import AnalysisStatus, Detection, Event, RiskLevel
    from pipeline.ingest.service import ACCEPTED, INVALID
    from pipeline.models import Batch, BatchStatus, CloseReason, FileStatus, IngestedFile

    files: dict[tuple[str, ...], int] = {(ACCEPTED,): 0, (INVALID,): 0}
    for (status,), n in _grouped(IngestedFile.objects.all(), "status").items():
        files[(INVALID if status == FileStatus.INVALID else ACCEPTED,)] += n
    closed = Batch.objects.filter(Q(closed_at__isnull=False) | ~Q(status=BatchStatus.OPEN))
    levels = [*RiskLevel.values, NONE_LABEL]
    return {
        "hsi_files_ingested": files,
        "hsi_detections": _grouped(Detection.objects.all(), "object_type"),
        "hsi_batches_closed": _with_zeros(_grouped(closed, "close_reason"), CloseReason.values),
        "hsi_events_created": _with_zeros(
            _grouped(Event.objects.all(), "analysis_status", "risk_level"), AnalysisStatus.values, levels
        ),
        "hsi_alerts_created": _with_zeros(_grouped(Alert.objects.all(), "severity"), RiskLevel.values),
        "hsi_notifications": _with_zeros(
            _grouped(Delivery.objects.all(), "channel__kind", "status"), ChannelKind.values, DeliveryStatus.values
        ),
    }


# name: (HELP, labels) of the stored totals; every HELP says that the value falls when retention deletes rows.
STORED_FAMILIES = {
    "hsi_files_ingested": (
        "Files ingested, by result: accepted and invalid are the rows stored (falls when retention deletes); "
        "duplicate, ignored, skipped_disabled and rejected uploads store no row and are counted by the processes",
        ["result"],
    ),
    "hsi_detections": ("Detections: rows stored, by object type; falls when retention deletes", ["object_type"]),
    "hsi_batches_closed": ("Batches closed: rows stored, by close reason; falls when retention deletes", ["reason"]),
    "hsi_events_created": (
        "Events created: rows stored (soft-deleted included), by analysis status and risk level (none: not "
        "analysed); falls when retention deletes",
        ["analysis_status", "risk_level"],
    ),
    "hsi_alerts_created": ("Alerts created: rows stored, by severity; falls when retention deletes", ["severity"]),
    "hsi_notifications": (
        "Notification deliveries: rows stored, by channel kind and delivery status (result); falls when retention "
        "deletes",
        ["kind", "result"],
    ),
}


def websocket_connections() -> dict[str, int]:
    """Open ``/ws/events`` and ``/ws/system`` connections of this process (members of its stream hubs)."""
    from system.websocket import hub

    counts = dict.fromkeys(WEBSOCKET_CHANNELS, 0)
    for stream_hub in list(hub._hubs.values()):
        if stream_hub.stream in counts:
            counts[stream_hub.stream] += len(stream_hub.members)
    return counts


class ScrapeCollector:
    """The families collected from stored state at every scrape; one failing source never fails the scrape."""

    def collect(self) -> Iterable[Metric]:
        for build in (
            self._cameras,
            self._open_batches,
            self._queue_depth,
            self._dlq,
            self._deliveries,
            self._alerts,
            self._events_last_24h,
            self._breakers,
            self._websockets,
            self._build_info,
            self._stored_totals,
        ):
            yield from self._safely(build)

    @staticmethod
    def _safely(build: Callable[[], Iterable[Metric]]) -> Iterable[Metric]:
        try:
            return list(build())
        except Exception:
            logger.warning("metrics: %s could not be collected", build.__name__, exc_info=True)
            return []

    def _cameras(self):
        from cameras.models import Camera, CameraStatus

        counts = _counts(Camera.objects.all(), "status")
        yield _gauge("hsi_cameras", "Cameras by status", "status", {s: counts.get(s, 0) for s in CameraStatus.values})

    def _open_batches(self):
        from pipeline.models import Batch, BatchStatus

        yield GaugeMetricFamily(
            "hsi_open_batches", "Open batches", value=Batch.objects.filter(status=BatchStatus.OPEN).count()
        )

    def _queue_depth(self):
        from system.status import broker_queue_depths

        depths = broker_queue_depths(with_default=True)
        yield _gauge("hsi_queue_depth", "Tasks waiting in the broker, by queue (0 in eager mode)", "queue", depths)

    def _dlq(self):
        from pipeline.models import FailedJob, JobQueue

        counts = _counts(FailedJob.objects.all(), "queue")
        values = {queue: counts.get(queue, 0) for queue in JobQueue.values}
        yield _gauge("hsi_dlq_jobs", "Dead-letter jobs, by queue", "queue", values)

    def _deliveries(self):
        from alerts.models import Delivery, DeliveryStatus

        counts = _counts(Delivery.objects.all(), "status")
        values = {status: counts.get(status, 0) for status in DeliveryStatus.values}
        yield _gauge("hsi_deliveries", "Notification deliveries, by status", "status", values)

    def _alerts(self):
        from alerts.models import Alert, AlertStatus

        counts = _counts(Alert.objects.all(), "status")
        yield _gauge("hsi_alerts", "Alerts, by status", "status", {s: counts.get(s, 0) for s in AlertStatus.values})

    def _events_last_24h(self):
        from events.models import Event, RiskLevel

        since = timezone.now() - dt.timedelta(hours=24)
        counts = _counts(Event.objects.filter(deleted_at__isnull=True, started_at__gte=since), "risk_level")
        values = {level: counts.get(level, 0) for level in RiskLevel.values}
        yield _gauge("hsi_events_last_24h", "Events started in the last 24 hours, by risk level", "risk_level", values)

    def _breakers(self):
        from hsi.resilience import BREAKER_NAMES, STATE_NUMBERS
        from system.health import circuit_state

        family = GaugeMetricFamily(
            "hsi_circuit_breaker_state", "Circuit breaker state (0 closed, 1 half_open, 2 open)", labels=["name"]
        )
        for name in BREAKER_NAMES:
            state = circuit_state(name)
            if state in STATE_NUMBERS:
                family.add_metric([name], STATE_NUMBERS[state])
        yield family

    def _websockets(self):
        counts = websocket_connections()
        yield _gauge(
            "hsi_websocket_connections", "Open WebSocket connections of this process, by channel", "channel", counts
        )

    def _build_info(self):
        yield _gauge("hsi_build_info", "Build information", "version", {settings.HSI_VERSION: 1})

    def _stored_totals(self):
        totals = stored_totals()
        for name, (documentation, labels) in STORED_FAMILIES.items():
            family = CounterMetricFamily(name, documentation, labels=labels)
            for values, n in sorted(totals[name].items()):
                family.add_metric(list(values), n)
            yield family


def _declared_process_metrics() -> list:
    """Every counter/histogram defined in ``hsi.metrics``."""
    from prometheus_client.metrics import MetricWrapperBase

    return [value for value in vars(process_metrics).values() if isinstance(value, MetricWrapperBase)]


class _Exposition:
    """What one scrape exposes: the process families (this process or the host's) plus the scrape-time ones."""

    def __init__(self, process_source):
        self.process_source = process_source

    def collect(self) -> Iterable[Metric]:
        scraped = {family.name: family for family in ScrapeCollector().collect()}
        seen = set()
        for family in self.process_source.collect():
            seen.add(family.name)
            yield _added(scraped.pop(family.name), family) if family.name in scraped else family
        for declared in _declared_process_metrics():  # multiprocess mode knows only families with samples
            for family in declared.describe():
                if family.name not in seen and family.name not in scraped:
                    seen.add(family.name)
                    yield family
        yield from scraped.values()


def _added(stored: Metric, process: Metric) -> Metric:
    """The stored counter family with the process counts of the same name added, per label set (the process
    counter's ``_created`` samples are dropped: a sum with stored rows has no creation time)."""
    totals = {tuple(sorted(sample.labels.items())): sample for sample in stored.samples}
    for sample in process.samples:
        if sample.name.endswith("_total"):
            key = tuple(sorted(sample.labels.items()))
            earlier = totals.get(key)
            totals[key] = sample._replace(value=sample.value + (earlier.value if earlier else 0))
    stored.samples = list(totals.values())
    return stored


def _process_source():
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if not directory:
        return REGISTRY
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def metrics_text() -> bytes:
    return generate_latest(_Exposition(_process_source()))


class PrometheusTextRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes | str):
            return data
        return json.dumps(data)


class MetricsView(ApiView):
    renderer_classes = [JSONRenderer, PrometheusTextRenderer]
    throttle_classes: list = []

    @extend_schema(
        summary="Prometheus metrics",
        tags=["metrics"],
        responses={200: OpenApiResponse(description="Prometheus text exposition format 0.0.4")},
    )
    def get(self, request):
        return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
