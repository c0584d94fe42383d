"""The AI audit (CONTRACT §2.17): reads of EventAudit rows, their statistics, and the quality evaluation.

Reads are ``.values()`` rows joined with the event's camera, status and score, so a page costs two queries
whatever its size. ``audit_evaluate`` always stores the consistency score; with an LLM backend it also asks the
model to grade the analysis (``complete``), else, or when that call fails, the evaluation is ``partial``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Avg, Count, F, Q, QuerySet
from django.db.models.functions import Abs, Coalesce, TruncDate
from django.utils import timezone

from events.models import (
    AnalysisStatus,
    AnalyzerBackend,
    EvaluationStatus,
    Event,
    EventAudit,
    EventFeedback,
    FeedbackType,
    ParseStatus,
)
from hsi.api.errors import NotFound
from hsi.api.pagination import PageRequest, envelope, offset_slice
from hsi.resilience import PipelineError, breaker
from hsi.timeutils import utc_iso
from pipeline.analyzers import get_llm_backend, resolve_backend_name
from pipeline.analyzers.base import LLMBackend
from pipeline.analyzers.parsing import clean_text, coerce_number, find_object

logger = logging.getLogger("hsi.pipeline.ai_audit")

AUDIT_FIELDS = (
    "id",
    "event_id",
    "backend",
    "model",
    "prompt",
    "prompt_chars",
    "prompt_token_estimate",
    "raw_response",
    "parse_status",
    "parse_error",
    "llm_risk_score",
    "llm_risk_level",
    "rules_risk_score",
    "attempts",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "fallback_reason",
    "context_flags",
    "context_usage_score",
    "reasoning_coherence_score",
    "risk_justification_score",
    "consistency_score",
    "overall_quality_score",
    "evaluation_status",
    "evaluation_critique",
    "evaluated_at",
    "created_at",
)
EVENT_FIELDS = {
    "camera_id": "event__camera_id",
    "analysis_status": "event__analysis_status",
    "risk_score": "event__risk_score",
}
LIST_OMITTED = ("prompt", "raw_response")
TIME_FIELDS = ("evaluated_at", "created_at")
GRADES = {
    "context_usage": "context_usage_score",
    "reasoning_coherence": "reasoning_coherence_score",
    "risk_justification": "risk_justification_score",
    "overall": "overall_quality_score",
}
CRITIQUE_MAX = 4000


# --- reads ------------------------------------------------------------------------------------------------------


def audits() -> QuerySet[EventAudit]:
    """Every audit with its event's camera, status and score; newest first."""
    return EventAudit.objects.annotate(**{name: F(path) for name, path in EVENT_FIELDS.items()}).order_by(
        "-created_at", "-id"
    )


def audit_json(row: dict) -> dict:
    item = {name: row[name] for name in (*AUDIT_FIELDS, *EVENT_FIELDS) if name in row}
    for name in TIME_FIELDS:
        item[name] = utc_iso(item[name])
    return item


def audit_page(queryset: QuerySet[EventAudit], page: PageRequest) -> dict:
    columns = [name for name in (*AUDIT_FIELDS, *EVENT_FIELDS) if name not in LIST_OMITTED]
    rows, has_more = offset_slice(queryset.values(*columns), page)
    return envelope([audit_json(row) for row in rows], total=queryset.count(), page=page, has_more=has_more)


def audit_detail(event_id: int) -> dict:
    row = audits().filter(event_id=event_id).values(*AUDIT_FIELDS, *EVENT_FIELDS).first()
    if row is None:
        if Event.objects.filter(pk=event_id).exists():
            raise NotFound(f"Event {event_id} has no AI audit")
        raise NotFound(f"Event {event_id} not found")
    return audit_json(row)


# --- stats ------------------------------------------------------------------------------------------------------


