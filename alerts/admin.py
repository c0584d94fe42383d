"""Django admin for alert rules, alerts, notification channels, preferences, quiet hours and deliveries (§8.2).

Admin changes go through the same validation and service functions as the API, so audit rows and side effects
are identical (actor ``user:<username>``):

- rules: ``validated_rule`` (§5.1) in the form, ``rule_create`` / ``rule_update`` / ``rule_delete`` on save;
- preferences and quiet hours: the API's request serializers in the form, the notification services on save;
- channels: ``validate_channel_config`` and the API's serializers in the form (secret write-only), the channel
  services on save;
- alerts: read-only history with the actions "acknowledge" and "dismiss" (``alert_acknowledge`` /
  ``alert_dismiss``); deliveries: read-only with the action "retry" (``delivery_retry``). A row in the wrong state
  is skipped (the service audits the refusal as a failure, like the API) and the admin says how many were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db import transaction
from django.db.models import Model
from django.urls import reverse
from django.utils.html import format_html
from rest_framework import serializers

from alerts.api.notification_serializers import (
    CameraPreferenceSerializer,
    ChannelCreateSerializer,
    ChannelUpdateSerializer,
    PreferencesSerializer,
    QuietHoursCreateSerializer,
    QuietHoursUpdateSerializer,
    time_text,
)
from alerts.api.rule_serializers import validated_rule
from alerts.channel_config import redact_config, restore_redacted, validate_channel_config
from alerts.models import (
    Alert,
    AlertRule,
    Delivery,
    NotificationChannel,
    NotificationPreference,
    QuietHours,
)
from alerts.services.alerts import alert_acknowledge, alert_dismiss
from alerts.services.notifications import (
    QUIET_HOURS_FIELDS,
    TIMES_EQUAL,
    camera_preference_delete,
    camera_preference_set,
    channel_create,
    channel_delete,
    channel_update,
    delivery_retry,
    preferences_update,
    quiet_hours_create,
    quiet_hours_delete,
    quiet_hours_update,
)
from alerts.services.rules import RULE_FIELDS, rule_create, rule_delete, rule_state, rule_update
from hsi.api.errors import FieldValidationError, InvalidState, NotFound, flatten_errors
from system.admin import CascadeSummaryDeleteMixin, ReadOnlyAdmin, admin_actor


def add_api_errors(form: forms.BaseForm, errors: Iterable[dict], *, aliases: dict[str, str] | None = None) -> None:
    """Put the API's ``[{"field", "message"}]`` errors on the form: ``schedule.start_time`` goes on ``schedule``
    (as "start_time: …"), an API name in ``aliases`` on its form field, anything else on the form itself.
    A field that already has a form error keeps only that one."""
    already = set(form.errors)
    for error in errors:
        path, message = error["field"], error["message"]
        top, _, rest = path.partition(".")
        field = (aliases or {}).get(top, top)
        if field not in form.fields:
            form.add_error(None, f"{path}: {message}")
        elif field not in already:
            form.add_error(field, f"{rest}: {message}" if rest else message)


def _copy_into(target: Model, source: Model) -> None:
    """Make the admin's in-memory object the row the service wrote (for messages, redirects and logs)."""
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False


def _submitted(form: forms.ModelForm, names: Iterable[str]) -> dict:
    """The cleaned values a request body would carry: every field when adding, the changed ones when editing;
    fields the form already refused are left out."""
    creating = form.instance._state.adding
    return {
        name: form.cleaned_data[name]
        for name in names
        if name in form.cleaned_data and name not in form.errors and (creating or name in form.changed_data)
    }


def _run_service(
    model_admin: admin.ModelAdmin, request, ids: Iterable, service: Callable, nouns: tuple[str, str], done: str
) -> None:
    """Call ``service(id, actor=…)`` per row; rows in the wrong state (409 ``invalid_state``) are skipped."""
    actor = admin_actor(request)
    succeeded = skipped = 0
    for row_id in ids:
        try:
            service(row_id, actor=actor)
        except InvalidState:
            skipped += 1
        except NotFound:  # removed by someone else meanwhile
            continue
        else:
            succeeded += 1
    if succeeded:
        model_admin.message_user(request, f"{succeeded} {nouns[succeeded != 1]} {done}.", messages.SUCCESS)
    if skipped:
        model_admin.message_user(
            request,
            f"{skipped} {nouns[skipped != 1]} skipped: their current status does not allow this.",
            messages.WARNING,
        )


