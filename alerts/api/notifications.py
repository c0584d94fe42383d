"""``/api/notifications`` (CONTRACT §2.8): channels and their test send, preferences and camera overrides, quiet
hours, deliveries and their retry, and the notification configuration. Parse, call one service, render."""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from alerts.api.notification_serializers import (
    CameraPreferenceSerializer,
    ChannelCreateSerializer,
    ChannelUpdateSerializer,
    PreferencesSerializer,
    QuietHoursCreateSerializer,
    QuietHoursUpdateSerializer,
    camera_preference_json,
    channel_json,
    delivery_json,
    preference_json,
    quiet_hours_json,
)
from alerts.models import ChannelKind, Delivery, DeliveryStatus, NotificationChannel, NotificationPreference, QuietHours
from alerts.services import notifications as services
from hsi.api.filters import CommaListField, ListFilter, StrictBooleanFilter, StrictFilterSet
from hsi.api.pagination import envelope, offset_slice, parse_page
from hsi.api.schema import page_parameters, page_response, query_parameters
from hsi.api.views import ApiView, get_or_404
from system.services import actor_from_request

TAGS = ["notifications"]


class UUIDListField(CommaListField):
    def to_python(self, value):
        items = super().to_python(value)
        if not items:
            return items
        try:
            return [str(uuid.UUID(item)) for item in items]
        except ValueError:
            raise forms.ValidationError("Must be a comma-separated list of UUIDs") from None


class UUIDListFilter(ListFilter):
    field_class = UUIDListField


class ChannelFilter(StrictFilterSet):
    date_range = None
    kind = ListFilter(field_name="kind", choices=ChannelKind.choices)
    enabled = StrictBooleanFilter(field_name="enabled")


class QuietHoursFilter(StrictFilterSet):
    date_range = None
    camera_id = ListFilter(field_name="camera_id", max_length=64)
    enabled = StrictBooleanFilter(field_name="enabled")


class DeliveryFilter(StrictFilterSet):
    date_range = None
    alert_id = UUIDListFilter(field_name="alert_id")
    channel_id = UUIDListFilter(field_name="channel_id")
    status = ListFilter(field_name="status", choices=DeliveryStatus.choices)


def _page(request, queryset, render, *, default: int, maximum: int) -> Response:
    page = parse_page(request, default=default, maximum=maximum)
    rows, has_more = offset_slice(queryset, page)
    total = page.offset + len(rows) if (rows or page.offset == 0) and not has_more else queryset.count()
    return Response(envelope([render(row) for row in rows], total=total, page=page, has_more=has_more))


def _validated(serializer_class, data: dict, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _schema(summary: str, operation_id: str, request=None, responses=OpenApiTypes.OBJECT, parameters=None):
    return extend_schema(
        summary=summary,
        operation_id=operation_id,
        tags=TAGS,
        request=request,
        responses=responses,
        parameters=parameters,
    )


def _list_schema(summary: str, operation_id: str, filterset=None, *, default: int, maximum: int):
    filters = query_parameters(filterset) if filterset else []
    parameters = [*filters, *page_parameters(default=default, maximum=maximum)]
    return _schema(summary, operation_id, responses=page_response(), parameters=parameters)


# --- channels --------------------------------------------------------------------------------------------------


class ChannelListView(ApiView):
    @_list_schema("List notification channels", "notification_channel_list", ChannelFilter, default=100, maximum=1000)
    def get(self, request):
        channels = ChannelFilter(request.query_params, queryset=NotificationChannel.objects.order_by("name", "id")).qs
        return _page(request, channels, channel_json, default=100, maximum=1000)

    @_schema(
        "Create a notification channel",
        "notification_channel_create",
        request=ChannelCreateSerializer,
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        data = _validated(ChannelCreateSerializer, self.body())
        channel = services.channel_create(data=data, actor=actor_from_request(request))
        return Response(
            channel_json(channel), status=201, headers={"Location": f"/api/notifications/channels/{channel.id}"}
        )


class ChannelDetailView(ApiView):
    @_schema("Get a notification channel", "notification_channel_retrieve")
    def get(self, request, channel_id: str):
        return Response(channel_json(get_or_404(NotificationChannel, "Notification channel", pk=channel_id)))

    @_schema("Update a notification channel", "notification_channel_update", request=ChannelUpdateSerializer)
    def patch(self, request, channel_id: str):
        body = self.body()
        get_or_404(NotificationChannel, "Notification channel", pk=channel_id)
        data = _validated(ChannelUpdateSerializer, body, partial=True)
        channel = services.channel_update(channel_id, data=data, actor=actor_from_request(request))
        return Response(channel_json(channel))

    @_schema(
        "Update a notification channel (partial, like PATCH)",
        "notification_channel_replace",
        request=ChannelUpdateSerializer,
    )
    def put(self, request, channel_id: str):
        return self.patch(request, channel_id)

    @_schema("Delete a notification channel", "notification_channel_delete", responses={204: None})
    def delete(self, request, channel_id: str):
        services.channel_delete(channel_id, actor=actor_from_request(request))
        return Response(status=204)


class ChannelTestView(ApiView):
    @_schema("Send a test notification over a channel", "notification_channel_test")
    def post(self, request, channel_id: str):
        return Response(services.channel_test(channel_id, actor=actor_from_request(request)))


# --- preferences -----------------------------------------------------------------------------------------------


class PreferencesView(ApiView):
    @_schema("Get the global notification preferences", "notification_preferences_retrieve")
    def get(self, request):
        return Response(preference_json(services.preferences_global()))

    @_schema("Update the global notification preferences", "notification_preferences_update", PreferencesSerializer)
    def patch(self, request):
        data = _validated(PreferencesSerializer, self.body(), partial=True)
        return Response(preference_json(services.preferences_update(data=data, actor=actor_from_request(request))))

    @_schema(
        "Update the global notification preferences (partial, like PATCH)",
        "notification_preferences_replace",
        PreferencesSerializer,
    )
    def put(self, request):
        return self.patch(request)


class CameraPreferenceListView(ApiView):
    @_list_schema(
        "List camera notification overrides", "notification_camera_preference_list", default=100, maximum=1000
    )
    def get(self, request):
        overrides = NotificationPreference.objects.filter(camera__isnull=False).order_by("camera_id")
        return _page(request, overrides, camera_preference_json, default=100, maximum=1000)


class CameraPreferenceDetailView(ApiView):
    @_schema("Get a camera's notification override", "notification_camera_preference_retrieve")
    def get(self, request, camera_id: str):
        return Response(camera_preference_json(services.camera_preference_get(camera_id)))

    @_schema(
        "Create or update a camera's notification override",
        "notification_camera_preference_update",
        CameraPreferenceSerializer,
        responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT},
    )
    def patch(self, request, camera_id: str):
        data = _validated(CameraPreferenceSerializer, self.body(), partial=True)
        preference, created = services.camera_preference_set(camera_id, data=data, actor=actor_from_request(request))
        return Response(camera_preference_json(preference), status=201 if created else 200)

    @_schema(
        "Create or update a camera's notification override (like PATCH)",
        "notification_camera_preference_replace",
        CameraPreferenceSerializer,
        responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT},
    )
    def put(self, request, camera_id: str):
        return self.patch(request, camera_id)

    @_schema(
        "Delete a camera's notification override (it reverts to the global preferences)",
        "notification_camera_preference_delete",
        responses={204: None},
    )
    def delete(self, request, camera_id: str):
        services.camera_preference_delete(camera_id, actor=actor_from_request(request))
        return Response(status=204)


