"""Every 403 of the media path rules writes ``media_access_denied`` (CONTRACT §6.4, §6.8), at most one row per
client IP per minute; 404s write none."""

from __future__ import annotations

import os

import pytest
import time_machine

from system.models import AuditLog
from tests.factories import CameraFactory
from tests.problems import problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def porch(foscam_root):
    camera = CameraFactory(id="porch", folder_path="porch")
    (foscam_root / "porch").mkdir()
    (foscam_root / "porch" / "a.jpg").write_bytes(b"\xff\xd8\xff jpeg")
    return camera


def denied_rows():
    return AuditLog.objects.filter(action="media_access_denied").order_by("id")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/api/media/cameras/porch/sub/%2e%2e/%2e%2e/secret.jpg", "path_traversal"),
        ("/api/media/cameras/porch/.hidden.jpg", "forbidden"),
        ("/api/media/cameras/porch/notes.txt", "file_type_not_allowed"),
        ("/api/media/thumbnails/thumb.gif", "file_type_not_allowed"),
        ("/api/media/thumbnails/%2e%2e/hsi.sqlite3.png", "path_traversal"),
    ],
)
def test_a_refused_media_path_is_audited_with_path_and_reason(api_client, porch, url, reason):
    response = api_client.get(url, HTTP_USER_AGENT="scanner/1")

    problem(response, 403, reason)
    row = denied_rows().get()
    assert row.resource_type == "media" and row.status == "failure" and row.actor == "anonymous"
    assert row.details == {"path": response.json()["instance"], "reason": reason}
    assert row.ip_address == "127.0.0.1" and row.user_agent == "scanner/1" and row.request_id


def test_a_nul_byte_in_the_path_is_audited_percent_encoded(api_client, porch):
    problem(api_client.get("/api/media/cameras/porch/a.jpg%00.txt"), 403, "path_traversal")

    assert denied_rows().get().details["path"] == "/api/media/cameras/porch/a.jpg%00.txt"


def test_a_symlink_leaving_the_camera_folder_is_audited(api_client, porch, foscam_root, tmp_path):
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.jpg", foscam_root / "porch" / "link.jpg")

    problem(api_client.get("/api/media/cameras/porch/link.jpg"), 403, "path_traversal")

    assert denied_rows().get().details == {"path": "/api/media/cameras/porch/link.jpg", "reason": "path_traversal"}


def test_at_most_one_row_per_client_ip_per_minute(api_client, porch):
    with time_machine.travel("2026-12-04 10:00:00Z", tick=False) as clock:
        for name in ("a.txt", ".b.jpg", "c.exe"):
            assert api_client.get(f"/api/media/cameras/porch/{name}").status_code == 403
        api_client.get("/api/media/cameras/porch/d.txt", REMOTE_ADDR="203.0.113.7")
        clock.shift(61)
        api_client.get("/api/media/cameras/porch/e.txt")

    assert [(row.ip_address, row.details["path"]) for row in denied_rows()] == [
        ("127.0.0.1", "/api/media/cameras/porch/a.txt"),
        ("203.0.113.7", "/api/media/cameras/porch/d.txt"),
        ("127.0.0.1", "/api/media/cameras/porch/e.txt"),
    ]


def test_served_files_and_404s_write_no_row(api_client, porch):
    assert api_client.get("/api/media/cameras/porch/a.jpg").status_code == 200
    assert api_client.get("/api/media/cameras/porch/missing.jpg").status_code == 404
    assert api_client.get("/api/media/cameras/nobody/a.jpg").status_code == 404

    assert not denied_rows().exists()
