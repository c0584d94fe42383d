"""Query-parameter parsing of CONTRACT §0.3–0.4: booleans, instants, comma lists, filter sets."""

from __future__ import annotations

import datetime as dt

import pytest
from django import forms
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from events.models import Event
from hsi.api.errors import BadRequest
from hsi.api.filters import (
    CommaListField,
    InstantField,
    InstantFilter,
    ListFilter,
    StrictBooleanField,
    StrictBooleanFilter,
    StrictFilterSet,
    check_date_range,
    parse_bool,
    parse_instant,
    validate_query,
)

UTC = dt.UTC


# --- parse_bool --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["true", "TRUE", "True", "1", "yes", "YES", " yes "])
def test_truthy_values(text):
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["false", "FALSE", "0", "no", "No"])
def test_falsy_values(text):
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "on", "off", "y", "n", "2", "truthy", "t", "none", "null"])
def test_other_boolean_values_are_rejected(text):
    with pytest.raises(forms.ValidationError):
        parse_bool(text)


def test_strict_boolean_field_treats_absent_as_none():
    field = StrictBooleanField(required=False)

    assert field.clean("") is None
    assert field.clean(None) is None
    assert field.clean("yes") is True


# --- parse_instant -----------------------------------------------------------------------------------------


def test_date_only_start_is_midnight_utc():
    assert parse_instant("2024-05-06") == dt.datetime(2024, 5, 6, 0, 0, 0, tzinfo=UTC)


def test_date_only_end_is_the_last_microsecond_of_the_day():
    assert parse_instant("2024-05-06", end_of_day=True) == dt.datetime(2024, 5, 6, 23, 59, 59, 999999, tzinfo=UTC)


def test_end_of_day_does_not_change_a_datetime():
    assert parse_instant("2024-05-06T10:15:00Z", end_of_day=True) == dt.datetime(2024, 5, 6, 10, 15, tzinfo=UTC)


def test_naive_datetime_is_utc():
    assert parse_instant("2024-05-06T10:15:30") == dt.datetime(2024, 5, 6, 10, 15, 30, tzinfo=UTC)


def test_space_separator_and_fractional_seconds_are_accepted():
    assert parse_instant("2024-05-06 10:15:30.250") == dt.datetime(2024, 5, 6, 10, 15, 30, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-06T12:00:00+02:00", dt.datetime(2024, 5, 6, 10, 0, tzinfo=UTC)),
        ("2024-05-06T00:30:00-05:00", dt.datetime(2024, 5, 6, 5, 30, tzinfo=UTC)),
        ("2024-05-06T10:00:00Z", dt.datetime(2024, 5, 6, 10, 0, tzinfo=UTC)),
    ],
)
def test_offsets_are_converted_to_utc(text, expected):
    result = parse_instant(text)

    assert result == expected and result.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    "text",
    ["yesterday", "2024-13-01", "2024-02-30", "2024-05-06T25:00", "06/05/2024", "", "0001-01-01T00:00:00+05:00"],
)
def test_unparsable_or_out_of_range_instants_are_rejected(text):
    with pytest.raises(forms.ValidationError):
        parse_instant(text)


def test_instant_field_passes_end_of_day_to_the_parser():
    assert InstantField(end_of_day=True, required=False).clean("2024-05-06").microsecond == 999999
    assert InstantField(required=False).clean("2024-05-06").hour == 0
    assert InstantField(required=False).clean("") is None


# --- CommaListField ----------------------------------------------------------------------------------------


def test_comma_list_drops_blanks_trims_and_deduplicates():
    assert CommaListField(required=False).clean(" front_door, ,garage,,front_door ") == ["front_door", "garage"]


def test_comma_list_of_only_blanks_is_absent():
    assert CommaListField(required=False).clean(" , ,") is None
    assert CommaListField(required=False).clean("") is None


def test_comma_list_with_choices_accepts_every_valid_value():
    field = CommaListField(choices=[("low", "Low"), ("high", "High")], required=False)

    assert field.clean("high,low") == ["high", "low"]


def test_comma_list_with_choices_rejects_if_any_value_is_invalid():
    field = CommaListField(choices=["low", "high"], required=False)

    with pytest.raises(forms.ValidationError) as caught:
        field.clean("low,extreme,bogus")

    assert "extreme" in str(caught.value) and "bogus" in str(caught.value)


