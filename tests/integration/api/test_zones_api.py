"""Zones over HTTP (CONTRACT §2.3, §6.8 zone audit actions)."""

from __future__ import annotations

import math
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cameras.models import Zone
from system.models import AuditLog
from tests.factories import CameraFactory, ZoneFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


@pytest.fixture
def camera():
    return CameraFactory(id="front_door", name="Front Door", folder_path="front_door")


def field_errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == "validation_error"
    return {error["field"]: error["message"] for error in body["errors"]}


def post_zone(api_client, camera_id: str = "front_door", **body):
    body.setdefault("name", "Porch")
    body.setdefault("coordinates", SQUARE)
    return api_client.post(f"/api/cameras/{camera_id}/zones", body, format="json")


def regular_polygon(points: int) -> list[list[float]]:
    return [
        [0.5 + 0.4 * math.cos(2 * math.pi * i / points), 0.5 + 0.4 * math.sin(2 * math.pi * i / points)]
        for i in range(points)
    ]


# --- create ------------------------------------------------------------------------------------------------------


def test_create_returns_the_zone_with_defaults(api_client, camera):
    response = post_zone(api_client, name="  Porch  ")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "camera_id",
        "name",
        "zone_type",
        "shape",
        "coordinates",
        "color",
        "enabled",
        "priority",
        "created_at",
        "updated_at",
    }
    assert uuid.UUID(body["id"]).version == 4 and body["id"] == body["id"].lower()
    assert body["camera_id"] == "front_door" and body["name"] == "Porch"
    assert (body["zone_type"], body["shape"], body["color"], body["enabled"], body["priority"]) == (
        "other",
        "rectangle",
        "#3B82F6",
        True,
        0,
    )
    assert body["coordinates"] == SQUARE
    assert body["created_at"].endswith("Z") and body["created_at"] == body["updated_at"]
    assert response["Location"] == f"/api/cameras/front_door/zones/{body['id']}"
    assert Zone.objects.get(pk=body["id"]).camera_id == "front_door"


def test_create_with_every_field(api_client, camera):
    triangle = [[0, 0], [1, 0], [0, 1]]
    response = post_zone(
        api_client,
        name="Drive",
        coordinates=triangle,
        zone_type="driveway",
        shape="polygon",
        color="#aabbcc",
        enabled=False,
        priority=100,
    )

    assert response.status_code == 201
    zone = Zone.objects.get(pk=response.json()["id"])
    assert (zone.zone_type, zone.shape, zone.color, zone.enabled, zone.priority) == (
        "driveway",
        "polygon",
        "#aabbcc",
        False,
        100,
    )
    assert zone.coordinates == [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]


def test_create_writes_an_audit_row(api_client, camera):
    zone_id = post_zone(api_client, name="Porch").json()["id"]

    [row] = AuditLog.objects.filter(action="zone_created")
    assert (row.resource_type, row.resource_id, row.actor, row.status) == ("zone", zone_id, "anonymous", "success")
    assert row.details["camera_id"] == "front_door" and row.details["zone"]["name"] == "Porch"


