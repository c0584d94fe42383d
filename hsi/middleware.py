"""Cross-cutting HTTP behaviour: request ids (§0.8), API headers (§6.3) and API-key authentication (§6.1)."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.middleware.csrf import CsrfViewMiddleware

from hsi.api.errors import problem_response
from hsi.api.tiers import accepts_query_api_key, is_auth_exempt
from hsi.net import client_ip

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = offered if _CLIENT_REQUEST_ID.match(offered) else uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class ApiResponseHeadersMiddleware:
    """JSON under /api/ is never cached by intermediaries (media sets its own Cache-Control)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if request.path.startswith("/api/") and "json" in content_type and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response


def _is_preflight(request) -> bool:
    return request.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META


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

        key = request.META.get("HTTP_X_API_KEY")
        if not key and accepts_query_api_key(request.path):
            key = request.GET.get("api_key")
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
        audit_record_throttled(
            Actor(name="anonymous", ip_address=ip, request_id=request.request_id),
            "auth_failed",
            "request",
            key=ip or "unknown",
            details={"path": request.path, "method": request.method, "reason": code},
            status="failure",
        )
        return problem_response(request, 401, code, detail, headers={"WWW-Authenticate": "ApiKey"})
