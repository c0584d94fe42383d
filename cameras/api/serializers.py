"""Camera and zone request validation and JSON rendering (CONTRACT §2.2, §2.3).

Input fields are strict about JSON types: a string where a boolean is expected (``"yes"``), a number where a string
is expected, or a boolean where a number is expected is a 422, never silently coerced. Output is built by plain
functions (cheaper than serializer instances on list pages) with UTC ``Z`` timestamps.
"""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cameras.geometry import PolygonError, validate_polygon
from cameras.models import Camera, CameraStatus, Zone, ZoneShape, ZoneType
from cameras.slug import CAMERA_ID_PATTERN, has_control_characters, slugify
from hsi.timeutils import utc_iso

_FORBIDDEN_PATH_CHARACTERS = set('<>"|?*')
_PATH_SEGMENTS = re.compile(r"[/\\]")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


# --- strict fields ---------------------------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """A JSON string only; optionally without control characters (U+0000–U+001F, U+007F) anywhere."""

    default_error_messages = {
        "invalid": "Must be a string",
        "control": "Must not contain control characters",
    }

    def __init__(self, *, allow_control: bool = False, **kwargs):
        self.allow_control = allow_control
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        if data is not serializers.empty and data is not None and not isinstance(data, str):
            self.fail("invalid")
        return super().run_validation(data)

    def to_internal_value(self, data):
        if not self.allow_control and has_control_characters(data):
            self.fail("control")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true``/``false`` only (no ``"yes"``, ``1`` or ``"true"``)."""

    default_error_messages = {"invalid": "Must be a boolean (true or false)"}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only (no booleans, strings or fractions), within ``min_value``–``max_value``."""

    default_error_messages = {"invalid": "Must be an integer"}

    def __init__(self, *, minimum: int, maximum: int, **kwargs):
        super().__init__(min_value=minimum, max_value=maximum, **kwargs)
        for validator in self.validators:
            validator.message = f"Must be between {minimum} and {maximum}"

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class StrictChoiceField(serializers.ChoiceField):
    """One of ``choices``, as a JSON string, compared exactly."""

    default_error_messages = {"invalid_choice": "Must be one of: {choices}"}

    def to_internal_value(self, data):
        if not isinstance(data, str) or data not in self.choices:
            self.fail("invalid_choice", choices=", ".join(self.choices))
        return data


@extend_schema_field(
    {
        "type": "array",
        "minItems": 3,
        "maxItems": 100,
        "items": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"type": "number", "minimum": 0, "maximum": 1},
        },
    }
)
class PolygonField(serializers.Field):
    """§2.3 coordinates; a rule about one point is reported on ``coordinates.<index>``."""

    def to_internal_value(self, data):
        try:
            return validate_polygon(data)
        except PolygonError as error:
            if error.index is None:
                raise serializers.ValidationError(error.message) from None
            raise serializers.ValidationError({str(error.index): [error.message]}) from None

    def to_representation(self, value):
        return value


# --- cameras ---------------------------------------------------------------------------------------------------


def validate_camera_name(value: str) -> str:
    if not slugify(value):
        raise serializers.ValidationError("Must contain a letter or digit (the camera id is derived from it)")
    return value


def validate_folder_path(value: str) -> str:
    if not value.strip():
        raise serializers.ValidationError("Must not be blank")
    bad = sorted(set(value) & _FORBIDDEN_PATH_CHARACTERS)
    if bad:
        raise serializers.ValidationError(f"Must not contain {' '.join(bad)}")
    if ".." in _PATH_SEGMENTS.split(value):
        raise serializers.ValidationError("Must not contain a '..' path segment")
    return value


def validate_camera_id(value: str) -> str:
    if not CAMERA_ID_PATTERN.fullmatch(value):
        raise serializers.ValidationError("Must match ^[a-z0-9_]{1,64}$")
    return value


class CameraUpdateSerializer(serializers.Serializer):
    """PATCH/PUT body: any subset of the fields (``id`` is immutable and ignored)."""

    name = StrictCharField(max_length=255, validators=[validate_camera_name], required=False)
    folder_path = StrictCharField(
        max_length=500, trim_whitespace=False, validators=[validate_folder_path], required=False
    )
    status = StrictChoiceField(choices=CameraStatus.values, required=False)
    enabled = StrictBooleanField(required=False)
    silence_threshold_minutes = StrictIntegerField(minimum=1, maximum=10080, allow_null=True, required=False)


class CameraCreateSerializer(CameraUpdateSerializer):
    id = StrictCharField(trim_whitespace=False, max_length=64, validators=[validate_camera_id], required=False)

    def get_fields(self):
        fields = super().get_fields()
        for required in ("name", "folder_path"):
            fields[required].required = True
        return fields


def camera_json(camera: Camera) -> dict:
    return {
        "id": camera.id,
        "name": camera.name,
        "folder_path": camera.folder_path,
        "status": camera.status,
        "enabled": camera.enabled,
        "silence_threshold_minutes": camera.silence_threshold_minutes,
        "last_seen_at": utc_iso(camera.last_seen_at),
        "status_changed_at": utc_iso(camera.status_changed_at),
        "created_at": utc_iso(camera.created_at),
        "updated_at": utc_iso(camera.updated_at),
    }


# --- zones -----------------------------------------------------------------------------------------------------


def validate_color(value: str) -> str:
    if not _COLOR.fullmatch(value):
        raise serializers.ValidationError("Must be a colour like #3B82F6")
    return value


class ZoneUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=255, required=False)
    zone_type = StrictChoiceField(choices=ZoneType.values, required=False)
    shape = StrictChoiceField(choices=ZoneShape.values, required=False)
    coordinates = PolygonField(required=False)
    color = StrictCharField(trim_whitespace=False, validators=[validate_color], required=False)
    enabled = StrictBooleanField(required=False)
    priority = StrictIntegerField(minimum=0, maximum=100, required=False)


class ZoneCreateSerializer(ZoneUpdateSerializer):
    def get_fields(self):
        fields = super().get_fields()
        for required in ("name", "coordinates"):
            fields[required].required = True
        return fields


def zone_json(zone: Zone) -> dict:
    return {
        "id": str(zone.id),
        "camera_id": zone.camera_id,
        "name": zone.name,
        "zone_type": zone.zone_type,
        "shape": zone.shape,
        "coordinates": zone.coordinates,
        "color": zone.color,
        "enabled": zone.enabled,
        "priority": zone.priority,
        "created_at": utc_iso(zone.created_at),
        "updated_at": utc_iso(zone.updated_at),
    }