# --- rules -----------------------------------------------------------------------------------------------------


class ServiceBackedAdmin(CascadeSummaryDeleteMixin, admin.ModelAdmin):
    """Saves and deletes go through the app's services, ``services = (create, update, delete)``, with the request
    user as the actor: the same validation, audit rows and broadcasts as the API (CONTRACT §8.2)."""

    services: tuple = ()

    def save_model(self, request, obj, form, change):
        create, update, _delete = self.services
        actor = admin_actor(request)
        if change:
            saved = update(obj.pk, data=form.validated_data, actor=actor)
        else:
            saved = create(data=form.validated_data, actor=actor)
        _copy_into(obj, saved)

    def delete_model(self, request, obj):
        self.services[2](obj.pk, actor=admin_actor(request))

    def delete_queryset(self, request, queryset):
        actor = admin_actor(request)
        with transaction.atomic():
            for pk in queryset.values_list("pk", flat=True):
                self.services[2](pk, actor=actor)


class AlertRuleForm(forms.ModelForm):
    """The rule validation of CONTRACT §5.1, done by the API's ``validated_rule``.

    After ``is_valid()``, ``validated_data`` holds what ``rule_create`` (every field, defaults filled in) or
    ``rule_update`` (the changed fields) takes.
    """

    name = forms.CharField(strip=False)  # trimmed, then 1–255 characters: the API's rule
    description = forms.CharField(required=False, strip=False, widget=forms.Textarea)

    class Meta:
        model = AlertRule
        fields = RULE_FIELDS

    def clean(self):
        cleaned = super().clean()
        creating = self.instance._state.adding
        data = _submitted(self, RULE_FIELDS)
        try:
            validated = validated_rule(data, creating=creating, current=None if creating else rule_state(self.instance))
        except serializers.ValidationError as invalid:
            add_api_errors(self, flatten_errors(invalid.detail))
            return cleaned
        self.validated_data = validated
        cleaned.update({name: validated[name] for name in data})
        return cleaned


@admin.register(AlertRule)
class AlertRuleAdmin(ServiceBackedAdmin):
    """Saves and deletes go through the rule services, which write ``rule_created`` / ``rule_updated`` /
    ``rule_deleted`` exactly as the API does."""

    form = AlertRuleForm
    list_display = ("name", "enabled", "trigger", "severity", "risk_threshold", "cooldown_seconds", "updated_at")
    list_filter = ("enabled", "trigger", "severity")
    search_fields = ("name", "description")
    readonly_fields = ("id", "created_at", "updated_at")

    services = (rule_create, rule_update, rule_delete)


# --- alerts ----------------------------------------------------------------------------------------------------


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "severity", "status", "kind", "camera", "rule_name", "event_link", "dedup_key")
    list_filter = ("status", "severity", "kind")
    list_select_related = ("camera", "rule")
    search_fields = ("dedup_key", "=id")
    ordering = ("-created_at", "-id")
    actions = ("acknowledge", "dismiss")

    @admin.display(description="rule")
    def rule_name(self, alert: Alert) -> str:
        return alert.rule.name if alert.rule else alert.metadata.get("rule_name", "—")

    @admin.display(description="event")
    def event_link(self, alert: Alert) -> str:
        if alert.event_id is None:
            return "—"
        url = reverse("admin:events_event_change", args=[quote(alert.event_id)])
        return format_html('<a href="{}">Event {}</a>', url, alert.event_id)

    @admin.action(description="Acknowledge selected alerts")
    def acknowledge(self, request, queryset):
        _run_service(
            self, request, queryset.values_list("pk", flat=True), alert_acknowledge, ("alert", "alerts"), "acknowledged"
        )

    @admin.action(description="Dismiss selected alerts")
    def dismiss(self, request, queryset):
        _run_service(
            self, request, queryset.values_list("pk", flat=True), alert_dismiss, ("alert", "alerts"), "dismissed"
        )


# --- channels --------------------------------------------------------------------------------------------------


