"""/api/media refuses every path that leaves its folder (CONTRACT §6.4): a corpus of traversal and smuggling
payloads, each of which must answer 400/403/404 without ever returning the bytes of a secret file placed
just outside the camera folder, outside the camera root or next to the thumbnails folder."""

from __future__ import annotations

import os

import pytest

from tests.factories import CameraFactory
from tests.problems import problem

pytestmark = pytest.mark.django_db

SECRET = b"TOP-SECRET-7f3a9c"
REFUSED = {400, 403, 404}

# Spellings of a parent step, as they appear in the request URL (the test client percent-decodes once, like a
# WSGI/ASGI server does, so "%2e%2e" reaches the view as ".." while "%252e" reaches it as the literal "%2e").
PARENT_STEPS = [
    "..",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "%25252e%25252e",
    "..%00",
    "%c0%ae%c0%ae",
    "%e0%80%ae%e0%80%ae",
    "\u2024\u2024",
    "\uff0e\uff0e",
    "%ef%bc%8e%ef%bc%8e",
    "....",
    "...",
    ". .",
    "..;",
    "..%20",
]
# Ways of joining steps: a slash, its encodings and backslashes.
SEPARATORS = ["/", "%2f", "%2F", "%252f", "\\", "%5c", "%5C", "%255c", "/./", "//"]

SECRET_TARGETS = ["secret.jpg", "outside/secret.jpg"]


def _camera_payloads() -> list[str]:
    payloads = [
        f"{step}{sep}{target}" for step in PARENT_STEPS for sep in SEPARATORS[:7] for target in SECRET_TARGETS[:1]
    ]
    payloads += [f"{step}{sep}{step}{sep}outside{sep}secret.jpg" for step in PARENT_STEPS[:8] for sep in SEPARATORS]
    payloads += [
        "sub/../../secret.jpg",
        "sub/%2e%2e/%2e%2e/secret.jpg",
        "./../secret.jpg",
        "2024/../../secret.jpg",
        "/secret.jpg",
        "%2fsecret.jpg",
        "//secret.jpg",
        "%2f%2fsecret.jpg",
        "\\secret.jpg",
        "C:\\secret.jpg",
        "C:/secret.jpg",
        "file:///secret.jpg",
        "secret.jpg%00.jpg",
        "secret.jpg%00",
        "%00/../secret.jpg",
        "a.jpg%00.txt",
        ".hidden.jpg",
        ".git/config.jpg",
        "sub/.hidden/a.jpg",
        "%2ehidden.jpg",
        "secret.txt",
        "secret",
        "secret.jpg.txt",
        "secret.php",
        "secret.jpg%20",
        "secret.jpg.",
        "secret.jpg%2f",
        "secret.jpg/",
        "secret.jpg?.jpg",
        "link.jpg",
        "linkdir/secret.jpg",
        "linkdir/../secret.jpg",
        "sub/uplink/secret.jpg",
        "rootlink/secret.jpg",
        "absolute-link.jpg",
    ]
    return payloads


CAMERA_PAYLOADS = _camera_payloads()

CAMERA_ID_PAYLOADS = [
    "..",
    "%2e%2e",
    ".",
    "..%5cporch",
    "porch%5c..",
    "%00porch",
    "porch%00",
    "%252e%252e",
]

THUMBNAIL_PAYLOADS = [
    "../secret.jpg",
    "%2e%2e/secret.jpg",
    "%2e%2e%2fsecret.jpg",
    "..%5csecret.jpg",
    "..\\secret.jpg",
    "%252e%252e%252fsecret.jpg",
    "/secret.jpg",
    "%2fsecret.jpg",
    "secret.jpg%00.jpg",
    ".secret.jpg",
    "thumb-link.jpg",
    "../thumbnails/../secret.jpg",
    "sub/../../secret.jpg",
    "secret.mp4",
]


@pytest.fixture
def planted(foscam_root, data_dir, tmp_path):
    """Camera ``porch`` under the camera root; secrets next to it, outside the root and beside the thumbnails;
    symlinks inside the camera folder and the thumbnails folder pointing at them."""
    CameraFactory(id="porch", folder_path="porch")
    porch = foscam_root / "porch"
    (porch / "sub").mkdir(parents=True)
    (porch / "inside.jpg").write_bytes(b"public")
    outside = tmp_path / "outside"
    outside.mkdir()
    for folder in (foscam_root, outside, data_dir, tmp_path):
        for name in ("secret.jpg", "secret.txt", "secret", "secret.mp4", "secret.php", "secret.jpg.txt"):
            (folder / name).write_bytes(SECRET)
    (porch / ".hidden.jpg").write_bytes(SECRET)
    (porch / "a.jpg").write_bytes(b"public")
    os.symlink(foscam_root / "secret.jpg", porch / "link.jpg")
    os.symlink(outside, porch / "linkdir")
    os.symlink(foscam_root, porch / "sub" / "uplink")
    os.symlink("/", porch / "rootlink")
    os.symlink(outside / "secret.jpg", porch / "absolute-link.jpg")
    (foscam_root / "outside").symlink_to(outside)
    thumbnails = data_dir / "thumbnails"
    thumbnails.mkdir()
    os.symlink(data_dir / "secret.jpg", thumbnails / "thumb-link.jpg")
    return porch


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_corpus_is_large():
    assert len(CAMERA_PAYLOADS) + len(CAMERA_ID_PAYLOADS) + len(THUMBNAIL_PAYLOADS) >= 100
    assert len(set(CAMERA_PAYLOADS)) == len(CAMERA_PAYLOADS)


