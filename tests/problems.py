"""Assertions on problem+json error responses (CONTRACT §0.6), shared by the API tests."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def problem(response, status: int, code: str) -> dict:
    """The problem document of ``response``, after checking its status, content type and ``code``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == code
    return body


def error_fields(response) -> set[str]:
    """The ``field`` of every error of a 422 response."""
    return {error["field"] for error in problem(response, 422, "validation_error")["errors"]}
