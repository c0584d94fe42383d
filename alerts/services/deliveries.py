"""The notification outbox (CONTRACT §5.7–5.8).

- ``deliveries_create_for_alert``: one Delivery per target channel, ``pending`` or ``suppressed`` (§5.7), the
  pending ones dispatched to ``alerts.deliver`` after commit. Idempotent (UNIQUE alert + channel).
- ``delivery_send``: claims a due ``pending`` row (``SELECT … FOR UPDATE SKIP LOCKED``) and commits ``sending``
  before the network call, so a crash mid-send leaves ``sending`` for the sweep and a concurrent worker finds
  nothing to claim; a ``sent`` row is never sent again. The send runs under the channel kind's circuit breaker;
  an open breaker sends nothing and costs no attempt (the row waits until the breaker may half-open). The claim's
  ``attempts`` and ``last_attempt_at`` are its token: a late result of a claim the sweep took back is dropped.
- ``deliveries_sweep``: resets ``sending`` rows older than 5 minutes (failing and dead-lettering those whose
  attempts are used up) and dispatches due ``pending`` rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts.filtering import FilterContext, alert_suppression_reason
from alerts.models import Alert, AlertStatus, Delivery, DeliveryStatus, NotificationChannel
from alerts.payloads import alert_payload, thumbnail_bytes
from alerts.resilience import BreakerOpen, call_under_breaker, dead_letter_delivery
from alerts.selectors import alert_json
from alerts.transports.base import SendResult, transport_for
from hsi import dispatch
from hsi.realtime import broadcast

logger = logging.getLogger("hsi.alerts.deliveries")

DELIVER_TASK = "alerts.deliver"
ERROR_MAX = 2000
STALE_SENDING = dt.timedelta(minutes=5)
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_FACTOR = 4
BACKOFF_JITTER = 0.25
SWEEP_BATCH = 500


def retry_backoff(attempts: int, *, rng: random.Random | None = None) -> dt.timedelta:
    """10 s × 4^(attempts−1) × (1 + U[0, 0.25]) after attempt number ``attempts`` (≈ 10 s, 40 s, 160 s, 640 s)."""
    seconds = BACKOFF_BASE_SECONDS * BACKOFF_FACTOR ** max(attempts - 1, 0)
    return dt.timedelta(seconds=seconds * (1 + (rng or random).uniform(0, BACKOFF_JITTER)))


# --- creation ---------------------------------------------------------------------------------------------------


def deliveries_create_for_alert(alert_id) -> list[int]:
    """Create one Delivery per target channel of an alert (§5.7 filters), in the alert's own transaction, and
    dispatch the pending ones after commit; returns the ids of the Delivery rows (also those an earlier call
    created)."""
    alert = Alert.objects.select_related("event", "camera").filter(pk=alert_id).first()
    if alert is None:
        return []
    channel_ids = [str(channel_id) for channel_id in (alert.channels or [])]
    channels = {str(c.id): c for c in NotificationChannel.objects.filter(pk__in=_valid_uuids(channel_ids))}
    context = FilterContext.for_alert(alert)
    ids: list[int] = []
    with transaction.atomic():
        existing = dict(Delivery.objects.filter(alert_id=alert.id).values_list("channel_id", "id"))
        existing = {str(channel_id): delivery_id for channel_id, delivery_id in existing.items()}
        for channel_id in dict.fromkeys(channel_ids):
            channel = channels.get(channel_id)
            if channel is None:
                continue
            if channel_id in existing:
                ids.append(existing[channel_id])
                continue
            reason = alert_suppression_reason(alert, channel, context)
            delivery = _create_delivery(alert, channel, reason)
            if delivery is None:
                continue
            ids.append(delivery.id)
            if delivery.status == DeliveryStatus.PENDING:
                dispatch.enqueue(DELIVER_TASK, delivery.id)
    return ids


def _create_delivery(alert: Alert, channel: NotificationChannel, reason: str | None) -> Delivery | None:
    status = DeliveryStatus.SUPPRESSED if reason else DeliveryStatus.PENDING
    try:
        with transaction.atomic():
            return Delivery.objects.create(alert=alert, channel=channel, status=status, suppressed_reason=reason)
    except IntegrityError:  # a concurrent call created it
        return None


def _valid_uuids(values: list[str]) -> list[str]:
    valid = []
    for value in values:
        try:
            valid.append(str(uuid.UUID(value)))
        except (ValueError, AttributeError, TypeError):
            continue
    return valid


# --- sending ----------------------------------------------------------------------------------------------------


def _due(now: dt.datetime) -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


def _claim(delivery_id: int, now: dt.datetime) -> Delivery | None:
    """Move a due ``pending`` row to ``sending`` (attempt counted) and commit; None when nothing is claimable."""
    with transaction.atomic():
        rows = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).filter(_due(now))
        delivery = rows.select_for_update(skip_locked=True).first()
        if delivery is None:
            return None
        claimed = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, last_attempt_at=now, updated_at=now
        )
        if not claimed:
            return None
    return Delivery.objects.select_related("alert__camera", "alert__event", "channel").get(pk=delivery_id)


def _event_item(alert: Alert) -> dict | None:
    if not alert.event_id:
        return None
    from events.selectors import event_list_item

    return event_list_item(alert.event_id)


def _best_thumbnail(alert: Alert) -> bytes | None:
    if not alert.event_id:
        return None
    from events.models import Detection

    detection = (
        Detection.objects.filter(event_link__event_id=alert.event_id)
        .exclude(thumbnail_path__isnull=True)
        .exclude(thumbnail_path="")
        .order_by("-confidence", "id")
        .first()
    )
    return thumbnail_bytes(detection.thumbnail_path) if detection is not None else None


def _bug(delivery: Delivery, what: str, error: Exception) -> SendResult:
    """A failed attempt for an unexpected exception (retryable, under the normal attempt cap)."""
    logger.exception("Delivery %s: %s raised", delivery.id, what)
    return SendResult(
        success=False, error=f"{type(error).__name__}: {error}", retryable=True, error_type=type(error).__name__[:50]
    )


def _attempt(delivery: Delivery) -> SendResult:
    """One send of the claimed delivery; the payload is built once for this attempt. Never raises: whatever goes
    wrong is a failed attempt, so the row does not stay ``sending``."""
    channel, alert = delivery.channel, delivery.alert
    try:
        payload = alert_payload(alert, event_item=_event_item(alert), sent_at=timezone.now())
        thumbnail = None
        if channel.kind == "email" and (channel.config or {}).get("attach_thumbnail", True):
            thumbnail = _best_thumbnail(alert)
        transport = transport_for(channel.kind)
    except Exception as error:  # noqa: BLE001 - a bug or database error building the payload: a failed attempt
        return _bug(delivery, "building the payload", error)

    def send() -> SendResult:
        return transport.send(
            channel, payload, event_type="alert.created", delivery_id=str(delivery.id), thumbnail=thumbnail
        )

    try:
        return call_under_breaker(channel.kind, send, failed=lambda result: not result.success and result.retryable)
    except BreakerOpen as error:
        return SendResult(
            success=False,
            error=str(error),
            retryable=True,
            error_type="circuit_open",
            not_attempted=True,
            retry_at=error.retry_at,
        )
    except Exception as error:  # noqa: BLE001 - a transport bug must not leave the row ``sending``
        return _bug(delivery, f"transport {channel.kind}", error)


def delivery_send(delivery_id: int) -> str | None:
    """Claim and send one due ``pending`` Delivery (§5.8); returns its status afterwards, None if not claimable."""
    delivery = _claim(delivery_id, timezone.now())
    if delivery is None:
        return None
    result = _attempt(delivery)
    return _record(delivery, result)


def _record(delivery: Delivery, result: SendResult) -> str:
    now = timezone.now()
    with transaction.atomic():
        current = Delivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if current is None or not _still_claimed(current, delivery):  # deleted, or taken back (and resent) meanwhile
            return current.status if current is not None else None
        if result.not_attempted:
            return _put_back(current, result, now)
        common = {
            "last_attempt_at": now,
            "response_status": result.status_code,
            "updated_at": now,
        }
        if result.success:
            Delivery.objects.filter(pk=current.pk).update(
                status=DeliveryStatus.SENT, sent_at=now, last_error="", next_attempt_at=None, **common
            )
            NotificationChannel.objects.filter(pk=current.channel_id).update(last_success_at=now)
            _mark_alert_delivered(current.alert_id, now)
            return DeliveryStatus.SENT
        error = (result.error or result.message or "delivery failed")[:ERROR_MAX]
        max_attempts = max(int(settings.NOTIFY_MAX_ATTEMPTS), 1)
        if result.retryable and current.attempts < max_attempts:
            next_at = now + retry_backoff(current.attempts)
            Delivery.objects.filter(pk=current.pk).update(
                status=DeliveryStatus.PENDING, next_attempt_at=next_at, last_error=error, **common
            )
            _dispatch_later(current.pk, (next_at - now).total_seconds())
            return DeliveryStatus.PENDING
        Delivery.objects.filter(pk=current.pk).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=error, **common
        )
        NotificationChannel.objects.filter(pk=current.channel_id).update(last_failure_at=now, last_error=error)
        dead_letter_delivery(
            current.pk,
            camera_id=delivery.alert.camera_id,
            error=error,
            error_type=result.error_type or ("http_4xx" if result.status_code else "delivery_failed"),
            attempts=current.attempts,
            first_failed_at=current.created_at,
            now=now,
        )
        return DeliveryStatus.FAILED


def _still_claimed(current: Delivery, claimed: Delivery) -> bool:
    """The row is still in the claim this worker made (its attempt number and claim time unchanged)."""
    return (
        current.status == DeliveryStatus.SENDING
        and current.attempts == claimed.attempts
        and current.last_attempt_at == claimed.last_attempt_at
    )


def _put_back(current: Delivery, result: SendResult, now: dt.datetime) -> str:
    """Nothing was sent (open breaker): ``pending`` again at ``result.retry_at``, the claim's attempt not counted."""
    next_at = result.retry_at or now + retry_backoff(1)
    error = (result.error or "not attempted")[:ERROR_MAX]
    Delivery.objects.filter(pk=current.pk).update(
        status=DeliveryStatus.PENDING,
        attempts=F("attempts") - 1,
        next_attempt_at=next_at,
        last_error=error,
        updated_at=now,
    )
    _dispatch_later(current.pk, (next_at - now).total_seconds())
    return DeliveryStatus.PENDING


