"""Request validation and JSON rendering of ``/api/notifications`` (CONTRACT §2.8, §1.3).

Inputs are strict about JSON types (a string where a boolean is expected is a 422, never coerced). The per-kind
channel ``config`` is checked by ``alerts.channel_config`` in the service, which knows the channel's kind. Output is
built by plain functions; channel JSON never carries the secret, only ``has_secret`` and a redacted config.
"""

from __future__ import annotations

import datetime as dt
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from alerts.channel_config import redact_config
from alerts.models import ChannelKind, Sound, all_weekdays
from cameras.api.serializers import StrictBooleanField, StrictCharField, StrictChoiceField, StrictIntegerField
from events.models import RISK_LEVEL_ORDER, RiskLevel
from hsi.timeutils import utc_iso

WEEKDAYS = tuple(all_weekdays())
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


# --- fields ----------------------------------------------------------------------------------------------------


@extend_schema_field({"type": "object", "additionalProperties": True})
class AnyJSONField(serializers.Field):
    """Any JSON value, passed through for a later, context-aware check (the channel ``config``)."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(
    {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["low", "medium", "high", "critical"]}}
)
class SeverityListField(serializers.Field):
    """A non-empty list of severities, de-duplicated and stored in severity order."""

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a list of severities (low, medium, high, critical)")
        if not data:
            raise serializers.ValidationError("Must not be empty")
        bad = [item for item in data if not isinstance(item, str) or item not in RiskLevel.values]
        if bad:
            raise serializers.ValidationError(
                f"Invalid severity {bad[0]!r}; expected one of {', '.join(RiskLevel.values)}"
            )
        return sorted(set(data), key=RISK_LEVEL_ORDER.__getitem__)

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"})
class TimeOfDayField(serializers.Field):
    """``HH:MM`` or ``HH:MM:SS`` (local time, §0.3)."""

    def to_internal_value(self, data):
        match = _TIME.fullmatch(data) if isinstance(data, str) else None
        if match is None:
            raise serializers.ValidationError("Must be a time as HH:MM or HH:MM:SS")
        hours, minutes, seconds = match.groups()
        return dt.time(int(hours), int(minutes), int(seconds or 0))

    def to_representation(self, value):
        return time_text(value)


@extend_schema_field({"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(all_weekdays())}})
class WeekdayListField(serializers.Field):
    """A non-empty list of weekday names, case-insensitive, stored lowercase without duplicates."""

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a list of weekday names (monday … sunday)")
        if not data:
            raise serializers.ValidationError("Must not be empty")
        days: list[str] = []
        for item in data:
            day = item.strip().lower() if isinstance(item, str) else None
            if day not in WEEKDAYS:
                raise serializers.ValidationError(f"Unknown weekday {item!r}; use monday … sunday")
            if day not in days:
                days.append(day)
        return days

    def to_representation(self, value):
        return value


# --- channels --------------------------------------------------------------------------------------------------


class ChannelUpdateSerializer(serializers.Serializer):
    """PATCH/PUT body: any subset; ``kind`` may only repeat the channel's kind (the service checks it)."""

    name = StrictCharField(max_length=100, required=False)  # trimmed; blank after trimming is a 422
    kind = StrictChoiceField(choices=ChannelKind.values, required=False)
    config = AnyJSONField(required=False)
    secret = StrictCharField(max_length=255, trim_whitespace=False, allow_blank=True, allow_null=True, required=False)
    enabled = StrictBooleanField(required=False)
    min_severity = StrictChoiceField(choices=RiskLevel.values, required=False)
    publish_events = StrictBooleanField(required=False)

    def validate_secret(self, value):
        return value or ""


class ChannelCreateSerializer(ChannelUpdateSerializer):
    def get_fields(self):
        fields = super().get_fields()
        for required in ("name", "kind", "config"):
            fields[required].required = True
        return fields