def test_create_on_unknown_camera_is_404(api_client):
    response = post_zone(api_client, camera_id="nope")

    assert response.status_code == 404 and response.json()["detail"] == "Camera nope not found"
    assert not Zone.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"coordinates": SQUARE}, "name"),
        ({"name": "", "coordinates": SQUARE}, "name"),
        ({"name": "   ", "coordinates": SQUARE}, "name"),
        ({"name": "x" * 256, "coordinates": SQUARE}, "name"),
        ({"name": 5, "coordinates": SQUARE}, "name"),
        ({"name": None, "coordinates": SQUARE}, "name"),
        ({"name": "Porch"}, "coordinates"),
        ({"name": "Porch", "coordinates": None}, "coordinates"),
        ({"name": "Porch", "coordinates": "0,0;1,0;1,1"}, "coordinates"),
        ({"name": "Porch", "coordinates": {"points": SQUARE}}, "coordinates"),
        ({"name": "Porch", "coordinates": []}, "coordinates"),
        ({"name": "Porch", "coordinates": [[0, 0], [1, 1]]}, "coordinates"),
        ({"name": "Porch", "coordinates": regular_polygon(101)}, "coordinates"),
        ({"name": "Porch", "coordinates": [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]}, "coordinates"),
        ({"name": "Porch", "coordinates": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}, "coordinates"),
        ({"name": "Porch", "coordinates": [[0, 0], [0.5, 0.0000000001], [1, 0]]}, "coordinates"),
        ({"name": "Porch", "coordinates": SQUARE, "zone_type": "garden"}, "zone_type"),
        ({"name": "Porch", "coordinates": SQUARE, "zone_type": None}, "zone_type"),
        ({"name": "Porch", "coordinates": SQUARE, "shape": "circle"}, "shape"),
        ({"name": "Porch", "coordinates": SQUARE, "color": "blue"}, "color"),
        ({"name": "Porch", "coordinates": SQUARE, "color": "#12345"}, "color"),
        ({"name": "Porch", "coordinates": SQUARE, "color": "#1234567"}, "color"),
        ({"name": "Porch", "coordinates": SQUARE, "color": "#GGGGGG"}, "color"),
        ({"name": "Porch", "coordinates": SQUARE, "color": "3B82F6"}, "color"),
        ({"name": "Porch", "coordinates": SQUARE, "color": 3899126}, "color"),
        ({"name": "Porch", "coordinates": SQUARE, "enabled": "true"}, "enabled"),
        ({"name": "Porch", "coordinates": SQUARE, "enabled": 1}, "enabled"),
        ({"name": "Porch", "coordinates": SQUARE, "priority": -1}, "priority"),
        ({"name": "Porch", "coordinates": SQUARE, "priority": 101}, "priority"),
        ({"name": "Porch", "coordinates": SQUARE, "priority": 1.5}, "priority"),
        ({"name": "Porch", "coordinates": SQUARE, "priority": "5"}, "priority"),
        ({"name": "Porch", "coordinates": SQUARE, "priority": True}, "priority"),
        ({"name": "Porch", "coordinates": SQUARE, "priority": None}, "priority"),
    ],
)
def test_create_rejects_each_invalid_field_with_422(api_client, camera, body, field):
    response = api_client.post("/api/cameras/front_door/zones", body, format="json")

    errors = field_errors(response)
    assert errors.get(field)
    assert not Zone.objects.exists() and not AuditLog.objects.exists()


@pytest.mark.parametrize(
    ("coordinates", "field", "fragment"),
    [
        ([[0.1, 0.1], [0.9, 0.1], [0.9], [0.1, 0.9]], "coordinates.2", "two numbers"),
        ([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9, 0.5], [0.1, 0.9]], "coordinates.2", "two numbers"),
        ([[0.1, 0.1], [True, 0.1], [0.9, 0.9]], "coordinates.1", "two numbers"),
        ([[0.1, 0.1], [0.9, False], [0.9, 0.9]], "coordinates.1", "two numbers"),
        ([[0.1, 0.1], ["0.9", 0.1], [0.9, 0.9]], "coordinates.1", "two numbers"),
        ([[0.1, 0.1], [0.9, 0.1], "0.9,0.9"], "coordinates.2", "two numbers"),
        ([[0.1, 0.1], [1.5, 0.1], [0.9, 0.9]], "coordinates.1", "[0, 1]"),
        ([[0.1, -0.1], [0.9, 0.1], [0.9, 0.9]], "coordinates.0", "[0, 1]"),
        ([[0.1, 0.1], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]], "coordinates.2", "repeats"),
        ([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.1]], "coordinates.3", "first point"),
        ([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], "coordinates", "area"),
        ([[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]], "coordinates", "intersect"),
        ([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.0], [0.0, 1.0]], "coordinates", "intersect"),
        ([[0, 0], [1, 1]], "coordinates", "between 3 and 100"),
        (regular_polygon(101), "coordinates", "between 3 and 100"),
    ],
)
def test_each_polygon_rule_is_reported_on_its_point_or_on_the_polygon(api_client, camera, coordinates, field, fragment):
    errors = field_errors(post_zone(api_client, coordinates=coordinates))

    assert list(errors) == [field] and fragment in errors[field]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "n" * 255, "coordinates": [[0, 0], [1, 0], [0, 1]]},
        {"name": "Porch", "coordinates": regular_polygon(100)},
        {"name": "Porch", "coordinates": SQUARE, "priority": 0, "color": "#abcdef"},
        {"name": "Porch", "coordinates": SQUARE, "zone_type": "entry_point", "shape": "polygon"},
        {"name": "Porch", "coordinates": [[0.2, 0.2], [0.8, 0.2], [0.5, 0.5], [0.8, 0.8], [0.2, 0.8]]},
    ],
)
def test_create_accepts_boundary_values(api_client, camera, body):
    assert api_client.post("/api/cameras/front_door/zones", body, format="json").status_code == 201


