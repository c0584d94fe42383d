"""/api/media: camera files, thumbnails, headers, byte ranges and conditional requests (CONTRACT §2.10, §6.4)."""

from __future__ import annotations

import os

import pytest

from tests.factories import CameraFactory
from tests.problems import problem

pytestmark = pytest.mark.django_db

BODY = bytes(range(256)) * 1024  # 256 KiB: several 64 KiB chunks


@pytest.fixture
def porch(foscam_root):
    camera = CameraFactory(id="porch", folder_path="porch")
    folder = foscam_root / "porch" / "2024" / "05"
    folder.mkdir(parents=True)
    (folder / "clip.mp4").write_bytes(BODY)
    (foscam_root / "porch" / "snap.JPG").write_bytes(b"\xff\xd8\xff jpeg")
    return camera


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("a.jpg", "image/jpeg"),
        ("a.jpeg", "image/jpeg"),
        ("a.png", "image/png"),
        ("a.gif", "image/gif"),
        ("a.webp", "image/webp"),
        ("a.mp4", "video/mp4"),
        ("a.mkv", "video/x-matroska"),
        ("a.avi", "video/x-msvideo"),
        ("a.mov", "video/quicktime"),
        ("a.webm", "video/webm"),
    ],
)
def test_camera_file_is_served_with_the_content_type_of_its_extension(api_client, foscam_root, name, content_type):
    CameraFactory(id="yard", folder_path="yard")
    (foscam_root / "yard").mkdir()
    (foscam_root / "yard" / name).write_bytes(b"payload")

    response = api_client.get(f"/api/media/cameras/yard/{name}")

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert b"".join(response.streaming_content) == b"payload"


def test_nested_camera_file_is_served_whole_with_caching_headers(api_client, porch):
    response = api_client.get("/api/media/cameras/porch/2024/05/clip.mp4")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == BODY
    assert response["Content-Length"] == str(len(BODY))
    assert response["Accept-Ranges"] == "bytes"
    assert response["Cache-Control"] == "private, max-age=3600"
    assert response["ETag"].startswith('"')
    assert response["Last-Modified"].endswith("GMT")


def test_extension_allowlist_is_case_insensitive(api_client, porch):
    response = api_client.get("/api/media/cameras/porch/snap.JPG")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == b"\xff\xd8\xff jpeg"


def test_camera_with_an_absolute_folder_is_served(api_client, foscam_root):
    folder = foscam_root / "elsewhere" / "garage"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png")
    CameraFactory(id="garage", folder_path=str(folder))

    response = api_client.get("/api/media/cameras/garage/a.png")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"png"


def test_matching_if_none_match_is_304_without_body(api_client, porch):
    first = api_client.get("/api/media/cameras/porch/2024/05/clip.mp4")
    assert b"".join(first.streaming_content) == BODY
    etag = first["ETag"]

    response = api_client.get("/api/media/cameras/porch/2024/05/clip.mp4", HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag


def test_etag_changes_when_the_file_changes(api_client, porch, foscam_root):
    url = "/api/media/cameras/porch/2024/05/clip.mp4"
    first = api_client.get(url)
    assert b"".join(first.streaming_content) == BODY
    etag = first["ETag"]
    path = foscam_root / "porch" / "2024" / "05" / "clip.mp4"
    path.write_bytes(b"new")
    os.utime(path, ns=(1, 1))

    response = api_client.get(url, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag
    assert b"".join(response.streaming_content) == b"new"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=70000-", 70000, len(BODY) - 1),
        ("bytes=-10", len(BODY) - 10, len(BODY) - 1),
        ("bytes=100-999999999", 100, len(BODY) - 1),
        ("bytes=-999999999", 0, len(BODY) - 1),
    ],
)
def test_single_range_is_206_with_exact_bytes(api_client, porch, header, start, end):
    response = api_client.get("/api/media/cameras/porch/2024/05/clip.mp4", HTTP_RANGE=header)

    assert response.status_code == 206
    assert b"".join(response.streaming_content) == BODY[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(BODY)}"
    assert response["Content-Length"] == str(end - start + 1)
    assert response["Content-Type"] == "video/mp4"


@pytest.mark.parametrize("header", [f"bytes={len(BODY)}-", "bytes=0-1,4-5", "bytes=abc", "pages=1-2"])
def test_unsatisfiable_range_is_416_with_the_size(api_client, porch, header):
    response = api_client.get("/api/media/cameras/porch/2024/05/clip.mp4", HTTP_RANGE=header)

    problem(response, 416, "range_not_satisfiable")
    assert response["Content-Range"] == f"bytes */{len(BODY)}"


def test_unknown_camera_is_404_naming_the_path(api_client):
    body = problem(api_client.get("/api/media/cameras/nobody/a.jpg"), 404, "not_found")

    assert body["path"] == "a.jpg"


def test_missing_file_is_404(api_client, porch):
    body = problem(api_client.get("/api/media/cameras/porch/absent.jpg"), 404, "not_found")

    assert body["detail"] == "File not found"
    assert body["path"] == "absent.jpg"


def test_directory_is_404_not_a_listing(api_client, porch, foscam_root):
    (foscam_root / "porch" / "dir.jpg").mkdir()

    problem(api_client.get("/api/media/cameras/porch/dir.jpg"), 404, "not_found")


def test_disallowed_extension_is_403_before_existence(api_client, porch):
    body = problem(api_client.get("/api/media/cameras/porch/nothing.txt"), 403, "file_type_not_allowed")

    assert body["detail"] == "File type not allowed: .txt"


def test_disallowed_extension_of_an_unknown_camera_is_still_403(api_client):
    problem(api_client.get("/api/media/cameras/nobody/a.exe"), 403, "file_type_not_allowed")


def test_thumbnail_file_is_served(api_client, data_dir):
    (data_dir / "thumbnails").mkdir()
    (data_dir / "thumbnails" / "7_thumb.jpg").write_bytes(b"\xff\xd8\xff thumb")

    response = api_client.get("/api/media/thumbnails/7_thumb.jpg")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == b"\xff\xd8\xff thumb"
    assert response["Cache-Control"] == "private, max-age=3600"


def test_thumbnails_allow_only_jpeg_and_png(api_client, data_dir):
    (data_dir / "thumbnails").mkdir()
    (data_dir / "thumbnails" / "a.mp4").write_bytes(b"video")

    problem(api_client.get("/api/media/thumbnails/a.mp4"), 403, "file_type_not_allowed")


def test_thumbnail_path_must_be_a_single_segment(api_client, data_dir):
    (data_dir / "thumbnails" / "sub").mkdir(parents=True)
    (data_dir / "thumbnails" / "sub" / "a.jpg").write_bytes(b"x")

    problem(api_client.get("/api/media/thumbnails/sub/a.jpg"), 404, "not_found")


def test_missing_thumbnail_is_404(api_client):
    problem(api_client.get("/api/media/thumbnails/9_thumb.jpg"), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/media/other/a.jpg", "/api/media/", "/api/media", "/api/media/cameras"])
def test_other_media_paths_are_404_naming_the_supported_prefixes(api_client, path):
    body = problem(api_client.get(path), 404, "not_found")

    assert body["detail"] == "Unsupported media path (expected cameras/, thumbnails/ or detections/)"


def test_bodies_are_streamed_in_64_kib_chunks(api_client, porch):
    response = api_client.get("/api/media/cameras/porch/2024/05/clip.mp4", HTTP_RANGE="bytes=1-")

    chunks = list(response.streaming_content)

    assert [len(chunk) for chunk in chunks] == [65536, 65536, 65536, 65535]
