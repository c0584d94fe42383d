"""OpenAPI post-processing (drf-spectacular ``POSTPROCESSING_HOOKS``): what every operation shares, declared once.

Views document their success responses; this hook adds what the middleware, the exception handler and the
request parsing give every operation (CONTRACT §0.4, §0.6, §0.8, §6.1, §6.2), so the document matches what a
client can receive:

- the RFC 7807 error responses as ``application/problem+json`` (``Problem``; 422 adds ``errors``): 400, 403,
  404 and 422 everywhere, 401 where an API key is required, 429 where a throttle tier applies, 409/413/415 on
  operations that take a body or change state;
- the ``X-Request-ID`` header of every response, ``Retry-After`` on 429 and ``WWW-Authenticate`` on 401;
- the ``X-API-Key`` security scheme (and ``api_key`` query parameter for the media tier), with the
  auth-exempt paths (probes, ``/api/schema``, ``/api/docs``) marked as needing none.

A response a view documents itself is kept as it is (the hook only fills gaps). 500 is never documented.
"""

from __future__ import annotations

import copy
import re

from hsi.api.errors import PROBLEM_CONTENT_TYPE
from hsi.api.tiers import is_auth_exempt, tier_for_path

PROBLEM = "Problem"
VALIDATION_PROBLEM = "ValidationProblem"
SECURITY_SCHEME = "ApiKeyAuth"
QUERY_SECURITY_SCHEME = "ApiKeyQuery"

_REQUEST_ID_HEADER = {
    "description": "The client's X-Request-ID when it is valid, else a new id (CONTRACT §0.8).",
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"},
}

_PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 7807 problem document (CONTRACT §0.6).",
    "properties": {
        "type": {"type": "string", "example": "urn:hsi:problem:not_found"},
        "title": {"type": "string", "example": "Not Found"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string", "example": "not_found"},
        "request_id": {"type": "string", "nullable": True},
    },
    "required": ["type", "title", "status", "detail", "instance", "code", "request_id"],
    "additionalProperties": True,
}
_VALIDATION_PROBLEM_SCHEMA = {
    "allOf": [
        {"$ref": f"#/components/schemas/{PROBLEM}"},
        {
            "type": "object",
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                        "required": ["field", "message"],
                    },
                }
            },
            "required": ["errors"],
        },
    ]
}

_DESCRIPTIONS = {
    400: "Bad request: malformed JSON, invalid cursor, inverted date range or another semantic check",
    401: "Missing or invalid API key",
    403: "Forbidden",
    404: "No such route or resource",
    409: "Conflict: duplicate, version conflict or wrong lifecycle state",
    413: "Request body too large",
    415: "Unsupported request body type",
    416: "Range not satisfiable",
    422: "Validation failed",
    429: "Rate limit exceeded",
}
_BODY_METHODS = {"post", "put", "patch"}
_CHANGING_METHODS = _BODY_METHODS | {"delete"}
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_PLACEHOLDER = re.compile(r"\{[^/{}]+\}")


def _sample_path(path: str) -> str:
    """A concrete path for the tier patterns: every ``{parameter}`` becomes ``1`` (ids there are digits or slugs)."""
    return _PLACEHOLDER.sub("1", path)


def _problem_response(status: int) -> dict:
    schema = VALIDATION_PROBLEM if status == 422 else PROBLEM
    response = {
        "description": _DESCRIPTIONS[status],
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {
                "description": "Whole seconds until the window resets",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"required": True, "schema": {"type": "string", "enum": ["ApiKey"]}}}
    return response


def _error_statuses(path: str, method: str) -> list[int]:
    sample = _sample_path(path)
    statuses = [400, 403, 404, 422]
    if not is_auth_exempt(sample, require_metrics_key=True):
        statuses.append(401)
    if tier_for_path(sample) is not None:
        statuses.append(429)
    if method in _CHANGING_METHODS:
        statuses.append(409)
    if method in _BODY_METHODS:
        statuses += [413, 415]
    if method == "get" and tier_for_path(sample) == "media":
        statuses.append(416)  # byte ranges of media files (CONTRACT §2.10)
    return sorted(statuses)


