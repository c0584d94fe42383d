"""Request validation of the rule endpoints (CONTRACT §5.1, §2.7): rule bodies, rule test and backtest bodies.

Strict about JSON types like the rest of the API (a string where a number is expected is a 422, never coerced).
Errors name the field with a dotted path (``schedule.start_time``, ``object_types.2``).
"""

from __future__ import annotations

import functools
import re
import zoneinfo

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from alerts.evaluation import WEEKDAYS, dedup_template_error
from alerts.models import NotificationChannel, RuleTrigger
from cameras.api.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
)
from events.models import RiskLevel
from hsi.api.filters import parse_instant

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
OFFLINE_FORBIDDEN_FIELDS = ("risk_threshold", "object_types", "zone_ids", "min_confidence")


@functools.cache
def _timezone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_valid_timezone(name: str) -> bool:
    return name in _timezone_names()


class NumberField(serializers.FloatField):
    """A JSON number (no booleans or strings) within ``minimum``–``maximum``."""

    default_error_messages = {"invalid": "Must be a number"}

    def __init__(self, *, minimum: float, maximum: float, **kwargs):
        self.minimum, self.maximum = minimum, maximum
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float) or data != data:
            self.fail("invalid")
        if not self.minimum <= data <= self.maximum:
            raise serializers.ValidationError(f"Must be between {self.minimum:g} and {self.maximum:g}")
        return float(data)


class StringListField(serializers.ListField):
    """A JSON list of strings of 1–``max_length`` characters, at most ``max_items``; null allowed."""

    def __init__(self, *, max_items: int, max_length: int, lower: bool = False, **kwargs):
        self.lower, self.max_items = lower, max_items
        child = StrictCharField(min_length=1, max_length=max_length, trim_whitespace=False)
        super().__init__(child=child, allow_null=True, required=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a list of strings")
        if len(data) > self.max_items:
            raise serializers.ValidationError(f"At most {self.max_items} items")
        values = super().to_internal_value(data)
        if self.lower:
            values = [value.lower() for value in values]
        return list(dict.fromkeys(values))


class UuidListField(serializers.ListField):
    def __init__(self, *, max_items: int, **kwargs):
        self.max_items = max_items
        super().__init__(child=serializers.UUIDField(), allow_null=True, required=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a list of UUIDs")
        if len(data) > self.max_items:
            raise serializers.ValidationError(f"At most {self.max_items} items")
        errors = {}
        for index, item in enumerate(data):
            if not isinstance(item, str):
                errors[str(index)] = ["Must be a valid UUID"]
        if errors:
            raise serializers.ValidationError(errors)
        return list(dict.fromkeys(str(value) for value in super().to_internal_value(data)))


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "days": {"type": "array", "items": {"type": "string", "enum": list(WEEKDAYS)}},
            "start_time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$", "nullable": True},
            "end_time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$", "nullable": True},
            "timezone": {"type": "string"},
        },
    }
)
class ScheduleField(serializers.Field):
    """``null`` or ``{days, start_time, end_time, timezone}`` (CONTRACT §5.3); ``{}`` is stored as null."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, required=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be an object {days, start_time, end_time, timezone} or null")
        if not data:
            return None
        errors: dict[str, list[str]] = {}
        days = self._days(data.get("days"), errors)
        start, end = data.get("start_time"), data.get("end_time")
        for name, value in (("start_time", start), ("end_time", end)):
            if value is not None and (not isinstance(value, str) or not _HHMM.fullmatch(value)):
                errors[name] = ["Must be a time HH:MM between 00:00 and 23:59"]
        if (start is None) != (end is None) and not errors:
            missing = "end_time" if start is not None else "start_time"
            errors[missing] = ["start_time and end_time must be given together"]
        timezone_name = data.get("timezone")
        if timezone_name is None:
            timezone_name = "UTC"
        elif not isinstance(timezone_name, str) or not is_valid_timezone(timezone_name):
            errors["timezone"] = ["Must be a valid IANA time zone name"]
        if errors:
            raise serializers.ValidationError(errors)
        return {"days": days, "start_time": start, "end_time": end, "timezone": timezone_name}

    @staticmethod
    def _days(raw, errors: dict) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            errors["days"] = ["Must be a list of weekday names"]
            return []
        days: list[str] = []
        bad = {}
        for index, name in enumerate(raw):
            if not isinstance(name, str) or name.strip().lower() not in WEEKDAYS:
                bad[str(index)] = [f"Must be one of {', '.join(WEEKDAYS)}"]
            elif name.strip().lower() not in days:
                days.append(name.strip().lower())
        if bad:
            errors["days"] = bad
        return days

    def to_representation(self, value):
        return value


def validate_dedup_template(value: str) -> str:
    error = dedup_template_error(value)
    if error:
        raise serializers.ValidationError(error)
    return value


class ChannelListField(serializers.ListField):
    """``null`` or a list of existing NotificationChannel ids."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.UUIDField(), allow_null=True, required=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise serializers.ValidationError("Must be a list of notification channel ids or null")
        if len(data) > 100:
            raise serializers.ValidationError("At most 100 channels")
        ids = list(dict.fromkeys(str(value) for value in super().to_internal_value(data)))
        known = {str(pk) for pk in NotificationChannel.objects.filter(pk__in=ids).values_list("id", flat=True)}
        unknown = [channel_id for channel_id in ids if channel_id not in known]
        if unknown:
            raise serializers.ValidationError(f"Unknown notification channel id(s): {', '.join(unknown)}")
        return ids