# --- list and detail ---------------------------------------------------------------------------------------------


def test_camera_zone_list_is_ordered_by_priority_desc_then_name(api_client, camera):
    low = ZoneFactory(camera=camera, name="A low", priority=1)
    high_b = ZoneFactory(camera=camera, name="B high", priority=50)
    high_a = ZoneFactory(camera=camera, name="A high", priority=50)
    ZoneFactory(name="Elsewhere", priority=99)

    for path in ("/api/cameras/front_door/zones", "/api/cameras/front_door/zones/"):
        body = api_client.get(path).json()
        assert [item["id"] for item in body["items"]] == [str(high_a.id), str(high_b.id), str(low.id)]
        assert body["pagination"] == {"total": 3, "limit": 100, "offset": 0, "next_cursor": None, "has_more": False}
        assert body["items"][0]["camera_id"] == "front_door"


def test_camera_zone_list_filters_by_enabled_and_pages(api_client, camera):
    ZoneFactory(camera=camera, name="On 1", enabled=True)
    ZoneFactory(camera=camera, name="On 2", enabled=True)
    ZoneFactory(camera=camera, name="Off", enabled=False)

    enabled = api_client.get("/api/cameras/front_door/zones?enabled=true&limit=1").json()
    disabled = api_client.get("/api/cameras/front_door/zones?enabled=0").json()

    assert [item["name"] for item in enabled["items"]] == ["On 1"]
    assert enabled["pagination"]["total"] == 2 and enabled["pagination"]["has_more"] is True
    assert [item["name"] for item in disabled["items"]] == ["Off"]


@pytest.mark.parametrize(("query", "field"), [("?enabled=perhaps", "enabled"), ("?limit=1001", "limit")])
def test_camera_zone_list_rejects_invalid_parameters(api_client, camera, query, field):
    assert field in field_errors(api_client.get(f"/api/cameras/front_door/zones{query}"))


def test_camera_zone_list_of_unknown_camera_is_404(api_client):
    response = api_client.get("/api/cameras/nope/zones")

    assert response.status_code == 404 and response.json()["detail"] == "Camera nope not found"


def test_get_zone_through_its_camera(api_client, camera):
    zone = ZoneFactory(camera=camera, name="Porch")

    for path in (f"/api/cameras/front_door/zones/{zone.id}", f"/api/cameras/front_door/zones/{zone.id}/"):
        response = api_client.get(path)
        assert response.status_code == 200
        assert response.json()["id"] == str(zone.id) and response.json()["name"] == "Porch"


