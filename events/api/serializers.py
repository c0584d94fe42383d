"""Input schemas of the event and detection endpoints: query filters (CONTRACT §0.3–0.5, §2.4, §2.5) and the
event PATCH body. Output is built as plain dicts by ``events.selectors`` (DESIGN §6)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from events import selectors
from events.models import AnalysisStatus, MediaType, RiskLevel
from hsi.api.errors import BadRequest
from hsi.api.filters import CommaListField, InstantField, StrictBooleanField, check_date_range

# --- Query filters ----------------------------------------------------------------------------------------------
#
# The list endpoints are the hot path (DESIGN §6): a django-filter FilterSet deep-copies its filters and builds a
# form with translated labels on every request, which costs more CPU than the page query. These schemas reuse the
# same field classes and rules (hsi.api.filters) but build each field once, and parse only the parameters sent.


@dataclass(frozen=True)
class Param:
    """One query parameter: its form field (built once), and the lookup or function that applies its value."""

    field: forms.Field
    apply: str | Callable[[QuerySet, Any], QuerySet]


class QueryFilters:
    """Validated query filters: unparsable values are 422 (all at once), ``start_date > end_date`` is 400."""

    params: Mapping[str, Param] = {}
    date_range: tuple[str, str] | None = ("start_date", "end_date")

    def __init__(self, query_params: Mapping[str, str]):
        self.cleaned: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for name, param in self.params.items():
            raw = query_params.get(name)
            if raw is None or raw == "":
                continue
            try:
                value = param.field.clean(raw)
            except forms.ValidationError as error:
                errors[name] = error.messages
                continue
            if value is not None:
                self.cleaned[name] = value
        if errors:
            raise ValidationError(errors)
        check_date_range(self.cleaned, self.date_range)

    def apply(self, queryset: QuerySet) -> QuerySet:
        lookups = {}
        for name, value in self.cleaned.items():
            apply = self.params[name].apply
            if isinstance(apply, str):
                lookups[apply] = value
            else:
                queryset = apply(queryset, value)
        return queryset.filter(**lookups) if lookups else queryset


def _list(**kwargs) -> CommaListField:
    return CommaListField(required=False, **kwargs)


def _bool() -> StrictBooleanField:
    return StrictBooleanField(required=False)


def _start() -> InstantField:
    return InstantField(required=False)


def _end() -> InstantField:
    return InstantField(required=False, end_of_day=True)


def _score() -> forms.IntegerField:
    return forms.IntegerField(required=False, min_value=0, max_value=100)


def _any_object_type(queryset: QuerySet, classes: list[str]) -> QuerySet:
    return queryset.filter(selectors.object_types_any_of(classes))


class EventListFilters(QueryFilters):
    params = {
        "camera_id": Param(_list(max_length=64), "camera_id__in"),
        "risk_level": Param(_list(choices=RiskLevel.choices, lower=True), "risk_level__in"),
        "min_risk_score": Param(_score(), "risk_score__gte"),
        "max_risk_score": Param(_score(), "risk_score__lte"),
        "reviewed": Param(_bool(), "reviewed"),
        "flagged": Param(_bool(), "flagged"),
        "suppressed": Param(_bool(), "suppressed"),
        "is_fast_path": Param(_bool(), "is_fast_path"),
        "analysis_status": Param(_list(choices=AnalysisStatus.choices, lower=True), "analysis_status__in"),
        "object_type": Param(_list(max_length=64, lower=True), _any_object_type),
        "entity_id": Param(forms.UUIDField(required=False), selectors.with_entity),
        "start_date": Param(_start(), "started_at__gte"),
        "end_date": Param(_end(), "started_at__lte"),
    }

    def __init__(self, query_params: Mapping[str, str]):
        super().__init__(query_params)
        low, high = self.cleaned.get("min_risk_score"), self.cleaned.get("max_risk_score")
        if low is not None and high is not None and low > high:
            raise BadRequest("min_risk_score must not be greater than max_risk_score")

    @property
    def count_scopes(self) -> tuple[str, ...]:
        """Totals filtered by entity also depend on detection rows (``hsi.api.counts``)."""
        return ("events", "detections") if "entity_id" in self.cleaned else ("events",)


class EventStatsFilters(QueryFilters):
    params = {
        "camera_id": Param(forms.CharField(required=False, max_length=64), "camera_id"),
        "start_date": Param(_start(), "started_at__gte"),
        "end_date": Param(_end(), "started_at__lte"),
    }


class DetectionListFilters(QueryFilters):
    params = {
        "camera_id": Param(_list(max_length=64), "camera_id__in"),
        "object_type": Param(_list(max_length=64, lower=True), "object_type__in"),
        "min_confidence": Param(forms.FloatField(required=False, min_value=0, max_value=1), "confidence__gte"),
        "media_type": Param(_list(choices=MediaType.choices, lower=True), "media_type__in"),
        "event_id": Param(forms.IntegerField(required=False, min_value=1), "event_link__event_id"),
        "batch_id": Param(forms.UUIDField(required=False), "batch_id"),
        "entity_id": Param(forms.UUIDField(required=False), "entity_id"),
        "start_date": Param(_start(), "detected_at__gte"),
        "end_date": Param(_end(), "detected_at__lte"),
    }

    @property
    def count_scopes(self) -> tuple[str, ...]:
        """Totals filtered by event also depend on the event links, written with events."""
        return ("detections", "events") if "event_id" in self.cleaned else ("detections",)


class DetectionStatsFilters(QueryFilters):
    params = {
        "camera_id": Param(forms.CharField(required=False, max_length=64), "camera_id"),
        "start_date": Param(_start(), "detected_at__gte"),
        "end_date": Param(_end(), "detected_at__lte"),
    }


# --- PATCH body -------------------------------------------------------------------------------------------------


class JsonBooleanField(serializers.BooleanField):
    """A JSON boolean; strings and numbers are rejected."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class JsonIntegerField(serializers.IntegerField):
    """A JSON integer; strings, floats and booleans are rejected."""

    def to_internal_value(self, data):
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonStringField(serializers.CharField):
    """A JSON string; numbers are rejected."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class EventPatchSerializer(serializers.Serializer):
    reviewed = JsonBooleanField(required=False)
    flagged = JsonBooleanField(required=False)
    notes = JsonStringField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False, max_length=10000)
    snooze_until = serializers.DateTimeField(required=False, allow_null=True, default_timezone=dt.UTC)
    version = JsonIntegerField(required=False, min_value=1)