class RuleSerializer(serializers.Serializer):
    """A rule body (PATCH/PUT: any subset; POST: ``name`` required). Cross-field rules are checked by
    ``check_rule_state`` on the merged result."""

    name = StrictCharField(trim_whitespace=False, required=False)
    description = StrictCharField(
        max_length=5000, allow_blank=True, allow_control=True, trim_whitespace=False, required=False
    )
    enabled = StrictBooleanField(required=False)
    trigger = StrictChoiceField(choices=RuleTrigger.values, required=False)
    severity = StrictChoiceField(choices=RiskLevel.values, required=False)
    risk_threshold = StrictIntegerField(minimum=0, maximum=100, allow_null=True, required=False)
    object_types = StringListField(max_items=50, max_length=64, lower=True)
    camera_ids = StringListField(max_items=100, max_length=64)
    zone_ids = UuidListField(max_items=100)
    min_confidence = NumberField(minimum=0, maximum=1, allow_null=True, required=False)
    schedule = ScheduleField()
    dedup_key_template = StrictCharField(
        trim_whitespace=False, max_length=1000, validators=[validate_dedup_template], required=False
    )
    cooldown_seconds = StrictIntegerField(minimum=0, maximum=604800, required=False)
    channels = ChannelListField()

    def __init__(self, *args, creating: bool = False, **kwargs):
        self.creating = creating
        super().__init__(*args, **kwargs)

    def get_fields(self):
        fields = super().get_fields()
        if self.creating:
            fields["name"].required = True
        return fields

    def validate_name(self, value: str) -> str:
        """Stored trimmed (CONTRACT §10); 1–255 characters after trimming."""
        value = value.strip()
        if not 1 <= len(value) <= 255:
            raise serializers.ValidationError("Must be 1 to 255 characters after trimming")
        return value


RULE_DEFAULTS = {
    "description": "",
    "enabled": True,
    "trigger": RuleTrigger.EVENT.value,
    "severity": RiskLevel.MEDIUM.value,
    "risk_threshold": None,
    "object_types": None,
    "camera_ids": None,
    "zone_ids": None,
    "min_confidence": None,
    "schedule": None,
    "dedup_key_template": "{camera_id}:{rule_id}",
    "cooldown_seconds": 300,
    "channels": None,
}


def check_rule_state(state: dict, *, prefix: str = "") -> None:
    """Rules across fields of the rule as it would be stored: a ``camera_offline`` rule sets no event-only field."""
    if state.get("trigger") != RuleTrigger.CAMERA_OFFLINE:
        return
    errors = {}
    for name in OFFLINE_FORBIDDEN_FIELDS:
        value = state.get(name)
        if value is not None and value != []:
            errors[f"{prefix}{name}"] = [f"A camera_offline rule must not set {name}"]
    if errors:
        raise serializers.ValidationError(errors)


def validated_rule(data: dict, *, creating: bool, current: dict | None = None, prefix: str = "") -> dict:
    """The validated fields of ``data``; for a new rule, with every default filled in."""
    serializer = RuleSerializer(data=data, creating=creating, partial=not creating)
    if not serializer.is_valid():
        errors = serializer.errors
        raise serializers.ValidationError({prefix.rstrip("."): errors} if prefix else errors)
    values = dict(serializer.validated_data)
    state = {**RULE_DEFAULTS, **(current or {}), **values}
    check_rule_state(state, prefix=prefix)
    return {**RULE_DEFAULTS, **values} if creating else values


# --- rule test and backtest bodies ------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
class InstantBodyField(serializers.Field):
    """An ISO 8601 date or date-time string (naive = UTC)."""

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be an ISO 8601 date or date-time")
        from django import forms

        try:
            return parse_instant(data, end_of_day=self.end_of_day)
        except forms.ValidationError as error:
            raise serializers.ValidationError(error.messages) from None

    def to_representation(self, value):
        return value


class EventIdListField(serializers.ListField):
    def __init__(self, **kwargs):
        super().__init__(child=StrictIntegerField(minimum=1, maximum=2**63 - 1), required=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a list of event ids")
        if len(data) > 100:
            raise serializers.ValidationError("At most 100 event ids")
        return list(dict.fromkeys(super().to_internal_value(data)))


class RuleTestSerializer(serializers.Serializer):
    event_ids = EventIdListField()
    limit = StrictIntegerField(minimum=1, maximum=100, required=False)
    test_time = InstantBodyField(required=False, allow_null=True)


class BacktestSerializer(serializers.Serializer):
    rule_id = serializers.UUIDField(required=False, allow_null=True)
    rule = serializers.DictField(required=False, allow_null=True, allow_empty=True)
    days = StrictIntegerField(minimum=1, maximum=90, required=False)
    start_date = InstantBodyField(required=False, allow_null=True)
    end_date = InstantBodyField(required=False, allow_null=True, end_of_day=True)
    respect_cooldown = StrictBooleanField(required=False)

    def validate(self, attrs):
        if attrs.get("rule_id") is None and attrs.get("rule") is None:
            raise serializers.ValidationError({"rule_id": ["Provide rule_id or rule"]})
        return attrs
