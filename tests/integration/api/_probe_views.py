"""A tests-only urlconf: tiny views on the shared API base classes, mounted in front of the real routes.

Use with ``@pytest.mark.urls("tests.integration.api._probe_views")``. The paths mimic real ones where the
middleware decides by path (``/api/metrics``, media-tier paths), so auth and tier rules are exercised exactly as
for the real endpoints, without depending on endpoints other engineers are still writing.
"""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.urls import path, re_path
from rest_framework import serializers
from rest_framework.exceptions import NotFound as DrfNotFound
from rest_framework.response import Response

from hsi.api.errors import Conflict, FieldValidationError, NotFound, VersionConflict
from hsi.api.pagination import envelope, parse_page
from hsi.api.views import ApiView
from hsi.urls import urlpatterns as real_urlpatterns
from system.services import actor_from_request, audit_record


class EchoView(ApiView):
    """GET says who the caller is; every unsafe method echoes the JSON body and writes an audit row."""

    def get(self, request):
        return Response({"ok": True, "actor": actor_from_request(request).name})

    def post(self, request):
        return self._write(request)

    def put(self, request):
        return self._write(request)

    def patch(self, request):
        return self._write(request)

    def delete(self, request):
        return self._write(request)

    def _write(self, request):
        body = self.body()
        row = audit_record(actor_from_request(request), "probe_written", "probe", "1", details={"keys": sorted(body)})
        return Response({"received": body, "actor": row.actor, "audit_id": row.id})


class ReadOnlyView(ApiView):
    def get(self, request):
        return Response({"ok": True})


class _ScheduleSerializer(serializers.Serializer):
    start_time = serializers.TimeField()


class _ShapeSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=5)
    coordinates = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(min_value=0, max_value=1), min_length=2, max_length=2)
    )
    schedule = _ScheduleSerializer(required=False)

    def validate(self, attrs):
        if attrs.get("name") == "bad":
            raise serializers.ValidationError("name and coordinates disagree")
        return attrs


class ValidatingView(ApiView):
    def post(self, request):
        serializer = _ShapeSerializer(data=self.body())
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


class FieldErrorView(ApiView):
    def post(self, request):
        raise FieldValidationError({"schedule.start_time": "Must be HH:MM", "days": "Unknown day"})


class MissingView(ApiView):
    def get(self, request, kind):
        if kind == "ours":
            raise NotFound("Widget 42 not found")
        if kind == "drf":
            raise DrfNotFound("Gadget 7 not found")
        raise Http404("No Thing matches the given query.")


class ConflictView(ApiView):
    def post(self, request, kind):
        if kind == "version":
            raise VersionConflict(3)
        raise Conflict("Camera already exists", existing_id="front_door")


class BoomView(ApiView):
    def get(self, request):
        raise RuntimeError("database password=hunter2 at /srv/hsi/secret/config.py line 12")


def django_boom(request):
    raise RuntimeError("plain view failure at /srv/hsi/secret/config.py")


class OwnCacheControlView(ApiView):
    def get(self, request):
        return Response({"ok": True}, headers={"Cache-Control": "private, max-age=60"})


class PageView(ApiView):
    def get(self, request):
        page = parse_page(request, default=50, maximum=100, cursor=True)
        cursor = None
        if page.cursor is not None:
            cursor = {"t": page.cursor.timestamp.isoformat(), "id": page.cursor.id}
        return Response({**envelope([], total=0, page=page, has_more=False), "cursor": cursor})


class MediaLikeView(ApiView):
    def get(self, request, **kwargs):
        return Response({"ok": True, "actor": actor_from_request(request).name})


def plain_json(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    re_path(r"^api/probe/echo/?$", EchoView.as_view()),
    re_path(r"^api/probe/read-only/?$", ReadOnlyView.as_view()),
    re_path(r"^api/probe/validate/?$", ValidatingView.as_view()),
    re_path(r"^api/probe/field-errors/?$", FieldErrorView.as_view()),
    re_path(r"^api/probe/missing/(?P<kind>[a-z]+)/?$", MissingView.as_view()),
    re_path(r"^api/probe/conflict/(?P<kind>[a-z]+)/?$", ConflictView.as_view()),
    re_path(r"^api/probe/boom/?$", BoomView.as_view()),
    re_path(r"^api/probe/django-boom/?$", django_boom),
    re_path(r"^api/probe/own-cache-control/?$", OwnCacheControlView.as_view()),
    re_path(r"^api/probe/page/?$", PageView.as_view()),
    re_path(r"^api/metrics/?$", MediaLikeView.as_view()),
    path("api/media/<path:rest>", MediaLikeView.as_view()),
    re_path(r"^api/detections/(?P<pk>\d+)/(?P<what>thumbnail|image|video)/?$", MediaLikeView.as_view()),
    re_path(r"^api/cameras/(?P<camera_id>[^/]+)/snapshot/?$", MediaLikeView.as_view()),
    path("plain-json", plain_json),
    *real_urlpatterns,
]

handler400 = "hsi.api.handlers.bad_request"
handler403 = "hsi.api.handlers.permission_denied"
handler404 = "hsi.api.handlers.not_found"
handler500 = "hsi.api.handlers.server_error"