# --- quiet hours -----------------------------------------------------------------------------------------------


class QuietHoursListView(ApiView):
    @_list_schema(
        "List quiet-hours periods", "notification_quiet_hours_list", QuietHoursFilter, default=100, maximum=1000
    )
    def get(self, request):
        periods = QuietHoursFilter(request.query_params, queryset=QuietHours.objects.order_by("start_time", "id")).qs
        return _page(request, periods, quiet_hours_json, default=100, maximum=1000)

    @_schema(
        "Create a quiet-hours period",
        "notification_quiet_hours_create",
        QuietHoursCreateSerializer,
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        data = _validated(QuietHoursCreateSerializer, self.body())
        period = services.quiet_hours_create(data=data, actor=actor_from_request(request))
        return Response(
            quiet_hours_json(period), status=201, headers={"Location": f"/api/notifications/quiet-hours/{period.id}"}
        )


class QuietHoursDetailView(ApiView):
    @_schema("Get a quiet-hours period", "notification_quiet_hours_retrieve")
    def get(self, request, period_id: str):
        return Response(quiet_hours_json(get_or_404(QuietHours, "Quiet hours", pk=period_id)))

    @_schema("Update a quiet-hours period", "notification_quiet_hours_update", QuietHoursUpdateSerializer)
    def patch(self, request, period_id: str):
        body = self.body()
        get_or_404(QuietHours, "Quiet hours", pk=period_id)
        data = _validated(QuietHoursUpdateSerializer, body, partial=True)
        period = services.quiet_hours_update(period_id, data=data, actor=actor_from_request(request))
        return Response(quiet_hours_json(period))

    @_schema(
        "Update a quiet-hours period (partial, like PATCH)",
        "notification_quiet_hours_replace",
        QuietHoursUpdateSerializer,
    )
    def put(self, request, period_id: str):
        return self.patch(request, period_id)

    @_schema("Delete a quiet-hours period", "notification_quiet_hours_delete", responses={204: None})
    def delete(self, request, period_id: str):
        services.quiet_hours_delete(period_id, actor=actor_from_request(request))
        return Response(status=204)


# --- deliveries and configuration ------------------------------------------------------------------------------


class DeliveryListView(ApiView):
    @_list_schema("List notification deliveries", "notification_delivery_list", DeliveryFilter, default=50, maximum=100)
    def get(self, request):
        deliveries = DeliveryFilter(request.query_params, queryset=Delivery.objects.order_by("-created_at", "-id")).qs
        return _page(request, deliveries, delivery_json, default=50, maximum=100)


class DeliveryRetryView(ApiView):
    @_schema("Retry a failed delivery", "notification_delivery_retry", responses={202: OpenApiTypes.OBJECT})
    def post(self, request, delivery_id: str):
        delivery = services.delivery_retry(int(delivery_id), actor=actor_from_request(request))
        return Response(delivery_json(delivery), status=202)


class NotificationConfigView(ApiView):
    @_schema("Notification configuration (no secrets)", "notification_config_retrieve")
    def get(self, request):
        return Response(
            {
                "notifications_enabled": settings.NOTIFICATIONS_ENABLED,
                "email_configured": bool(settings.EMAIL_HOST),
                "mqtt_configured": bool(settings.MQTT_URL),
                "public_base_url": settings.PUBLIC_BASE_URL,
                "webhook_timeout_seconds": settings.WEBHOOK_TIMEOUT_SECONDS,
            }
        )
