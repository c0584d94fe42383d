"""``/api/cameras/{id}/baseline``, ``…/baseline/anomalies`` and ``…/baseline/rebuild`` (CONTRACT §2.2, §4.11)."""

from __future__ import annotations

import datetime as dt

import pytest

from events.baselines import baselines_rebuild
from events.models import ActivityBaseline, ClassBaseline
from system.models import AuditLog
from tests.factories import CameraFactory, DetectionFactory, EventFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2024, 6, 5, 10, 20, tzinfo=UTC)  # Wednesday
MON, WED = 0, 2
BASELINE_KEYS = {
    "camera_id",
    "established",
    "coverage_days",
    "window_days",
    "activity",
    "classes",
    "peak_day",
    "peak_hour",
    "top_classes",
    "current",
}


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def camera():
    return CameraFactory(id="front", name="Front", created_at=NOW - dt.timedelta(days=60))


def detections(camera, when, count=1, object_type="person"):
    for _ in range(count):
        DetectionFactory(camera=camera, detected_at=when, object_type=object_type)


# --- GET baseline -------------------------------------------------------------------------------------------------


def test_unknown_camera_is_404_on_every_baseline_route(api_client):
    for method, path in [
        ("get", "/api/cameras/nope/baseline"),
        ("get", "/api/cameras/nope/baseline/anomalies"),
        ("post", "/api/cameras/nope/baseline/rebuild"),
    ]:
        body = problem(getattr(api_client, method)(path), 404, "not_found")
        assert body["detail"] == "Camera nope not found"
    assert not AuditLog.objects.exists()


def test_a_camera_without_baseline_rows_gets_168_zero_slots(api_client, frozen):
    CameraFactory(id="young", created_at=NOW - dt.timedelta(days=2, minutes=20))

    response = api_client.get("/api/cameras/young/baseline")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == BASELINE_KEYS
    assert body["camera_id"] == "young"
    assert body["established"] is False
    assert body["coverage_days"] == pytest.approx(2.0)
    assert body["window_days"] == 28
    assert [(s["day_of_week"], s["hour"]) for s in body["activity"]] == [(d, h) for d in range(7) for h in range(24)]
    assert all(s == {**s, "avg_count": 0.0, "sample_count": 0, "is_peak": False} for s in body["activity"])
    assert body["classes"] == [] and body["top_classes"] == []
    assert body["peak_day"] is None and body["peak_hour"] is None
    assert body["current"] == {
        "day_of_week": WED,
        "hour": 10,
        "expected_count": 0.0,
        "observed_last_hour": 0,
        "anomaly_score": None,
    }


def test_baseline_numbers_peaks_and_top_classes(api_client, camera, frozen):
    for week in range(4):  # Mondays 13 May … 3 June, 08:xx: 6 persons and 2 cars each
        monday = utc(2024, 5, 13, 8, 15) + dt.timedelta(weeks=week)
        detections(camera, monday, 6)
        detections(camera, monday, 2, "car")
        detections(camera, monday.replace(hour=18), 1, "dog")  # one dog each Monday evening
    baselines_rebuild("front", now=NOW)
    detections(camera, utc(2024, 6, 5, 9, 30), 3, "car")  # within the last hour (after the rebuild)

    body = api_client.get("/api/cameras/front/baseline/").json()

    assert body["established"] is True
    assert body["coverage_days"] == pytest.approx(27 + 23 / 24)
    slots = {(s["day_of_week"], s["hour"]): s for s in body["activity"]}
    assert slots[(MON, 8)] == {"day_of_week": MON, "hour": 8, "avg_count": 8.0, "sample_count": 4, "is_peak": True}
    assert slots[(MON, 18)]["avg_count"] == 1.0
    # mean over slots with samples = (8 + 1) / 168 — both busy slots are peaks, quiet ones are not
    assert slots[(MON, 18)]["is_peak"] is True and slots[(MON, 9)]["is_peak"] is False
    assert slots[(WED, 10)]["sample_count"] == 3
    assert (body["peak_day"], body["peak_hour"]) == (MON, 8)
    assert body["classes"] == [
        {"object_class": "car", "hour": 8, "frequency": pytest.approx(8 / 28), "sample_count": 28},
        {"object_class": "dog", "hour": 18, "frequency": pytest.approx(4 / 28), "sample_count": 28},
        {"object_class": "person", "hour": 8, "frequency": pytest.approx(24 / 28), "sample_count": 28},
    ]
    assert body["top_classes"] == [
        {"object_class": "person", "per_day": pytest.approx(24 / 28)},
        {"object_class": "car", "per_day": pytest.approx(8 / 28)},
        {"object_class": "dog", "per_day": pytest.approx(4 / 28)},
    ]
    # Wednesday 10 o'clock: nothing expected; 3 cars in the last hour, cars were never seen at 10 → rarity 1.0
    assert body["current"] == {
        "day_of_week": WED,
        "hour": 10,
        "expected_count": 0.0,
        "observed_last_hour": 3,
        "anomaly_score": 1.0,
    }


