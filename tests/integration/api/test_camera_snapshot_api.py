"""GET /api/cameras/{camera_id}/snapshot: the newest picture of a camera's folder (CONTRACT §2.2)."""

from __future__ import annotations

import datetime as dt
import os

import cv2
import numpy as np
import pytest
import time_machine

from tests.factories import CameraFactory
from tests.images import write_jpeg, write_video
from tests.problems import problem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _aged(path, seconds_ago: int):
    stamp = 1_700_000_000 - seconds_ago
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def porch(foscam_root):
    CameraFactory(id="porch", folder_path="porch")
    (foscam_root / "porch").mkdir()
    return foscam_root / "porch"


def test_newest_image_anywhere_under_the_folder_is_returned(api_client, porch):
    _aged(write_jpeg(porch / "old.jpg", seed=1), 300)
    newest = _aged(write_jpeg(porch / "2024" / "05" / "new.jpg", seed=2), 10)
    _aged(write_video(porch / "clip.mp4"), 1)  # images win over videos

    response = api_client.get("/api/cameras/porch/snapshot")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, max-age=10"
    assert _body(response) == newest.read_bytes()


def test_png_keeps_its_content_type(api_client, porch):
    (porch / "a.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())

    response = api_client.get("/api/cameras/porch/snapshot")

    assert response["Content-Type"] == "image/png"
    assert _body(response) == (porch / "a.png").read_bytes()


def test_hidden_files_and_links_out_of_the_folder_are_ignored(api_client, porch, foscam_root):
    visible = _aged(write_jpeg(porch / "a.jpg", seed=1), 300)
    _aged(write_jpeg(porch / ".hidden.jpg", seed=2), 1)
    secret = _aged(write_jpeg(foscam_root / "secret.jpg", seed=3), 1)
    os.symlink(secret, porch / "link.jpg")

    response = api_client.get("/api/cameras/porch/snapshot")

    assert _body(response) == visible.read_bytes()


def test_folder_of_videos_gives_a_cached_jpeg_frame(api_client, porch, data_dir):
    write_video(porch / "clip.mp4", seconds=3, fps=5, seed=1)

    with time_machine.travel(T0, tick=False):
        first = api_client.get("/api/cameras/porch/snapshot")
        frame = _body(first)
    write_video(porch / "clip.mp4", seconds=3, fps=5, seed=2)
    with time_machine.travel(T0 + dt.timedelta(seconds=59), tick=False):
        cached = _body(api_client.get("/api/cameras/porch/snapshot"))
    with time_machine.travel(T0 + dt.timedelta(seconds=61), tick=False):
        fresh = _body(api_client.get("/api/cameras/porch/snapshot"))

    assert first.status_code == 200
    assert first["Content-Type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (240, 320)
    assert (data_dir / "snapshots" / "porch.jpg").is_file()
    assert cached == frame
    assert fresh != frame


def test_short_clip_gives_its_first_frame(api_client, porch):
    write_video(porch / "short.mp4", seconds=0.4, fps=5)

    response = api_client.get("/api/cameras/porch/snapshot")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(_body(response), np.uint8), cv2.IMREAD_COLOR) is not None


def test_unknown_camera_is_404(api_client):
    problem(api_client.get("/api/cameras/nobody/snapshot"), 404, "not_found")


def test_missing_folder_is_404(api_client):
    CameraFactory(id="gone", folder_path="gone")

    problem(api_client.get("/api/cameras/gone/snapshot"), 404, "not_found")


def test_folder_without_media_is_404(api_client, porch):
    (porch / "notes.txt").write_text("nothing to see")

    problem(api_client.get("/api/cameras/porch/snapshot"), 404, "not_found")


def test_folder_resolving_outside_the_camera_root_is_404(api_client, foscam_root, tmp_path):
    outside = tmp_path / "outside"
    write_jpeg(outside / "secret.jpg")
    CameraFactory(id="absolute", folder_path=str(outside))
    os.symlink(outside, foscam_root / "escape")
    CameraFactory(id="escape", folder_path="escape")

    problem(api_client.get("/api/cameras/absolute/snapshot"), 404, "not_found")
    problem(api_client.get("/api/cameras/escape/snapshot"), 404, "not_found")


def test_camera_detail_route_still_answers(api_client, porch):
    assert api_client.get("/api/cameras/porch").status_code == 200
