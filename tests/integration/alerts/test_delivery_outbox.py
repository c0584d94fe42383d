"""The outbox's filters, sweep, claim and dead-letter requeue (CONTRACT §5.7, §5.8, §2.15)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction

from alerts.models import Delivery, NotificationPreference
from alerts.services.deliveries import deliveries_create_for_alert, deliveries_sweep, delivery_send
from pipeline.models import FailedJob
from pipeline.services.dlq import dlq_requeue
from system.services import Actor
from tests.factories import CameraFactory, DeliveryFactory, NotificationChannelFactory, QuietHoursFactory
from tests.fakes.webhook_sink import WebhookSink
from tests.integration.alerts.delivery_support import T0, make_alert, outbox_env  # noqa: F401

pytestmark = pytest.mark.usefixtures("outbox_env")


@pytest.fixture
def sink():
    server = WebhookSink().start()
    yield server
    server.stop()


@pytest.fixture
def channel(sink):
    return NotificationChannelFactory(config={"url": sink.hook_url()})


def global_preference(**fields) -> NotificationPreference:
    row, _ = NotificationPreference.objects.get_or_create(camera=None)
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return row


def only_delivery(alert) -> Delivery:
    deliveries_create_for_alert(alert.id)
    return Delivery.objects.get(alert=alert)


# --- §5.7 filters -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_delivery_that_passes_every_check_is_pending_and_dispatched_after_commit(
    channel, django_capture_on_commit_callbacks
):
    alert = make_alert([channel])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        [delivery_id] = deliveries_create_for_alert(alert.id)

    delivery = Delivery.objects.get(pk=delivery_id)
    assert (delivery.status, delivery.suppressed_reason, delivery.attempts) == ("pending", None, 0)
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_notifications_disabled_by_setting(channel, settings):
    settings.NOTIFICATIONS_ENABLED = False
    delivery = only_delivery(make_alert([channel]))
    assert (delivery.status, delivery.suppressed_reason) == ("suppressed", "notifications_disabled")


@pytest.mark.django_db
def test_notifications_disabled_by_the_global_preference(channel):
    global_preference(enabled=False)
    assert only_delivery(make_alert([channel])).suppressed_reason == "notifications_disabled"


@pytest.mark.django_db
def test_camera_disabled_by_its_override(channel):
    camera = CameraFactory(id="garage", name="Garage")
    NotificationPreference.objects.create(camera=camera, enabled=False)
    assert only_delivery(make_alert([channel], camera=camera)).suppressed_reason == "camera_disabled"


@pytest.mark.django_db
def test_severity_filtered_by_the_global_list(channel):
    global_preference(severities=["critical"])
    assert only_delivery(make_alert([channel], severity="high")).suppressed_reason == "severity_filtered"


@pytest.mark.django_db
def test_a_camera_override_replaces_severities_and_inherits_when_null(channel):
    global_preference(severities=["medium", "high", "critical"], min_risk_score=80)
    strict = CameraFactory(id="garage", name="Garage")
    inherit = CameraFactory(id="yard", name="Yard")
    NotificationPreference.objects.create(camera=strict, severities=["critical"], min_risk_score=0)
    NotificationPreference.objects.create(camera=inherit, severities=None, min_risk_score=None)

    assert only_delivery(make_alert([channel], camera=strict)).suppressed_reason == "severity_filtered"
    yard = only_delivery(make_alert([channel], camera=inherit, risk_score=72))
    assert yard.suppressed_reason == "risk_below_threshold"  # inherited min_risk_score 80


@pytest.mark.django_db
def test_risk_below_threshold_and_a_null_risk_counts_as_zero(channel):
    global_preference(min_risk_score=50)
    assert only_delivery(make_alert([channel], risk_score=49)).suppressed_reason == "risk_below_threshold"
    camera = CameraFactory(id="garage", name="Garage")
    assert only_delivery(make_alert([channel], risk_score=None, camera=camera)).suppressed_reason == (
        "risk_below_threshold"
    )


@pytest.mark.django_db
def test_camera_offline_alerts_are_not_held_to_the_risk_threshold(channel):
    global_preference(min_risk_score=50)
    assert only_delivery(make_alert([channel], kind="camera_offline")).status == "pending"


@pytest.mark.django_db
def test_channel_disabled(sink):
    channel = NotificationChannelFactory(config={"url": sink.hook_url()}, enabled=False)
    assert only_delivery(make_alert([channel])).suppressed_reason == "channel_disabled"


@pytest.mark.django_db
def test_channel_min_severity(sink):
    channel = NotificationChannelFactory(config={"url": sink.hook_url()}, min_severity="critical")
    assert only_delivery(make_alert([channel], severity="high")).suppressed_reason == "channel_min_severity"


@pytest.mark.django_db
def test_the_first_failing_reason_wins(sink):
    channel = NotificationChannelFactory(config={"url": sink.hook_url()}, enabled=False, min_severity="critical")
    global_preference(min_risk_score=90)
    assert only_delivery(make_alert([channel], risk_score=10)).suppressed_reason == "risk_below_threshold"


@pytest.mark.django_db
def test_quiet_hours_suppress_but_critical_alerts_pass_when_allowed(channel):
    QuietHoursFactory(start_time=dt.time(11, 0), end_time=dt.time(13, 0), allow_critical=True)
    high = make_alert([channel], severity="high", created_at=T0)
    critical = make_alert([channel], severity="critical", created_at=T0, camera=CameraFactory(id="yard", name="Y"))

    assert only_delivery(high).suppressed_reason == "quiet_hours"
    assert only_delivery(critical).status == "pending"


@pytest.mark.django_db
def test_quiet_hours_without_allow_critical_hold_critical_alerts_too(channel):
    QuietHoursFactory(start_time=dt.time(11, 0), end_time=dt.time(13, 0), allow_critical=False)
    alert = make_alert([channel], severity="critical", created_at=T0)
    assert only_delivery(alert).suppressed_reason == "quiet_hours"


@pytest.mark.django_db
def test_quiet_hours_of_another_camera_or_disabled_ones_do_not_apply(channel):
    other = CameraFactory(id="garage", name="Garage")
    QuietHoursFactory(start_time=dt.time(11, 0), end_time=dt.time(13, 0), camera=other)
    QuietHoursFactory(start_time=dt.time(11, 0), end_time=dt.time(13, 0), enabled=False)
    assert only_delivery(make_alert([channel], created_at=T0)).status == "pending"


@pytest.mark.django_db
def test_quiet_hours_wrap_to_the_day_after_a_listed_day_in_local_time(channel, settings):
    # given Friday 22:00–06:00 quiet hours in Berlin time (UTC+2 in May)
    settings.TIME_ZONE = "Europe/Berlin"
    QuietHoursFactory(start_time=dt.time(22, 0), end_time=dt.time(6, 0), days=["friday"])
    saturday_night = dt.datetime(2024, 5, 3, 23, 0, tzinfo=dt.UTC)  # Saturday 01:00 local
    sunday_night = dt.datetime(2024, 5, 4, 23, 0, tzinfo=dt.UTC)  # Sunday 01:00 local
    friday_evening = dt.datetime(2024, 5, 3, 19, 30, tzinfo=dt.UTC)  # Friday 21:30 local

    cameras = [CameraFactory(id=f"cam_{n}", name=f"Cam {n}") for n in range(3)]
    results = [
        only_delivery(make_alert([channel], created_at=moment, camera=camera)).status
        for moment, camera in zip((saturday_night, sunday_night, friday_evening), cameras, strict=True)
    ]

    assert results == ["suppressed", "pending", "pending"]


# --- claim and sweep --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_row_already_sending_or_sent_is_not_claimed(channel):
    sending = DeliveryFactory(channel=channel, status="sending", alert=make_alert([channel]))
    sent = DeliveryFactory(
        channel=channel, status="sent", alert=make_alert([channel], camera=CameraFactory(id="y", name="Y"))
    )
    assert delivery_send(sending.id) is None
    assert delivery_send(sent.id) is None
    assert delivery_send(999_999) is None


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_second_deliver_finds_nothing_to_claim(sink, channel):
    # given a pending delivery whose row another worker holds locked (it is claiming it right now)
    delivery = DeliveryFactory(channel=channel, alert=make_alert([channel]))
    locked, release = threading.Event(), threading.Event()

    def other_worker():
        with transaction.atomic():
            Delivery.objects.select_for_update().get(pk=delivery.pk)
            locked.set()
            release.wait(10)
        connection.close()

    worker = threading.Thread(target=other_worker)
    worker.start()
    assert locked.wait(10)
    try:
        # when this worker tries to claim it, then it skips the locked row
        assert delivery_send(delivery.pk) is None
    finally:
        release.set()
        worker.join()

    assert sink.received() == []
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"
    # and once the lock is gone, one claim sends it
    assert delivery_send(delivery.pk) == "sent"
    assert delivery_send(delivery.pk) is None
    assert len(sink.received()) == 1


@pytest.mark.django_db
def test_the_sweep_resets_stale_sending_rows_and_dispatches_due_ones(channel, django_capture_on_commit_callbacks):
    now = T0
    alerts = [make_alert([channel], camera=CameraFactory(id=f"c{n}", name=f"C{n}")) for n in range(4)]
    stale = DeliveryFactory(
        channel=channel, alert=alerts[0], status="sending", last_attempt_at=now - dt.timedelta(minutes=6)
    )
    fresh = DeliveryFactory(
        channel=channel, alert=alerts[1], status="sending", last_attempt_at=now - dt.timedelta(minutes=4)
    )
    due = DeliveryFactory(
        channel=channel, alert=alerts[2], status="pending", next_attempt_at=now - dt.timedelta(seconds=1)
    )
    later = DeliveryFactory(
        channel=channel, alert=alerts[3], status="pending", next_attempt_at=now + dt.timedelta(seconds=30)
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        dispatched = deliveries_sweep(now)

    assert dispatched == 2  # the reset stale row and the due one
    assert len(callbacks) == 2
    statuses = {d.pk: d.status for d in Delivery.objects.all()}
    assert statuses == {stale.pk: "pending", fresh.pk: "sending", due.pk: "pending", later.pk: "pending"}


# --- DLQ --------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_requeueing_a_notification_dead_letter_runs_the_delivery_again(
    sink, channel, django_capture_on_commit_callbacks
):
    sink.answer(400)
    [delivery_id] = deliveries_create_for_alert(make_alert([channel]).id)
    assert delivery_send(delivery_id) == "failed"
    job = FailedJob.objects.get(queue="notification")

    with django_capture_on_commit_callbacks(execute=True):
        dlq_requeue(job.id, actor=Actor.system())

    delivery = Delivery.objects.get(pk=delivery_id)
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert FailedJob.objects.count() == 0
    assert len(sink.received()) == 2
