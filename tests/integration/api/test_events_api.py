"""/api/events: list with filters and cursors, stats, trash, detail, PATCH, soft delete, restore, detections
(CONTRACT §2.5, §0.3–0.7, §6.8)."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from events import selectors
from events.models import Event
from hsi.api.pagination import PageRequest
from system.models import AuditLog
from tests.factories import (
    CameraFactory,
    DetectionFactory,
    EntityFactory,
    EventFactory,
    EventFeedbackFactory,
)
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

LIST_ITEM_KEYS = {
    "id",
    "batch_id",
    "camera_id",
    "camera_name",
    "started_at",
    "ended_at",
    "risk_score",
    "risk_level",
    "summary",
    "recommended_action",
    "analysis_status",
    "is_fast_path",
    "anomaly_score",
    "suppressed",
    "object_types",
    "detection_count",
    "detection_ids",
    "thumbnail_url",
    "reviewed",
    "reviewed_at",
    "flagged",
    "notes",
    "snooze_until",
    "feedback_type",
    "deleted_at",
    "version",
    "created_at",
    "updated_at",
}


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def make_cursor(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


# --- Event JSON ---------------------------------------------------------------------------------------------------


def test_list_item_has_every_contract_field_and_no_reasoning(api_client):
    camera = CameraFactory(id="front_door", name="Front Door")
    low = DetectionFactory(camera=camera, detected_at=at(0), confidence=0.55, object_type="person")
    best = DetectionFactory(camera=camera, detected_at=at(1), confidence=0.97, object_type="car")
    event = EventFactory(camera=camera, detections=[best, low], risk_score=72, risk_level="high")
    EventFeedbackFactory(event=event, feedback_type="normal")

    response = api_client.get("/api/events")

    item = response.json()["items"][0]
    assert set(item) == LIST_ITEM_KEYS
    assert item["id"] == event.id and item["camera_id"] == "front_door" and item["camera_name"] == "Front Door"
    assert item["object_types"] == ["car", "person"]
    assert item["detection_ids"] == sorted([low.id, best.id])
    assert item["detection_count"] == 2
    assert item["thumbnail_url"] == f"/api/media/detections/{best.id}"
    assert item["feedback_type"] == "normal"
    assert item["started_at"] == "2024-05-01T12:00:00Z" and item["ended_at"] == "2024-05-01T12:01:00Z"
    assert item["risk_score"] == 72 and item["risk_level"] == "high" and item["version"] == 1
    assert item["deleted_at"] is None and item["reviewed_at"] is None and item["batch_id"] is None
    assert item["created_at"].endswith("Z") and item["updated_at"].endswith("Z")


def test_event_without_detections_or_feedback_has_nulls(api_client):
    EventFactory(object_types="", started_at=at(0))

    item = api_client.get("/api/events").json()["items"][0]

    assert item["detection_ids"] == [] and item["thumbnail_url"] is None
    assert item["feedback_type"] is None and item["object_types"] == []


def test_detail_includes_reasoning_and_soft_deleted_events(api_client):
    event = EventFactory(reasoning="Person at the door at night.", deleted_at=at(5))

    response = api_client.get(f"/api/events/{event.id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == LIST_ITEM_KEYS | {"reasoning"}
    assert body["reasoning"] == "Person at the door at night."
    assert body["deleted_at"] == "2024-05-01T12:05:00Z"


@pytest.mark.parametrize("path", ["/api/events/999999", "/api/events/abc", "/api/events/99999999999999999999"])
def test_detail_of_unknown_or_malformed_id_is_404(api_client, path):
    problem(api_client.get(path), 404, "not_found")


def test_detail_404_names_the_event(api_client):
    body = problem(api_client.get("/api/events/424242"), 404, "not_found")
    assert body["detail"] == "Event 424242 not found"


def test_paths_work_with_and_without_trailing_slash(api_client):
    event = EventFactory()
    for path in ("/api/events", "/api/events/", f"/api/events/{event.id}", f"/api/events/{event.id}/"):
        assert api_client.get(path).status_code == 200, path
    assert api_client.get("/api/events/stats/").status_code == 200
    assert api_client.get("/api/events/deleted/").status_code == 200


# --- List: ordering and filters -----------------------------------------------------------------------------------


def test_list_is_newest_first_with_id_tiebreak_and_hides_soft_deleted(api_client):
    older = EventFactory(started_at=at(0))
    same_a = EventFactory(started_at=at(10))
    same_b = EventFactory(started_at=at(10))
    EventFactory(started_at=at(20), deleted_at=at(30))

    response = api_client.get("/api/events")

    assert ids(response) == [same_b.id, same_a.id, older.id]
    assert response.json()["pagination"]["total"] == 3


def test_camera_id_filter_takes_a_list(api_client):
    a, b, c = (CameraFactory(id=name) for name in ("cam_a", "cam_b", "cam_c"))
    ea, eb = EventFactory(camera=a, started_at=at(1)), EventFactory(camera=b, started_at=at(2))
    EventFactory(camera=c)

    assert ids(api_client.get("/api/events?camera_id=cam_a,,cam_b")) == [eb.id, ea.id]
    assert ids(api_client.get("/api/events?camera_id=unknown")) == []


def test_risk_level_filter_is_any_of_and_validated(api_client):
    low = EventFactory(risk_level="low", risk_score=10, started_at=at(1))
    high = EventFactory(risk_level="high", risk_score=70, started_at=at(2))
    EventFactory(risk_level="medium", risk_score=40)

    assert ids(api_client.get("/api/events?risk_level=low,high")) == [high.id, low.id]
    assert error_fields(api_client.get("/api/events?risk_level=low,severe")) == {"risk_level"}


def test_risk_score_bounds_are_inclusive(api_client):
    events = {score: EventFactory(risk_score=score, started_at=at(score)) for score in (0, 29, 30, 100)}
    EventFactory(risk_score=None, risk_level=None)

    assert ids(api_client.get("/api/events?min_risk_score=29&max_risk_score=30")) == [events[30].id, events[29].id]
    assert ids(api_client.get("/api/events?min_risk_score=100")) == [events[100].id]
    assert ids(api_client.get("/api/events?max_risk_score=0")) == [events[0].id]


@pytest.mark.parametrize(
    "query", ["min_risk_score=-1", "min_risk_score=101", "max_risk_score=abc", "max_risk_score=1.5"]
)
def test_risk_score_out_of_range_or_not_integer_is_422(api_client, query):
    assert error_fields(api_client.get(f"/api/events?{query}")) == {query.split("=")[0]}


def test_inverted_risk_score_range_is_400(api_client):
    problem(api_client.get("/api/events?min_risk_score=60&max_risk_score=20"), 400, "bad_request")


@pytest.mark.parametrize("field", ["reviewed", "flagged", "suppressed", "is_fast_path"])
def test_boolean_filters_accept_every_spelling(api_client, field):
    marked = EventFactory(**{field: True}, started_at=at(1))
    plain = EventFactory(**{field: False}, started_at=at(2))

    for value in ("true", "TRUE", "1", "yes"):
        assert ids(api_client.get(f"/api/events?{field}={value}")) == [marked.id]
    for value in ("false", "0", "No"):
        assert ids(api_client.get(f"/api/events?{field}={value}")) == [plain.id]
    assert error_fields(api_client.get(f"/api/events?{field}=maybe")) == {field}


def test_analysis_status_filter(api_client):
    llm = EventFactory(analysis_status="llm", started_at=at(1))
    fallback = EventFactory(analysis_status="fallback", started_at=at(2))
    EventFactory(analysis_status="rules")

    assert ids(api_client.get("/api/events?analysis_status=llm,fallback")) == [fallback.id, llm.id]
    assert error_fields(api_client.get("/api/events?analysis_status=gpt")) == {"analysis_status"}


def test_object_type_filter_matches_whole_class_names_anywhere_in_the_list(api_client):
    only = EventFactory(object_types="car", started_at=at(1))
    first = EventFactory(object_types="car,person", started_at=at(2))
    middle = EventFactory(object_types="bicycle,car,dog", started_at=at(3))
    last = EventFactory(object_types="bus,car", started_at=at(4))
    EventFactory(object_types="cart", started_at=at(5))
    EventFactory(object_types="person,sidecar", started_at=at(6))
    EventFactory(object_types="carpet,racecar,scar", started_at=at(7))

    assert ids(api_client.get("/api/events?object_type=car")) == [last.id, middle.id, first.id, only.id]
    assert ids(api_client.get("/api/events?object_type=CAR")) == [last.id, middle.id, first.id, only.id]


def test_object_type_filter_is_any_of(api_client):
    dog = EventFactory(object_types="dog", started_at=at(1))
    person = EventFactory(object_types="person", started_at=at(2))
    EventFactory(object_types="car")

    assert ids(api_client.get("/api/events?object_type=dog,person")) == [person.id, dog.id]


def test_object_type_filter_treats_like_wildcards_literally(api_client):
    EventFactory(object_types="car,person")

    assert ids(api_client.get("/api/events?object_type=%25")) == []
    assert ids(api_client.get("/api/events?object_type=c_r")) == []


def test_entity_filter_returns_each_matching_event_once(api_client):
    entity = EntityFactory()
    camera = CameraFactory()
    twice = EventFactory(
        camera=camera,
        detections=[
            DetectionFactory(camera=camera, entity=entity, detected_at=at(1)),
            DetectionFactory(camera=camera, entity=entity, detected_at=at(2)),
        ],
    )
    EventFactory(camera=camera, detections=[DetectionFactory(camera=camera, entity=EntityFactory())])
    EventFactory(camera=camera, detections=[DetectionFactory(camera=camera)])

    response = api_client.get(f"/api/events?entity_id={entity.id}")

    assert ids(response) == [twice.id]
    assert response.json()["pagination"]["total"] == 1
    assert error_fields(api_client.get("/api/events?entity_id=not-a-uuid")) == {"entity_id"}


def test_date_range_is_inclusive_and_date_only_end_covers_the_whole_day(api_client):
    before = EventFactory(started_at=dt.datetime(2024, 4, 30, 23, 59, 59, 999999, tzinfo=dt.UTC))
    first = EventFactory(started_at=dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.UTC))
    last = EventFactory(started_at=dt.datetime(2024, 5, 2, 23, 59, 59, 999999, tzinfo=dt.UTC))
    EventFactory(started_at=dt.datetime(2024, 5, 3, 0, 0, tzinfo=dt.UTC))

    assert ids(api_client.get("/api/events?start_date=2024-05-01&end_date=2024-05-02")) == [last.id, first.id]
    assert ids(api_client.get("/api/events?end_date=2024-04-30T23:59:59.999999")) == [before.id]
    assert ids(api_client.get("/api/events?start_date=2024-05-01T02:00:00%2B02:00&end_date=2024-05-01")) == [first.id]


def test_unparsable_date_is_422_and_inverted_range_is_400(api_client):
    assert error_fields(api_client.get("/api/events?start_date=yesterday")) == {"start_date"}
    body = problem(api_client.get("/api/events?start_date=2024-05-02&end_date=2024-05-01"), 400, "bad_request")
    assert "start_date" in body["detail"] and "end_date" in body["detail"]


def test_unknown_query_parameters_are_ignored(api_client):
    event = EventFactory()
    assert ids(api_client.get("/api/events?colour=blue")) == [event.id]


# --- List: pagination ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "offset=-1"])
def test_out_of_range_paging_is_422(api_client, query):
    assert error_fields(api_client.get(f"/api/events?{query}")) == {query.split("=")[0]}


def test_offset_mode_pages_and_reports_next_cursor(api_client):
    events = [EventFactory(started_at=at(i)) for i in range(5)]
    newest_first = [e.id for e in reversed(events)]

    first = api_client.get("/api/events?limit=2").json()
    assert [i["id"] for i in first["items"]] == newest_first[:2]
    assert first["pagination"] == {
        "total": 5,
        "limit": 2,
        "offset": 0,
        "next_cursor": first["pagination"]["next_cursor"],
        "has_more": True,
    }
    assert first["pagination"]["next_cursor"]

    continued = api_client.get(f"/api/events?limit=2&cursor={first['pagination']['next_cursor']}").json()
    assert [i["id"] for i in continued["items"]] == newest_first[2:4]
    assert continued["pagination"]["offset"] is None

    last = api_client.get("/api/events?limit=2&offset=4").json()
    assert [i["id"] for i in last["items"]] == newest_first[4:]
    assert last["pagination"]["has_more"] is False and last["pagination"]["next_cursor"] is None

    beyond = api_client.get("/api/events?offset=50").json()
    assert beyond["items"] == [] and beyond["pagination"]["total"] == 5


def test_cursor_walk_visits_every_event_once_even_with_equal_timestamps(api_client):
    events = [EventFactory(started_at=at(i // 3)) for i in range(11)]  # groups of three share a timestamp
    EventFactory(started_at=at(2), deleted_at=at(9))
    expected = [e.id for e in sorted(events, key=lambda e: (e.started_at, e.id), reverse=True)]

    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/events?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = api_client.get(url).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        assert body["pagination"]["total"] == 11
        cursor = body["pagination"]["next_cursor"]
        assert (cursor is not None) == body["pagination"]["has_more"]
        if cursor is None:
            break

    assert seen == expected
    assert pages == 6


def test_cursor_ignores_offset_and_keeps_filters(api_client):
    camera = CameraFactory()
    mine = [EventFactory(camera=camera, started_at=at(i)) for i in range(3)]
    EventFactory(started_at=at(1.5))

    first = api_client.get(f"/api/events?camera_id={camera.id}&limit=1").json()
    cursor = first["pagination"]["next_cursor"]
    second = api_client.get(f"/api/events?camera_id={camera.id}&limit=5&offset=2&cursor={cursor}").json()

    assert [i["id"] for i in second["items"]] == [mine[1].id, mine[0].id]
    assert second["pagination"]["offset"] is None and second["pagination"]["has_more"] is False


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%not-base64",
        make_cursor(["t", 1]),
        make_cursor({"t": "2024-05-01T12:00:00Z"}),
        make_cursor({"t": "2024-05-01T12:00:00Z", "id": 0}),
        make_cursor({"t": "1999-12-31T23:59:59Z", "id": 5}),
        make_cursor({"t": "2101-01-01T00:00:00Z", "id": 5}),
        make_cursor({"t": "not a time", "id": 5}),
        base64.urlsafe_b64encode(b"not json").decode(),
        "A" * 600,
    ],
)
def test_invalid_cursor_is_400(api_client, cursor):
    body = problem(api_client.get(f"/api/events?cursor={cursor}"), 400, "bad_request")
    assert body["detail"] == "Invalid cursor"


@pytest.mark.django_db(transaction=True)  # committed writes: the cached total is in play
def test_total_follows_deletes_immediately(api_client):
    keep, drop = EventFactory(started_at=at(1)), EventFactory(started_at=at(2))
    assert api_client.get("/api/events").json()["pagination"]["total"] == 2

    assert api_client.delete(f"/api/events/{drop.id}").status_code == 204

    body = api_client.get("/api/events").json()
    assert body["pagination"]["total"] == 1 and [i["id"] for i in body["items"]] == [keep.id]


@pytest.mark.parametrize("page_size", [1, 50])
def test_list_query_count_does_not_grow_with_page_size(api_client, django_assert_num_queries, page_size):
    camera = CameraFactory()
    for i in range(60):
        detections = [DetectionFactory(camera=camera, detected_at=at(i), confidence=0.5 + j / 10) for j in range(3)]
        event = EventFactory(camera=camera, detections=detections)
        if i % 2:
            EventFeedbackFactory(event=event)

    # one statement for the page (camera, feedback and, on PostgreSQL, the detection links), one for the total
    with django_assert_num_queries(2):
        response = api_client.get(f"/api/events?limit={page_size}&object_type=person&reviewed=false")
    assert len(response.json()["items"]) == page_size
    assert all(len(item["detection_ids"]) == 3 for item in response.json()["items"])

    with django_assert_num_queries(1):  # the total now comes from the cache
        api_client.get(f"/api/events?limit={page_size}&object_type=person&reviewed=false")


def test_links_query_used_without_postgresql_gives_the_same_items(django_assert_num_queries):
    """SQLite (all-in-one mode) has no ARRAY subquery: one query reads the links of the whole page instead."""
    camera = CameraFactory()
    for i in range(3):
        detections = [DetectionFactory(camera=camera, confidence=c, detected_at=at(i)) for c in (0.6, 0.9, 0.9)]
        EventFactory(camera=camera, detections=detections)
    EventFactory(camera=camera, object_types="")
    # On PostgreSQL the items come rendered as JSON text by the database: they must equal the Python path's dicts
    with_subqueries = [
        json.loads(item) if isinstance(item, str) else item
        for item in selectors.event_page(PageRequest(limit=10, offset=0))["items"]
    ]

    rows = list(selectors.live_events().order_by("-started_at", "-id").values(*selectors.EVENT_COLUMNS))
    with django_assert_num_queries(1):
        selectors.attach_detection_links(rows)

    assert [selectors.event_json(row) for row in rows] == with_subqueries
    assert with_subqueries[0]["thumbnail_url"] is None
    first_of_the_best = min(with_subqueries[1]["detection_ids"][1:])
    assert with_subqueries[1]["thumbnail_url"] == f"/api/media/detections/{first_of_the_best}"


# --- Stats --------------------------------------------------------------------------------------------------------


def test_stats_counts_live_events_by_level_camera_review_and_analysis(api_client):
    front = CameraFactory(id="front", name="Front")
    back = CameraFactory(id="back", name="Back")
    garage = CameraFactory(id="garage", name="Garage")
    EventFactory(camera=front, risk_level="low", risk_score=5, reviewed=True, analysis_status="llm")
    EventFactory(camera=front, risk_level="critical", risk_score=95, analysis_status="llm")
    EventFactory(camera=back, risk_level=None, risk_score=None, analysis_status="fallback")
    EventFactory(camera=garage, risk_level="high", risk_score=70, analysis_status="rules", reviewed=True)
    EventFactory(camera=back, risk_level="high", risk_score=70, deleted_at=at(0))

    response = api_client.get("/api/events/stats")

    assert response.status_code == 200
    assert response.json() == {
        "total_events": 4,
        "events_by_risk_level": {"low": 1, "medium": 0, "high": 1, "critical": 1},
        "unscored_events": 1,
        "events_by_camera": [
            {"camera_id": "front", "camera_name": "Front", "event_count": 2},
            {"camera_id": "back", "camera_name": "Back", "event_count": 1},
            {"camera_id": "garage", "camera_name": "Garage", "event_count": 1},
        ],
        "reviewed_events": 2,
        "unreviewed_events": 2,
        "events_by_analysis_status": {"llm": 2, "rules": 1, "fallback": 1},
    }


def test_stats_of_nothing_still_has_every_key(api_client):
    assert api_client.get("/api/events/stats").json() == {
        "total_events": 0,
        "events_by_risk_level": {"low": 0, "medium": 0, "high": 0, "critical": 0},
        "unscored_events": 0,
        "events_by_camera": [],
        "reviewed_events": 0,
        "unreviewed_events": 0,
        "events_by_analysis_status": {"llm": 0, "rules": 0, "fallback": 0},
    }


def test_stats_filter_by_camera_and_inclusive_dates(api_client):
    camera = CameraFactory(id="porch")
    EventFactory(camera=camera, started_at=dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.UTC))
    EventFactory(camera=camera, started_at=dt.datetime(2024, 5, 1, 23, 59, 59, tzinfo=dt.UTC))
    EventFactory(camera=camera, started_at=dt.datetime(2024, 5, 2, 0, 0, tzinfo=dt.UTC))
    EventFactory(started_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC))

    body = api_client.get("/api/events/stats?camera_id=porch&start_date=2024-05-01&end_date=2024-05-01").json()

    assert body["total_events"] == 2
    assert [row["camera_id"] for row in body["events_by_camera"]] == ["porch"]
    problem(api_client.get("/api/events/stats?start_date=2024-05-02&end_date=2024-05-01"), 400, "bad_request")
    assert error_fields(api_client.get("/api/events/stats?end_date=soon")) == {"end_date"}


# --- Trash --------------------------------------------------------------------------------------------------------


def test_trash_lists_deleted_events_most_recently_deleted_first(api_client):
    early = EventFactory(started_at=at(50), deleted_at=at(100))
    late = EventFactory(started_at=at(0), deleted_at=at(200))
    EventFactory()

    body = api_client.get("/api/events/deleted").json()

    assert [i["id"] for i in body["items"]] == [late.id, early.id]
    assert body["items"][0]["deleted_at"] == "2024-05-01T15:20:00Z"
    assert body["pagination"]["total"] == 2


def test_trash_cursor_walk_on_deleted_at(api_client):
    trashed = [EventFactory(started_at=at(-i), deleted_at=at(i // 2)) for i in range(7)]
    expected = [e.id for e in sorted(trashed, key=lambda e: (e.deleted_at, e.id), reverse=True)]

    seen, cursor = [], None
    while True:
        body = api_client.get("/api/events/deleted?limit=3" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            break

    assert seen == expected
    problem(api_client.get("/api/events/deleted?cursor=bad!"), 400, "bad_request")
    assert error_fields(api_client.get("/api/events/deleted?limit=101")) == {"limit"}


# --- PATCH --------------------------------------------------------------------------------------------------------


def test_patch_reviewed_sets_reviewed_at_bumps_version_and_audits(api_client):
    event = EventFactory()

    response = api_client.patch(
        f"/api/events/{event.id}", {"reviewed": True}, format="json", HTTP_X_REQUEST_ID="req-review-1"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["reviewed"] is True and body["reviewed_at"].endswith("Z") and body["version"] == 2
    assert "reasoning" in body
    audit = AuditLog.objects.get(action="event_reviewed")
    assert audit.resource_type == "event" and audit.resource_id == str(event.id)
    assert audit.status == "success" and audit.request_id == "req-review-1" and audit.actor == "anonymous"
    assert audit.details["changes"]["reviewed"] == {"old": False, "new": True}


def test_patch_unreviewed_clears_reviewed_at(api_client):
    event = EventFactory(reviewed=True, reviewed_at=at(0))

    body = api_client.patch(f"/api/events/{event.id}", {"reviewed": False}, format="json").json()

    assert body["reviewed"] is False and body["reviewed_at"] is None
    assert AuditLog.objects.filter(action="event_unreviewed", resource_id=str(event.id)).count() == 1


def test_patch_notes_flag_and_snooze_write_event_updated_with_changes(api_client):
    event = EventFactory(notes="old note")

    response = api_client.patch(
        f"/api/events/{event.id}",
        {"notes": "checked the tape", "flagged": True, "snooze_until": "2024-06-01T10:00:00+02:00"},
        format="json",
    )

    body = response.json()
    assert body["notes"] == "checked the tape" and body["flagged"] is True
    assert body["snooze_until"] == "2024-06-01T08:00:00Z" and body["version"] == 2
    audit = AuditLog.objects.get(action="event_updated")
    assert audit.details["changes"] == {
        "notes": {"old": "old note", "new": "checked the tape"},
        "flagged": {"old": False, "new": True},
        "snooze_until": {"old": None, "new": "2024-06-01T08:00:00Z"},
    }
    assert not AuditLog.objects.filter(action="event_reviewed").exists()


def test_patch_null_clears_nullable_fields(api_client):
    event = EventFactory(notes="x", snooze_until=at(60))

    body = api_client.patch(f"/api/events/{event.id}", {"notes": None, "snooze_until": None}, format="json").json()

    assert body["notes"] is None and body["snooze_until"] is None
    event.refresh_from_db()
    assert event.notes is None and event.snooze_until is None


def test_patch_naive_snooze_is_utc(api_client):
    event = EventFactory()
    body = api_client.patch(f"/api/events/{event.id}", {"snooze_until": "2024-06-01T10:00:00"}, format="json").json()
    assert body["snooze_until"] == "2024-06-01T10:00:00Z"


@pytest.mark.parametrize("payload", [{}, {"flagged": False, "notes": None}, {"colour": "blue"}])
def test_patch_without_effective_change_is_a_no_op(api_client, payload):
    event = EventFactory()
    before = Event.objects.get(pk=event.id).updated_at

    response = api_client.patch(f"/api/events/{event.id}", payload, format="json")

    assert response.status_code == 200 and response.json()["version"] == 1
    assert Event.objects.get(pk=event.id).updated_at == before
    assert not AuditLog.objects.exists()


def test_patch_with_matching_version_succeeds(api_client):
    event = EventFactory(version=4)
    body = api_client.patch(f"/api/events/{event.id}", {"flagged": True, "version": 4}, format="json").json()
    assert body["version"] == 5 and body["flagged"] is True


def test_patch_with_stale_version_is_409_and_changes_nothing(api_client):
    event = EventFactory(version=3)

    response = api_client.patch(f"/api/events/{event.id}", {"reviewed": True, "version": 2}, format="json")

    body = problem(response, 409, "version_conflict")
    assert body["current_version"] == 3
    event.refresh_from_db()
    assert event.reviewed is False and event.version == 3
    assert not AuditLog.objects.exists()


def test_patch_of_a_deleted_event_is_409_invalid_state(api_client):
    event = EventFactory(deleted_at=at(0))

    problem(api_client.patch(f"/api/events/{event.id}", {"reviewed": True}, format="json"), 409, "invalid_state")

    event.refresh_from_db()
    assert event.reviewed is False


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"reviewed": "true"}, "reviewed"),
        ({"reviewed": 1}, "reviewed"),
        ({"flagged": None}, "flagged"),
        ({"notes": "x" * 10001}, "notes"),
        ({"notes": 42}, "notes"),
        ({"snooze_until": "next week"}, "snooze_until"),
        ({"snooze_until": 1717236000}, "snooze_until"),
        ({"version": 0}, "version"),
        ({"version": "2"}, "version"),
        ({"version": 1.5}, "version"),
        ({"version": True}, "version"),
    ],
)
def test_patch_validation_errors_are_422(api_client, payload, field):
    event = EventFactory()

    assert error_fields(api_client.patch(f"/api/events/{event.id}", payload, format="json")) == {field}

    event.refresh_from_db()
    assert event.version == 1
    assert not AuditLog.objects.exists()


def test_patch_accepts_notes_of_exactly_10000_characters(api_client):
    event = EventFactory()
    response = api_client.patch(f"/api/events/{event.id}", {"notes": "n" * 10000}, format="json")
    assert response.status_code == 200 and len(response.json()["notes"]) == 10000


def test_patch_body_must_be_a_json_object(api_client):
    event = EventFactory()
    problem(api_client.patch(f"/api/events/{event.id}", [1, 2], format="json"), 422, "validation_error")
    problem(api_client.patch(f"/api/events/{event.id}", "{broken", content_type="application/json"), 400, "bad_request")


def test_patch_unknown_event_is_404(api_client):
    problem(api_client.patch("/api/events/987654", {"reviewed": True}, format="json"), 404, "not_found")


# --- DELETE and restore -------------------------------------------------------------------------------------------


def test_delete_soft_deletes_and_audits(api_client):
    event = EventFactory()

    response = api_client.delete(f"/api/events/{event.id}")

    assert response.status_code == 204 and response.content == b""
    event.refresh_from_db()
    assert event.deleted_at is not None and event.version == 2
    audit = AuditLog.objects.get(action="event_deleted")
    assert audit.status == "success" and audit.resource_id == str(event.id)
    assert ids(api_client.get("/api/events")) == []
    assert ids(api_client.get("/api/events/deleted")) == [event.id]


def test_delete_of_a_deleted_event_is_409_and_audited_as_failure(api_client):
    event = EventFactory(deleted_at=at(0), version=2)

    body = problem(api_client.delete(f"/api/events/{event.id}"), 409, "invalid_state")

    assert body["detail"] == "Event is already deleted"
    event.refresh_from_db()
    assert event.version == 2 and event.deleted_at == at(0)
    audit = AuditLog.objects.get(action="event_deleted")
    assert audit.status == "failure" and audit.resource_id == str(event.id)


def test_restore_brings_the_event_back(api_client):
    event = EventFactory(deleted_at=at(0), version=2, started_at=at(-5))

    response = api_client.post(f"/api/events/{event.id}/restore")

    assert response.status_code == 200
    body = response.json()
    assert body["deleted_at"] is None and body["version"] == 3 and body["id"] == event.id
    assert AuditLog.objects.get(action="event_restored").status == "success"
    assert ids(api_client.get("/api/events")) == [event.id]


def test_restore_of_a_live_event_is_409_and_audited_as_failure(api_client):
    event = EventFactory()

    body = problem(api_client.post(f"/api/events/{event.id}/restore/"), 409, "invalid_state")

    assert body["detail"] == "Event is not deleted"
    assert AuditLog.objects.get(action="event_restored").status == "failure"
    event.refresh_from_db()
    assert event.version == 1


def test_delete_and_restore_of_unknown_event_are_404_without_audit(api_client):
    problem(api_client.delete("/api/events/5555"), 404, "not_found")
    problem(api_client.post("/api/events/5555/restore"), 404, "not_found")
    assert not AuditLog.objects.exists()


def test_wrong_method_is_405(api_client):
    event = EventFactory()
    response = api_client.put(f"/api/events/{event.id}/restore", {}, format="json")
    problem(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


# --- /api/events/{id}/detections ----------------------------------------------------------------------------------


def test_event_detections_are_oldest_first_with_detection_json(api_client):
    camera = CameraFactory()
    late = DetectionFactory(camera=camera, detected_at=at(2))
    early_b = DetectionFactory(camera=camera, detected_at=at(1))
    early_a = DetectionFactory(camera=camera, detected_at=at(1))
    event = EventFactory(camera=camera, detections=[late, early_b, early_a])
    DetectionFactory(camera=camera, detected_at=at(1))

    body = api_client.get(f"/api/events/{event.id}/detections").json()

    assert [d["id"] for d in body["items"]] == [min(early_a.id, early_b.id), max(early_a.id, early_b.id), late.id]
    assert {d["event_id"] for d in body["items"]} == {event.id}
    assert body["items"][0]["thumbnail_url"] == f"/api/detections/{body['items'][0]['id']}/thumbnail"
    assert body["pagination"] == {"total": 3, "limit": 50, "offset": 0, "next_cursor": None, "has_more": False}


def test_event_detections_paging_limits(api_client):
    camera = CameraFactory()
    event = EventFactory(camera=camera, detections=[DetectionFactory(camera=camera) for _ in range(3)])

    first = api_client.get(f"/api/events/{event.id}/detections?limit=2").json()
    assert len(first["items"]) == 2 and first["pagination"]["has_more"] is True
    assert first["pagination"]["next_cursor"] is None
    rest = api_client.get(f"/api/events/{event.id}/detections?limit=2&offset=2").json()
    assert len(rest["items"]) == 1 and rest["pagination"]["has_more"] is False
    assert api_client.get(f"/api/events/{event.id}/detections?limit=1000").status_code == 200
    assert error_fields(api_client.get(f"/api/events/{event.id}/detections?limit=1001")) == {"limit"}


def test_event_detections_of_deleted_event_are_listed_and_unknown_event_is_404(api_client):
    camera = CameraFactory()
    event = EventFactory(camera=camera, detections=[DetectionFactory(camera=camera)], deleted_at=at(0))

    assert len(api_client.get(f"/api/events/{event.id}/detections").json()["items"]) == 1
    body = problem(api_client.get("/api/events/777/detections"), 404, "not_found")
    assert body["detail"] == "Event 777 not found"
