"""Per-kind notification channel ``config``: validation with defaults, and redaction (CONTRACT §2.8, §6.7).

``validate_channel_config(kind, config)`` returns the config to store: known keys only, defaults filled in from the
settings at call time. Violations are collected as ``{"config.<key>": message}`` and raised together as one 422.
``redact_config`` is what every response and audit row shows: URL passwords and secret-looking header values
become ``***``. ``restore_redacted`` lets a client send back a config it read (with its ``***``) without
overwriting the stored values it never saw.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email

from alerts.outbound import webhook_url_problem
from hsi.api.errors import FieldValidationError

REDACTED = "***"
URL_KEYS = ("url", "broker_url")
SECRET_HEADER_WORDS = ("authorization", "token", "key", "secret")
FORBIDDEN_HEADERS = frozenset({"host", "content-length", "content-type"})
FORBIDDEN_HEADER_PREFIX = "x-hsi-"
MAX_HEADERS = 20
MAX_HEADER_VALUE_LENGTH = 1000
WEBHOOK_URL_MAX_LENGTH = 2000
MAX_RECIPIENTS = 20
SUBJECT_PREFIX_MAX_LENGTH = 50
TOPIC_MAX_LENGTH = 100
MQTT_BROKER_URL_MAX_LENGTH = 2000
EMAIL_NOT_CONFIGURED = "Email is not configured"
MQTT_NOT_CONFIGURED = "MQTT broker not configured"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")  # visible ASCII, space and tab: what every HTTP client can send
HEADER_VALUE_CHARACTERS = "Must contain only visible ASCII characters, spaces and tabs (no line breaks)"
HOST_CHANGED = "Re-enter the value: the webhook URL's host changed"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOPIC = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class _Errors:
    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def add(self, key: str, message: str) -> None:
        self.items.setdefault(f"config.{key}" if key else "config", message)

    def raise_if_any(self, detail: str = "Validation failed") -> None:
        if self.items:
            raise FieldValidationError(self.items, detail=detail)


def validate_channel_config(kind: str, config: Any, *, creating: bool = True) -> dict:
    """The config of a ``kind`` channel to store, or a 422 naming each offending ``config.<key>``.

    ``creating`` adds the create-only check of §2.8: an email channel needs ``EMAIL_HOST``.
    """
    if not isinstance(config, dict):
        raise FieldValidationError({"config": "Must be a JSON object"})
    validator = _VALIDATORS.get(kind)
    if validator is None:
        raise FieldValidationError({"kind": "Must be one of: webhook, email, mqtt"})
    return validator(config, creating)


# --- webhook -------------------------------------------------------------------------------------------------


def _webhook(config: dict, creating: bool) -> dict:
    errors = _Errors()
    out: dict[str, Any] = {}
    url = config.get("url")
    if url is None:
        errors.add("url", "This field is required")
    else:
        problem = webhook_url_error(url)
        if problem:
            errors.add("url", problem)
        else:
            out["url"] = url
    out["headers"] = _headers(config.get("headers"), errors)
    out["timeout_seconds"] = _number(
        config, "timeout_seconds", errors, minimum=1, maximum=60, default=settings.WEBHOOK_TIMEOUT_SECONDS
    )
    errors.raise_if_any()
    return out


def webhook_url_error(url: Any) -> str | None:
    """Why ``url`` cannot be a webhook target (shape checks here, host rules of §6.7 in ``alerts.outbound``)."""
    if not isinstance(url, str):
        return "Must be a string"
    if not url.strip():
        return "Must not be blank"
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        return f"Must be at most {WEBHOOK_URL_MAX_LENGTH} characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "Must be a valid http or https URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "Must be a valid http or https URL"
    return webhook_url_problem(url)


def _headers(value: Any, errors: _Errors) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add("headers", "Must be an object of header names to string values")
        return {}
    if len(value) > MAX_HEADERS:
        errors.add("headers", f"At most {MAX_HEADERS} headers")
        return {}
    headers: dict[str, str] = {}
    for name, header_value in value.items():
        lowered = name.lower()
        if not _HEADER_NAME.fullmatch(name):
            errors.add(f"headers.{name}", "Not a valid header name")
        elif lowered in FORBIDDEN_HEADERS or lowered.startswith(FORBIDDEN_HEADER_PREFIX):
            errors.add(f"headers.{name}", f"The {name} header is set by HSI and cannot be configured")
        elif not isinstance(header_value, str):
            errors.add(f"headers.{name}", "Must be a string")
        elif len(header_value) > MAX_HEADER_VALUE_LENGTH:
            errors.add(f"headers.{name}", f"Must be at most {MAX_HEADER_VALUE_LENGTH} characters")
        elif not _HEADER_VALUE.fullmatch(header_value):
            errors.add(f"headers.{name}", HEADER_VALUE_CHARACTERS)
        else:
            headers[name] = header_value
    return headers


# --- email ---------------------------------------------------------------------------------------------------


def _email(config: dict, creating: bool) -> dict:
    if creating and not settings.EMAIL_HOST:
        raise FieldValidationError({"kind": EMAIL_NOT_CONFIGURED}, detail=EMAIL_NOT_CONFIGURED)
    errors = _Errors()
    out: dict[str, Any] = {}
    to = config.get("to")
    if to is None:
        errors.add("to", "This field is required")
    elif not isinstance(to, list) or not 1 <= len(to) <= MAX_RECIPIENTS:
        errors.add("to", f"Must be a list of 1 to {MAX_RECIPIENTS} email addresses")
    else:
        addresses: list[str] = []
        for index, address in enumerate(to):
            if not isinstance(address, str) or not _valid_email(address.strip()):
                errors.add(f"to.{index}", "Not a valid email address")
            elif address.strip() not in addresses:
                addresses.append(address.strip())
        out["to"] = addresses
    prefix = config.get("subject_prefix", "[HSI]")
    if not isinstance(prefix, str):
        errors.add("subject_prefix", "Must be a string")
    elif len(prefix) > SUBJECT_PREFIX_MAX_LENGTH or any(c in prefix for c in "\r\n"):
        errors.add("subject_prefix", f"Must be at most {SUBJECT_PREFIX_MAX_LENGTH} characters on one line")
    else:
        out["subject_prefix"] = prefix
    out["attach_thumbnail"] = _boolean(config, "attach_thumbnail", errors, default=True)
    errors.raise_if_any()
    return out


def _valid_email(address: str) -> bool:
    try:
        validate_email(address)
    except DjangoValidationError:
        return False
    return True


# --- mqtt ----------------------------------------------------------------------------------------------------


def _mqtt(config: dict, creating: bool) -> dict:
    errors = _Errors()
    out: dict[str, Any] = {}
    broker_url = config.get("broker_url")
    if broker_url is None:
        if not settings.MQTT_URL:
            raise FieldValidationError({"config.broker_url": MQTT_NOT_CONFIGURED}, detail=MQTT_NOT_CONFIGURED)
    else:
        problem = _broker_url_error(broker_url)
        if problem:
            errors.add("broker_url", problem)
        else:
            out["broker_url"] = broker_url
    prefix = config.get("topic_prefix", settings.MQTT_TOPIC_PREFIX)
    if _topic_ok(prefix, errors, "topic_prefix"):
        out["topic_prefix"] = prefix
    qos = config.get("qos", 1)
    if isinstance(qos, bool) or not isinstance(qos, int) or not 0 <= qos <= 2:
        errors.add("qos", "Must be 0, 1 or 2")
    else:
        out["qos"] = qos
    out["discovery"] = _boolean(config, "discovery", errors, default=True)
    discovery_prefix = config.get("discovery_prefix", settings.MQTT_DISCOVERY_PREFIX)
    if _topic_ok(discovery_prefix, errors, "discovery_prefix"):
        out["discovery_prefix"] = discovery_prefix
    errors.raise_if_any()
    return out


def _broker_url_error(url: Any) -> str | None:
    if not isinstance(url, str):
        return "Must be a string"
    if len(url) > MQTT_BROKER_URL_MAX_LENGTH:
        return f"Must be at most {MQTT_BROKER_URL_MAX_LENGTH} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "Must be an mqtt:// or mqtts:// URL"
    if parts.scheme.lower() not in ("mqtt", "mqtts") or not parts.hostname:
        return "Must be an mqtt:// or mqtts:// URL"
    return None


def _topic_ok(value: Any, errors: _Errors, key: str) -> bool:
    if not isinstance(value, str) or len(value) > TOPIC_MAX_LENGTH or not _TOPIC.fullmatch(value):
        errors.add(key, f"Must match ^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$ and be at most {TOPIC_MAX_LENGTH} characters")
        return False
    return True


# --- shared --------------------------------------------------------------------------------------------------


def _boolean(config: dict, key: str, errors: _Errors, *, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        errors.add(key, "Must be a boolean (true or false)")
        return default
    return value


def _number(config: dict, key: str, errors: _Errors, *, minimum: float, maximum: float, default: float):
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.add(key, "Must be a number")
        return default
    if not minimum <= value <= maximum:
        errors.add(key, f"Must be between {minimum} and {maximum}")
        return default
    return value


_VALIDATORS = {"webhook": _webhook, "email": _email, "mqtt": _mqtt}


# --- redaction -----------------------------------------------------------------------------------------------


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_HEADER_WORDS)


def redact_url(url: Any) -> Any:
    """``scheme://user:***@host/...`` when the URL carries a password; anything else unchanged."""
    if not isinstance(url, str):
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{hostinfo}"))