class NotificationChannelForm(forms.ModelForm):
    """``secret`` is write-only: never rendered; leaving it empty keeps the stored one (tick *clear* to remove).

    ``config`` is checked for the channel's kind by ``validate_channel_config`` (masked values echoed back keep the
    stored ones), the other fields by the API's channel serializers. After ``is_valid()``, ``validated_data``
    holds the body ``channel_create`` (every field) or ``channel_update`` (the changed ones) takes.
    """

    name = forms.CharField(max_length=100)  # trimmed by the form; a blank name is "This field is required"
    secret = forms.CharField(
        required=False,
        max_length=255,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the current secret.",
    )
    clear_secret = forms.BooleanField(required=False, label="Remove the stored secret")

    class Meta:
        model = NotificationChannel
        fields = ("name", "kind", "enabled", "config", "secret", "min_severity", "publish_events")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.pop("secret", None)
        if not self.instance._state.adding:
            self.initial["config"] = redact_config(self.instance.config)
            state = "A secret is set." if self.instance.secret else "No secret is set."
            self.fields["secret"].help_text = f"Write-only. {state} Leave empty to keep it."

    def clean(self):
        cleaned = super().clean()
        creating = self.instance._state.adding
        data = _submitted(self, ("name", "kind", "enabled", "config", "min_severity", "publish_events"))
        if cleaned.get("clear_secret"):
            data["secret"] = ""
        elif cleaned.get("secret"):
            data["secret"] = cleaned["secret"]
        if "config" in data:
            kind = cleaned.get("kind") or self.instance.kind
            try:
                config = restore_redacted(data["config"], None if creating else self.instance.config)
                data["config"] = validate_channel_config(kind, config, creating=creating)
            except FieldValidationError as invalid:
                self.add_error("config", "; ".join(f"{e['field']}: {e['message']}" for e in invalid.errors))
                return cleaned
        serializer = (ChannelCreateSerializer if creating else ChannelUpdateSerializer)(data=data)
        if not serializer.is_valid():
            add_api_errors(self, flatten_errors(serializer.errors))
            return cleaned
        self.validated_data = {**serializer.validated_data, **({"config": data["config"]} if "config" in data else {})}
        cleaned.update(self.validated_data)
        if "secret" not in data:
            cleaned["secret"] = self.instance.secret
        return cleaned


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ServiceBackedAdmin):
    """Saves and deletes go through ``channel_create`` / ``channel_update`` / ``channel_delete``: the API's audit
    rows (secret recorded as ``***``, config redacted), and a deleted channel leaves the rules that named it."""

    form = NotificationChannelForm
    list_display = ("name", "kind", "enabled", "min_severity", "has_secret", "last_success_at", "last_failure_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    fields = (
        "name",
        "kind",
        "enabled",
        "config",
        "secret",
        "clear_secret",
        "min_severity",
        "publish_events",
        "last_success_at",
        "last_failure_at",
        "last_error",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("last_success_at", "last_failure_at", "last_error", "created_at", "updated_at")

    @admin.display(boolean=True, description="secret")
    def has_secret(self, channel: NotificationChannel) -> bool:
        return bool(channel.secret)

    def get_readonly_fields(self, request, obj=None):
        return ("kind", *self.readonly_fields) if obj is not None else self.readonly_fields

    services = (channel_create, channel_update, channel_delete)


# --- preferences -----------------------------------------------------------------------------------------------


class NotificationPreferenceForm(forms.ModelForm):
    """Checked by the API's serializers: ``PreferencesSerializer`` for the global row, ``CameraPreferenceSerializer``
    for a camera override (``severities`` / ``min_risk_score`` empty = inherit the global value; no sound)."""

    class Meta:
        model = NotificationPreference
        fields = ("camera", "enabled", "severities", "min_risk_score", "sound")
        help_texts = {"sound": "Only the global row has a sound; a camera override ignores it."}

    def clean(self):
        cleaned = super().clean()
        if "camera" in self.errors:
            return cleaned
        camera = cleaned.get("camera") if self.instance._state.adding else self.instance.camera
        serializer_class = PreferencesSerializer if camera is None else CameraPreferenceSerializer
        data = _submitted(self, serializer_class().fields)
        serializer = serializer_class(data=data)
        if not serializer.is_valid():
            add_api_errors(self, flatten_errors(serializer.errors))
            return cleaned
        self.validated_data = dict(serializer.validated_data)
        cleaned.update(self.validated_data)
        return cleaned


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    """Saves go through ``preferences_update`` (global row) or ``camera_preference_set`` (camera override), deletes
    through ``camera_preference_delete``; the global row cannot be deleted."""

    form = NotificationPreferenceForm
    list_display = ("scope", "enabled", "severities", "min_risk_score", "sound", "updated_at")
    list_select_related = ("camera",)
    list_filter = ("enabled",)

    @admin.display(description="scope")
    def scope(self, preference: NotificationPreference) -> str:
        return f"camera {preference.camera_id}" if preference.camera_id else "global"

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return [field for field in fields if field != "sound"] if obj is not None and obj.camera_id else fields

    def get_readonly_fields(self, request, obj=None):
        return ("camera", "updated_at") if obj is not None else ("updated_at",)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.camera_id is not None)

    def save_model(self, request, obj, form, change):
        actor = admin_actor(request)
        if obj.camera_id is None:
            preference = preferences_update(data=form.validated_data, actor=actor)
        else:
            preference, _ = camera_preference_set(obj.camera_id, data=form.validated_data, actor=actor)
        _copy_into(obj, preference)

    def delete_model(self, request, obj):
        camera_preference_delete(obj.camera_id, actor=admin_actor(request))

    def delete_queryset(self, request, queryset):
        actor = admin_actor(request)
        with transaction.atomic():  # the global row stays
            for camera_id in queryset.filter(camera__isnull=False).values_list("camera_id", flat=True):
                camera_preference_delete(camera_id, actor=actor)


