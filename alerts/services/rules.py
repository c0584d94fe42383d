"""Alert rule writes and dry runs (CONTRACT §2.7, §5.1–5.4, §6.8).

``rule_create`` / ``rule_update`` / ``rule_delete`` take validated data (``alerts.api.rule_serializers``) and write
their audit row in the same transaction. ``rule_test`` evaluates a rule (enabled or not) against chosen or latest
events; ``rule_backtest`` replays a period in chronological order, simulating dedup and cooldown. Neither creates
alerts; both ignore real cooldown and feedback suppression (each result reports ``would_be_suppressed``).
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alerts import selectors
from alerts.evaluation import (
    EVALUATION_ERROR,
    NOT_MATCHED,
    EventFacts,
    RuleMatch,
    dedup_key,
    evaluate_event_rule,
    evaluate_offline_rule,
)
from alerts.models import AlertRule, RuleTrigger
from events.models import Event
from hsi.api.errors import NotFound
from hsi.timeutils import utc_iso
from system.services import Actor, audit_record, changes_between

RULE_FIELDS = (
    "name",
    "description",
    "enabled",
    "trigger",
    "severity",
    "risk_threshold",
    "object_types",
    "camera_ids",
    "zone_ids",
    "min_confidence",
    "schedule",
    "dedup_key_template",
    "cooldown_seconds",
    "channels",
)
logger = logging.getLogger("hsi.alerts")

SAMPLE_SIZE = 50
BACKTEST_CHUNK = 500


def rule_state(rule: AlertRule) -> dict:
    return {field: getattr(rule, field) for field in RULE_FIELDS}


def rule_get(rule_id) -> AlertRule:
    rule = AlertRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise NotFound(f"Alert rule {rule_id} not found")
    return rule


def rule_create(*, data: dict, actor: Actor) -> AlertRule:
    with transaction.atomic():
        now = timezone.now()
        values = {field: data[field] for field in RULE_FIELDS if field in data}
        rule = AlertRule.objects.create(created_at=now, updated_at=now, **values)
        audit_record(actor, "rule_created", "alert_rule", rule.id, details={"rule": selectors.rule_json(rule)})
    return rule


def rule_update(rule_id, *, data: dict, actor: Actor) -> AlertRule:
    """Apply the fields present in ``data``; a request that changes nothing is a no-op (no audit row)."""
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().filter(pk=rule_id).first()
        if rule is None:
            raise NotFound(f"Alert rule {rule_id} not found")
        requested = {field: data[field] for field in RULE_FIELDS if field in data}
        changes = changes_between({field: getattr(rule, field) for field in requested}, requested)
        if not changes:
            return rule
        for field in changes:
            setattr(rule, field, requested[field])
        rule.save(update_fields=[*changes, "updated_at"])
        audit_record(actor, "rule_updated", "alert_rule", rule.id, details={"changes": changes})
    return rule


def rule_delete(rule_id, *, actor: Actor) -> None:
    """Delete a rule; its alerts stay as history with ``rule`` null (the name lives on in ``metadata``)."""
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().filter(pk=rule_id).first()
        if rule is None:
            raise NotFound(f"Alert rule {rule_id} not found")
        rule_pk, name = rule.pk, rule.name
        rule.delete()
        audit_record(actor, "rule_deleted", "alert_rule", rule_pk, details={"name": name})


# --- evaluation of one rule against stored events ---------------------------------------------------------------


def _evaluate(rule: Any, facts: EventFacts, clock: dt.datetime | None) -> tuple[RuleMatch, str | None]:
    try:
        if rule.trigger == RuleTrigger.CAMERA_OFFLINE:
            match = evaluate_offline_rule(rule, facts.camera_id, clock or facts.started_at)
        else:
            match = evaluate_event_rule(rule, facts, clock=clock)
    except Exception:
        logger.exception("Rule %s (%s) raised on event %s: %s", rule.pk, rule.name, facts.id, EVALUATION_ERROR)
        return RuleMatch(False), EVALUATION_ERROR
    return match, None if match.matches else NOT_MATCHED


def _result_item(event: Event, match: RuleMatch, skipped_reason: str | None) -> dict:
    return {
        "event_id": event.id,
        "camera_id": event.camera_id,
        "started_at": utc_iso(event.started_at),
        "risk_score": event.risk_score,
        "object_types": [name for name in event.object_types.split(",") if name],
        "matches": match.matches,
        "matched_conditions": list(match.matched_conditions) if match.matches else [],
        "skipped_reason": skipped_reason,
        "would_be_suppressed": bool(event.suppressed),
    }


def _match_rate(matched: int, tested: int) -> float:
    return round(matched / tested, 4) if tested else 0.0


def rule_test(
    rule_id,
    *,
    event_ids: Sequence[int] | None,
    limit: int,
    test_time: dt.datetime | None,
    actor: Actor,
) -> dict:
    """Evaluate a stored rule (enabled or not) against ``event_ids`` (unknown ids skipped) or the ``limit`` latest
    live events. No alert is created; cooldown is not applied."""
    rule = rule_get(rule_id)
    if event_ids:
        found = {event.id: event for event in Event.objects.filter(pk__in=list(event_ids))}
        events = [found[event_id] for event_id in event_ids if event_id in found]
    else:
        events = list(Event.objects.filter(deleted_at__isnull=True).order_by("-started_at", "-id")[:limit])
    facts = selectors.event_facts_for(events)
    results = []
    for event in events:
        match, reason = _evaluate(rule, facts[event.id], test_time)
        results.append(_result_item(event, match, reason))
    matched = sum(1 for item in results if item["matches"])
    audit_record(
        actor,
        "rule_tested",
        "alert_rule",
        rule.id,
        details={"events_tested": len(results), "events_matched": matched, "test_time": utc_iso(test_time)},
    )
    return {
        "rule_id": str(rule.id),
        "rule_name": rule.name,
        "events_tested": len(results),
        "events_matched": matched,
        "match_rate": _match_rate(matched, len(results)),
        "results": results,
    }


def _events_in_period(start: dt.datetime, end: dt.datetime) -> Iterator[tuple[Event, EventFacts]]:
    """Live events started in [start, end], oldest first, read in chunks (two extra queries per chunk)."""
    queryset = Event.objects.filter(deleted_at__isnull=True, started_at__gte=start, started_at__lte=end).order_by(
        "started_at", "id"
    )
    last: tuple[dt.datetime, int] | None = None
    while True:
        chunk_query = queryset
        if last is not None:
            chunk_query = chunk_query.filter(started_at__gte=last[0]).exclude(started_at=last[0], id__lte=last[1])
        chunk = list(chunk_query[:BACKTEST_CHUNK])
        if not chunk:
            return
        facts = selectors.event_facts_for(chunk)
        for event in chunk:
            yield event, facts[event.id]
        last = (chunk[-1].started_at, chunk[-1].id)


def _local_date(instant: dt.datetime) -> str:
    return instant.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date().isoformat()


def rule_backtest(
    rule: Any,
    *,
    start: dt.datetime,
    end: dt.datetime,
    respect_cooldown: bool,
    actor: Actor,
) -> dict:
    """Replay the live events started in [start, end] through ``rule`` (stored or unsaved) in chronological order,
    each with its ``started_at`` as the clock. With ``respect_cooldown`` a match fires only when no earlier
    simulated alert of the same dedup key lies within ``cooldown_seconds``."""
    last_fired: dict[str, dt.datetime] = {}
    evaluated = matched = would_fire = 0
    by_day_matched: Counter[str] = Counter()
    by_day_fired: Counter[str] = Counter()
    by_camera: dict[str, int] = {}
    sample: list[dict] = []
    cooldown = dt.timedelta(seconds=rule.cooldown_seconds or 0)
    rule_id = rule.pk  # None for an unsaved rule
    for event, facts in _events_in_period(start, end):
        evaluated += 1
        match, reason = _evaluate(rule, facts, None)
        if not match.matches:
            continue
        matched += 1
        day = _local_date(event.started_at)
        by_day_matched[day] += 1
        fires = True
        if respect_cooldown:
            key = dedup_key(
                rule.dedup_key_template,
                camera_id=event.camera_id,
                rule_id=rule_id if rule_id is not None else "backtest",
                object_type=match.object_type,
                severity=rule.severity,
            )
            previous = last_fired.get(key)
            fires = previous is None or cooldown <= dt.timedelta(0) or event.started_at - previous >= cooldown
            if fires:
                last_fired[key] = event.started_at
        by_camera.setdefault(event.camera_id, 0)
        if fires:
            would_fire += 1
            by_day_fired[day] += 1
            by_camera[event.camera_id] += 1
        item = {**_result_item(event, match, reason), "would_fire": fires}
        sample.append(item)
        if len(sample) > SAMPLE_SIZE:
            sample.pop(0)
    audit_record(
        actor,
        "rule_backtested",
        "alert_rule",
        str(rule_id) if rule_id else None,
        details={
            "period_start": utc_iso(start),
            "period_end": utc_iso(end),
            "events_evaluated": evaluated,
            "events_matched": matched,
            "alerts_would_fire": would_fire,
            "respect_cooldown": respect_cooldown,
        },
    )
    return {
        "rule_id": str(rule_id) if rule_id else None,
        "period_start": utc_iso(start),
        "period_end": utc_iso(end),
        "events_evaluated": evaluated,
        "events_matched": matched,
        "alerts_would_fire": would_fire,
        "by_day": [
            {"date": day, "matched": by_day_matched[day], "would_fire": by_day_fired[day]}
            for day in sorted(by_day_matched)
        ],
        "by_camera": by_camera,
        "sample": list(reversed(sample)),
    }


def unsaved_rule(data: dict) -> AlertRule:
    """An AlertRule instance (never saved) from a validated rule body, for backtests."""
    values = {field: data[field] for field in RULE_FIELDS if field in data}
    rule = AlertRule(**values)
    rule.pk = None
    return rule
