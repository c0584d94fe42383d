"""Search query parsing, its websearch_to_tsquery form and the fallback's highlight marking (CONTRACT §2.6)."""

from __future__ import annotations

import pytest

from events.search import Literal, fallback_highlights, mark_text, parse_query


def groups(text: str) -> list[list[str]]:
    """Each AND-group as readable literals: ``-word``, ``"a phrase"``."""
    return [[literal.websearch() for literal in group] for group in parse_query(text).groups]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sad cat", [["sad", "cat"]]),
        ("sad cat OR dog", [["sad", "cat"], ["dog"]]),  # NOT > AND > OR, as websearch_to_tsquery
        ("dog OR sad cat", [["dog"], ["sad", "cat"]]),
        ("a OR b OR c", [["a"], ["b"], ["c"]]),
        ('"front door" person', [['"front door"', "person"]]),
        ("cat NOT sad", [["cat", "-sad"]]),
        ("cat -sad", [["cat", "-sad"]]),
        ('cat -"sad cat"', [["cat", '-"sad cat"']]),
        ('NOT "sad   cat"', [['-"sad cat"']]),
        ("cat AND dog", [["cat", "dog"]]),
        ("cat or dog and not bird", [["cat", '"or"', "dog", "and", "not", "bird"]]),  # operators are upper case only
        ("x-ray --cat", [["x-ray", "-cat"]]),  # inner hyphens kept, leading ones negate
        ("front_door, cam#2!", [["front", "door", "cam", "2"]]),  # other characters separate
        ('"single"', [["single"]]),  # a one-word phrase is a word
        ('"unterminated phrase', [['"unterminated phrase"']]),  # the phrase runs to the end
        ("OR cat OR OR dog OR", [["cat"], ["dog"]]),  # stray ORs are ignored
        ("cat NOT OR dog", [["cat"], ["dog"]]),  # a NOT without its term is dropped
        ("cat - dog", [["cat", "dog"]]),  # a lone dash negates nothing
        ("Café ÜBER", [["Café", "ÜBER"]]),
    ],
)
def test_parse_follows_websearch_precedence(text, expected):
    assert groups(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "!!!", '""', "OR AND NOT", "- --", "NOT"])
def test_queries_without_terms_are_empty(text):
    assert parse_query(text).is_empty


def test_websearch_text_normalises_not_and_drops_and():
    query = parse_query('sad AND cat OR NOT "big dog" -bird')

    assert query.websearch_text() == 'sad cat OR -"big dog" -bird'


def test_positive_terms_are_distinct_and_case_insensitive():
    query = parse_query('Cat OR cat dog -bird OR "cat"')

    assert [literal.text for literal in query.positives] == ["Cat", "dog"]
    assert parse_query("-cat NOT dog").positives == ()
    assert Literal("a b", phrase=True, negated=True).websearch() == '-"a b"'


def test_mark_text_escapes_html_and_marks_every_match_case_insensitively():
    marked = mark_text("Cat <b>&</b> CAT catalogue", ["cat"])

    assert marked == "<mark>Cat</mark> &lt;b&gt;&amp;&lt;/b&gt; <mark>CAT</mark> <mark>cat</mark>alogue"
    assert mark_text("dog", ["cat"]) is None
    assert mark_text("", ["cat"]) is None


def test_mark_text_merges_overlapping_matches():
    assert mark_text("front door", ["front door", "door"]) == "<mark>front door</mark>"


def test_fragments_keep_only_the_text_around_matches():
    text = "a" * 200 + " cat " + "b" * 200

    fragment = mark_text(text, ["cat"], fragment=True)

    assert fragment.startswith("… ") and fragment.endswith(" …")
    assert "<mark>cat</mark>" in fragment and len(fragment) < 160


def test_fallback_highlights_only_fields_with_positive_matches():
    query = parse_query("parcel -dog")
    fields = {"summary": "Dog with parcel", "reasoning": "Nothing here", "notes": None}

    assert fallback_highlights(query, fields) == {"summary": "Dog with <mark>parcel</mark>"}
    assert fallback_highlights(parse_query("-parcel"), fields) == {}