# --- quiet hours -----------------------------------------------------------------------------------------------


class QuietHoursForm(forms.ModelForm):
    """Checked by the API's quiet-hours serializers, plus the service's rule that the times differ. After
    ``is_valid()``, ``validated_data`` holds the body ``quiet_hours_create`` / ``quiet_hours_update`` take."""

    class Meta:
        model = QuietHours
        fields = ("label", "camera", "start_time", "end_time", "days", "allow_critical", "enabled")

    def clean(self):
        cleaned = super().clean()
        creating = self.instance._state.adding
        body = {}
        for name, value in _submitted(self, self._meta.fields).items():
            if name == "camera":
                body["camera_id"] = value.pk if value is not None else None
            else:
                body[name] = time_text(value) if name in ("start_time", "end_time") and value else value
        serializer = (QuietHoursCreateSerializer if creating else QuietHoursUpdateSerializer)(data=body)
        if not serializer.is_valid():
            add_api_errors(self, flatten_errors(serializer.errors), aliases={"camera_id": "camera"})
            return cleaned
        validated = dict(serializer.validated_data)
        current = {} if creating else {field: getattr(self.instance, field) for field in QUIET_HOURS_FIELDS}
        state = {**current, **validated}
        if state.get("start_time") is not None and state.get("start_time") == state.get("end_time"):
            self.add_error("start_time", TIMES_EQUAL)
            return cleaned
        self.validated_data = validated
        cleaned.update({name: value for name, value in validated.items() if name in cleaned})
        return cleaned


@admin.register(QuietHours)
class QuietHoursAdmin(ServiceBackedAdmin):
    """Saves and deletes go through the quiet-hours services (``quiet_hours_created`` / ``_updated`` /
    ``_deleted``)."""

    form = QuietHoursForm
    list_display = ("label", "camera", "start_time", "end_time", "days", "allow_critical", "enabled")
    list_filter = ("enabled", "allow_critical")
    list_select_related = ("camera",)
    search_fields = ("label",)
    readonly_fields = ("id", "created_at", "updated_at")

    services = (quiet_hours_create, quiet_hours_update, quiet_hours_delete)


# --- deliveries ------------------------------------------------------------------------------------------------


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "alert_link",
        "channel",
        "status",
        "suppressed_reason",
        "attempts",
        "next_attempt_at",
        "response_status",
        "sent_at",
    )
    list_filter = ("status", "suppressed_reason", "channel")
    list_select_related = ("channel",)
    ordering = ("-created_at", "-id")
    actions = ("retry",)

    @admin.display(description="alert")
    def alert_link(self, delivery: Delivery) -> str:
        url = reverse("admin:alerts_alert_change", args=[quote(delivery.alert_id)])
        return format_html('<a href="{}">{}</a>', url, str(delivery.alert_id)[:8])

    @admin.action(description="Retry selected failed deliveries")
    def retry(self, request, queryset):
        _run_service(
            self, request, queryset.values_list("pk", flat=True), delivery_retry, ("delivery", "deliveries"), "retried"
        )
