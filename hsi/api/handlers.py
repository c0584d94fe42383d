"""Django-level error handlers: requests that never reach a DRF view still get problem+json (CONTRACT §0.6)."""

from django.core.exceptions import RequestDataTooBig

from hsi.api.errors import payload_too_large_detail, problem_response


def bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        # Django turns an oversized body read outside a DRF view (e.g. request.POST in middleware) into a 400.
        return problem_response(request, 413, "payload_too_large", payload_too_large_detail())
    return problem_response(request, 400, "bad_request", "Bad request")


def permission_denied(request, exception=None):
    return problem_response(request, 403, "forbidden", "Forbidden")


def not_found(request, exception=None):
    return problem_response(request, 404, "not_found", f"No route matches {request.path}")


def server_error(request):
    return problem_response(request, 500, "internal_error", "Internal server error")
