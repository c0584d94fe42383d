"""Client messages (CONTRACT §3.4) and subscriptions (§3.5) of a WebSocket connection: pure logic, no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

SUPPORTED_TYPES = ("ping", "pong", "subscribe", "unsubscribe", "resync")
PATTERN = re.compile(r"\*|[a-z_]+\.(\*|[a-z_]+)")
MAX_TYPE_LENGTH = 50
MAX_PATTERNS = 50
MAX_PATTERN_LENGTH = 100
MAX_CAMERA_IDS = 100
MAX_CAMERA_ID_LENGTH = 64
RAW_PREVIEW_CHARS = 100
ALL = "*"


class ProtocolError(Exception):
    """A client message the server answers with an ``error`` message (the connection stays open)."""

    def __init__(self, code: str, message: str, details: dict):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def as_message(self) -> dict:
        return {"type": "error", "error": self.code, "message": self.message, "details": self.details}


def _field_error(field_name: str, message: str) -> dict:
    return {"field": field_name, "message": message}


def _invalid_format(errors: list[dict]) -> ProtocolError:
    return ProtocolError(
        "invalid_message_format", "Message must be an object with a type", {"validation_errors": errors}
    )


def _invalid_data(message_type: str, errors: list[dict]) -> ProtocolError:
    return ProtocolError("validation_error", f"Invalid data for {message_type}", {"validation_errors": errors})


@dataclass(frozen=True)
class ClientMessage:
    type: str
    data: dict


def parse_client_message(text: str) -> ClientMessage:
    """The message in a text frame other than the plain ``ping``; raises ``ProtocolError`` (§3.4)."""
    try:
        value = json.loads(text)
    except ValueError:
        raise ProtocolError(
            "invalid_json", "Message is not valid JSON", {"raw_preview": text[:RAW_PREVIEW_CHARS]}
        ) from None
    if not isinstance(value, dict):
        raise _invalid_format([_field_error("non_field_errors", "Message must be a JSON object")])
    errors = []
    message_type = value.get("type")
    if "type" not in value:
        errors.append(_field_error("type", "This field is required."))
    elif not isinstance(message_type, str):
        errors.append(_field_error("type", "Must be a string."))
    elif not message_type:
        errors.append(_field_error("type", "Must not be empty."))
    elif len(message_type) > MAX_TYPE_LENGTH:
        errors.append(_field_error("type", f"Must be at most {MAX_TYPE_LENGTH} characters."))
    data = value.get("data", {})
    if "data" in value and not isinstance(data, dict):
        errors.append(_field_error("data", "Must be an object."))
    if errors:
        raise _invalid_format(errors)
    if message_type not in SUPPORTED_TYPES:
        raise ProtocolError(
            "unknown_message_type",
            f"Unknown message type '{message_type}'",
            {"supported_types": list(SUPPORTED_TYPES)},
        )
    return ClientMessage(message_type, data)


def _patterns(message_type: str, data: dict, *, minimum: int) -> list[str]:
    value = data["events"]
    if not isinstance(value, list):
        raise _invalid_data(message_type, [_field_error("events", "Must be a list of patterns.")])
    if not minimum <= len(value) <= MAX_PATTERNS:
        text = f"Must hold {minimum} to {MAX_PATTERNS} patterns."
        raise _invalid_data(message_type, [_field_error("events", text)])
    errors = [
        _field_error(
            f"events.{index}",
            f"Must be *, <domain>.* or <domain>.<name> (lowercase letters and _, at most {MAX_PATTERN_LENGTH}).",
        )
        for index, pattern in enumerate(value)
        if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_LENGTH or not PATTERN.fullmatch(pattern)
    ]
    if errors:
        raise _invalid_data(message_type, errors)
    return list(dict.fromkeys(value))


def _camera_ids(message_type: str, data: dict) -> list[str]:
    value = data["camera_ids"]
    if not isinstance(value, list):
        raise _invalid_data(message_type, [_field_error("camera_ids", "Must be a list of camera ids.")])
    if len(value) > MAX_CAMERA_IDS:
        raise _invalid_data(message_type, [_field_error("camera_ids", f"Must hold at most {MAX_CAMERA_IDS} ids.")])
    errors = [
        _field_error(f"camera_ids.{index}", f"Must be a camera id (1 to {MAX_CAMERA_ID_LENGTH} characters).")
        for index, camera_id in enumerate(value)
        if not isinstance(camera_id, str) or not 1 <= len(camera_id) <= MAX_CAMERA_ID_LENGTH
    ]
    if errors:
        raise _invalid_data(message_type, errors)
    return list(dict.fromkeys(value))


def resync_last_seq(data: dict) -> int:
    value = data.get("last_seq")
    if "last_seq" not in data:
        raise _invalid_data("resync", [_field_error("last_seq", "This field is required.")])
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid_data("resync", [_field_error("last_seq", "Must be an integer >= 0.")])
    return value


def pattern_matches(pattern: str, message_type: str) -> bool:
    if pattern in (ALL, message_type):
        return True
    return pattern.endswith(".*") and message_type.startswith(pattern[:-1])


@dataclass
class Subscription:
    """What one connection receives: message types by pattern and, optionally, only some cameras (§3.5)."""

    events: list[str] = field(default_factory=lambda: [ALL])
    camera_ids: list[str] = field(default_factory=list)

    def matches(self, message: dict) -> bool:
        message_type = message.get("type", "")
        if not any(pattern_matches(pattern, message_type) for pattern in self.events):
            return False
        if not self.camera_ids:
            return True
        data = message.get("data")
        camera_id = data.get("camera_id") if isinstance(data, dict) else None
        return camera_id is None or camera_id in self.camera_ids

    def subscribe(self, data: dict) -> dict:
        """Apply a ``subscribe`` (validated in full before anything changes); returns the ``subscribed`` data."""
        patterns = _patterns("subscribe", data, minimum=1) if "events" in data else None
        camera_ids = _camera_ids("subscribe", data) if "camera_ids" in data else None
        merged = None
        if patterns is not None:
            current = [] if self.events == [ALL] else self.events
            merged = list(dict.fromkeys([*current, *patterns]))
            if len(merged) > MAX_PATTERNS:  # the list a connection holds, not only one message, is 1–50 (§3.5)
                text = f"Would hold {len(merged)} patterns; a subscription holds at most {MAX_PATTERNS}."
                raise _invalid_data("subscribe", [_field_error("events", text)])
        if merged is not None:
            self.events = merged
        if camera_ids is not None:
            self.camera_ids = camera_ids
        return self.as_data()

    def unsubscribe(self, data: dict) -> dict:
        if "events" not in data:
            raise _invalid_data("unsubscribe", [_field_error("events", "This field is required.")])
        patterns = set(_patterns("unsubscribe", data, minimum=0))
        self.events = [pattern for pattern in self.events if pattern not in patterns]
        return self.as_data()

    def as_data(self) -> dict:
        return {"events": list(self.events), "camera_ids": list(self.camera_ids)}