def test_a_plain_file_of_the_camera_is_served(api_client, planted):
    response = api_client.get("/api/media/cameras/porch/inside.jpg")

    assert response.status_code == 200
    assert _body(response) == b"public"


@pytest.mark.parametrize("payload", CAMERA_PAYLOADS)
def test_camera_path_payload_is_refused_without_leaking(api_client, planted, payload):
    response = api_client.get(f"/api/media/cameras/porch/{payload}")

    assert response.status_code in REFUSED, (payload, response.status_code)
    assert SECRET not in _body(response)


@pytest.mark.parametrize("payload", CAMERA_ID_PAYLOADS)
def test_camera_id_payload_is_refused_without_leaking(api_client, planted, payload):
    response = api_client.get(f"/api/media/cameras/{payload}/secret.jpg")

    assert response.status_code in REFUSED, (payload, response.status_code)
    assert SECRET not in _body(response)


@pytest.mark.parametrize("payload", THUMBNAIL_PAYLOADS)
def test_thumbnail_payload_is_refused_without_leaking(api_client, planted, payload):
    response = api_client.get(f"/api/media/thumbnails/{payload}")

    assert response.status_code in REFUSED, (payload, response.status_code)
    assert SECRET not in _body(response)


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ("../secret.jpg", 403, "path_traversal"),
        ("%2e%2e/secret.jpg", 403, "path_traversal"),  # decoded once before the checks
        ("sub/%2e%2e%2f%2e%2e%2fsecret.jpg", 403, "path_traversal"),
        ("..%5csecret.jpg", 403, "path_traversal"),
        ("secret.jpg%00.jpg", 403, "path_traversal"),
        ("%2fsecret.jpg", 403, "path_traversal"),
        ("%252e%252e/secret.jpg", 404, "not_found"),  # reaches the view as the literal name "%2e%2e"
        (".hidden.jpg", 403, "forbidden"),
        ("sub/.git/a.jpg", 403, "forbidden"),
        ("secret.txt", 403, "file_type_not_allowed"),
        ("link.jpg", 403, "path_traversal"),
        ("linkdir/secret.jpg", 403, "path_traversal"),
        ("sub/uplink/secret.jpg", 403, "path_traversal"),
        ("absolute-link.jpg", 403, "path_traversal"),
    ],
)
def test_each_rule_answers_its_own_status_and_code(api_client, planted, payload, status, code):
    body = problem(api_client.get(f"/api/media/cameras/porch/{payload}"), status, code)

    assert "path" in body


def test_path_traversal_has_the_contract_details(api_client, planted):
    dotted = problem(api_client.get("/api/media/cameras/porch/../secret.jpg"), 403, "path_traversal")
    linked = problem(api_client.get("/api/media/cameras/porch/link.jpg"), 403, "path_traversal")

    assert dotted["detail"] == "Path traversal detected"
    assert dotted["path"] == "../secret.jpg"
    assert linked["detail"] == "Access denied - path outside allowed directory"


def test_symlink_to_a_file_inside_the_camera_folder_is_followed(api_client, planted):
    os.symlink(planted / "inside.jpg", planted / "sub" / "alias.jpg")

    response = api_client.get("/api/media/cameras/porch/sub/alias.jpg")

    assert response.status_code == 200
    assert _body(response) == b"public"


def test_camera_folder_that_resolves_outside_the_camera_root_is_refused(api_client, planted, foscam_root, tmp_path):
    os.symlink(tmp_path / "outside", foscam_root / "escape")
    CameraFactory(id="escape", folder_path="escape")
    CameraFactory(id="absolute", folder_path=str(tmp_path / "outside"))

    via_link = api_client.get("/api/media/cameras/escape/secret.jpg")
    via_absolute = api_client.get("/api/media/cameras/absolute/secret.jpg")

    for response in (via_link, via_absolute):
        problem(response, 403, "path_traversal")
        assert SECRET not in response.content
