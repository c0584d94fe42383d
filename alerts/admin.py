"""Django admin for alert rules, alerts, notification channels, preferences, quiet hours and deliveries (§8.2).

Rules, channels, preferences and quiet hours are configuration: editable, validated like the API (§5.1, §2.8),
and audited. Alerts and deliveries are history written by the alert engine: read-only here (acknowledge,
dismiss and retry are lifecycle actions of the API).
"""

from __future__ import annotations

import re
import uuid
import zoneinfo

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils.html import format_html

from alerts.channel_config import redact_config, restore_redacted, validate_channel_config
from alerts.models import (
    Alert,
    AlertRule,
    Delivery,
    NotificationChannel,
    NotificationPreference,
    QuietHours,
    RuleTrigger,
    all_weekdays,
)
from events.models import RiskLevel
from hsi.api.errors import FieldValidationError
from system.admin import AuditedAdmin, ReadOnlyAdmin

WEEKDAYS = tuple(all_weekdays())
_TEMPLATE_VARIABLE = re.compile(r"\{([^{}]*)\}")
_TEMPLATE_VARIABLES = {"camera_id", "rule_id", "object_type", "severity"}
_TEMPLATE_LITERAL = re.compile(r"^[A-Za-z0-9_:.-]*$")
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _string_list(value, *, field: str, max_items: int, max_length: int = 64) -> list[str] | None:
    if value in (None, []):
        return value
    if not isinstance(value, list) or len(value) > max_items:
        raise forms.ValidationError(f"{field} must be a list of at most {max_items} strings.")
    for item in value:
        if not isinstance(item, str) or not 1 <= len(item) <= max_length:
            raise forms.ValidationError(f"Each {field} entry must be a string of 1–{max_length} characters.")
    return value


def _weekday_list(value, *, allow_empty: bool) -> list[str]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise forms.ValidationError("Must be a list of weekday names (monday … sunday).")
    days = []
    for item in value:
        day = item.lower() if isinstance(item, str) else item
        if day not in WEEKDAYS:
            raise forms.ValidationError(f"Unknown weekday {item!r}; use monday … sunday.")
        if day not in days:
            days.append(day)
    return days