def test_zone_of_another_camera_is_404_on_every_verb(api_client, camera):
    other_zone = ZoneFactory(name="Not yours")
    path = f"/api/cameras/front_door/zones/{other_zone.id}"

    responses = [
        api_client.get(path),
        api_client.patch(path, {"name": "Stolen"}, format="json"),
        api_client.put(path, {"name": "Stolen"}, format="json"),
        api_client.delete(path),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert all(r.json()["detail"] == f"Zone {other_zone.id} not found" for r in responses)
    assert Zone.objects.get(pk=other_zone.id).name == "Not yours"
    assert not AuditLog.objects.exists()


def test_unknown_zone_and_non_uuid_paths_are_404(api_client, camera):
    unknown = api_client.get(f"/api/cameras/front_door/zones/{uuid.uuid4()}")
    malformed = api_client.get("/api/cameras/front_door/zones/not-a-uuid")
    malformed_index = api_client.get("/api/zones/123")

    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("Zone ")
    assert malformed.status_code == 404 and malformed.json()["code"] == "not_found"
    assert malformed_index.status_code == 404 and malformed_index["Content-Type"] == PROBLEM


def test_zone_under_unknown_camera_is_404(api_client):
    zone = ZoneFactory()

    response = api_client.get(f"/api/cameras/nope/zones/{zone.id}")

    assert response.status_code == 404 and response.json()["detail"] == "Camera nope not found"


def test_list_query_count_does_not_grow_with_the_page(api_client, camera):
    ZoneFactory.create_batch(2, camera=camera)
    with CaptureQueriesContext(connection) as small_nested:
        api_client.get("/api/cameras/front_door/zones")
    with CaptureQueriesContext(connection) as small_index:
        api_client.get("/api/zones")
    ZoneFactory.create_batch(30, camera=camera)
    ZoneFactory.create_batch(10)
    with CaptureQueriesContext(connection) as large_nested:
        assert len(api_client.get("/api/cameras/front_door/zones").json()["items"]) == 32
    with CaptureQueriesContext(connection) as large_index:
        assert len(api_client.get("/api/zones").json()["items"]) == 42

    assert len(large_nested) == len(small_nested) <= 3
    assert len(large_index) == len(small_index) <= 2


# --- update ------------------------------------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent_and_audits_them(api_client, camera):
    zone = ZoneFactory(camera=camera, name="Porch", priority=5, color="#3B82F6")
    new_coordinates = [[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]]

    response = api_client.patch(
        f"/api/cameras/front_door/zones/{zone.id}",
        {"priority": 80, "coordinates": new_coordinates, "camera_id": "elsewhere"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["priority"] == 80 and body["coordinates"] == new_coordinates
    assert body["name"] == "Porch" and body["camera_id"] == "front_door"
    zone.refresh_from_db()
    assert zone.priority == 80 and zone.updated_at > zone.created_at
    [row] = AuditLog.objects.filter(action="zone_updated")
    assert row.resource_type == "zone" and row.resource_id == str(zone.id)
    assert row.details["camera_id"] == "front_door"
    assert row.details["changes"] == {
        "priority": {"old": 5, "new": 80},
        "coordinates": {"old": [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]], "new": new_coordinates},
    }


def test_put_is_partial_like_patch(api_client, camera):
    zone = ZoneFactory(camera=camera, name="Porch", enabled=True)

    response = api_client.put(f"/api/cameras/front_door/zones/{zone.id}/", {"enabled": False}, format="json")

    assert response.status_code == 200 and response.json()["enabled"] is False and response.json()["name"] == "Porch"


def test_empty_patch_is_a_no_op(api_client, camera):
    zone = ZoneFactory(camera=camera)

    response = api_client.patch(f"/api/cameras/front_door/zones/{zone.id}", {}, format="json")

    assert response.status_code == 200 and response.json()["id"] == str(zone.id)
    assert Zone.objects.get(pk=zone.id).updated_at == zone.updated_at
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"coordinates": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}, "coordinates"),
        ({"coordinates": [[0.1, 0.1], [0.9, 2], [0.9, 0.9]]}, "coordinates.1"),
        ({"color": "#12"}, "color"),
        ({"priority": 500}, "priority"),
        ({"zone_type": "moat"}, "zone_type"),
        ({"shape": "hexagon"}, "shape"),
        ({"enabled": "no"}, "enabled"),
    ],
)
def test_patch_rejects_invalid_fields_with_422(api_client, camera, body, field):
    zone = ZoneFactory(camera=camera, name="Porch")

    assert field in field_errors(api_client.patch(f"/api/cameras/front_door/zones/{zone.id}", body, format="json"))
    assert Zone.objects.get(pk=zone.id).name == "Porch"
    assert not AuditLog.objects.exists()