def _window(days: int, now: dt.datetime) -> tuple[dt.datetime, list[dt.date]]:
    """Start of the first of the last ``days`` local calendar days (today included), and those days."""
    zone = ZoneInfo(settings.TIME_ZONE)
    today = now.astimezone(zone).date()
    dates = [today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    return dt.datetime.combine(dates[0], dt.time.min, tzinfo=zone), dates


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _counts_by(queryset: QuerySet, field: str, choices) -> dict[str, int]:
    counts = dict.fromkeys(choices.values, 0)
    for row in queryset.order_by().values(field).annotate(n=Count("id")):
        counts[row[field]] = row["n"]
    return counts


def _p95(queryset: QuerySet[EventAudit], count: int) -> int | None:
    """Nearest-rank 95th percentile of ``latency_ms``."""
    if not count:
        return None
    rank = math.ceil(0.95 * count) - 1
    return queryset.order_by("latency_ms").values_list("latency_ms", flat=True)[rank]


def _by_day(queryset: QuerySet[EventAudit], dates: list[dt.date]) -> list[dict]:
    zone = ZoneInfo(settings.TIME_ZONE)
    fallback = Q(event__analysis_status=AnalysisStatus.FALLBACK)
    rows = (
        queryset.order_by()
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(count=Count("id"), fallback=Count("id", filter=fallback))
    )
    found = {row["day"]: row for row in rows}
    return [
        {
            "date": day.isoformat(),
            "count": found[day]["count"] if day in found else 0,
            "fallback": found[day]["fallback"] if day in found else 0,
        }
        for day in dates
    ]


def audit_stats(*, days: int = 7, camera_id: str | None = None, now: dt.datetime | None = None) -> dict:
    """Statistics of the audits created during the last ``days`` local calendar days (today included)."""
    now = now or timezone.now()
    since, dates = _window(days, now)
    scope = EventAudit.objects.filter(created_at__gte=since, created_at__lte=now)
    events = Event.objects.filter(created_at__gte=since, created_at__lte=now)
    if camera_id:
        scope = scope.filter(event__camera_id=camera_id)
        events = events.filter(camera_id=camera_id)
    totals = scope.aggregate(
        audited=Count("id"),
        fallback=Count("id", filter=Q(event__analysis_status=AnalysisStatus.FALLBACK)),
        latency=Avg("latency_ms"),
        prompt_tokens=Avg(Coalesce("prompt_tokens", "prompt_token_estimate"), filter=~Q(backend="rules")),
        quality=Avg("overall_quality_score"),
        gap=Avg(Abs(F("event__risk_score") - F("rules_risk_score"))),
    )
    audited = totals["audited"]
    feedback = EventFeedback.objects.filter(event_id__in=scope.values("event_id"))
    return {
        "total_events": events.count(),
        "audited_events": audited,
        "by_backend": _counts_by(scope, "backend", AnalyzerBackend),
        "by_parse_status": _counts_by(scope, "parse_status", ParseStatus),
        "fallback_rate": round(totals["fallback"] / audited, 4) if audited else 0.0,
        "avg_latency_ms": _rounded(totals["latency"]),
        "p95_latency_ms": _p95(scope, audited),
        "avg_prompt_tokens": _rounded(totals["prompt_tokens"]),
        "avg_quality_score": _rounded(totals["quality"]),
        "avg_score_gap": _rounded(totals["gap"]),
        "feedback": _counts_by(feedback, "feedback_type", FeedbackType),
        "audits_by_day": _by_day(scope, dates),
    }


# --- evaluation -------------------------------------------------------------------------------------------------

EVALUATION_SYSTEM = """You review the work of a home-security AI analyst. You receive the prompt the analyst was \
given (the camera, time, detections and context) and the verdict it produced. Grade the verdict from 1 (poor) to \
5 (excellent) on:
- context_usage: did it use the context given (zones, time of day, baseline, entities, history, feedback)?
- reasoning_coherence: is the reasoning clear, consistent and free of invented facts?
- risk_justification: does the evidence justify the risk score and level?
- overall: the overall quality of the analysis.

Answer with exactly one JSON object and nothing else:
{"context_usage": <1-5>, "reasoning_coherence": <1-5>, "risk_justification": <1-5>, "overall": <1-5>, \
"critique": "<2-3 sentences>"}"""


def consistency_score(risk_score: int | None, rules_risk_score: int) -> float | None:
    """5 − min(4, |risk_score − rules_risk_score| / 10): 5 when the analyzers agree, 1 when 40+ points apart."""
    if risk_score is None:
        return None
    return 5 - min(4.0, abs(risk_score - rules_risk_score) / 10)


def evaluation_prompt(audit: EventAudit, event: Event) -> str:
    stored = audit.prompt or "(none: the built-in rules analyzer produced this verdict)"
    stored = stored[: settings.LLM_MAX_PROMPT_CHARS]
    return (
        f"PROMPT GIVEN TO THE ANALYST\n{stored}\n\n"
        f"VERDICT\nrisk_score: {event.risk_score}\nrisk_level: {event.risk_level}\nsummary: {event.summary}\n"
        f"reasoning: {event.reasoning}\nrecommended_action: {event.recommended_action}\n"
        f"analysis: {event.analysis_status} (backend {audit.backend}, model {audit.model or 'unknown'})\n\n"
        f"REFERENCE\nThe rules analyzer scored the same batch {audit.rules_risk_score}.\n\n"
        "TASK\nGrade this analysis. Answer with the JSON object only."
    )


def parse_grades(text: str) -> tuple[dict[str, float], str] | None:
    """(grades clamped to 1–5 by audit column, critique), or None when any grade is missing or not numeric."""
    data, _ = find_object(clean_text(text or ""))
    if data is None:
        return None
    grades = {}
    for key, column in GRADES.items():
        value = coerce_number(data.get(key))
        if value is None:
            return None
        grades[column] = max(1.0, min(5.0, value))
    critique = data.get("critique")
    critique = critique.strip()[:CRITIQUE_MAX] if isinstance(critique, str) else ""
    return grades, critique


def _llm_grades(backend: LLMBackend, audit: EventAudit, event: Event) -> tuple[dict[str, float], str] | None:
    user = evaluation_prompt(audit, event)
    try:
        completion = breaker("llm").call(lambda: backend.complete(EVALUATION_SYSTEM, user))
    except PipelineError as error:
        logger.warning("AI audit evaluation of event %s: LLM call failed: %s", event.pk, error)
        return None
    except Exception:
        logger.exception("AI audit evaluation of event %s: LLM backend raised unexpectedly", event.pk)
        return None
    grades = parse_grades(completion.text)
    if grades is None:
        logger.warning("AI audit evaluation of event %s: unusable grades %r", event.pk, completion.text[:200])
    return grades


def _evaluation_backend() -> LLMBackend | None:
    return None if resolve_backend_name() == "rules" else get_llm_backend()


def audit_evaluate(event_id: int, *, force: bool = False, now: dt.datetime | None = None) -> dict:
    """Evaluate the audit of ``event_id`` (skipped when already ``complete`` unless ``force``); its JSON."""
    audit = EventAudit.objects.select_related("event").filter(event_id=event_id).first()
    if audit is None:
        audit_detail(event_id)  # raises the right 404
    if audit.evaluation_status == EvaluationStatus.COMPLETE and not force:
        return audit_detail(event_id)
    event = audit.event
    backend = _evaluation_backend()
    graded = None
    if backend is not None:
        try:
            graded = _llm_grades(backend, audit, event)
        finally:
            backend.close()
    grades, critique = graded or (dict.fromkeys(GRADES.values()), "")
    for column, value in grades.items():
        setattr(audit, column, value)
    audit.consistency_score = consistency_score(event.risk_score, audit.rules_risk_score)
    audit.evaluation_critique = critique
    audit.evaluation_status = EvaluationStatus.COMPLETE if graded else EvaluationStatus.PARTIAL
    audit.evaluated_at = now or timezone.now()
    audit.save(
        update_fields=[
            *GRADES.values(),
            "consistency_score",
            "evaluation_critique",
            "evaluation_status",
            "evaluated_at",
        ]
    )
    return audit_detail(event_id)
