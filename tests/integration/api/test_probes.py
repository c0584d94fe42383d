import pytest

pytestmark = pytest.mark.django_db


def test_root_describes_the_api(api_client):
    response = api_client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert (
        body["status"] == "ok" and body["docs"] == "/api/docs" and body["message"] == "Home Security Intelligence API"
    )


def test_health_is_alive_without_dependencies(api_client):
    response = api_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_ready_reports_every_check(api_client):
    response = api_client.get("/ready/")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "migrations": "ok"},
    }


def test_unknown_route_is_problem_json_404(api_client):
    response = api_client.get("/api/nothing-here", HTTP_X_REQUEST_ID="abc-123")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_found" and body["instance"] == "/api/nothing-here"
    assert body["request_id"] == "abc-123" and response["X-Request-ID"] == "abc-123"
