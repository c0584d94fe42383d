"""/api/detections/{id}/thumbnail|image|video and /api/media/detections/{id} (CONTRACT §2.4, §2.10, §4.9)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from events.models import Detection
from tests.factories import CameraFactory, DetectionFactory
from tests.images import write_jpeg, write_video
from tests.problems import problem

pytestmark = pytest.mark.django_db


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _decode(body: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture
def image_detection(foscam_root):
    path = write_jpeg(foscam_root / "porch" / "a.jpg", 640, 480)
    return DetectionFactory(camera=CameraFactory(id="porch"), file_path=str(path), image_width=640, image_height=480)


@pytest.fixture
def video_detection(foscam_root):
    path = write_video(foscam_root / "yard" / "clip.mp4", seconds=2, fps=5)
    return DetectionFactory(
        camera=CameraFactory(id="yard"),
        file_path=str(path),
        file_type="video/mp4",
        media_type="video",
        frame_time_seconds=1.0,
        bbox_x=10,
        bbox_y=10,
        bbox_width=50,
        bbox_height=50,
    )


def test_missing_thumbnail_is_generated_stored_and_served(api_client, image_detection, data_dir, settings):
    response = api_client.get(f"/api/detections/{image_detection.id}/thumbnail")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    stored = data_dir / "thumbnails" / f"{image_detection.id}_thumb.jpg"
    body = _body(response)
    assert body == stored.read_bytes()
    assert _decode(body).shape[:2] == (settings.THUMBNAIL_HEIGHT, settings.THUMBNAIL_WIDTH)
    assert Detection.objects.get(pk=image_detection.pk).thumbnail_path == str(stored)


def test_existing_thumbnail_is_served_as_is(api_client, image_detection, data_dir):
    (data_dir / "thumbnails").mkdir()
    stored = data_dir / "thumbnails" / "made-earlier.jpg"
    stored.write_bytes(b"\xff\xd8\xff stored")
    Detection.objects.filter(pk=image_detection.pk).update(thumbnail_path=str(stored))

    response = api_client.get(f"/api/detections/{image_detection.id}/thumbnail")

    assert _body(response) == b"\xff\xd8\xff stored"
    assert response["Cache-Control"] == "private, max-age=3600"


def test_thumbnail_without_any_source_is_404(api_client):
    detection = DetectionFactory(file_path="/nonexistent/a.jpg")

    problem(api_client.get(f"/api/detections/{detection.id}/thumbnail"), 404, "not_found")


def test_thumbnail_of_an_unreadable_source_is_500(api_client, foscam_root):
    broken = foscam_root / "broken.jpg"
    broken.write_bytes(b"not an image")
    detection = DetectionFactory(file_path=str(broken))

    body = problem(api_client.get(f"/api/detections/{detection.id}/thumbnail"), 500, "internal_error")

    assert body["detail"] == "Thumbnail generation failed"


def test_unknown_detection_is_404_on_every_media_route(api_client):
    for suffix in ("thumbnail", "image", "video"):
        problem(api_client.get(f"/api/detections/999999/{suffix}"), 404, "not_found")
    problem(api_client.get("/api/media/detections/999999"), 404, "not_found")


def test_image_returns_the_original_bytes(api_client, image_detection):
    response = api_client.get(f"/api/detections/{image_detection.id}/image")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert _body(response) == Path(image_detection.file_path).read_bytes()


def test_annotated_image_is_a_full_resolution_jpeg_with_the_box(api_client, foscam_root):
    path = foscam_root / "black.jpg"
    path.write_bytes(cv2.imencode(".jpg", np.zeros((480, 640, 3), np.uint8))[1].tobytes())
    detection = DetectionFactory(file_path=str(path), object_type="person", bbox_x=100, bbox_y=100)

    response = api_client.get(f"/api/detections/{detection.id}/image?annotate=true")

    assert response.status_code == 200
    pixels = _decode(response.content)
    assert pixels.shape[:2] == (480, 640)
    blue, green, red = (int(v) for v in pixels[150, 100])  # on the box's left edge
    assert red > 180 and green < 120 and blue < 140
    assert pixels[300, 400].max() < 30  # untouched elsewhere


def test_bad_annotate_flag_is_422(api_client, image_detection):
    response = api_client.get(f"/api/detections/{image_detection.id}/image?annotate=maybe")

    assert problem(response, 422, "validation_error")["errors"][0]["field"] == "annotate"


def test_image_of_a_video_detection_is_a_jpeg_frame(api_client, video_detection):
    response = api_client.get(f"/api/detections/{video_detection.id}/image")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert _decode(response.content).shape[:2] == (240, 320)


def test_image_with_a_missing_source_is_404(api_client):
    detection = DetectionFactory(file_path="/nonexistent/b.jpg")

    problem(api_client.get(f"/api/detections/{detection.id}/image"), 404, "not_found")


def test_video_is_served_with_byte_ranges(api_client, video_detection):
    whole = Path(video_detection.file_path).read_bytes()

    full = api_client.get(f"/api/detections/{video_detection.id}/video")
    part = api_client.get(f"/api/detections/{video_detection.id}/video", HTTP_RANGE="bytes=10-19")
    beyond = api_client.get(f"/api/detections/{video_detection.id}/video", HTTP_RANGE=f"bytes={len(whole)}-")

    assert full.status_code == 200
    assert full["Content-Type"] == "video/mp4"
    assert full["Accept-Ranges"] == "bytes"
    assert _body(full) == whole
    assert part.status_code == 206
    assert _body(part) == whole[10:20]
    assert part["Content-Range"] == f"bytes 10-19/{len(whole)}"
    problem(beyond, 416, "range_not_satisfiable")
    assert beyond["Content-Range"] == f"bytes */{len(whole)}"


def test_video_of_an_image_detection_is_400(api_client, image_detection):
    body = problem(api_client.get(f"/api/detections/{image_detection.id}/video"), 400, "bad_request")

    assert body["detail"] == "Detection is not a video"


def test_video_file_missing_is_404(api_client):
    detection = DetectionFactory(file_path="/nonexistent/c.mp4", media_type="video", file_type="video/mp4")

    problem(api_client.get(f"/api/detections/{detection.id}/video"), 404, "not_found")


def test_media_detection_route_serves_the_same_thumbnail(api_client, image_detection):
    via_detections = _body(api_client.get(f"/api/detections/{image_detection.id}/thumbnail"))

    response = api_client.get(f"/api/media/detections/{image_detection.id}")

    assert response.status_code == 200
    assert _body(response) == via_detections


def test_media_detection_route_with_full_returns_the_source(api_client, image_detection, video_detection):
    image = api_client.get(f"/api/media/detections/{image_detection.id}?full=true")
    video = api_client.get(f"/api/media/detections/{video_detection.id}?full=true")

    assert _body(image) == Path(image_detection.file_path).read_bytes()
    assert video["Content-Type"] == "image/jpeg"
    assert _decode(video.content) is not None


def test_detection_detail_route_is_not_shadowed(api_client, image_detection):
    assert api_client.get(f"/api/detections/{image_detection.id}").json()["id"] == image_detection.id
