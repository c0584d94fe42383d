"""/api/entities (CONTRACT §2.9, §6.8): list with filters and paging, stats, detail with recent detections, the
entity's detections, PATCH validation and audit, DELETE keeping the detections."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from events.models import Detection, Entity
from system.models import AuditLog
from tests.factories import CameraFactory, DetectionFactory, EntityFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

ENTITY_KEYS = {
    "id",
    "entity_type",
    "label",
    "trust_status",
    "notes",
    "first_seen_at",
    "last_seen_at",
    "detection_count",
    "cameras_seen",
    "primary_detection_id",
    "thumbnail_url",
    "created_at",
    "updated_at",
}


def hours_ago(hours: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(hours=hours)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def sighted(entity: Entity, camera, *, hours: float, **fields) -> Detection:
    return DetectionFactory(camera=camera, entity=entity, detected_at=hours_ago(hours), **fields)


# --- list -------------------------------------------------------------------------------------------------------


def test_list_items_have_every_field_but_no_embedding_most_recently_seen_first(api_client):
    camera = CameraFactory(id="front_door")
    older = EntityFactory(last_seen_at=hours_ago(5))
    newer = EntityFactory(last_seen_at=hours_ago(1), label="Mail carrier", cameras_seen=["front_door"])
    primary = sighted(newer, camera, hours=1)
    Entity.objects.filter(pk=newer.pk).update(primary_detection=primary)

    response = api_client.get("/api/entities")

    assert ids(response) == [str(newer.pk), str(older.pk)]
    item = response.json()["items"][0]
    assert set(item) == ENTITY_KEYS
    assert item["label"] == "Mail carrier" and item["cameras_seen"] == ["front_door"]
    assert item["primary_detection_id"] == primary.pk
    assert item["thumbnail_url"] == f"/api/media/detections/{primary.pk}"
    assert response.json()["items"][1]["thumbnail_url"] is None
    assert response.json()["pagination"] == {
        "total": 2,
        "limit": 50,
        "offset": 0,
        "next_cursor": None,
        "has_more": False,
    }


def test_list_filters_by_type_trust_camera_last_seen_and_detection_count(api_client):
    garage, porch = CameraFactory(id="garage"), CameraFactory(id="porch")
    person = EntityFactory(entity_type="person", trust_status="trusted", last_seen_at=hours_ago(1), detection_count=3)
    car = EntityFactory(entity_type="vehicle", trust_status="unknown", last_seen_at=hours_ago(30), detection_count=1)
    dog = EntityFactory(entity_type="animal", trust_status="untrusted", last_seen_at=hours_ago(50), detection_count=2)
    sighted(person, garage, hours=1)
    sighted(person, garage, hours=2)
    sighted(car, porch, hours=30)
    since = (timezone.now() - dt.timedelta(hours=40)).isoformat()

    assert set(ids(api_client.get("/api/entities?entity_type=person,animal"))) == {str(person.pk), str(dog.pk)}
    assert ids(api_client.get("/api/entities?trust_status=UNKNOWN")) == [str(car.pk)]
    assert ids(api_client.get("/api/entities?camera_id=garage")) == [str(person.pk)]  # once, not per detection
    assert set(ids(api_client.get("/api/entities?camera_id=garage,porch"))) == {str(person.pk), str(car.pk)}
    assert ids(api_client.get("/api/entities", {"since": since})) == [str(person.pk), str(car.pk)]
    assert ids(api_client.get("/api/entities", {"until": since})) == [str(dog.pk)]
    assert ids(api_client.get("/api/entities?min_detections=2")) == [str(person.pk), str(dog.pk)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("entity_type=person,robot", "entity_type"),
        ("trust_status=maybe", "trust_status"),
        ("min_detections=0", "min_detections"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
    ],
)
def test_invalid_list_parameters_are_422_naming_the_field(api_client, query, field):
    assert error_fields(api_client.get(f"/api/entities?{query}")) == {field}


def test_since_after_until_is_400(api_client):
    response = api_client.get("/api/entities?since=2026-02-01&until=2026-01-01")

    assert "since" in problem(response, 400, "bad_request")["detail"]


def test_paging_with_limit_and_offset(api_client):
    entities = [EntityFactory(last_seen_at=hours_ago(n)) for n in range(5)]

    response = api_client.get("/api/entities?limit=2&offset=2")

    assert ids(response) == [str(e.pk) for e in entities[2:4]]
    assert response.json()["pagination"] == {"total": 5, "limit": 2, "offset": 2, "next_cursor": None, "has_more": True}


def test_the_list_costs_the_same_number_of_queries_whatever_the_page_size(api_client):
    camera = CameraFactory()

    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as context:
            assert api_client.get(f"/api/entities?camera_id={camera.id}&entity_type=person").status_code == 200
        return len(context.captured_queries)

    first = EntityFactory()
    sighted(first, camera, hours=1)
    one = queries_for_page()
    for _ in range(20):
        sighted(EntityFactory(), camera, hours=1)

    assert queries_for_page() == one <= 3


# --- stats ------------------------------------------------------------------------------------------------------


def test_stats_count_by_type_and_trust_with_repeat_visitors_and_the_last_24_hours(api_client):
    EntityFactory(entity_type="person", trust_status="trusted", detection_count=5, last_seen_at=hours_ago(1))
    EntityFactory(entity_type="person", detection_count=1, last_seen_at=hours_ago(30))
    EntityFactory(entity_type="vehicle", detection_count=2, last_seen_at=hours_ago(100))

    response = api_client.get("/api/entities/stats")

    assert response.status_code == 200
    assert response.json() == {
        "total_entities": 3,
        "by_type": {"person": 2, "vehicle": 1, "animal": 0},
        "by_trust_status": {"trusted": 1, "untrusted": 0, "unknown": 2},
        "repeat_visitors": 2,
        "seen_last_24h": 1,
    }
    since = (timezone.now() - dt.timedelta(hours=48)).isoformat()
    assert api_client.get("/api/entities/stats", {"since": since}).json()["total_entities"] == 2


# --- detail and detections --------------------------------------------------------------------------------------


def test_detail_adds_the_twenty_most_recent_detections(api_client):
    camera = CameraFactory(id="yard")
    entity = EntityFactory()
    detections = [sighted(entity, camera, hours=n + 1, confidence=0.8, entity_similarity=0.91) for n in range(22)]
    sighted(EntityFactory(), camera, hours=0.5)  # another entity's

    response = api_client.get(f"/api/entities/{entity.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == ENTITY_KEYS | {"recent_detections"}
    recent = body["recent_detections"]
    assert [r["detection_id"] for r in recent] == [d.pk for d in detections[:20]]
    assert recent[0] == {
        "detection_id": detections[0].pk,
        "camera_id": "yard",
        "detected_at": detections[0].detected_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "confidence": 0.8,
        "similarity": 0.91,
        "thumbnail_url": f"/api/media/detections/{detections[0].pk}",
    }


def test_unknown_or_malformed_entity_ids_are_404(api_client):
    missing = uuid.uuid4()

    assert problem(api_client.get(f"/api/entities/{missing}"), 404, "not_found")
    assert problem(api_client.get(f"/api/entities/{missing}/detections"), 404, "not_found")
    assert problem(api_client.patch(f"/api/entities/{missing}", {"label": "x"}, format="json"), 404, "not_found")
    assert problem(api_client.delete(f"/api/entities/{missing}"), 404, "not_found")
    assert api_client.get("/api/entities/not-a-uuid").status_code == 404


def test_the_entity_detections_are_detection_json_newest_first_with_paging(api_client):
    camera = CameraFactory()
    entity = EntityFactory()
    detections = [sighted(entity, camera, hours=n + 1) for n in range(3)]
    sighted(EntityFactory(), camera, hours=0.1)

    response = api_client.get(f"/api/entities/{entity.pk}/detections?limit=2")

    assert response.status_code == 200, response.content
    body = response.json()
    assert [item["id"] for item in body["items"]] == [detections[0].pk, detections[1].pk]
    assert body["items"][0]["entity_id"] == str(entity.pk)
    assert body["items"][0]["thumbnail_url"] == f"/api/detections/{detections[0].pk}/thumbnail"
    assert body["pagination"] == {"total": 3, "limit": 2, "offset": 0, "next_cursor": None, "has_more": True}
    assert error_fields(api_client.get(f"/api/entities/{entity.pk}/detections?limit=101")) == {"limit"}


# --- PATCH and DELETE -------------------------------------------------------------------------------------------


def test_patch_changes_trust_label_and_notes_and_audits_the_changes(api_client):
    entity = EntityFactory(label="", trust_status="unknown")

    response = api_client.patch(
        f"/api/entities/{entity.pk}", {"trust_status": "trusted", "label": "Neighbour", "notes": "Walks a dog"}, "json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["trust_status"], body["label"], body["notes"]) == ("trusted", "Neighbour", "Walks a dog")
    assert "recent_detections" in body
    row = AuditLog.objects.get(action="entity_updated")
    assert (row.resource_type, row.resource_id) == ("entity", str(entity.pk))
    assert row.details["changes"] == {
        "trust_status": {"old": "unknown", "new": "trusted"},
        "label": {"old": "", "new": "Neighbour"},
        "notes": {"old": "", "new": "Walks a dog"},
    }

    assert api_client.patch(f"/api/entities/{entity.pk}", {"label": "Neighbour"}, "json").status_code == 200
    assert AuditLog.objects.filter(action="entity_updated").count() == 1  # nothing changed: no row


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"trust_status": "friend"}, "trust_status"),
        ({"label": "x" * 101}, "label"),
        ({"notes": "x" * 2001}, "notes"),
        ({"label": 7}, "label"),
    ],
)
def test_invalid_patch_bodies_are_422_and_change_nothing(api_client, body, field):
    entity = EntityFactory(label="Kept")

    assert error_fields(api_client.patch(f"/api/entities/{entity.pk}", body, format="json")) == {field}
    entity.refresh_from_db()
    assert entity.label == "Kept" and entity.trust_status == "unknown"
    assert not AuditLog.objects.filter(action="entity_updated").exists()


def test_delete_keeps_the_detections_without_their_entity_and_audits(api_client):
    camera = CameraFactory()
    entity = EntityFactory(label="Courier")
    kept = sighted(entity, camera, hours=1)

    response = api_client.delete(f"/api/entities/{entity.pk}")

    assert response.status_code == 204
    assert not Entity.objects.filter(pk=entity.pk).exists()
    kept.refresh_from_db()
    assert kept.entity_id is None
    row = AuditLog.objects.get(action="entity_deleted")
    assert (row.resource_type, row.resource_id, row.details["label"]) == ("entity", str(entity.pk), "Courier")
    assert api_client.get(f"/api/detections?entity_id={entity.pk}").json()["pagination"]["total"] == 0