def test_comma_list_lowercases_before_checking_choices_when_asked():
    field = CommaListField(choices=["person", "car"], lower=True, required=False)

    assert field.clean("Person,CAR") == ["person", "car"]
    with pytest.raises(forms.ValidationError):
        CommaListField(choices=["person"], required=False).clean("Person")


def test_comma_list_limits_count_and_length():
    with pytest.raises(forms.ValidationError):
        CommaListField(max_items=2, required=False).clean("a,b,c")
    with pytest.raises(forms.ValidationError):
        CommaListField(max_length=3, required=False).clean("abcd")


# --- Filter sets -------------------------------------------------------------------------------------------


class _EventFilter(StrictFilterSet):
    reviewed = StrictBooleanFilter(field_name="reviewed")
    level = ListFilter(field_name="risk_level", choices=["low", "high"])
    start_date = InstantFilter(field_name="started_at", lookup_expr="gte")
    end_date = InstantFilter(field_name="started_at", lookup_expr="lte", end_of_day=True)

    class Meta:
        model = Event
        fields: list = []


def _form(query: dict) -> forms.Form:
    return _EventFilter(data=query, queryset=Event.objects.all()).form


def test_filterset_cleans_each_kind_of_parameter():
    form = _form({"reviewed": "no", "level": "high,low", "start_date": "2024-05-01", "end_date": "2024-05-02"})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["reviewed"] is False
    assert form.cleaned_data["level"] == ["high", "low"]
    assert form.cleaned_data["start_date"] == dt.datetime(2024, 5, 1, tzinfo=UTC)
    assert form.cleaned_data["end_date"] == dt.datetime(2024, 5, 2, 23, 59, 59, 999999, tzinfo=UTC)


def test_invalid_filter_values_raise_a_422_validation_error_per_field():
    filterset = _EventFilter(data={"reviewed": "maybe", "level": "extreme", "start_date": "soon"})

    with pytest.raises(ValidationError) as caught:
        _ = filterset.qs

    assert set(caught.value.detail) == {"reviewed", "level", "start_date"}


def test_inverted_date_range_is_400_naming_both_parameters():
    with pytest.raises(BadRequest) as caught:
        check_date_range(
            {"start_date": dt.datetime(2024, 5, 3, tzinfo=UTC), "end_date": dt.datetime(2024, 5, 2, tzinfo=UTC)},
            ("start_date", "end_date"),
        )

    assert caught.value.status_code == 400
    assert "start_date" in str(caught.value.detail) and "end_date" in str(caught.value.detail)


def test_same_day_range_is_valid_because_end_is_end_of_day():
    form = _form({"start_date": "2024-05-02", "end_date": "2024-05-02"})
    assert form.is_valid()

    check_date_range(form.cleaned_data, ("start_date", "end_date"))  # no error


def test_validate_query_returns_cleaned_data_or_raises_422():
    class DaysForm(forms.Form):
        days = forms.IntegerField(min_value=1, max_value=90, required=False)

    good = Request(APIRequestFactory().get("/api/x?days=7"))
    bad = Request(APIRequestFactory().get("/api/x?days=0"))

    assert validate_query(good, DaysForm) == {"days": 7}
    with pytest.raises(ValidationError) as caught:
        validate_query(bad, DaysForm)
    assert list(caught.value.detail) == ["days"]


def test_filterset_queryset_applies_every_filter_without_touching_the_database():
    filterset = _EventFilter(data={"reviewed": "1", "level": "low,high", "end_date": "2024-05-02"})

    sql, params = filterset.qs.query.sql_with_params()

    where = sql.split(" WHERE ", 1)[1]
    assert '"events_event"."reviewed"' in where and '"events_event"."risk_level" IN' in where
    assert "low" in params and "high" in params
    assert dt.datetime(2024, 5, 2, 23, 59, 59, 999999, tzinfo=UTC) in params


def test_filterset_with_inverted_dates_raises_400_on_qs():
    filterset = _EventFilter(data={"start_date": "2024-05-03", "end_date": "2024-05-02T23:00:00Z"})

    with pytest.raises(BadRequest):
        _ = filterset.qs
