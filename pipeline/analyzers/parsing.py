"""Parsing an LLM completion into a verdict (CONTRACT §4.6.2, §10).

1. ``<think>…</think>`` blocks are removed (an unterminated ``<think>`` loses just the tag), then Markdown fences.
2. Balanced top-level ``{…}`` objects are found; the last one that parses and has ``risk_score`` wins, else the
   first that parses. None → ``failed``.
3. ``risk_score`` is coerced (floats rounded, numeric strings converted) and clamped to 0–100.

``ok`` means the cleaned text was exactly one JSON object needing no change; any coercion, clamping, truncation,
syntax repair or extraction from surrounding text makes it ``repaired``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

OK, REPAIRED, FAILED = "ok", "repaired", "failed"
SUMMARY_MAX, REASONING_MAX, ACTION_MAX = 1000, 4000, 500
RAW_LEVEL_MAX = 20
INT32_MAX = 2**31 - 1  # the audit's llm_risk_score column

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_THINK_TAG = re.compile(r"</?think>", re.IGNORECASE)
_FENCE = re.compile(r"^[ \t]*```[\w+-]*[ \t]*$", re.MULTILINE)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


@dataclass(frozen=True)
class ParsedOutput:
    status: str  # ok | repaired | failed
    error: str = ""
    risk_score: int | None = None  # clamped to 0-100
    raw_score: int | None = None  # coerced to an integer, before clamping
    raw_level: str | None = None  # the returned risk_level, informational
    summary: str | None = None  # None: the caller uses the rules summary
    reasoning: str = ""
    recommended_action: str | None = None  # None: the caller uses the level default


def clean_text(text: str) -> str:
    """Remove think blocks, a dangling think tag and Markdown code fences."""
    without_blocks = _THINK_BLOCK.sub("", text)
    without_tags = _THINK_TAG.sub("", without_blocks)
    return _FENCE.sub("", without_tags).strip()


def balanced_objects(text: str) -> list[str]:
    """Every top-level balanced ``{…}`` span of ``text`` (braces inside JSON strings ignored)."""
    spans: list[str] = []
    index = 0
    while index < len(text):
        if text[index] != "{":
            index += 1
            continue
        end = _matching_brace(text, index)
        if end is None:
            index += 1
            continue
        spans.append(text[index : end + 1])
        index = end + 1
    return spans


def _matching_brace(text: str, start: int) -> int | None:
    depth, in_string, escaped = 0, False, False
    for position in range(start, len(text)):
        char = text[position]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return position
    return None


def _load_object(span: str) -> tuple[dict | None, bool]:
    """(object, repaired): strict JSON first, then with trailing commas removed."""
    for candidate, repaired in ((span, False), (_TRAILING_COMMA.sub(r"\1", span), True)):
        try:
            value = json.loads(candidate, parse_constant=_reject_constant)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value, repaired
    return None, False


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def find_object(text: str) -> tuple[dict | None, bool]:
    """(chosen object, extracted-or-repaired) per step 2; the flag is False only for a clean, lone object."""
    parsed = []
    for span in balanced_objects(text):
        value, repaired = _load_object(span)
        if value is not None:
            parsed.append((span, value, repaired))
    if not parsed:
        return None, False
    with_score = [item for item in parsed if "risk_score" in item[1]]
    span, value, repaired = with_score[-1] if with_score else parsed[0]
    return value, repaired or span != text


def coerce_score(value: object) -> tuple[int | None, bool]:
    """(integer, coerced): ints as they are, floats and numeric strings rounded half up; else (None, False)."""
    if isinstance(value, bool):
        return None, False
    if isinstance(value, int):
        return value, False
    if isinstance(value, float):
        if not math.isfinite(value):
            return None, False
        return _round_half_up(Decimal(repr(value))), True
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None, False
        if not number.is_finite():
            return None, False
        return _round_half_up(number), True
    return None, False


def coerce_number(value: object) -> float | None:
    """A finite number from a JSON number or a numeric string; None otherwise (booleans included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _round_half_up(number: Decimal) -> int:
    """Rounded half up; values beyond the audit column's range are pinned to it (no giant integers)."""
    if abs(number) >= INT32_MAX:
        return INT32_MAX if number > 0 else -INT32_MAX
    return int(number.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _text_field(data: dict, key: str, limit: int) -> tuple[str | None, bool]:
    """(trimmed text or None when missing/empty, changed)."""
    value = data.get(key)
    if value is None:
        return None, False
    changed = False
    if isinstance(value, list):
        value, changed = " ".join(str(item) for item in value), True
    elif not isinstance(value, str):
        value, changed = str(value), True
    text = value.strip()
    if len(text) > limit:
        text, changed = text[:limit].rstrip(), True
    return (text or None), changed


def parse_output(text: str) -> ParsedOutput:
    if not text or not text.strip():
        return ParsedOutput(status=FAILED, error="empty completion")
    data, extracted = find_object(clean_text(text))
    if data is None:
        return ParsedOutput(status=FAILED, error="no JSON object found in the completion")
    raw_level = data.get("risk_level")
    raw_level = str(raw_level)[:RAW_LEVEL_MAX] if raw_level is not None else None
    if "risk_score" not in data:
        return ParsedOutput(status=FAILED, error="risk_score is missing", raw_level=raw_level)
    raw_score, coerced = coerce_score(data["risk_score"])
    if raw_score is None:
        return ParsedOutput(
            status=FAILED, error=f"risk_score is not numeric: {data['risk_score']!r}"[:500], raw_level=raw_level
        )
    score = max(0, min(100, raw_score))
    summary, summary_changed = _text_field(data, "summary", SUMMARY_MAX)
    reasoning, reasoning_changed = _text_field(data, "reasoning", REASONING_MAX)
    action, action_changed = _text_field(data, "recommended_action", ACTION_MAX)
    repaired = extracted or coerced or score != raw_score or summary_changed or reasoning_changed or action_changed
    return ParsedOutput(
        status=REPAIRED if repaired else OK,
        risk_score=score,
        raw_score=max(-INT32_MAX, min(INT32_MAX, raw_score)),
        raw_level=raw_level,
        summary=summary,
        reasoning=reasoning or "",
        recommended_action=action,
    )
