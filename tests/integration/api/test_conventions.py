"""CONTRACT §0 conventions and §6.3 headers, through the real middleware stack and the shared DRF handler."""

from __future__ import annotations

import contextlib
import json
import re
from http import HTTPStatus

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client, override_settings

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.integration.api._probe_views")]

PROBLEM = "application/problem+json"
MIB = 1024 * 1024
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
ALLOWED_ORIGIN = "http://localhost:3000"
EXPOSED = {"content-disposition", "content-range", "retry-after", "x-request-id", "x-export-truncated"}


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def assert_problem(response, status: int, code: str, path: str) -> dict:
    """The RFC 7807 document of CONTRACT §0.6, with every member the contract lists."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"urn:hsi:problem:{code}"
    assert body["title"] == HTTPStatus(status).phrase
    assert body["status"] == status
    assert body["code"] == code
    assert body["instance"] == path
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    return body


def json_post(client, path, payload, **extra):
    return client.post(path, data=json.dumps(payload), content_type="application/json", **extra)


# --- 400 / 404 / 405 ---------------------------------------------------------------------------------------


def test_malformed_json_is_400_bad_request(client):
    response = client.post("/api/probe/echo", data='{"name": "x",', content_type="application/json")

    body = assert_problem(response, 400, "bad_request", "/api/probe/echo")
    assert "JSON" in body["detail"]


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe not utf-8", b"[" * 50_000 + b"]" * 50_000, b'{"risk": NaN}'],
    ids=["invalid-utf8", "nested-too-deep", "nan-literal"],
)
def test_unparseable_json_bodies_are_400_never_500(client, raw):
    response = client.post("/api/probe/echo", data=raw, content_type="application/json")

    assert_problem(response, 400, "bad_request", "/api/probe/echo")


def test_json_that_is_not_an_object_is_422(client):
    response = json_post(client, "/api/probe/echo", [1, 2, 3])

    body = assert_problem(response, 422, "validation_error", "/api/probe/echo")
    assert body["errors"] == [{"field": "non_field_errors", "message": "Request body must be a JSON object"}]


def test_unknown_route_is_404_problem_with_path_as_instance_without_query(client):
    response = client.get("/api/no-such-thing?limit=5&x=1")

    body = assert_problem(response, 404, "not_found", "/api/no-such-thing")
    assert "/api/no-such-thing" in body["detail"]


def test_unknown_route_outside_api_is_also_problem_json(client):
    assert_problem(client.get("/nothing/here"), 404, "not_found", "/nothing/here")


@pytest.mark.parametrize(
    ("kind", "detail"),
    [("ours", "Widget 42 not found"), ("drf", "Gadget 7 not found"), ("django", "Not found")],
)
def test_view_raising_not_found_is_404_problem_keeping_its_detail(client, kind, detail):
    response = client.get(f"/api/probe/missing/{kind}")

    body = assert_problem(response, 404, "not_found", f"/api/probe/missing/{kind}")
    assert body["detail"] == detail


def test_wrong_verb_is_405_with_allow_header(client):
    response = client.delete("/api/probe/read-only")

    assert_problem(response, 405, "method_not_allowed", "/api/probe/read-only")
    assert {m.strip() for m in response["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


def test_wrong_verb_on_a_probe_is_405_problem(client):
    response = client.post("/health")

    assert_problem(response, 405, "method_not_allowed", "/health")
    assert "GET" in response["Allow"]


def test_paths_work_with_and_without_trailing_slash(client):
    assert client.get("/api/probe/read-only").status_code == 200
    assert client.get("/api/probe/read-only/").status_code == 200


# --- 409 extensions ----------------------------------------------------------------------------------------


def test_conflict_problem_carries_its_extension_members(client):
    duplicate = assert_problem(
        client.post("/api/probe/conflict/duplicate"), 409, "conflict", "/api/probe/conflict/duplicate"
    )
    version = assert_problem(
        client.post("/api/probe/conflict/version"), 409, "version_conflict", "/api/probe/conflict/version"
    )

    assert duplicate["existing_id"] == "front_door"
    assert version["current_version"] == 3


# --- 413 ---------------------------------------------------------------------------------------------------


def _json_of_size(size: int) -> bytes:
    """A valid JSON object of exactly ``size`` bytes."""
    skeleton = b'{"pad": ""}'
    return b'{"pad": "' + b"a" * (size - len(skeleton)) + b'"}'


def test_json_body_of_exactly_one_mib_is_accepted(client):
    response = client.post("/api/probe/echo", data=_json_of_size(MIB), content_type="application/json")

    assert response.status_code == 200
    assert len(response.json()["received"]["pad"]) == MIB - len(b'{"pad": ""}')


def test_json_body_over_one_mib_with_content_length_is_413(client):
    response = client.post("/api/probe/echo", data=_json_of_size(MIB + 1), content_type="application/json")

    body = assert_problem(response, 413, "payload_too_large", "/api/probe/echo")
    assert "1048576" in body["detail"]


@contextlib.contextmanager
def _keep_test_connection():
    """Like Django's AsyncClient: the request signals must not close the test's transactional connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def asgi_request(path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, dict, bytes]:
    """One HTTP request through the real ASGI application, its body streamed in ``chunks`` like daphne does."""
    from hsi.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 8000),
    }

    async def run():
        communicator = ApplicationCommunicator(application, scope)
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1
            await communicator.send_input({"type": "http.request", "body": chunk, "more_body": more})
        start = await communicator.receive_output(10)
        body = b""
        while True:
            message = await communicator.receive_output(10)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await communicator.wait(10)
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body

    with _keep_test_connection():
        return async_to_sync(run)()