def test_is_peak_compares_with_the_mean_of_sampled_slots(api_client, camera, frozen):
    rows = {(0, 0): 1.0, (0, 1): 1.0, (0, 2): 1.0, (0, 3): 3.1}
    for (day, hour), avg in rows.items():
        ActivityBaseline.objects.create(camera=camera, day_of_week=day, hour=hour, avg_count=avg, sample_count=4)
    ActivityBaseline.objects.create(camera=camera, day_of_week=1, hour=0, avg_count=0, sample_count=0)

    body = api_client.get("/api/cameras/front/baseline").json()

    peaks = [(s["day_of_week"], s["hour"]) for s in body["activity"] if s["is_peak"]]
    assert peaks == [(0, 3)]  # mean of the 4 sampled slots is 1.525; 3.1 > 2.2875, 1.0 is not
    assert (body["peak_day"], body["peak_hour"]) == (0, 3)


def test_top_classes_keep_the_ten_busiest(api_client, camera, frozen):
    for index in range(12):
        ClassBaseline.objects.create(
            camera=camera, object_class=f"class_{index:02d}", hour=index, frequency=index / 10, sample_count=28
        )

    body = api_client.get("/api/cameras/front/baseline").json()

    assert [row["object_class"] for row in body["top_classes"]] == [f"class_{i:02d}" for i in range(11, 1, -1)]
    assert len(body["classes"]) == 12


def test_current_score_is_null_until_established(api_client, frozen):
    camera = CameraFactory(id="young", created_at=NOW - dt.timedelta(days=3))
    detections(camera, utc(2024, 6, 4, 10, 30), 2)
    baselines_rebuild("young", now=NOW)
    detections(camera, utc(2024, 6, 5, 10, 0), 2)

    current = api_client.get("/api/cameras/young/baseline").json()["current"]

    assert current["observed_last_hour"] == 2
    assert current["anomaly_score"] is None


# --- Anomalies ------------------------------------------------------------------------------------------------------


def test_anomalies_lists_recent_anomalous_events_of_the_camera_newest_first(api_client, camera, frozen):
    old = EventFactory(camera=camera, anomaly_score=0.95, started_at=NOW - dt.timedelta(days=8))
    low = EventFactory(camera=camera, anomaly_score=0.79, started_at=NOW - dt.timedelta(hours=2))
    edge = EventFactory(camera=camera, anomaly_score=0.8, started_at=NOW - dt.timedelta(days=6))
    newest = EventFactory(camera=camera, anomaly_score=1.0, started_at=NOW - dt.timedelta(hours=1))
    unscored = EventFactory(camera=camera, anomaly_score=None, started_at=NOW - dt.timedelta(hours=3))
    deleted = EventFactory(camera=camera, anomaly_score=0.9, started_at=NOW, deleted_at=NOW)
    elsewhere = EventFactory(anomaly_score=0.99, started_at=NOW - dt.timedelta(hours=1))

    response = api_client.get("/api/cameras/front/baseline/anomalies")

    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["items"]] == [newest.id, edge.id]
    assert body["pagination"] == {"total": 2, "limit": 50, "offset": 0, "next_cursor": None, "has_more": False}
    excluded = {old.id, low.id, unscored.id, deleted.id, elsewhere.id}
    assert excluded.isdisjoint(item["id"] for item in body["items"])


