"""RFC 7807 problem+json errors for responses under ``/``, ``/health``, ``/ready`` and ``/api/`` (CONTRACT §0.6)."""

from __future__ import annotations

import json
import logging
import math
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status

logger = logging.getLogger("hsi.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApiError(drf_exceptions.APIException):
    """An error with a contract ``code`` and optional extension members (``existing_id``, ``current_version``…)."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None, status_code: int | None = None, **extensions: Any):
        super().__init__(detail)
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.extensions = extensions


class BadRequest(ApiError):
    status_code = 400
    code = "bad_request"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class InvalidState(ApiError):
    status_code = 409
    code = "invalid_state"


class VersionConflict(ApiError):
    status_code = 409
    code = "version_conflict"

    def __init__(self, current_version: int):
        super().__init__(
            f"Version conflict: the resource is at version {current_version}", current_version=current_version
        )


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class FieldValidationError(ApiError):
    """A 422 whose errors are ``[{"field", "message"}]`` (CONTRACT §0.6)."""

    status_code = 422
    code = "validation_error"

    def __init__(self, errors: list[dict[str, str]] | dict[str, str], detail: str = "Validation failed"):
        if isinstance(errors, dict):
            errors = [{"field": field, "message": message} for field, message in errors.items()]
        super().__init__(detail)
        self.errors = errors


def payload_too_large_detail() -> str:
    return f"Request body exceeds {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"


def problem_body(request_path: str, status_code: int, code: str, detail: str, request_id: str | None) -> dict:
    return {
        "type": f"urn:hsi:problem:{code}",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "instance": request_path,
        "code": code,
        "request_id": request_id,
    }


def problem_response(
    request: HttpRequest, status_code: int, code: str, detail: str, headers: dict | None = None, **extensions: Any
) -> HttpResponse:
    """A plain Django response carrying a problem document; usable outside DRF views (middleware, handlers)."""
    body = problem_body(request.path, status_code, code, detail, getattr(request, "request_id", None))
    body.update(extensions)
    response = HttpResponse(
        json.dumps(body, cls=DjangoJSONEncoder), status=status_code, content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested error structure → ``[{"field": "a.b.2", "message": "..."}]``."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = "non_field_errors" if key in ("non_field_errors", "__all__") and not prefix else str(key)
            out.extend(flatten_errors(value, f"{prefix}.{name}" if prefix else name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"field": prefix or "non_field_errors", "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            if item in ({}, [], None, ""):
                continue
            out.extend(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return [{"field": prefix or "non_field_errors", "message": str(detail)}]


def exception_handler(exc: Exception, context: dict) -> HttpResponse | None:
    """DRF exception handler: every error becomes problem+json with the contract's status and code."""
    request = context["request"]
    status_code, code, detail, extensions, headers = _classify(exc)
    if status_code == 500:
        logger.exception("Unhandled error on %s", request.path, exc_info=exc)
    return problem_response(request, status_code, code, detail, headers=headers, **extensions)


def _classify(exc: Exception) -> tuple[int, str, str, dict, dict]:
    if isinstance(exc, FieldValidationError):
        return 422, exc.code, str(exc.detail), {"errors": exc.errors}, {}
    if isinstance(exc, ApiError):
        return exc.status_code, exc.code, str(exc.detail), exc.extensions, {}
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        return 422, "validation_error", "Validation failed", {"errors": errors}, {}
    if isinstance(exc, drf_exceptions.ParseError):
        return 400, "bad_request", f"Malformed request body: {exc.detail}", {}, {}
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return 415, "unsupported_media_type", str(exc.detail), {}, {}
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return 405, "method_not_allowed", str(exc.detail), {}, {}
    if isinstance(exc, drf_exceptions.NotFound):
        return 404, "not_found", str(exc.detail), {}, {}
    if isinstance(exc, Http404):
        return 404, "not_found", "Not found", {}, {}
    if isinstance(exc, drf_exceptions.NotAuthenticated):
        return 401, "authentication_required", str(exc.detail), {}, {"WWW-Authenticate": "ApiKey"}
    if isinstance(exc, drf_exceptions.AuthenticationFailed):
        return 401, "invalid_api_key", str(exc.detail), {}, {"WWW-Authenticate": "ApiKey"}
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return 403, "forbidden", str(exc.detail), {}, {}
    if isinstance(exc, PermissionDenied):
        return 403, "forbidden", "Forbidden", {}, {}
    if isinstance(exc, drf_exceptions.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        return 429, "rate_limited", "Rate limit exceeded", {}, {"Retry-After": str(wait)}
    if isinstance(exc, RequestDataTooBig):
        return 413, "payload_too_large", payload_too_large_detail(), {}, {}
    if isinstance(exc, SuspiciousOperation):
        return 400, "bad_request", "Bad request", {}, {}
    if isinstance(exc, drf_exceptions.APIException):
        code = {413: "payload_too_large", 415: "unsupported_media_type"}.get(exc.status_code, "bad_request")
        return exc.status_code, code, str(exc.detail), {}, {}
    return 500, "internal_error", "Internal server error", {}, {}
