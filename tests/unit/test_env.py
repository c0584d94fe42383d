"""hsi/env.py: every reader rejects an invalid value with a message naming the variable (CONTRACT §7)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from hsi.env import env_bool, env_choice, env_float, env_int, env_list, env_rate, env_str


def test_unset_and_blank_values_fall_back_to_the_default():
    assert env_str("HSI_X", "fallback", environ={}) == "fallback"
    assert env_str("HSI_X", "fallback", environ={"HSI_X": "   "}) == "fallback"
    assert env_int("HSI_X", 7, environ={"HSI_X": ""}) == 7
    assert env_bool("HSI_X", True, environ={}) is True


def test_values_are_trimmed():
    assert env_str("HSI_X", environ={"HSI_X": "  value  "}) == "value"
    assert env_int("HSI_X", 0, environ={"HSI_X": " 42 "}) == 42


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("FALSE", False), ("0", False)])
def test_booleans_accept_the_contract_spellings(raw, expected):
    assert env_bool("HSI_FLAG", not expected, environ={"HSI_FLAG": raw}) is expected


@pytest.mark.parametrize(
    ("reader", "raw"),
    [
        (lambda env: env_bool("HSI_FLAG", False, environ=env), "maybe"),
        (lambda env: env_int("HSI_FLAG", 1, environ=env), "1.5"),
        (lambda env: env_int("HSI_FLAG", 1, environ=env), "ten"),
        (lambda env: env_float("HSI_FLAG", 1.0, environ=env), "fast"),
        (lambda env: env_choice("HSI_FLAG", "auto", ("auto", "http"), environ=env), "grpc"),
        (lambda env: env_rate("HSI_FLAG", "60/min", environ=env), "sixty"),
        (lambda env: env_rate("HSI_FLAG", "60/min", environ=env), "0/min"),
        (lambda env: env_rate("HSI_FLAG", "60/min", environ=env), "60/"),
        (lambda env: env_rate("HSI_FLAG", "60/min", environ=env), "60/fortnight"),
    ],
    ids=["bool", "int-float", "int-word", "float", "choice", "rate-word", "rate-zero", "rate-no-period", "rate-period"],
)
def test_invalid_values_raise_improperly_configured_naming_the_variable(reader, raw):
    with pytest.raises(ImproperlyConfigured) as caught:
        reader({"HSI_FLAG": raw})

    assert "HSI_FLAG" in str(caught.value)
    assert raw in str(caught.value)


@pytest.mark.parametrize(
    ("reader", "raw"),
    [
        (lambda env: env_int("HSI_PORT", 8000, minimum=1, maximum=65535, environ=env), "0"),
        (lambda env: env_int("HSI_PORT", 8000, minimum=1, maximum=65535, environ=env), "70000"),
        (lambda env: env_float("HSI_RATIO", 0.5, minimum=0, maximum=1, environ=env), "1.01"),
        (lambda env: env_float("HSI_RATIO", 0.5, minimum=0, maximum=1, environ=env), "-0.1"),
    ],
)
def test_out_of_range_numbers_raise_naming_the_variable(reader, raw):
    with pytest.raises(ImproperlyConfigured) as caught:
        reader({"HSI_PORT": raw, "HSI_RATIO": raw})

    assert ("HSI_PORT" in str(caught.value)) or ("HSI_RATIO" in str(caught.value))


def test_range_bounds_are_inclusive():
    assert env_int("HSI_PORT", 8000, minimum=1, maximum=65535, environ={"HSI_PORT": "65535"}) == 65535
    assert env_float("HSI_RATIO", 0.5, minimum=0, maximum=1, environ={"HSI_RATIO": "0"}) == 0.0


def test_choice_is_case_insensitive_and_lowercased():
    assert env_choice("HSI_MODE", "auto", ("auto", "polling"), environ={"HSI_MODE": "POLLING"}) == "polling"


def test_list_splits_on_commas_and_drops_blanks():
    assert env_list("HSI_LIST", "a,b", environ={"HSI_LIST": " x, ,y,, z "}) == ["x", "y", "z"]
    assert env_list("HSI_LIST", "a,b", environ={}) == ["a", "b"]


def test_rate_accepts_every_period_spelling_drf_understands():
    for rate in ("60/min", "5/s", "100/hour", "1000/day", "10/m"):
        assert env_rate("HSI_RATE", "60/min", environ={"HSI_RATE": rate}) == rate


def test_process_environment_is_read_when_no_mapping_is_given(monkeypatch):
    monkeypatch.setenv("HSI_TEST_ONLY_VALUE", "17")

    assert env_int("HSI_TEST_ONLY_VALUE", 0) == 17


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_non_finite_floats_are_rejected(raw):
    with pytest.raises(ImproperlyConfigured, match="RETRY_JITTER"):
        env_float("RETRY_JITTER", 0.25, minimum=0, environ={"RETRY_JITTER": raw})