def test_anomaly_items_are_the_event_list_items(api_client, camera, frozen):
    detection = DetectionFactory(camera=camera, detected_at=NOW - dt.timedelta(minutes=30), confidence=0.9)
    event = EventFactory(camera=camera, anomaly_score=0.91, detections=[detection])

    [item] = api_client.get("/api/cameras/front/baseline/anomalies").json()["items"]

    [listed] = api_client.get("/api/events", {"camera_id": "front"}).json()["items"]
    assert item == listed
    assert item["id"] == event.id and item["anomaly_score"] == 0.91 and "reasoning" not in item
    assert item["detection_ids"] == [detection.id]


def test_anomalies_days_window_and_threshold_setting(api_client, camera, frozen, settings):
    recent = EventFactory(camera=camera, anomaly_score=0.6, started_at=NOW - dt.timedelta(days=1))
    older = EventFactory(camera=camera, anomaly_score=0.9, started_at=NOW - dt.timedelta(days=30))
    settings.BASELINE_ANOMALY_THRESHOLD = 0.5

    def listed(**query):
        return [item["id"] for item in api_client.get("/api/cameras/front/baseline/anomalies", query).json()["items"]]

    assert listed() == [recent.id]
    assert listed(days=31) == [recent.id, older.id]
    assert listed(days=90) == [recent.id, older.id]


def test_anomalies_are_paged_with_limit_and_offset(api_client, camera, frozen):
    events = [
        EventFactory(camera=camera, anomaly_score=0.9, started_at=NOW - dt.timedelta(hours=hours))
        for hours in range(1, 6)
    ]

    body = api_client.get("/api/cameras/front/baseline/anomalies", {"limit": 2, "offset": 1}).json()

    assert [item["id"] for item in body["items"]] == [events[1].id, events[2].id]
    assert body["pagination"] == {"total": 5, "limit": 2, "offset": 1, "next_cursor": None, "has_more": True}
    past_the_end = api_client.get("/api/cameras/front/baseline/anomalies", {"offset": 10}).json()
    assert past_the_end["items"] == [] and past_the_end["pagination"]["has_more"] is False


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"days": 0}, "days"),
        ({"days": 91}, "days"),
        ({"days": "week"}, "days"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_anomalies_validate_their_parameters(api_client, camera, query, field):
    response = api_client.get("/api/cameras/front/baseline/anomalies", query)

    assert error_fields(response) == {field}


# --- Rebuild --------------------------------------------------------------------------------------------------------


def test_rebuild_is_202_queued_audited_and_runs_after_commit(
    api_client, camera, frozen, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    detections(camera, utc(2024, 6, 3, 8, 30), 4)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.post("/api/cameras/front/baseline/rebuild", HTTP_X_REQUEST_ID="rebuild-1")

    assert response.status_code == 202
    assert response.json() == {"camera_id": "front", "status": "queued"}
    assert not ActivityBaseline.objects.exists()  # nothing runs before the commit
    [audit] = AuditLog.objects.filter(action="baseline_rebuilt")
    assert (audit.resource_type, audit.resource_id, audit.status) == ("camera", "front", "success")
    assert audit.request_id == "rebuild-1"

    for callback in callbacks:
        callback()

    assert ActivityBaseline.objects.filter(camera=camera).count() == 168
    assert ActivityBaseline.objects.get(camera=camera, day_of_week=MON, hour=8).avg_count == 1.0


def test_rebuild_accepts_a_trailing_slash_and_only_post(api_client, camera):
    assert api_client.post("/api/cameras/front/baseline/rebuild/").status_code == 202
    problem(api_client.get("/api/cameras/front/baseline/rebuild"), 405, "method_not_allowed")
    problem(api_client.post("/api/cameras/front/baseline"), 405, "method_not_allowed")