def _chunks(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


CHUNKED_JSON = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]


def test_streamed_json_body_over_one_mib_without_content_length_is_413():
    status, headers, body = asgi_request("/api/probe/validate", _chunks(_json_of_size(MIB + 10)), CHUNKED_JSON)

    assert status == 413
    assert headers["content-type"] == PROBLEM
    assert json.loads(body)["code"] == "payload_too_large"


def test_streamed_json_body_without_content_length_is_parsed_not_dropped():
    payload = json.dumps({"name": "gate", "coordinates": [[0.5, 0.25], [1, 0]]}).encode()

    status, _, body = asgi_request("/api/probe/validate", [payload[:10], payload[10:]], CHUNKED_JSON)

    assert status == 200, body
    assert json.loads(body) == {"name": "gate", "coordinates": [[0.5, 0.25], [1.0, 0.0]]}


def test_asgi_request_with_declared_length_over_one_mib_is_413():
    data = _json_of_size(MIB + 1)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]

    status, _, body = asgi_request("/api/probe/validate", _chunks(data), headers)

    assert status == 413 and json.loads(body)["code"] == "payload_too_large"


# --- 415 ---------------------------------------------------------------------------------------------------


def test_text_plain_body_is_415(client):
    response = client.post("/api/probe/echo", data="name=x", content_type="text/plain")

    body = assert_problem(response, 415, "unsupported_media_type", "/api/probe/echo")
    assert "text/plain" in body["detail"]


def test_form_body_is_415(client):
    urlencoded = client.post(
        "/api/probe/echo", data="name=x&folder=y", content_type="application/x-www-form-urlencoded"
    )
    multipart = client.post("/api/probe/echo", data={"name": "x"})  # the test client's default is multipart

    assert_problem(urlencoded, 415, "unsupported_media_type", "/api/probe/echo")
    assert_problem(multipart, 415, "unsupported_media_type", "/api/probe/echo")


def test_json_with_charset_parameter_is_accepted(client):
    response = client.post("/api/probe/echo", data='{"a": 1}', content_type="application/json; charset=utf-8")

    assert response.status_code == 200
    assert response.json()["received"] == {"a": 1}


def test_empty_body_is_an_empty_object(client):
    response = client.post("/api/probe/echo", content_type="application/json")

    assert response.status_code == 200
    assert response.json()["received"] == {}


# --- 422 ---------------------------------------------------------------------------------------------------