class AlertRuleForm(forms.ModelForm):
    """The rule validation of CONTRACT §5.1."""

    class Meta:
        model = AlertRule
        fields = (
            "name",
            "description",
            "enabled",
            "trigger",
            "severity",
            "risk_threshold",
            "object_types",
            "camera_ids",
            "zone_ids",
            "min_confidence",
            "schedule",
            "dedup_key_template",
            "cooldown_seconds",
            "channels",
        )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("The name must not be blank.")
        return name

    def clean_description(self) -> str:
        description = self.cleaned_data["description"]
        if len(description) > 5000:
            raise forms.ValidationError("At most 5000 characters.")
        return description

    def clean_object_types(self):
        types = _string_list(self.cleaned_data.get("object_types"), field="object_types", max_items=50)
        return list(dict.fromkeys(t.lower() for t in types)) if types else types

    def clean_camera_ids(self):
        return _string_list(self.cleaned_data.get("camera_ids"), field="camera_ids", max_items=100)

    def clean_zone_ids(self):
        zone_ids = _string_list(self.cleaned_data.get("zone_ids"), field="zone_ids", max_items=100, max_length=36)
        for zone_id in zone_ids or []:
            try:
                uuid.UUID(zone_id)
            except ValueError:
                raise forms.ValidationError(f"{zone_id!r} is not a UUID.") from None
        return [str(uuid.UUID(z)) for z in zone_ids] if zone_ids else zone_ids

    def clean_min_confidence(self):
        value = self.cleaned_data.get("min_confidence")
        if value is not None and not 0 <= value <= 1:
            raise forms.ValidationError("Must be between 0 and 1.")
        return value

    def clean_schedule(self):
        schedule = self.cleaned_data.get("schedule")
        if schedule in (None, {}):
            return None
        if not isinstance(schedule, dict):
            raise forms.ValidationError("Must be an object {days, start_time, end_time, timezone} or empty.")
        days = _weekday_list(schedule.get("days") or [], allow_empty=True)
        start, end = schedule.get("start_time"), schedule.get("end_time")
        if (start is None) != (end is None):
            raise forms.ValidationError("Set both start_time and end_time, or neither.")
        for value in (start, end):
            if value is not None and not (isinstance(value, str) and _HH_MM.match(value)):
                raise forms.ValidationError("Times must be HH:MM between 00:00 and 23:59.")
        timezone_name = schedule.get("timezone") or "UTC"
        try:
            zoneinfo.ZoneInfo(str(timezone_name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(f"Unknown time zone {timezone_name!r}.") from None
        cleaned = {"days": days, "timezone": timezone_name}
        if start is not None:
            cleaned.update(start_time=start, end_time=end)
        return cleaned

    def clean_dedup_key_template(self) -> str:
        template = self.cleaned_data["dedup_key_template"]
        unknown = set(_TEMPLATE_VARIABLE.findall(template)) - _TEMPLATE_VARIABLES
        if unknown:
            raise forms.ValidationError(
                "Only {camera_id}, {rule_id}, {object_type} and {severity} may be used; got "
                + ", ".join(sorted(f"{{{name}}}" for name in unknown))
            )
        if not _TEMPLATE_LITERAL.match(_TEMPLATE_VARIABLE.sub("", template)):
            raise forms.ValidationError("Literal text may only use letters, digits and _ : . -")
        return template

    def clean_channels(self):
        channels = self.cleaned_data.get("channels")
        if channels is None:
            return None
        if not isinstance(channels, list):
            raise forms.ValidationError("Must be empty (every enabled channel) or a list of channel ids.")
        try:
            wanted = [str(uuid.UUID(str(c))) for c in channels]
        except ValueError:
            raise forms.ValidationError("Channel ids must be UUIDs.") from None
        known = {str(pk) for pk in NotificationChannel.objects.filter(pk__in=wanted).values_list("pk", flat=True)}
        missing = [c for c in wanted if c not in known]
        if missing:
            raise forms.ValidationError(f"Unknown channel(s): {', '.join(missing)}")
        return list(dict.fromkeys(wanted))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("trigger") == RuleTrigger.CAMERA_OFFLINE:
            for name in ("risk_threshold", "object_types", "zone_ids", "min_confidence"):
                if cleaned.get(name) not in (None, []):
                    self.add_error(name, "A camera_offline rule cannot use this condition.")
        return cleaned


@admin.register(AlertRule)
class AlertRuleAdmin(AuditedAdmin):
    form = AlertRuleForm
    list_display = ("name", "enabled", "trigger", "severity", "risk_threshold", "cooldown_seconds", "updated_at")
    list_filter = ("enabled", "trigger", "severity")
    search_fields = ("name", "description")
    readonly_fields = ("id", "created_at", "updated_at")
    audit_resource_type = "alert_rule"
    audit_actions = ("rule_created", "rule_updated", "rule_deleted")


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "severity", "status", "kind", "camera", "rule_name", "event_link", "dedup_key")
    list_filter = ("status", "severity", "kind")
    list_select_related = ("camera", "rule")
    search_fields = ("dedup_key", "=id")
    ordering = ("-created_at", "-id")

    @admin.display(description="rule")
    def rule_name(self, alert: Alert) -> str:
        return alert.rule.name if alert.rule else alert.metadata.get("rule_name", "—")

    @admin.display(description="event")
    def event_link(self, alert: Alert) -> str:
        if alert.event_id is None:
            return "—"
        url = reverse("admin:events_event_change", args=[quote(alert.event_id)])
        return format_html('<a href="{}">Event {}</a>', url, alert.event_id)


class NotificationChannelForm(forms.ModelForm):
    """``secret`` is write-only: never rendered; leaving it empty keeps the stored one (tick *clear* to remove)."""

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
        if self.instance.pk:
            self.initial["config"] = redact_config(self.instance.config)
            state = "A secret is set." if self.instance.secret else "No secret is set."
            self.fields["secret"].help_text = f"Write-only. {state} Leave empty to keep it."

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("The name must not be blank.")
        return name

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_secret"):
            cleaned["secret"] = ""
        elif not cleaned.get("secret"):
            cleaned["secret"] = self.instance.secret if self.instance.pk else ""
        kind = cleaned.get("kind") or self.instance.kind
        config = cleaned.get("config")
        if "config" in cleaned:
            config = restore_redacted(config, self.instance.config if self.instance.pk else None)
            try:
                cleaned["config"] = validate_channel_config(kind, config, creating=not self.instance.pk)
            except FieldValidationError as invalid:
                self.add_error("config", "; ".join(f"{e['field']}: {e['message']}" for e in invalid.errors))
        return cleaned


@admin.register(NotificationChannel)
class NotificationChannelAdmin(AuditedAdmin):
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
    audit_resource_type = "notification_channel"
    audit_actions = ("channel_created", "channel_updated", "channel_deleted")
    audit_secret_fields = frozenset({"secret"})

    @admin.display(boolean=True, description="secret")
    def has_secret(self, channel: NotificationChannel) -> bool:
        return bool(channel.secret)

    def get_readonly_fields(self, request, obj=None):
        return ("kind", *self.readonly_fields) if obj is not None else self.readonly_fields


class NotificationPreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = ("camera", "enabled", "severities", "min_risk_score", "sound")

    def clean_severities(self):
        severities = self.cleaned_data.get("severities")
        camera = self.cleaned_data.get("camera") or (self.instance.camera if self.instance.pk else None)
        if severities is None and camera is not None:
            return None  # a camera row inherits the global severities
        levels = [level for level, _ in RiskLevel.choices]
        if not isinstance(severities, list) or not severities or any(s not in levels for s in severities):
            raise forms.ValidationError(f"Must be a non-empty list of: {', '.join(levels)}.")
        return list(dict.fromkeys(severities))


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(AuditedAdmin):
    form = NotificationPreferenceForm
    list_display = ("scope", "enabled", "severities", "min_risk_score", "sound", "updated_at")
    list_select_related = ("camera",)
    list_filter = ("enabled",)
    audit_resource_type = "notification_preference"
    audit_actions = ("preferences_updated", "preferences_updated", "preferences_updated")

    @admin.display(description="scope")
    def scope(self, preference: NotificationPreference) -> str:
        return f"camera {preference.camera_id}" if preference.camera_id else "global"

    def audit_resource_id(self, obj: NotificationPreference) -> str:
        return obj.camera_id or "global"

    def get_readonly_fields(self, request, obj=None):
        return ("camera", "updated_at") if obj is not None else ("updated_at",)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.camera_id is not None)

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset.filter(camera__isnull=False))  # the global row stays

    def save_model(self, request, obj, form, change):
        from django.utils import timezone

        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)


class QuietHoursForm(forms.ModelForm):
    class Meta:
        model = QuietHours
        fields = ("label", "camera", "start_time", "end_time", "days", "allow_critical", "enabled")

    def clean_days(self):
        return _weekday_list(self.cleaned_data.get("days"), allow_empty=False)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start_time"), cleaned.get("end_time")
        if start is not None and start == end:
            self.add_error("end_time", "start_time must differ from end_time")
        return cleaned


@admin.register(QuietHours)
class QuietHoursAdmin(AuditedAdmin):
    form = QuietHoursForm
    list_display = ("label", "camera", "start_time", "end_time", "days", "allow_critical", "enabled")
    list_filter = ("enabled", "allow_critical")
    list_select_related = ("camera",)
    search_fields = ("label",)
    readonly_fields = ("id", "created_at", "updated_at")
    audit_resource_type = "quiet_hours"
    audit_actions = ("quiet_hours_created", "quiet_hours_updated", "quiet_hours_deleted")


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

    @admin.display(description="alert")
    def alert_link(self, delivery: Delivery) -> str:
        url = reverse("admin:alerts_alert_change", args=[quote(delivery.alert_id)])
        return format_html('<a href="{}">{}</a>', url, str(delivery.alert_id)[:8])
