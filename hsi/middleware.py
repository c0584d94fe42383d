"""Cross-cutting HTTP behaviour: request ids (§0.8), response headers (§6.3) and API-key authentication (§6.1).

``RequestIdMiddleware`` is the outermost middleware, so it is also where the headers that *every* response must
carry are guaranteed: responses produced early by inner middleware (a 401 from ``ApiKeyMiddleware``, a CORS
preflight answered by django-cors-headers) skip the inner ``XFrameOptionsMiddleware``.
"""

from __future__ import annotations

import contextvars
import re
import time
import uuid

from django.conf import settings
from django.middleware.csrf import CsrfViewMiddleware

from hsi.api.errors import problem_response
from hsi.api.tiers import accepts_query_api_key, is_auth_exempt
from hsi.net import client_ip

_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_HEADER_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# The id of the request being served, for log entries written while serving it (system.logging, §0.8).
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("hsi_request_id", default=None)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = offered if _CLIENT_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        token = current_request_id.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response["X-Request-ID"] = request.request_id
        _ensure_security_headers(response)
        _echo_preflight_headers(request, response)
        return response


def _ensure_security_headers(response) -> None:
    """The headers of CONTRACT §6.3 on every response, whichever middleware produced it."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY or "same-origin")
    response.headers.setdefault(
        "Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY or "same-origin"
    )
    if not getattr(response, "xframe_options_exempt", False):
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)


def _echo_preflight_headers(request, response) -> None:
    """An allowed preflight answers ``Access-Control-Allow-Headers`` with the headers the browser asked for.

    django-cors-headers answers with a fixed list that lacks ``X-API-Key``; browsers would then refuse every
    authenticated cross-origin call.
    """
    if not _is_preflight(request) or "Access-Control-Allow-Origin" not in response.headers:
        return
    requested = request.META.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
    names = [name.strip() for name in requested.split(",") if name.strip()]
    names = [name for name in names if _HEADER_TOKEN.fullmatch(name)]
    if names:
        response["Access-Control-Allow-Headers"] = ", ".join(dict.fromkeys(names))


class ApiResponseHeadersMiddleware:
    """JSON under /api/ is never cached by intermediaries (media sets its own Cache-Control).

    It also gives a streamed (chunked) request body its length: ASGI servers pass such bodies without a
    ``Content-Length``, and Django/DRF would then treat the body as empty instead of parsing it or refusing it
    as too large (CONTRACT §0.4).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        _measure_streamed_body(request)
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if request.path.startswith("/api/") and "json" in content_type and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response


def _measure_streamed_body(request) -> None:
    if request.META.get("CONTENT_LENGTH") or getattr(request, "_read_started", True):
        return
    stream = getattr(request, "_stream", None)
    try:
        if stream is None or not stream.seekable():
            return
        start = stream.tell()
        size = stream.seek(0, 2) - start
        stream.seek(start)
    except (AttributeError, OSError, ValueError):
        return
    if size > 0:
        request.META["CONTENT_LENGTH"] = str(size)


def _is_preflight(request) -> bool:
    return request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META


def offered_api_key(request) -> str | None:
    """The key a request offers: the ``X-API-Key`` header, or ``?api_key`` on the media routes (§6.1)."""
    key = request.META.get("HTTP_X_API_KEY")
    if not key and accepts_query_api_key(request.path):
        key = request.GET.get("api_key")
    return key or None


class ApiKeyMiddleware:
    """Every /api/ path needs a valid API key or a staff session when ``API_KEY_ENABLED`` (CONTRACT §6.1)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._csrf = CsrfViewMiddleware(get_response)

    def __call__(self, request):
        request.hsi_actor = None
        if not settings.API_KEY_ENABLED or _is_preflight(request):
            return self.get_response(request)
        if is_auth_exempt(request.path, settings.METRICS_REQUIRE_API_KEY):
            return self.get_response(request)
        refusal = self.authenticate(request)
        return refusal or self.get_response(request)

    def authenticate(self, request):
        from system.auth import authenticate_key

        key = offered_api_key(request)
        if key:
            name = authenticate_key(key)
            if name is not None:
                request.hsi_actor = f"api_key:{name}"
                return None
            return self.refuse(request, "invalid_api_key", "Invalid API key")
        user = getattr(request, "user", None)
        if user is not None and user.is_active and user.is_staff:
            if request.method in _UNSAFE_METHODS:
                failure = self._csrf.process_view(request, None, (), {})
                if failure is not None:
                    return problem_response(request, 403, "forbidden", "CSRF verification failed")
            request.hsi_actor = f"user:{user.get_username()}"
            return None
        return self.refuse(request, "authentication_required", "API key required. Send it in the X-API-Key header.")

    def refuse(self, request, code: str, detail: str):
        from system.services import Actor, audit_record_throttled

        ip = client_ip(request)
        agent = request.META.get("HTTP_USER_AGENT")
        audit_record_throttled(
            Actor(
                name="anonymous",
                ip_address=ip,
                user_agent=agent[:500] if agent else None,
                request_id=request.request_id,
            ),
            "auth_failed",
            "request",
            key=ip or "unknown",
            details={"path": request.path, "method": request.method, "reason": code},
            status="failure",
        )
        return problem_response(request, 401, code, detail, headers={"WWW-Authenticate": "ApiKey"})


_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


class HttpMetricsMiddleware:
    """``hsi_http_requests_total{method,route,status}`` and ``hsi_http_request_duration_seconds{route}``
    (CONTRACT §2.12). ``route`` is the URL pattern's name (bounded cardinality), never the raw path; a path no
    pattern matches counts as ``unmatched``, an unusual verb as ``other``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        try:
            from hsi.metrics import http_request_duration_seconds, http_requests

            route = _route_name(request)
            method = request.method if request.method in _HTTP_METHODS else "other"
            http_requests.labels(method=method, route=route, status=str(response.status_code)).inc()
            http_request_duration_seconds.labels(route=route).observe(elapsed)
        except Exception:  # noqa: BLE001 - metrics never fail a request
            pass
        return response


def _route_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:  # answered before URL resolution (401, preflight): resolve for the label only
        from django.urls import Resolver404, resolve

        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED_ROUTE
    return match.view_name or match.route or UNMATCHED_ROUTE
