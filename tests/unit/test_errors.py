"""Problem documents (CONTRACT §0.6): DRF's nested errors flattened to dotted fields, and status mapping."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from django.test import RequestFactory
from rest_framework import exceptions as drf
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from hsi.api.errors import (
    ApiError,
    Conflict,
    FieldValidationError,
    InvalidState,
    VersionConflict,
    exception_handler,
    flatten_errors,
    problem_body,
)


def test_flat_field_errors():
    assert flatten_errors({"name": [ErrorDetail("This field is required.", code="required")]}) == [
        {"field": "name", "message": "This field is required."}
    ]


def test_nested_object_fields_are_dotted():
    assert flatten_errors({"schedule": {"start_time": ["Bad time"], "days": ["Unknown"]}}) == [
        {"field": "schedule.start_time", "message": "Bad time"},
        {"field": "schedule.days", "message": "Unknown"},
    ]


def test_list_indices_are_numbers_in_the_path():
    # DRF ListField reports {index: errors}; a nested list serializer reports a list with {} for valid items.
    assert flatten_errors({"coordinates": {2: ["Must be at most 1."]}}) == [
        {"field": "coordinates.2", "message": "Must be at most 1."}
    ]
    assert flatten_errors({"zones": [{}, {"name": ["Too long"]}, {}]}) == [
        {"field": "zones.1.name", "message": "Too long"}
    ]


def test_deeply_nested_lists_of_lists():
    detail = {"coordinates": {0: {1: ["Must be a number."]}, 3: {0: ["Out of range"]}}}

    assert flatten_errors(detail) == [
        {"field": "coordinates.0.1", "message": "Must be a number."},
        {"field": "coordinates.3.0", "message": "Out of range"},
    ]


def test_object_level_errors_are_non_field_errors():
    assert flatten_errors({"non_field_errors": ["Start must precede end"]}) == [
        {"field": "non_field_errors", "message": "Start must precede end"}
    ]
    assert flatten_errors(["Body must be an object"]) == [
        {"field": "non_field_errors", "message": "Body must be an object"}
    ]
    assert flatten_errors("Plain message") == [{"field": "non_field_errors", "message": "Plain message"}]


def test_nested_object_level_errors_keep_their_parent():
    assert flatten_errors({"schedule": {"non_field_errors": ["end before start"]}}) == [
        {"field": "schedule.non_field_errors", "message": "end before start"}
    ]


def test_several_messages_for_one_field_are_separate_entries():
    assert flatten_errors({"name": ["Too long", "Bad characters"]}) == [
        {"field": "name", "message": "Too long"},
        {"field": "name", "message": "Bad characters"},
    ]


def test_real_serializer_errors_flatten_as_documented():
    class Schedule(serializers.Serializer):
        start_time = serializers.TimeField()

    class Rule(serializers.Serializer):
        name = serializers.CharField()
        coordinates = serializers.ListField(child=serializers.ListField(child=serializers.FloatField(max_value=1)))
        schedule = Schedule()

    serializer = Rule(data={"coordinates": [[0.1, 0.2], [0.3, 5]], "schedule": {"start_time": "noon"}})
    assert not serializer.is_valid()

    fields = [error["field"] for error in flatten_errors(serializer.errors)]

    assert sorted(fields) == ["coordinates.1.1", "name", "schedule.start_time"]


# --- Exception handler --------------------------------------------------------------------------------------


def _handle(exc: Exception, path: str = "/api/things/1?x=1"):
    request = RequestFactory().get(path)
    request.request_id = "rid-1"
    response = exception_handler(exc, {"request": request})
    return response, json.loads(response.content)


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (drf.ParseError("bad"), 400, "bad_request"),
        (SuspiciousOperation("weird"), 400, "bad_request"),
        (drf.NotAuthenticated(), 401, "authentication_required"),
        (drf.AuthenticationFailed(), 401, "invalid_api_key"),
        (PermissionDenied(), 403, "forbidden"),
        (drf.PermissionDenied(), 403, "forbidden"),
        (Http404(), 404, "not_found"),
        (drf.NotFound(), 404, "not_found"),
        (drf.MethodNotAllowed("PUT"), 405, "method_not_allowed"),
        (Conflict("dup"), 409, "conflict"),
        (InvalidState("already deleted"), 409, "invalid_state"),
        (VersionConflict(2), 409, "version_conflict"),
        (RequestDataTooBig(), 413, "payload_too_large"),
        (drf.UnsupportedMediaType("text/plain"), 415, "unsupported_media_type"),
        (ApiError("range", code="range_not_satisfiable", status_code=416), 416, "range_not_satisfiable"),
        (drf.ValidationError({"a": ["b"]}), 422, "validation_error"),
        (FieldValidationError({"a": "b"}), 422, "validation_error"),
        (drf.Throttled(wait=3), 429, "rate_limited"),
        (ApiError("down", code="service_unavailable", status_code=503), 503, "service_unavailable"),
        (ZeroDivisionError("secret sauce"), 500, "internal_error"),
    ],
)
def test_every_exception_maps_to_the_contract_status_and_code(exc, status, code):
    response, body = _handle(exc)

    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    expected = problem_body("/api/things/1", status, code, body["detail"], "rid-1")
    assert {key: body[key] for key in expected} == expected
    assert expected["type"] == f"urn:hsi:problem:{code}" and expected["title"] == HTTPStatus(status).phrase
    assert body["detail"]


def test_unauthorized_responses_carry_www_authenticate():
    response, _ = _handle(drf.NotAuthenticated())

    assert response["WWW-Authenticate"] == "ApiKey"


@pytest.mark.parametrize(("wait", "expected"), [(None, "1"), (0.2, "1"), (1.5, "2"), (30, "30")])
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait, expected):
    response, _ = _handle(drf.Throttled(wait=wait))

    assert response["Retry-After"] == expected


def test_internal_error_never_reveals_the_exception():
    response, body = _handle(RuntimeError("password=hunter2 in /srv/app/settings.py"))

    assert body["detail"] == "Internal server error"
    assert "hunter2" not in response.content.decode() and "/srv/app" not in response.content.decode()


def test_extension_members_are_serialised_even_when_not_plain_json_types():
    import uuid

    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")

    _, body = _handle(Conflict("Duplicate", existing_id=ident))

    assert body["existing_id"] == str(ident)


def test_validation_error_body_lists_flattened_errors():
    _, body = _handle(drf.ValidationError({"schedule": {"start_time": ["Bad"]}}))

    assert body["errors"] == [{"field": "schedule.start_time", "message": "Bad"}]
    assert body["detail"] == "Validation failed"