def test_serializer_errors_are_422_with_dotted_fields_and_list_indices(client):
    payload = {"name": "far too long", "coordinates": [[0.1, 0.2], [0.3, 0.4], [0.5, 7]], "schedule": {}}

    response = json_post(client, "/api/probe/validate", payload)

    body = assert_problem(response, 422, "validation_error", "/api/probe/validate")
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"name", "coordinates.2.1", "schedule.start_time"}
    assert all(isinstance(error["message"], str) and error["message"] for error in body["errors"])


def test_object_level_errors_use_non_field_errors(client):
    response = json_post(client, "/api/probe/validate", {"name": "bad", "coordinates": []})

    body = assert_problem(response, 422, "validation_error", "/api/probe/validate")
    assert body["errors"] == [{"field": "non_field_errors", "message": "name and coordinates disagree"}]


def test_field_validation_error_lists_each_field(client):
    response = client.post("/api/probe/field-errors")

    body = assert_problem(response, 422, "validation_error", "/api/probe/field-errors")
    assert body["errors"] == [
        {"field": "schedule.start_time", "message": "Must be HH:MM"},
        {"field": "days", "message": "Unknown day"},
    ]


# --- Pagination through a view -----------------------------------------------------------------------------


def test_invalid_cursor_is_400_problem(client):
    response = client.get("/api/probe/page?cursor=not-a-cursor")

    body = assert_problem(response, 400, "bad_request", "/api/probe/page")
    assert body["detail"] == "Invalid cursor"


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "offset=-1", "offset=1.5"])
def test_out_of_range_page_parameters_are_422_naming_the_parameter(client, query):
    response = client.get(f"/api/probe/page?{query}")

    body = assert_problem(response, 422, "validation_error", "/api/probe/page")
    assert [error["field"] for error in body["errors"]] == [query.split("=")[0]]


def test_page_defaults_and_envelope_shape(client):
    response = client.get("/api/probe/page")

    assert response.status_code == 200
    assert response.json()["pagination"] == {
        "total": 0,
        "limit": 50,
        "offset": 0,
        "next_cursor": None,
        "has_more": False,
    }


# --- 500 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/probe/boom", "/api/probe/django-boom"])
def test_unexpected_failure_is_500_with_only_a_generic_detail(client, settings, path):
    settings.DEBUG = False

    response = client.get(path, HTTP_X_REQUEST_ID="trace-500")

    body = assert_problem(response, 500, "internal_error", path)
    assert body["detail"] == "Internal server error"
    assert body["request_id"] == "trace-500"
    text = response.content.decode()
    for leak in ("hunter2", "/srv/hsi", "Traceback", "RuntimeError", "config.py"):
        assert leak not in text


# --- Request id (§0.8) -------------------------------------------------------------------------------------


@pytest.mark.parametrize("offered", ["abc-123", "A.b_c-9", "x" * 64])
def test_valid_client_request_id_is_echoed(client, offered):
    response = client.get("/health", HTTP_X_REQUEST_ID=offered)

    assert response["X-Request-ID"] == offered


@pytest.mark.parametrize("offered", ["", "x" * 65, "has space", "semi;colon", "ünïcode", "abc\n"])
def test_invalid_client_request_id_is_replaced_by_a_generated_one(client, offered):
    response = client.get("/health", HTTP_X_REQUEST_ID=offered)

    assert GENERATED_ID.fullmatch(response["X-Request-ID"])


def test_generated_request_ids_differ_between_requests(client):
    first, second = client.get("/health")["X-Request-ID"], client.get("/health")["X-Request-ID"]

    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second) and first != second


def test_error_body_carries_the_generated_request_id(client):
    response = client.get("/api/no-such-thing")

    assert GENERATED_ID.fullmatch(response.json()["request_id"])
    assert response.json()["request_id"] == response["X-Request-ID"]


# --- Security headers and Cache-Control (§6.3) -------------------------------------------------------------


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _assert_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        assert response.get(name) == value, f"{name} missing on {response.status_code}"
    assert response.has_header("X-Request-ID")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/"),
        ("get", "/health"),
        ("get", "/ready"),
        ("get", "/api/schema"),
        ("get", "/api/probe/read-only"),
        ("get", "/api/no-such-thing"),
        ("post", "/health"),
        ("get", "/api/probe/boom"),
        ("get", "/api/probe/django-boom"),
    ],
)
def test_every_response_carries_the_security_headers(client, method, path):
    _assert_security_headers(getattr(client, method)(path))


