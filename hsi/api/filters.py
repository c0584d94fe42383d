"""django-filter building blocks that follow the query conventions of CONTRACT §0.3–0.4.

- booleans accept true/false/1/0/yes/no (case-insensitive), anything else is 422;
- list parameters are comma-separated, blanks dropped, every enum value must be valid;
- dates accept an ISO date or date-time; naive values are UTC; a date-only end bound means the last
  microsecond of that day; ``start > end`` is a 400 naming both parameters.
"""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework.exceptions import ValidationError

from hsi.api.errors import BadRequest

TRUE_VALUES = {"true", "1", "yes"}
FALSE_VALUES = {"false", "0", "no"}


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE_VALUES:
        return True
    if lowered in FALSE_VALUES:
        return False
    raise forms.ValidationError("Must be a boolean (true/false/1/0/yes/no)")


def parse_instant(value: str, *, end_of_day: bool = False) -> dt.datetime:
    """ISO 8601 date or date-time → aware UTC datetime (CONTRACT §0.3).

    A date-only value is 00:00:00 of that day, or its last microsecond with ``end_of_day``; a naive date-time is
    UTC. (``datetime.fromisoformat`` also accepts a bare date, so the date form is recognised first.)
    """
    text = value.strip()
    day = _parse_day(text)
    if day is not None:
        parsed = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
    else:
        try:
            parsed = parse_datetime(text)
        except ValueError:
            parsed = None
        if parsed is None:
            raise forms.ValidationError("Must be an ISO 8601 date or date-time")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        instant = parsed.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise forms.ValidationError("Date out of range") from None
    if not (1 <= instant.year <= 9998):
        raise forms.ValidationError("Date out of range")
    return instant


def _parse_day(text: str) -> dt.date | None:
    if "T" in text.upper() or ":" in text or " " in text:
        return None
    try:
        return parse_date(text)
    except ValueError:
        return None


class StrictBooleanField(forms.Field):
    def to_python(self, value):
        if value in (None, ""):
            return None
        return parse_bool(str(value))


class InstantField(forms.Field):
    def __init__(self, *args, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if value in (None, ""):
            return None
        return parse_instant(str(value), end_of_day=self.end_of_day)


class CommaListField(forms.Field):
    """Comma-separated values; with ``choices`` every value must be one of them."""

    def __init__(self, *args, choices=None, max_items: int = 100, max_length: int = 255, lower=False, **kwargs):
        self.allowed = [c[0] if isinstance(c, tuple | list) else c for c in choices] if choices else None
        self.max_items = max_items
        self.max_item_length = max_length
        self.lower = lower
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if value in (None, ""):
            return None
        if "\x00" in str(value):
            # PostgreSQL text cannot hold NUL: refused here as forms.CharField does, never a database error.
            raise forms.ValidationError("Null characters are not allowed.")
        items = [item.strip() for item in str(value).split(",") if item.strip()]
        if self.lower:
            items = [item.lower() for item in items]
        if not items:
            return None
        if len(items) > self.max_items:
            raise forms.ValidationError(f"At most {self.max_items} values")
        if any(len(item) > self.max_item_length for item in items):
            raise forms.ValidationError(f"Values are at most {self.max_item_length} characters")
        if self.allowed is not None:
            bad = [item for item in items if item not in self.allowed]
            if bad:
                raise forms.ValidationError(
                    f"Invalid value(s) {', '.join(bad)}; expected one of {', '.join(self.allowed)}"
                )
        return list(dict.fromkeys(items))


class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField


class InstantFilter(django_filters.Filter):
    field_class = InstantField


class ListFilter(django_filters.Filter):
    """``field__in`` over a comma list (any-of)."""

    field_class = CommaListField

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__in": value})


class StrictFilterSet(django_filters.FilterSet):
    """A FilterSet whose invalid input raises the 422 of CONTRACT §0.6, and whose date range is checked."""

    date_range: tuple[str, str] | None = ("start_date", "end_date")

    @property
    def qs(self):
        if not self.is_valid():
            raise ValidationError(_form_errors(self.form))
        check_date_range(self.form.cleaned_data, self.date_range)
        return super().qs


def _form_errors(form: forms.Form) -> dict[str, list[str]]:
    return {field: [e["message"] for e in errors] for field, errors in form.errors.get_json_data().items()}


def check_date_range(cleaned: dict, names: tuple[str, str] | None) -> None:
    if not names:
        return
    start, end = cleaned.get(names[0]), cleaned.get(names[1])
    if start and end and start > end:
        raise BadRequest(f"{names[0]} must not be later than {names[1]}")


def validate_query(request, form_class: type[forms.Form]) -> dict:
    """Validate query parameters that are not filters (e.g. ``days``) with a plain Django form."""
    form = form_class(request.query_params)
    if not form.is_valid():
        raise ValidationError(_form_errors(form))
    return form.cleaned_data
