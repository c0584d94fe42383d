"""Parsing LLM completions (CONTRACT §4.6.2, §10): a corpus of what models really answer."""

from __future__ import annotations

import json

import pytest

from pipeline.analyzers.parsing import coerce_number, parse_output
from tests.fakes.llm_server import verdict_json

CLEAN = verdict_json(42, "medium", "A person at the door.", reasoning="Daytime visit.", recommended_action="Look")


def test_a_clean_object_is_ok_with_every_field():
    parsed = parse_output(CLEAN)
    assert parsed.status == "ok"
    assert parsed.error == ""
    assert (parsed.risk_score, parsed.raw_score, parsed.raw_level) == (42, 42, "medium")
    assert (parsed.summary, parsed.reasoning, parsed.recommended_action) == (
        "A person at the door.",
        "Daytime visit.",
        "Look",
    )


@pytest.mark.parametrize(
    "text",
    [
        f"<think>The person is at the door {{not json}}. Score maybe 80?</think>{CLEAN}",
        f'<think>first</think>\n<THINK>second {{"risk_score": 99}}</THINK>\n{CLEAN}\n',
        f"```json\n{CLEAN}\n```",
        f"<think>hmm</think>\n```\n{CLEAN}\n```",
        f"  \n{CLEAN}\n  ",
    ],
    ids=["think", "two-think-blocks", "fence", "think-and-bare-fence", "whitespace"],
)
def test_think_blocks_and_fences_are_removed_and_still_ok(text):
    parsed = parse_output(text)
    assert (parsed.status, parsed.risk_score) == ("ok", 42)


def test_an_unterminated_think_loses_only_its_tag():
    parsed = parse_output(f"<think>The model ran out of thinking budget but answered {CLEAN}")
    assert (parsed.status, parsed.risk_score) == ("repaired", 42)  # extracted from the surrounding text


def test_text_around_the_object_makes_it_repaired():
    parsed = parse_output(f"Here is my assessment:\n{CLEAN}\nLet me know if you need more.")
    assert (parsed.status, parsed.risk_score, parsed.summary) == ("repaired", 42, "A person at the door.")


def test_of_several_objects_the_last_with_a_risk_score_wins():
    first = verdict_json(10, "low", "first")
    last = verdict_json(70, "high", "last")
    parsed = parse_output(f'{first}\n{{"note": "x"}}\n{last}\n{{"other": 1}}')
    assert (parsed.status, parsed.risk_score, parsed.summary) == ("repaired", 70, "last")


def test_without_any_risk_score_the_first_parsable_object_is_taken_and_fails():
    parsed = parse_output('{"summary": "no score"} {"risk_level": "low"}')
    assert parsed.status == "failed"
    assert "risk_score" in parsed.error
    assert parsed.risk_score is None


def test_braces_inside_strings_do_not_break_object_boundaries():
    text = json.dumps({"risk_score": 30, "summary": "A {curly} summary with } and {", "reasoning": 'quote \\" ok'})
    parsed = parse_output(text)
    assert (parsed.status, parsed.risk_score, parsed.summary) == ("ok", 30, "A {curly} summary with } and {")


def test_an_unbalanced_brace_in_prose_does_not_hide_the_object():
    parsed = parse_output(f"Note: {{ I think it is fine.\n{CLEAN}")
    assert (parsed.status, parsed.risk_score) == ("repaired", 42)


def test_a_trailing_comma_is_repaired():
    parsed = parse_output('{"risk_score": 55, "summary": "Car idling.",}')
    assert (parsed.status, parsed.risk_score, parsed.summary) == ("repaired", 55, "Car idling.")


@pytest.mark.parametrize(
    ("value", "score", "raw"),
    [
        (72.4, 72, 72),
        (72.5, 73, 73),
        (72.6, 73, 73),
        ("64", 64, 64),
        (" 64.5 ", 65, 65),
        (150, 100, 150),
        (-5, 0, -5),
        ("1e3", 100, 1000),
        (1e300, 100, 2**31 - 1),
    ],
)
def test_scores_are_coerced_then_clamped_and_marked_repaired(value, score, raw):
    parsed = parse_output(json.dumps({"risk_score": value, "summary": "s"}))
    assert (parsed.status, parsed.risk_score, parsed.raw_score) == ("repaired", score, raw)


@pytest.mark.parametrize("value", [0, 100])
def test_boundary_integers_are_clean(value):
    assert parse_output(json.dumps({"risk_score": value})).status == "ok"


@pytest.mark.parametrize("value", ["high", "72/100", None, True, [50], {"v": 1}, "NaN", "inf"])
def test_a_non_numeric_score_fails(value):
    parsed = parse_output(json.dumps({"risk_score": value, "risk_level": "high"}))
    assert parsed.status == "failed"
    assert "not numeric" in parsed.error
    assert parsed.raw_level == "high"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_numbers_fail(number):
    assert parse_output(f'{{"risk_score": {number}}}').status == "failed"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "I cannot help with that.", "[1, 2, 3]", '{"risk_score": 50', "<think>only thinking", "{}{}{"],
    ids=["empty", "blank", "refusal", "array", "unterminated", "only-think", "empty-objects"],
)
def test_garbage_fails(text):
    parsed = parse_output(text)
    assert parsed.status == "failed"
    assert parsed.error
    assert parsed.risk_score is None


def test_missing_optional_fields_are_left_to_the_caller():
    parsed = parse_output('{"risk_score": 12}')
    assert parsed.status == "ok"
    assert (parsed.summary, parsed.reasoning, parsed.recommended_action, parsed.raw_level) == (None, "", None, None)


def test_text_fields_are_trimmed_and_long_ones_truncated_as_a_repair():
    parsed = parse_output(json.dumps({"risk_score": 5, "summary": "  padded  "}))
    assert (parsed.status, parsed.summary) == ("ok", "padded")
    long = parse_output(
        json.dumps({"risk_score": 5, "summary": "s" * 1200, "reasoning": "r" * 5000, "recommended_action": "a" * 600})
    )
    assert long.status == "repaired"
    assert (len(long.summary), len(long.reasoning), len(long.recommended_action)) == (1000, 4000, 500)


def test_non_string_text_fields_are_coerced():
    parsed = parse_output(json.dumps({"risk_score": 5, "reasoning": ["a", "b"], "summary": 7}))
    assert (parsed.status, parsed.reasoning, parsed.summary) == ("repaired", "a b", "7")


def test_returned_level_is_informational_and_bounded():
    parsed = parse_output(json.dumps({"risk_score": 90, "risk_level": "extremely-low-really-truly"}))
    assert parsed.risk_score == 90
    assert parsed.raw_level == "extremely-low-really"


@pytest.mark.parametrize(
    ("value", "number"), [(3, 3.0), (4.5, 4.5), ("2", 2.0), (True, None), ("x", None), (None, None), ([], None)]
)
def test_coerce_number(value, number):
    assert coerce_number(value) == number