def test_security_headers_on_401_refusals(client, settings):
    settings.API_KEY_ENABLED = True

    response = client.get("/api/probe/read-only")

    assert response.status_code == 401
    _assert_security_headers(response)


def test_security_headers_on_cors_preflight(client):
    response = client.options(
        "/api/probe/read-only", HTTP_ORIGIN=ALLOWED_ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )

    assert response.status_code == 200
    _assert_security_headers(response)


def test_hsts_only_when_configured(settings):
    assert not Client().get("/health", secure=True).has_header("Strict-Transport-Security")

    settings.SECURE_HSTS_SECONDS = 3600  # read when the middleware is built, i.e. by a new client

    assert Client().get("/health", secure=True)["Strict-Transport-Security"].startswith("max-age=3600")


@pytest.mark.parametrize("path", ["/api/probe/read-only", "/api/no-such-thing", "/api/probe/boom"])
def test_api_json_responses_are_no_store(client, path):
    assert client.get(path)["Cache-Control"] == "no-store"


def test_api_401_is_no_store(client, settings):
    settings.API_KEY_ENABLED = True

    assert client.get("/api/probe/read-only")["Cache-Control"] == "no-store"


def test_a_view_setting_its_own_cache_control_keeps_it(client):
    assert client.get("/api/probe/own-cache-control")["Cache-Control"] == "private, max-age=60"


# --- CORS (§6.3) -------------------------------------------------------------------------------------------


def _vary(response) -> set[str]:
    return {v.strip().lower() for v in response.get("Vary", "").split(",") if v.strip()}


def test_allowed_origin_gets_cors_headers_with_credentials(client):
    response = client.get("/api/probe/read-only", HTTP_ORIGIN=ALLOWED_ORIGIN)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert "origin" in _vary(response)
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert exposed == EXPOSED


def test_allowed_origin_gets_cors_headers_on_errors_too(client):
    response = client.get("/api/no-such-thing", HTTP_ORIGIN=ALLOWED_ORIGIN)

    assert response.status_code == 404
    assert response["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN


def test_preflight_from_allowed_origin_is_200_with_methods_echoed_headers_and_max_age(client):
    response = client.options(
        "/api/probe/echo",
        HTTP_ORIGIN=ALLOWED_ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-api-key, content-type, x-request-id",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert response["Access-Control-Allow-Credentials"] == "true"
    methods = {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    allowed = [h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")]
    assert allowed == ["x-api-key", "content-type", "x-request-id"]
    assert response["Access-Control-Max-Age"] == "600"


def test_preflight_bypasses_api_key_auth_and_writes_no_audit(client, settings):
    from system.models import AuditLog

    settings.API_KEY_ENABLED = True

    response = client.options(
        "/api/probe/echo",
        HTTP_ORIGIN=ALLOWED_ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="DELETE",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-api-key",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert not AuditLog.objects.filter(action="auth_failed").exists()


def test_foreign_origin_gets_no_cors_headers_but_is_processed(client):
    response = client.get("/api/probe/read-only", HTTP_ORIGIN="https://evil.example")

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def test_preflight_from_foreign_origin_gets_no_cors_headers(client):
    response = client.options(
        "/api/probe/echo",
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-api-key",
    )

    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


# --- Readiness (§2.1) --------------------------------------------------------------------------------------


# REDIS_URL is overridden only around the request: the per-test cache cleanup reads it at teardown, and must
# keep seeing the real server (with REDIS_URL unset it would clear the whole shared Redis database).


def test_ready_is_503_when_redis_is_unreachable(client):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["status"] == "not_ready"
    assert body["checks"]["redis"] == "error" and body["checks"]["database"] == "ok"


def test_ready_reports_redis_disabled_without_redis_url(client):
    with override_settings(REDIS_URL=None):
        response = client.get("/ready")

    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == "disabled"