def document_problem_responses(result: dict, generator=None, request=None, public=None) -> dict:
    """Postprocessing hook: shared error responses, headers and security on every operation."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault(PROBLEM, copy.deepcopy(_PROBLEM_SCHEMA))
    schemas.setdefault(VALIDATION_PROBLEM, copy.deepcopy(_VALIDATION_PROBLEM_SCHEMA))
    security_schemes = components.setdefault("securitySchemes", {})
    security_schemes.setdefault(
        SECURITY_SCHEME,
        {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "Required when API_KEY_ENABLED"},
    )
    security_schemes.setdefault(
        QUERY_SECURITY_SCHEME,
        {"type": "apiKey", "in": "query", "name": "api_key", "description": "Media endpoints only (<img src>)"},
    )
    for path, operations in result.get("paths", {}).items():
        sample = _sample_path(path)
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status in _error_statuses(path, method):
                responses.setdefault(str(status), _problem_response(status))
            for response in responses.values():
                response.setdefault("headers", {}).setdefault("X-Request-ID", dict(_REQUEST_ID_HEADER))
            if is_auth_exempt(sample, require_metrics_key=True):
                operation["security"] = [{}]
            elif tier_for_path(sample) == "media":
                operation["security"] = [{SECURITY_SCHEME: []}, {QUERY_SECURITY_SCHEME: []}, {}]
            else:
                operation["security"] = [{SECURITY_SCHEME: []}, {}]
    return result


# --- helpers for views: documented query parameters and the list envelope (CONTRACT §0.4, §0.5) ------------------

PAGE = "Page"
_PAGE_SCHEMA = {
    "type": "object",
    "description": "List envelope (CONTRACT §0.5)",
    "properties": {
        "items": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
        "pagination": {
            "type": "object",
            "properties": {
                "total": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1},
                "offset": {"type": "integer", "minimum": 0, "nullable": True},
                "next_cursor": {"type": "string", "nullable": True},
                "has_more": {"type": "boolean"},
            },
            "required": ["total", "limit", "offset", "next_cursor", "has_more"],
        },
    },
    "required": ["items", "pagination"],
}


def page_response(description: str = "One page of the list") -> dict:
    """``responses=`` value of a list operation: 200 with the §0.5 envelope."""
    from drf_spectacular.utils import OpenApiResponse

    return {200: OpenApiResponse(response=copy.deepcopy(_PAGE_SCHEMA), description=description)}


def page_parameters(*, default: int, maximum: int, cursor: bool = False) -> list:
    """``limit``/``offset`` (and ``cursor``) of ``hsi.api.pagination.parse_page``."""
    from drf_spectacular.utils import OpenApiParameter

    parameters = [
        OpenApiParameter(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
            OpenApiParameter.QUERY,
            description=f"Page size (default {default}, at most {maximum})",
        ),
        OpenApiParameter(
            "offset",
            {"type": "integer", "minimum": 0, "default": 0},
            OpenApiParameter.QUERY,
            description="Rows to skip",
        ),
    ]
    if cursor:
        parameters.append(
            OpenApiParameter(
                "cursor",
                {"type": "string", "maxLength": 512},
                OpenApiParameter.QUERY,
                description="Opaque cursor from pagination.next_cursor; offset is ignored with it (400 when invalid)",
            )
        )
    return parameters


def file_responses(media_type: str, description: str) -> dict:
    """``responses=`` value of a media file: 200 and 206 (byte range) with the file, 304 for a matching ETag.

    ``media_type`` may be a range (``image/*``) where the type depends on the file.
    """
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiResponse

    return {
        (200, media_type): OpenApiResponse(OpenApiTypes.BINARY, description=description),
        (206, media_type): OpenApiResponse(OpenApiTypes.BINARY, description="The requested byte range"),
        304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)"),
    }


def form_field_schema(field) -> dict:
    """The query-string schema of one form field of ``hsi.api.filters`` / ``django.forms``."""
    from django import forms

    from hsi.api.filters import CommaListField, InstantField, StrictBooleanField

    if isinstance(field, StrictBooleanField | forms.BooleanField | forms.NullBooleanField):
        return {"type": "boolean"}
    if isinstance(field, InstantField):
        return {"type": "string", "format": "date-time", "description": "ISO 8601 date or date-time (naive is UTC)"}
    if isinstance(field, CommaListField):
        description = "Comma-separated list"
        if field.allowed:
            description += f" of {', '.join(field.allowed)}"
        return {"type": "string", "description": description}
    if isinstance(field, forms.UUIDField):
        return {"type": "string", "format": "uuid"}
    if isinstance(field, forms.IntegerField):
        schema: dict = {"type": "integer"}
    elif isinstance(field, forms.FloatField | forms.DecimalField):
        schema = {"type": "number"}
    elif isinstance(field, forms.ChoiceField):
        return {"type": "string", "enum": [str(value) for value, _label in field.choices if value != ""]}
    else:
        schema = {"type": "string"}
        if getattr(field, "max_length", None):
            schema["maxLength"] = field.max_length
        return schema
    if getattr(field, "min_value", None) is not None:
        schema["minimum"] = field.min_value
    if getattr(field, "max_value", None) is not None:
        schema["maximum"] = field.max_value
    return schema


def query_parameters(fields) -> list:
    """Query parameters from ``{name: form field}`` (``QueryFilters.params`` values may be ``Param(field, ...)``),
    a ``django.forms.Form`` class, or a django-filter ``FilterSet`` class."""
    from drf_spectacular.utils import OpenApiParameter

    if isinstance(fields, type) and hasattr(fields, "base_filters"):
        # The filter's form field, built as django-filter would (without a label, which needs the model).
        fields = {name: f.field_class(**{"required": False, **f.extra}) for name, f in fields.base_filters.items()}
    elif isinstance(fields, type):
        fields = fields.base_fields
    parameters = []
    for name, value in fields.items():
        field = getattr(value, "field", value)
        schema = form_field_schema(field)
        description = schema.pop("description", None)
        parameters.append(OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=description))
    return parameters