# --- delete ------------------------------------------------------------------------------------------------------


def test_delete_removes_the_zone_and_audits_it(api_client, camera):
    zone = ZoneFactory(camera=camera, name="Porch")
    kept = ZoneFactory(camera=camera)

    response = api_client.delete(f"/api/cameras/front_door/zones/{zone.id}")

    assert response.status_code == 204
    assert not Zone.objects.filter(pk=zone.id).exists() and Zone.objects.filter(pk=kept.id).exists()
    [row] = AuditLog.objects.filter(action="zone_deleted")
    assert (row.resource_type, row.resource_id) == ("zone", str(zone.id))
    assert row.details == {"camera_id": "front_door", "name": "Porch"}


def test_delete_unknown_zone_is_404(api_client, camera):
    assert api_client.delete(f"/api/cameras/front_door/zones/{uuid.uuid4()}").status_code == 404
    assert not AuditLog.objects.exists()


# --- /api/zones ----------------------------------------------------------------------------------------------------


def test_zone_index_lists_every_camera_and_filters(api_client):
    front = CameraFactory(id="front")
    back = CameraFactory(id="back")
    side = CameraFactory(id="side")
    a = ZoneFactory(camera=front, name="A", zone_type="entry_point", priority=10)
    b = ZoneFactory(camera=back, name="B", zone_type="driveway", priority=20, enabled=False)
    c = ZoneFactory(camera=side, name="C", zone_type="yard", priority=30)

    def ids(query=""):
        response = api_client.get(f"/api/zones{query}")
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["items"]]

    assert ids() == [str(c.id), str(b.id), str(a.id)]
    assert ids("?camera_id=front,back") == [str(b.id), str(a.id)]
    assert ids("?camera_id=front,,") == [str(a.id)]
    assert ids("?enabled=false") == [str(b.id)]
    assert ids("?zone_type=yard") == [str(c.id)]
    assert ids("?zone_type=yard,entry_point&enabled=true") == [str(c.id), str(a.id)]
    assert ids("?camera_id=nobody") == []
    assert ids("?limit=1&offset=1") == [str(b.id)]


@pytest.mark.parametrize(
    ("query", "field"),
    [("?zone_type=moat", "zone_type"), ("?enabled=2", "enabled"), ("?limit=0", "limit"), ("?offset=x", "offset")],
)
def test_zone_index_rejects_invalid_parameters(api_client, query, field):
    assert field in field_errors(api_client.get(f"/api/zones{query}"))


def test_zone_index_detail(api_client):
    zone = ZoneFactory(name="Porch")

    ok = api_client.get(f"/api/zones/{zone.id}/")
    missing = api_client.get(f"/api/zones/{uuid.uuid4()}")

    assert ok.status_code == 200 and ok.json()["camera_id"] == zone.camera_id and ok.json()["name"] == "Porch"
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_zone_index_accepts_upper_case_uuid(api_client):
    zone = ZoneFactory()

    assert api_client.get(f"/api/zones/{str(zone.id).upper()}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("post", "/api/zones", {"GET"}),
        ("delete", "/api/zones/{zone}", {"GET"}),
        ("patch", "/api/zones/{zone}", {"GET"}),
        ("put", "/api/cameras/{camera}/zones", {"GET", "POST"}),
        ("post", "/api/cameras/{camera}/zones/{zone}", {"GET", "PATCH", "PUT", "DELETE"}),
    ],
)
def test_wrong_verb_is_405_with_allow_header(api_client, method, path, allowed):
    zone = ZoneFactory()

    response = getattr(api_client, method)(path.format(zone=zone.id, camera=zone.camera_id), {}, format="json")

    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    assert allowed <= {verb.strip() for verb in response["Allow"].split(",")}
    assert Zone.objects.filter(pk=zone.id).exists()
