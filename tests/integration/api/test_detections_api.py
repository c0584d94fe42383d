"""/api/detections: list with filters and cursors, stats and detail (CONTRACT §2.4, §0.3–0.5)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.factories import BatchFactory, CameraFactory, DetectionFactory, EntityFactory, EventFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

DETECTION_KEYS = {
    "id",
    "camera_id",
    "batch_id",
    "event_id",
    "entity_id",
    "file_path",
    "file_type",
    "media_type",
    "detected_at",
    "object_type",
    "confidence",
    "bbox_x",
    "bbox_y",
    "bbox_width",
    "bbox_height",
    "image_width",
    "image_height",
    "frame_time_seconds",
    "video_duration",
    "video_codec",
    "video_width",
    "video_height",
    "zone_ids",
    "entity_similarity",
    "enrichment_data",
    "thumbnail_url",
    "image_url",
    "video_url",
    "created_at",
}


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


# --- Detection JSON -----------------------------------------------------------------------------------------------


def test_image_detection_json_has_every_field(api_client):
    camera = CameraFactory(id="porch")
    batch = BatchFactory(camera=camera)
    entity = EntityFactory()
    detection = DetectionFactory(
        camera=camera,
        batch=batch,
        entity=entity,
        entity_similarity=0.91,
        file_path="/export/foscam/porch/a.jpg",
        detected_at=at(0),
        object_type="person",
        confidence=0.87,
        bbox_x=10,
        bbox_y=20,
        bbox_width=30,
        bbox_height=40,
        zone_ids=["6f1c7d9e-0000-4000-8000-000000000001"],
        enrichment_data={"color": "red"},
    )
    event = EventFactory(camera=camera, detections=[detection])

    response = api_client.get(f"/api/detections/{detection.id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETECTION_KEYS
    assert body == {
        **body,
        "id": detection.id,
        "camera_id": "porch",
        "batch_id": str(batch.id),
        "event_id": event.id,
        "entity_id": str(entity.id),
        "file_path": "/export/foscam/porch/a.jpg",
        "file_type": "image/jpeg",
        "media_type": "image",
        "detected_at": "2024-05-01T12:00:00Z",
        "object_type": "person",
        "confidence": 0.87,
        "bbox_x": 10,
        "bbox_y": 20,
        "bbox_width": 30,
        "bbox_height": 40,
        "image_width": 1280,
        "image_height": 720,
        "zone_ids": ["6f1c7d9e-0000-4000-8000-000000000001"],
        "entity_similarity": 0.91,
        "enrichment_data": {"color": "red"},
        "thumbnail_url": f"/api/detections/{detection.id}/thumbnail",
        "image_url": f"/api/detections/{detection.id}/image",
        "video_url": None,
    }
    assert body["created_at"].endswith("Z")


def test_video_detection_has_video_url_and_unlinked_detection_has_no_event(api_client):
    detection = DetectionFactory(
        media_type="video",
        file_type="video/mp4",
        frame_time_seconds=1.5,
        video_duration=12.0,
        video_codec="avc1",
        video_width=1920,
        video_height=1080,
    )

    body = api_client.get(f"/api/detections/{detection.id}/").json()

    assert body["video_url"] == f"/api/detections/{detection.id}/video"
    assert body["event_id"] is None and body["batch_id"] is None and body["entity_id"] is None
    assert (body["frame_time_seconds"], body["video_codec"], body["video_width"]) == (1.5, "avc1", 1920)


@pytest.mark.parametrize("path", ["/api/detections/424242", "/api/detections/abc"])
def test_unknown_or_malformed_detection_is_404(api_client, path):
    problem(api_client.get(path), 404, "not_found")


def test_detail_404_names_the_detection(api_client):
    assert problem(api_client.get("/api/detections/31337"), 404, "not_found")["detail"] == "Detection 31337 not found"


# --- List and filters ---------------------------------------------------------------------------------------------


def test_list_is_newest_first_with_id_tiebreak(api_client):
    old = DetectionFactory(detected_at=at(0))
    same_a = DetectionFactory(detected_at=at(5))
    same_b = DetectionFactory(detected_at=at(5))

    response = api_client.get("/api/detections/")

    assert ids(response) == [same_b.id, same_a.id, old.id]
    assert set(response.json()["items"][0]) == DETECTION_KEYS
    assert response.json()["pagination"]["total"] == 3


def test_camera_and_object_type_filters_take_lists(api_client):
    a, b = CameraFactory(id="cam_a"), CameraFactory(id="cam_b")
    person_a = DetectionFactory(camera=a, object_type="person", detected_at=at(1))
    car_b = DetectionFactory(camera=b, object_type="car", detected_at=at(2))
    DetectionFactory(camera=b, object_type="dog", detected_at=at(3))
    DetectionFactory(object_type="person", detected_at=at(4))

    assert ids(api_client.get("/api/detections?camera_id=cam_a,cam_b&object_type=Person,car")) == [
        car_b.id,
        person_a.id,
    ]


def test_min_confidence_is_inclusive_and_validated(api_client):
    exact = DetectionFactory(confidence=0.5, detected_at=at(1))
    above = DetectionFactory(confidence=1.0, detected_at=at(2))
    DetectionFactory(confidence=0.4999, detected_at=at(3))

    assert ids(api_client.get("/api/detections?min_confidence=0.5")) == [above.id, exact.id]
    assert len(ids(api_client.get("/api/detections?min_confidence=0"))) == 3
    for bad in ("-0.1", "1.01", "high", "nan"):
        assert error_fields(api_client.get(f"/api/detections?min_confidence={bad}")) == {"min_confidence"}


def test_media_type_filter_is_validated(api_client):
    video = DetectionFactory(media_type="video", file_type="video/mp4")
    DetectionFactory(media_type="image")

    assert ids(api_client.get("/api/detections?media_type=video")) == [video.id]
    assert error_fields(api_client.get("/api/detections?media_type=gif")) == {"media_type"}


def test_event_batch_and_entity_filters(api_client):
    camera = CameraFactory()
    batch, entity = BatchFactory(camera=camera), EntityFactory()
    linked = DetectionFactory(camera=camera, detected_at=at(1))
    in_batch = DetectionFactory(camera=camera, batch=batch, detected_at=at(2))
    of_entity = DetectionFactory(camera=camera, entity=entity, detected_at=at(3))
    event = EventFactory(camera=camera, detections=[linked])

    assert ids(api_client.get(f"/api/detections?event_id={event.id}")) == [linked.id]
    assert ids(api_client.get(f"/api/detections?batch_id={batch.id}")) == [in_batch.id]
    assert ids(api_client.get(f"/api/detections?entity_id={entity.id}")) == [of_entity.id]
    assert ids(api_client.get(f"/api/detections?entity_id={uuid.uuid4()}")) == []


@pytest.mark.parametrize("query", ["event_id=abc", "event_id=0", "batch_id=xyz", "entity_id=123"])
def test_malformed_id_filters_are_422(api_client, query):
    assert error_fields(api_client.get(f"/api/detections?{query}")) == {query.split("=")[0]}


def test_date_filters_are_inclusive_on_detected_at(api_client):
    first = DetectionFactory(detected_at=dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.UTC))
    last = DetectionFactory(detected_at=dt.datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=dt.UTC))
    DetectionFactory(detected_at=dt.datetime(2024, 5, 2, 0, 0, tzinfo=dt.UTC))
    DetectionFactory(detected_at=dt.datetime(2024, 4, 30, 23, 59, 59, tzinfo=dt.UTC))

    assert ids(api_client.get("/api/detections?start_date=2024-05-01&end_date=2024-05-01")) == [last.id, first.id]
    assert error_fields(api_client.get("/api/detections?end_date=2024-13-01")) == {"end_date"}
    problem(api_client.get("/api/detections?start_date=2024-05-02&end_date=2024-05-01"), 400, "bad_request")


# --- Pagination ---------------------------------------------------------------------------------------------------


def test_cursor_walk_visits_every_detection_once(api_client):
    detections = [DetectionFactory(detected_at=at(i // 4)) for i in range(10)]
    expected = [d.id for d in sorted(detections, key=lambda d: (d.detected_at, d.id), reverse=True)]

    seen, cursor = [], None
    while True:
        body = api_client.get("/api/detections?limit=3" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [item["id"] for item in body["items"]]
        assert body["pagination"]["total"] == 10
        assert body["pagination"]["offset"] == (None if cursor else 0)
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            assert body["pagination"]["has_more"] is False
            break

    assert seen == expected


def test_offset_mode_reports_next_cursor_and_limits_are_checked(api_client):
    detections = [DetectionFactory(detected_at=at(i)) for i in range(3)]

    body = api_client.get("/api/detections?limit=2&offset=0").json()
    assert body["pagination"]["has_more"] is True and body["pagination"]["next_cursor"]
    rest = api_client.get(f"/api/detections?limit=2&cursor={body['pagination']['next_cursor']}").json()
    assert [i["id"] for i in rest["items"]] == [detections[0].id]

    for query in ("limit=0", "limit=101", "offset=-3"):
        assert error_fields(api_client.get(f"/api/detections?{query}")) == {query.split("=")[0]}
    assert problem(api_client.get("/api/detections?cursor=!!"), 400, "bad_request")["detail"] == "Invalid cursor"


@pytest.mark.parametrize("page_size", [1, 50])
def test_list_query_count_does_not_grow_with_page_size(api_client, django_assert_num_queries, page_size):
    camera = CameraFactory()
    detections = [DetectionFactory(camera=camera, detected_at=at(i), entity=EntityFactory()) for i in range(60)]
    EventFactory(camera=camera, detections=detections[:30])

    with django_assert_num_queries(2):  # the page (event link joined) and the total (cold cache)
        response = api_client.get(f"/api/detections?limit={page_size}&camera_id={camera.id}")
    assert len(response.json()["items"]) == page_size

    with django_assert_num_queries(1):
        api_client.get(f"/api/detections?limit={page_size}&camera_id={camera.id}")


# --- Stats --------------------------------------------------------------------------------------------------------


def test_stats_counts_by_class_and_camera_with_rounded_average(api_client):
    front, back = CameraFactory(id="front"), CameraFactory(id="back")
    DetectionFactory(camera=front, object_type="car", confidence=0.9)
    DetectionFactory(camera=front, object_type="person", confidence=0.71)
    DetectionFactory(camera=back, object_type="person", confidence=0.66667)
    DetectionFactory(camera=back, object_type="person", confidence=0.5)
    DetectionFactory(camera=back, object_type="dog", confidence=0.8)

    response = api_client.get("/api/detections/stats")

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "total_detections": 5,
        "detections_by_class": {"person": 3, "car": 1, "dog": 1},
        "detections_by_camera": {"back": 3, "front": 2},
        "average_confidence": round((0.9 + 0.71 + 0.66667 + 0.5 + 0.8) / 5, 4),
    }
    assert list(body["detections_by_class"]) == ["person", "car", "dog"]


def test_stats_of_nothing_has_null_average(api_client):
    assert api_client.get("/api/detections/stats/").json() == {
        "total_detections": 0,
        "detections_by_class": {},
        "detections_by_camera": {},
        "average_confidence": None,
    }


def test_stats_filter_by_camera_and_dates(api_client):
    camera = CameraFactory(id="yard")
    DetectionFactory(camera=camera, detected_at=dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC), confidence=0.8)
    DetectionFactory(camera=camera, detected_at=dt.datetime(2024, 5, 3, 8, tzinfo=dt.UTC))
    DetectionFactory(detected_at=dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC))

    body = api_client.get("/api/detections/stats?camera_id=yard&start_date=2024-05-01&end_date=2024-05-01").json()

    assert body["total_detections"] == 1 and body["detections_by_camera"] == {"yard": 1}
    assert body["average_confidence"] == 0.8
    problem(api_client.get("/api/detections/stats?start_date=2024-05-03&end_date=2024-05-01"), 400, "bad_request")


def test_database_rendered_items_equal_the_python_rendering_of_every_field(api_client):
    """PostgreSQL renders list items as JSON itself; each field must match the Python path (SQLite mode)."""
    import json

    from events import selectors

    camera = CameraFactory(name="Café Côté")
    whole_second = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    video = DetectionFactory(
        camera=camera,
        media_type="video",
        file_type="video/mp4",
        detected_at=whole_second,
        frame_time_seconds=2.0,
        video_duration=12.5,
        video_codec="avc1",
        video_width=1920,
        video_height=1080,
        zone_ids=[str(uuid.uuid4())],
        enrichment_data={"color": "red", "nested": {"n": 1.5}},
        entity=EntityFactory(),
        entity_similarity=0.912345,
        batch=BatchFactory(camera=camera),
        confidence=0.1 + 0.2,
    )
    image = DetectionFactory(camera=camera, detected_at=whole_second + dt.timedelta(microseconds=7), image_width=None)
    EventFactory(camera=camera, detections=[video])

    items = api_client.get("/api/detections").json()["items"]

    rows = {row["id"]: row for row in selectors.all_detections().values(*selectors.DETECTION_COLUMNS)}
    expected = [json.loads(json.dumps(selectors._detection_json(rows[d.id]))) for d in (image, video)]
    assert items == expected
    assert items[1]["detected_at"] == "2026-03-01T12:00:00Z"
    assert items[0]["detected_at"] == "2026-03-01T12:00:00.000007Z"
    assert items[1]["video_url"] == f"/api/detections/{video.id}/video" and items[0]["video_url"] is None