def channel_json(channel) -> dict:
    return {
        "id": str(channel.id),
        "name": channel.name,
        "kind": channel.kind,
        "enabled": channel.enabled,
        "config": redact_config(channel.config),
        "has_secret": bool(channel.secret),
        "min_severity": channel.min_severity,
        "publish_events": channel.publish_events,
        "last_success_at": utc_iso(channel.last_success_at),
        "last_failure_at": utc_iso(channel.last_failure_at),
        "last_error": channel.last_error,
        "created_at": utc_iso(channel.created_at),
        "updated_at": utc_iso(channel.updated_at),
    }


# --- preferences -----------------------------------------------------------------------------------------------


class PreferencesSerializer(serializers.Serializer):
    """The global row: every field optional, none nullable."""

    enabled = StrictBooleanField(required=False)
    severities = SeverityListField(required=False)
    min_risk_score = StrictIntegerField(minimum=0, maximum=100, required=False)
    sound = StrictChoiceField(choices=Sound.values, required=False)


class CameraPreferenceSerializer(serializers.Serializer):
    """A camera override: ``severities`` and ``min_risk_score`` null = inherit the global value."""

    enabled = StrictBooleanField(required=False)
    severities = SeverityListField(required=False, allow_null=True)
    min_risk_score = StrictIntegerField(minimum=0, maximum=100, required=False, allow_null=True)


def preference_json(preference) -> dict:
    return {
        "enabled": preference.enabled,
        "severities": list(preference.severities or []),
        "min_risk_score": preference.min_risk_score if preference.min_risk_score is not None else 0,
        "sound": preference.sound,
        "updated_at": utc_iso(preference.updated_at),
    }


def camera_preference_json(preference) -> dict:
    return {
        "camera_id": preference.camera_id,
        "enabled": preference.enabled,
        "severities": preference.severities,
        "min_risk_score": preference.min_risk_score,
        "updated_at": utc_iso(preference.updated_at),
    }


# --- quiet hours -----------------------------------------------------------------------------------------------


class QuietHoursUpdateSerializer(serializers.Serializer):
    start_time = TimeOfDayField(required=False)
    end_time = TimeOfDayField(required=False)
    days = WeekdayListField(required=False)
    label = StrictCharField(max_length=100, allow_blank=True, required=False)
    camera_id = StrictCharField(max_length=64, allow_null=True, required=False)
    allow_critical = StrictBooleanField(required=False)
    enabled = StrictBooleanField(required=False)


class QuietHoursCreateSerializer(QuietHoursUpdateSerializer):
    def get_fields(self):
        fields = super().get_fields()
        for required in ("start_time", "end_time"):
            fields[required].required = True
        return fields


def time_text(value: dt.time) -> str:
    return value.strftime("%H:%M:%S")


def quiet_hours_json(period) -> dict:
    return {
        "id": str(period.id),
        "label": period.label,
        "camera_id": period.camera_id,
        "start_time": time_text(period.start_time),
        "end_time": time_text(period.end_time),
        "days": list(period.days),
        "allow_critical": period.allow_critical,
        "enabled": period.enabled,
        "created_at": utc_iso(period.created_at),
        "updated_at": utc_iso(period.updated_at),
    }


# --- deliveries ------------------------------------------------------------------------------------------------


def delivery_json(delivery) -> dict:
    return {
        "id": delivery.id,
        "alert_id": str(delivery.alert_id),
        "channel_id": str(delivery.channel_id),
        "status": delivery.status,
        "suppressed_reason": delivery.suppressed_reason,
        "attempts": delivery.attempts,
        "next_attempt_at": utc_iso(delivery.next_attempt_at),
        "last_attempt_at": utc_iso(delivery.last_attempt_at),
        "sent_at": utc_iso(delivery.sent_at),
        "response_status": delivery.response_status,
        "last_error": delivery.last_error,
        "created_at": utc_iso(delivery.created_at),
        "updated_at": utc_iso(delivery.updated_at),
    }