def redact_config(config: dict | None) -> dict:
    """The config as responses and audit rows show it (CONTRACT §2.8 redaction)."""
    redacted = dict(config or {})
    for key in URL_KEYS:
        if key in redacted:
            redacted[key] = redact_url(redacted[key])
    headers = redacted.get("headers")
    if isinstance(headers, dict):
        redacted["headers"] = {name: REDACTED if is_secret_header(name) else value for name, value in headers.items()}
    return redacted


def restore_redacted(incoming: Any, stored: dict | None) -> Any:
    """``incoming`` with each ``***`` a client echoed back (a secret header value, a URL password) replaced by the
    stored value it stands for, so reading a config and sending it back never destroys a credential.

    A header value is restored only when the incoming ``url`` has the stored URL's scheme, host and port: a stored
    credential never follows the config to another host. An echoed ``***`` for a stored header with a new origin is
    a 422 on ``config.headers.<name>``; with no usable ``url`` it is left as sent (the URL check then refuses it).
    A URL password is restored only into the otherwise identical URL.
    """
    if not isinstance(incoming, dict) or not stored:
        return incoming
    restored = dict(incoming)
    headers, stored_headers = restored.get("headers"), stored.get("headers")
    if isinstance(headers, dict) and isinstance(stored_headers, dict):
        echoed = [name for name, value in headers.items() if value == REDACTED and name in stored_headers]
        if echoed:
            new_origin, old_origin = _origin(restored.get("url")), _origin(stored.get("url"))
            if new_origin is not None and new_origin == old_origin:
                restored["headers"] = {
                    name: stored_headers[name] if name in echoed else headers[name] for name in headers
                }
            elif new_origin is not None:
                raise FieldValidationError(
                    {f"config.headers.{name}": HOST_CHANGED for name in echoed}, detail=HOST_CHANGED
                )
    for key in URL_KEYS:
        value, original = restored.get(key), stored.get(key)
        if isinstance(value, str) and isinstance(original, str) and value != original and redact_url(original) == value:
            restored[key] = original
    return restored


def _origin(url: Any) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the default port filled in; None when it is not one."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]