def _mark_alert_delivered(alert_id, now: dt.datetime) -> None:
    """pending → delivered (``delivered_at``, ``version`` + 1) and ``alert.delivered`` after commit."""
    updated = Alert.objects.filter(pk=alert_id, status=AlertStatus.PENDING).update(
        status=AlertStatus.DELIVERED, delivered_at=now, version=F("version") + 1, updated_at=now
    )
    if updated:
        alert = Alert.objects.get(pk=alert_id)
        broadcast("events", "alert.delivered", alert_json(alert))


def _dispatch_later(delivery_id: int, countdown: float) -> None:
    """With a broker, a delayed ``alerts.deliver``; eagerly, the sweep (every 10 s) sends it once it is due."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return

    def send() -> None:
        try:
            from hsi.celery import app

            app.tasks[DELIVER_TASK].apply_async(args=(delivery_id,), countdown=max(countdown, 0))
        except Exception:
            logger.warning("Could not schedule the retry of delivery %s; the sweep will", delivery_id, exc_info=True)

    transaction.on_commit(send)


# --- sweep ------------------------------------------------------------------------------------------------------


def deliveries_sweep(now) -> int:
    """Reset ``sending`` rows older than 5 minutes to ``pending`` (or, when their attempts already reached
    ``NOTIFY_MAX_ATTEMPTS``, fail and dead-letter them) and dispatch due ``pending`` rows; returns how many were
    dispatched."""
    stale_before = now - STALE_SENDING
    max_attempts = max(int(settings.NOTIFY_MAX_ATTEMPTS), 1)
    with transaction.atomic():
        stale = Delivery.objects.filter(status=DeliveryStatus.SENDING).filter(
            Q(last_attempt_at__lt=stale_before) | Q(last_attempt_at__isnull=True, updated_at__lt=stale_before)
        )
        exhausted = list(
            stale.filter(attempts__gte=max_attempts)
            .select_related("alert", "channel")
            .select_for_update(skip_locked=True, of=("self",))[:SWEEP_BATCH]
        )
        for delivery in exhausted:
            _fail_stale(delivery, now)
        reset = stale.filter(attempts__lt=max_attempts).update(
            status=DeliveryStatus.PENDING, next_attempt_at=now, updated_at=now
        )
        if reset:
            logger.warning("Reset %d delivery(ies) stuck in sending", reset)
        due = list(
            Delivery.objects.filter(status=DeliveryStatus.PENDING)
            .filter(_due(now))
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:SWEEP_BATCH]
        )
        for delivery_id in due:
            dispatch.enqueue(DELIVER_TASK, delivery_id)
    return len(due)


def _fail_stale(delivery: Delivery, now: dt.datetime) -> None:
    """A row stuck in ``sending`` whose attempts are used up: ``failed`` with its dead letter (§5.8)."""
    error = "The last attempt did not finish (worker lost or stuck); no attempts left"
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=error, updated_at=now
    )
    NotificationChannel.objects.filter(pk=delivery.channel_id).update(last_failure_at=now, last_error=error)
    dead_letter_delivery(
        delivery.pk,
        camera_id=delivery.alert.camera_id,
        error=error,
        error_type="timeout",
        attempts=delivery.attempts,
        first_failed_at=delivery.created_at,
        now=now,
    )
    logger.error("Delivery %s failed: stuck in sending after %d attempt(s)", delivery.pk, delivery.attempts)
