"""File → detections → batch → event (CONTRACT §4.4–4.7): every close reason end to end, the stored Event,
EventDetection and EventAudit rows, event.created, idempotency of analyze_batch, LLM verdicts and the fallback,
feedback suppression (§5.6), and the DLQ for non-LLM failures (§4.6 step 7)."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import time_machine
from django.db import connection

from events import selectors
from events.models import Detection, Event, EventAudit, EventDetection
from pipeline.context import batch_context
from pipeline.models import Batch, FailedJob, IngestedFile
from pipeline.services import batch_analyze, dlq_requeue
from system.services import Actor
from tests.factories import (
    BatchFactory,
    CameraFactory,
    DetectionFactory,
    EventFactory,
    EventFeedbackFactory,
    ZoneFactory,
)
from tests.fakes.detector_server import detection, person
from tests.fakes.llm_server import verdict_json
from tests.integration.metrics_support import scraped
from tests.integration.pipeline_support import (
    T0,
    at,
    image_file,
    of_type,
    pipeline_env,  # noqa: F401 - fixture
    run_task,
    system_listener,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_env")]


@pytest.fixture
def system_stream():
    with system_listener() as stream:
        yield stream


NIGHT = dt.datetime(2024, 5, 1, 23, 0, tzinfo=dt.UTC)


@pytest.fixture
def camera():
    return CameraFactory(id="back_yard", name="Back Yard")


def drop(capture, camera, root, seconds: float, *, start: dt.datetime = T0, tick: bool = False) -> None:
    """A file arrives at ``start + seconds`` and is processed at once (on a stopped clock unless ``tick``)."""
    moment = start + dt.timedelta(seconds=seconds)
    file = image_file(camera, root, received_at=moment)
    with time_machine.travel(moment, tick=tick):
        run_task(capture, "pipeline.process_file", file.id)


def sweep(capture, moment: dt.datetime) -> None:
    with time_machine.travel(moment, tick=False):
        run_task(capture, "pipeline.close_expired_batches")


# --- Every close reason, end to end -------------------------------------------------------------------------


def test_idle_batch_becomes_a_low_rules_event(fake_detector, camera, foscam_root, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    fake_detector.detections = [detection("car", 0.7), detection("truck", 0.65, bbox=(300, 200, 80, 60))]
    drop(capture, camera, foscam_root, 0)
    drop(capture, camera, foscam_root, 10)
    sweep(capture, at(39.9))
    assert not Event.objects.exists()

    sweep(capture, at(40))

    batch = Batch.objects.get()
    event = Event.objects.get()
    assert (batch.status, batch.close_reason, batch.analysis_attempts) == ("done", "idle", 1)
    assert (event.batch_id, event.camera_id, event.started_at, event.ended_at) == (batch.id, "back_yard", T0, at(10))
    assert (event.object_types, event.detection_count, event.is_fast_path) == ("car,truck", 4, False)
    assert (event.risk_score, event.risk_level, event.analysis_status) == (15, "low", "rules")
    assert event.summary.startswith("2 car, 2 truck detected on Back Yard at 12:00")
    assert event.recommended_action == "No action needed"
    assert (event.suppressed, event.version, event.anomaly_score) == (False, 1, None)
    assert set(EventDetection.objects.values_list("detection_id", flat=True)) == set(
        batch.detections.values_list("id", flat=True)
    )
    audit = EventAudit.objects.get(event=event)
    assert (audit.backend, audit.model, audit.parse_status, audit.rules_risk_score) == (
        "rules",
        "rules-v1",
        "not_applicable",
        15,
    )
    assert (audit.prompt, audit.prompt_chars, audit.prompt_token_estimate, audit.attempts) == ("", 0, 0, 0)


def test_window_batch_at_night_with_a_person_is_medium(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    fake_detector.detections = [person(0.8)]
    for seconds in (0, 25, 50, 75, 90):  # never idle, but the window ends at 90 s
        drop(capture, camera, foscam_root, seconds, start=NIGHT)

    event = Event.objects.get()
    closed = Batch.objects.get(event=event)
    assert (closed.close_reason, closed.detection_count) == ("window", 4)
    assert (event.risk_score, event.risk_level) == (50, "medium")  # person 25 + night with a person 25
    assert Batch.objects.get(status="open").detection_count == 1  # the 90 s file started the next batch


def test_max_size_batch_of_knives_is_high(
    fake_detector, camera, foscam_root, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_MAX_DETECTIONS = 3
    fake_detector.detections = [detection("knife", 0.8, bbox=(10 + 60 * i, 10, 50, 50)) for i in range(4)]

    drop(django_capture_on_commit_callbacks, camera, foscam_root, 0)

    event = Event.objects.get()
    assert Batch.objects.get(event=event).close_reason == "max_size"
    assert (event.detection_count, event.risk_score, event.risk_level) == (3, 60, "high")
    assert Batch.objects.get(status="open").detection_count == 1


def test_fast_path_batch_is_analysed_at_once_and_can_be_critical(
    fake_detector, camera, foscam_root, django_capture_on_commit_callbacks
):
    ZoneFactory(camera=camera, zone_type="entry_point", coordinates=[[0, 0], [0.5, 0], [0.5, 1], [0, 1]])
    fake_detector.detections = [person(0.95), detection("knife", 0.7, bbox=(400, 300, 30, 30))]

    drop(django_capture_on_commit_callbacks, camera, foscam_root, 0, start=NIGHT)

    event = Event.objects.get()
    batch = Batch.objects.get(event=event)
    assert (batch.close_reason, batch.is_fast_path, event.is_fast_path) == ("fast_path", True, True)
    assert (event.risk_score, event.risk_level) == (100, "critical")  # knife 60 + night person 25 + entry zone 15
    assert event.recommended_action == "Check the camera now"


def test_event_created_carries_the_events_list_item_and_is_counted(
    fake_detector, camera, foscam_root, events_stream, django_capture_on_commit_callbacks
):
    fake_detector.detections = [person(0.95)]
    before = scraped("hsi_events_created", analysis_status="rules", risk_level="low")

    # A running clock: the Redis channel layer orders a channel's messages by their send time.
    drop(django_capture_on_commit_callbacks, camera, foscam_root, 0, tick=True)

    event = Event.objects.get()
    messages = events_stream.drain()
    assert [m["type"] for m in messages] == ["detection.new", "detection.batch", "event.created"]
    assert messages[-1]["data"] == selectors.event_list_item(event.id)
    assert messages[-1]["data"]["detection_ids"] == list(event.detections.values_list("id", flat=True))
    assert scraped("hsi_events_created", analysis_status="rules", risk_level="low") == before + 1


# --- Idempotency --------------------------------------------------------------------------------------------


def closed_batch(camera, *specs, seconds: float = 0) -> Batch:
    batch = BatchFactory(camera=camera, status="closed", close_reason="idle", opened_at=at(seconds))
    for cls, conf in specs or (("person", 0.8),):
        DetectionFactory(camera=camera, batch=batch, object_type=cls, confidence=conf, detected_at=at(seconds))
    return batch


def test_analyzing_a_batch_twice_creates_one_event(camera, django_capture_on_commit_callbacks):
    batch = closed_batch(camera, ("person", 0.8), ("car", 0.7))

    run_task(django_capture_on_commit_callbacks, "pipeline.analyze_batch", str(batch.id))
    run_task(django_capture_on_commit_callbacks, "pipeline.analyze_batch", str(batch.id))

    assert Event.objects.count() == 1 and EventAudit.objects.count() == 1
    assert EventDetection.objects.count() == 2
    batch.refresh_from_db()
    assert (batch.status, batch.analysis_attempts) == ("done", 1)


def test_a_batch_whose_event_exists_is_marked_done_without_a_new_event(camera):
    batch = closed_batch(camera)
    EventFactory(camera=camera, batch=batch)

    assert batch_analyze(batch.id) is None

    assert Batch.objects.get(pk=batch.pk).status == "done" and Event.objects.count() == 1


def test_a_freshly_claimed_batch_belongs_to_another_worker_but_a_stuck_one_is_taken_over(camera, settings):
    batch = closed_batch(camera)
    Batch.objects.filter(pk=batch.pk).update(status="analyzing", updated_at=at(0))

    assert batch_analyze(batch.id, now=at(599)) is None
    assert not Event.objects.exists()

    event = batch_analyze(batch.id, now=at(600))  # ANALYSIS_STUCK_SECONDS later: the owner is presumed dead
    assert event is not None and Batch.objects.get(pk=batch.pk).status == "done"


@pytest.mark.parametrize("status", ["open", "done", "failed"])
def test_batches_not_ready_or_finished_are_not_analysed(camera, status):
    batch = closed_batch(camera)
    Batch.objects.filter(pk=batch.pk).update(status=status)

    assert batch_analyze(batch.id) is None
    assert not Event.objects.exists() and Batch.objects.get(pk=batch.pk).status == status


def test_an_unknown_batch_and_an_empty_batch_are_no_ops(camera):
    empty = BatchFactory(camera=camera, status="closed")

    assert batch_analyze("00000000-0000-4000-8000-000000000000") is None
    assert batch_analyze(empty.id) is None

    empty.refresh_from_db()
    assert (empty.status, empty.error) == ("done", "no detections")
    assert not Event.objects.exists()


def test_the_unique_batch_race_returns_the_winners_event(camera):
    batch = closed_batch(camera)
    ctx = batch_context(batch, now=at(1))
    winner = EventFactory(camera=camera, batch=batch)  # another worker committed first

    from pipeline.analyzers import analyze
    from pipeline.services.analysis import _store

    assert _store(batch, ctx, analyze(ctx), at(1)) == winner
    assert Event.objects.count() == 1 and Batch.objects.get(pk=batch.pk).status == "done"


# --- LLM verdicts and the fallback ----------------------------------------------------------------------------


def test_an_llm_verdict_is_stored_with_its_audit(settings, fake_llm, camera, django_capture_on_commit_callbacks):
    settings.LLM_BACKEND = "auto"
    settings.LLM_URL = fake_llm.url
    fake_llm.reply_text = verdict_json(72, "high", summary="Someone is trying the door handle.")
    batch = closed_batch(camera, ("person", 0.9))

    run_task(django_capture_on_commit_callbacks, "pipeline.analyze_batch", str(batch.id))

    event = Event.objects.get()
    assert (event.analysis_status, event.risk_score, event.risk_level) == ("llm", 72, "high")
    assert event.summary == "Someone is trying the door handle."
    audit = event.audit
    assert (audit.backend, audit.model, audit.parse_status, audit.attempts) == ("llamacpp", "fake-nemotron", "ok", 1)
    assert (audit.llm_risk_score, audit.llm_risk_level, audit.rules_risk_score) == (72, "high", 25)
    assert audit.prompt and audit.prompt_chars == len(audit.prompt)
    assert audit.prompt_token_estimate == math.ceil(len(audit.prompt) / 4)
    assert (audit.prompt_tokens, audit.completion_tokens) == (321, 54)
    assert audit.raw_response == fake_llm.reply_text and audit.fallback_reason is None
    assert audit.context_flags["history"] is True


def test_a_dead_llm_falls_back_to_the_rules_verdict(settings, fake_llm, camera, django_capture_on_commit_callbacks):
    settings.LLM_BACKEND = "llamacpp"
    settings.LLM_URL = fake_llm.url
    settings.LLM_MAX_RETRIES = 1
    fake_llm.stop()
    batch = closed_batch(camera, ("person", 0.9))

    run_task(django_capture_on_commit_callbacks, "pipeline.analyze_batch", str(batch.id))

    event = Event.objects.get()
    assert (event.analysis_status, event.risk_score, event.risk_level) == ("fallback", 25, "low")
    audit = event.audit
    assert audit.fallback_reason and audit.attempts == 2 and audit.backend == "llamacpp"
    assert not FailedJob.objects.exists() and Batch.objects.get(pk=batch.pk).status == "done"


# --- Context --------------------------------------------------------------------------------------------------


def test_the_context_holds_zones_entities_history_and_feedback(camera):
    zone = ZoneFactory(camera=camera, name="Gate", zone_type="entry_point")
    ZoneFactory(camera=camera, enabled=False)
    from tests.factories import EntityFactory

    known = EntityFactory(trust_status="trusted", label="Postman", detection_count=7)
    earlier = DetectionFactory(camera=camera, entity=known, detected_at=at(-3600))
    batch = BatchFactory(camera=camera, status="closed", is_fast_path=True)
    second = DetectionFactory(camera=camera, batch=batch, detected_at=at(20), object_type="car", zone_ids=[])
    first = DetectionFactory(camera=camera, batch=batch, detected_at=at(10), entity=known, zone_ids=[str(zone.id)])
    EventFactory(camera=camera, risk_score=70, risk_level="high", started_at=at(-3600), detections=[earlier])
    EventFactory(camera=camera, risk_score=10, risk_level="low", started_at=at(-25 * 3600))  # older than 24 h
    past = EventFactory(camera=camera, object_types="car,person", started_at=T0)
    EventFeedbackFactory(event=past, feedback_type="normal", object_types="car,person", time_of_day_minutes=12 * 60)

    ctx = batch_context(batch, now=at(30))

    assert (ctx.camera_id, ctx.camera_name, ctx.batch_id, ctx.is_fast_path) == (
        "back_yard",
        "Back Yard",
        str(batch.id),
        True,
    )
    assert [(z.name, z.zone_type) for z in ctx.zones] == [("Gate", "entry_point")]
    assert [d.id for d in ctx.detections] == [first.id, second.id]
    assert (ctx.started_at, ctx.ended_at) == (at(10), at(20))
    assert ctx.detections[0].zone_ids == (str(zone.id),)
    entity = ctx.detections[0].entity
    assert (entity.trust_status, entity.label, entity.times_seen, entity.is_new) == ("trusted", "Postman", 7, False)
    assert ctx.detections[1].entity is None
    assert ctx.history == {"low": 1, "medium": 0, "high": 1, "critical": 0}  # the 12:00 event and the 11:00 one
    assert ctx.feedback == {"normal": 1, "false_positive": 0}


# --- Feedback suppression (§5.6) -----------------------------------------------------------------------------


def feedback(camera, *, object_types="person", minutes=12 * 60, suppress_until=None):
    past = EventFactory(camera=camera, object_types=object_types)
    return EventFeedbackFactory(
        event=past,
        object_types=object_types,
        time_of_day_minutes=minutes,
        suppress_until=suppress_until or at(86400),
    )


@pytest.mark.parametrize(
    ("kwargs", "specs", "suppressed"),
    [
        ({}, [("person", 0.8)], True),
        ({"object_types": "car,person"}, [("person", 0.8)], True),  # a subset of the feedback's classes
        ({}, [("person", 0.8), ("car", 0.7)], False),  # car is not covered
        ({"minutes": 13 * 60}, [("person", 0.8)], True),  # 60 minutes away: inside the window
        ({"minutes": 13 * 60 + 1}, [("person", 0.8)], False),
        ({"suppress_until": at(-1)}, [("person", 0.8)], False),  # expired
        ({}, [("knife", 0.9), ("person", 0.9)], False),  # not when the subset fails
    ],
)
def test_matching_active_feedback_suppresses_the_new_event(camera, kwargs, specs, suppressed):
    feedback(camera, **kwargs)
    batch = closed_batch(camera, *specs)

    event = batch_analyze(batch.id, now=at(60))

    assert event.suppressed is suppressed


def test_feedback_never_suppresses_a_critical_event(camera):
    feedback(camera, object_types="knife,person", minutes=23 * 60)
    ZoneFactory(camera=camera, zone_type="entry_point", coordinates=[[0, 0], [1, 0], [1, 1], [0, 1]])
    batch = BatchFactory(camera=camera, status="closed")
    for cls in ("knife", "person"):
        DetectionFactory(camera=camera, batch=batch, object_type=cls, detected_at=NIGHT, zone_ids=[])

    event = batch_analyze(batch.id, now=NIGHT)

    assert event.risk_level == "critical" and event.suppressed is False


def test_feedback_of_another_camera_does_not_count(camera):
    feedback(CameraFactory())

    event = batch_analyze(closed_batch(camera).id, now=at(60))

    assert event.suppressed is False


# --- Alerts hand-off --------------------------------------------------------------------------------------------


def test_alert_evaluation_is_dispatched_once_the_alerts_task_exists(camera, django_capture_on_commit_callbacks):
    from hsi.celery import app

    if "alerts.evaluate_event" in app.tasks:
        pytest.skip("the alert engine's own tests cover its task")
    seen: list[int] = []

    @app.task(name="alerts.evaluate_event")
    def evaluate_event(event_id):  # stands in for the alert engine that lands later
        seen.append(event_id)

    try:
        run_task(django_capture_on_commit_callbacks, "pipeline.analyze_batch", str(closed_batch(camera).id))
    finally:
        app.tasks.unregister("alerts.evaluate_event")

    assert seen == [Event.objects.get().id]


# --- Non-LLM failures: retries, DLQ, requeue ------------------------------------------------------------------


def _break_event_inserts() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION hsi_test_refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            " LANGUAGE plpgsql;"
            "CREATE TRIGGER hsi_test_refuse BEFORE INSERT ON events_event"
            " FOR EACH ROW EXECUTE FUNCTION hsi_test_refuse();"
        )


def _repair_event_inserts() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER hsi_test_refuse ON events_event; DROP FUNCTION hsi_test_refuse();")


def test_a_database_failure_is_retried_then_dead_lettered_and_requeued(
    camera, system_stream, django_capture_on_commit_callbacks
):
    batch = closed_batch(camera)
    _break_event_inserts()

    run_task(django_capture_on_commit_callbacks, "pipeline.analyze_batch", str(batch.id))

    job = FailedJob.objects.get()
    assert (job.queue, job.task_name, job.payload, job.camera_id) == (
        "analysis",
        "pipeline.analyze_batch",
        {"batch_id": str(batch.id)},
        "back_yard",
    )
    assert (job.error_type, job.attempt_count) == ("ProgrammingError", 4) and "disk full" in job.error
    batch.refresh_from_db()
    assert (batch.status, batch.analysis_attempts) == ("failed", 4) and "disk full" in batch.error
    assert of_type(system_stream.drain(), "dlq.job_added")[0]["queue"] == "analysis"

    _repair_event_inserts()
    with django_capture_on_commit_callbacks(execute=True):
        dlq_requeue(job.id, actor=Actor(name="api_key:ops"))

    batch.refresh_from_db()
    assert batch.status == "done" and Event.objects.filter(batch=batch).count() == 1
    assert not FailedJob.objects.exists()


# --- Baselines --------------------------------------------------------------------------------------------------


def test_the_baseline_and_anomaly_score_reach_the_context_and_the_event(camera):
    from events.models import ActivityBaseline, ClassBaseline

    type(camera).objects.filter(pk=camera.pk).update(created_at=T0 - dt.timedelta(days=10))
    ActivityBaseline.objects.create(camera=camera, day_of_week=2, hour=12, avg_count=2.0, sample_count=1)
    ClassBaseline.objects.create(camera=camera, object_class="person", hour=12, frequency=1.0, sample_count=10)
    DetectionFactory(camera=camera, detected_at=at(-600))  # in the hour before the batch ends
    batch = closed_batch(camera, ("person", 0.8))

    ctx = batch_context(batch, now=at(60))
    event = batch_analyze(batch.id, now=at(60))

    baseline = ctx.baseline
    assert (baseline.established, baseline.expected_count, baseline.observed_last_hour) == (True, 2.0, 1)
    assert baseline.class_frequencies == {"person": 1.0}
    assert baseline.anomaly_score == pytest.approx(0.2)  # rarity 1 / (1 + 4 × 1.0); activity below expectation
    assert event.anomaly_score == pytest.approx(0.2)


def test_a_camera_without_baseline_rows_has_no_baseline(camera):
    assert batch_context(closed_batch(camera), now=at(60)).baseline is None


# --- events.services edge cases -----------------------------------------------------------------------------------


def test_an_event_needs_detections_and_a_reanalysis_needs_a_live_event(camera):
    from events.services import event_create_from_analysis, event_reanalyzed
    from pipeline.analyzers import analyze

    batch = closed_batch(camera)
    outcome = analyze(batch_context(batch, now=at(1)))
    with pytest.raises(ValueError):
        event_create_from_analysis(
            camera_id=camera.id,
            batch_id=None,
            detections=[],
            outcome=outcome,
            anomaly_score=None,
            is_fast_path=False,
            now=at(1),
        )
    trashed = EventFactory(camera=camera, deleted_at=at(0))
    assert event_reanalyzed(trashed.id, outcome=outcome, anomaly_score=None) is None
    assert event_reanalyzed(10**12, outcome=outcome, anomaly_score=None) is None


# --- Files in vs. rows out under failures ---------------------------------------------------------------------


def test_no_detection_is_lost_or_duplicated_when_the_detector_and_the_llm_fail(
    fake_detector, fake_llm, settings, camera, foscam_root, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    settings.LLM_BACKEND = "llamacpp"
    settings.LLM_URL = fake_llm.url
    settings.LLM_MAX_RETRIES = 0
    fake_llm.fail("POST", "/completion", times=1, status=500)  # the first analysis falls back to the rules
    fake_detector.detections = [detection("car", 0.7)]
    fake_detector.fail("POST", "/detect", times=4, status=503)  # the first file exhausts its retries
    for seconds in (0, 5, 10, 15, 20):
        drop(capture, camera, foscam_root, seconds)
    sweep(capture, at(60))

    assert FailedJob.objects.count() == 1
    assert Event.objects.get().analysis_status == "fallback"
    with time_machine.travel(at(100), tick=False), capture(execute=True):
        dlq_requeue(FailedJob.objects.get().id, actor=Actor(name="api_key:ops"))
    sweep(capture, at(200))

    files = IngestedFile.objects.all()
    assert [f.status for f in files] == ["processed"] * 5
    assert Detection.objects.count() == 5  # one per file: none lost, none twice
    assert EventDetection.objects.count() == 5  # every detection in exactly one event (the link is unique)
    assert sorted(Event.objects.values_list("detection_count", flat=True)) == [1, 4]
    assert sorted(Event.objects.values_list("analysis_status", flat=True)) == ["fallback", "llm"]
    assert not FailedJob.objects.exists()
    assert not Batch.objects.exclude(status="done").exists()
