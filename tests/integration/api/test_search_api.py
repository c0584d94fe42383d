"""GET /api/search: query syntax, relevance, highlights, filters, ordering and validation (CONTRACT §2.6, §1.7),
on PostgreSQL full-text search and on the substring fallback used by SQLite (run here over the same rows)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection

from events.models import Event
from events.search import full_text_matches, parse_query, search_page
from hsi.api.json_sql import envelope_json
from hsi.api.pagination import PageRequest
from tests.factories import CameraFactory, EventFactory
from tests.problems import error_fields, problem

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL full-text search")


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def event(summary: str, minutes: float = 0, **fields):
    return EventFactory(summary=summary, reasoning=fields.pop("reasoning", ""), started_at=at(minutes), **fields)


def search(api_client, q: str, **params):
    response = api_client.get("/api/search", {"q": q, **params})
    assert response.status_code == 200, response.content
    return response.json()


def ids(body) -> list[int]:
    return [item["id"] for item in body["items"]]


@pytest.fixture
def corpus():
    """Events whose summaries exercise AND, OR, NOT and phrases (no stop words: CONTRACT §10)."""
    return {
        "sad_cat": event("Sad cat sitting near porch", 1),
        "cat": event("Cat crossing garden lawn", 2),
        "dog": event("Dog barking loudly", 3),
        "sad_dog": event("Sad dog waiting patiently", 4),
        "cat_sad": event("Cat looked sad", 5),
    }


def rendered(body: dict) -> dict:
    """The page as the client sees it (PostgreSQL items are pre-rendered JSON text)."""
    return json.loads(envelope_json(body))


def full_text_and_fallback(q: str, **params):
    """The ids returned by PostgreSQL search and by the fallback for the same query, as sets."""
    query, page = parse_query(q), PageRequest(limit=100, offset=0)
    results = []
    for full_text in (True, False) if connection.vendor == "postgresql" else (False,):
        body = rendered(search_page(query, page, full_text=full_text))
        results.append({item["id"] for item in body["items"]})
    return results


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("sad cat", {"sad_cat", "cat_sad"}),  # bare words: AND, any order
        ('"sad cat"', {"sad_cat"}),  # phrase: adjacent, in order
        ("sad cat OR dog", {"sad_cat", "cat_sad", "dog", "sad_dog"}),  # (sad AND cat) OR dog
        ("dog OR sad cat", {"sad_cat", "cat_sad", "dog", "sad_dog"}),
        ("cat NOT sad", {"cat"}),
        ("cat -sad", {"cat"}),
        ('cat -"sad cat"', {"cat", "cat_sad"}),
        ("sad AND dog", {"sad_dog"}),  # AND is accepted and ignored
        ("sad, dog!", {"sad_dog"}),  # punctuation separates terms
        ("cat OR", {"sad_cat", "cat", "cat_sad"}),  # a dangling OR is ignored
    ],
)
def test_query_syntax_on_full_text_and_fallback(corpus, q, expected):
    want = {corpus[name].id for name in expected}

    for found in full_text_and_fallback(q):
        assert found == want, q


@postgres_only
def test_lower_case_or_is_a_word_not_an_operator_on_postgres(api_client, corpus):
    # websearch_to_tsquery alone would read "cat or dog" as cat OR dog; §2.6 makes only upper-case OR an operator
    body = search(api_client, "cat or sad")

    assert set(ids(body)) == {corpus["sad_cat"].id, corpus["cat_sad"].id}  # "or" is a stop word: cat AND sad


def test_api_returns_list_items_with_relevance_and_highlights(api_client, corpus):
    body = search(api_client, "barking")

    assert ids(body) == [corpus["dog"].id]
    item = body["items"][0]
    assert item["relevance_score"] == 1.0
    assert item["highlights"]["summary"] == "Dog <mark>barking</mark> loudly"
    assert item["camera_id"] == corpus["dog"].camera_id and "reasoning" not in item
    assert body["pagination"] == {"total": 1, "limit": 50, "offset": 0, "next_cursor": None, "has_more": False}


@postgres_only
def test_postgres_stems_and_ranks_best_hit_first(api_client):
    weak = event("Vehicle parked outside", 1, reasoning="Someone was running past the gate")
    strong = event("Person running towards door", 2)
    event("Quiet night", 3)

    body = search(api_client, "runs")

    assert ids(body) == [strong.id, weak.id]  # summary (weight A) outranks reasoning (weight C)
    scores = [item["relevance_score"] for item in body["items"]]
    assert scores[0] == 1.0 and 0 < scores[1] < 1.0
    assert body["items"][0]["highlights"]["summary"] == "Person <mark>running</mark> towards door"
    assert "<mark>running</mark>" in body["items"][1]["highlights"]["reasoning"]


def test_fallback_score_is_the_fraction_of_positive_terms_found(corpus):
    body = rendered(search_page(parse_query("barking OR patiently OR zebra"), PageRequest(50, 0), full_text=False))

    assert {item["id"]: item["relevance_score"] for item in body["items"]} == {
        corpus["dog"].id: 0.3333,
        corpus["sad_dog"].id: 0.3333,
    }
    assert ids(body) == [corpus["sad_dog"].id, corpus["dog"].id]  # ties: newest first
    assert body["items"][0]["highlights"] == {"summary": "Sad dog waiting <mark>patiently</mark>"}


def test_only_negative_terms_match_everything_else_with_score_one(api_client, corpus):
    body = search(api_client, "-cat -dog")

    assert ids(body) == []
    body = search(api_client, "NOT barking")
    assert set(ids(body)) == {corpus[name].id for name in ("sad_cat", "cat", "sad_dog", "cat_sad")}
    assert {item["relevance_score"] for item in body["items"]} == {1.0}
    assert ids(body) == sorted(ids(body), reverse=True)  # started_at desc


def test_negation_keeps_events_with_null_notes(corpus):
    corpus["cat"].notes = None
    corpus["cat"].save()

    for found in full_text_and_fallback("cat -sad"):
        assert found == {corpus["cat"].id}


def test_searches_camera_name_object_types_and_notes(api_client):
    garage = CameraFactory(id="garage", name="Garage")
    by_camera = event("Motion", 1, camera=garage)
    by_type = event("Motion", 2, object_types="bicycle,person")
    by_notes = event("Motion", 3, notes="Neighbour collecting parcel")

    for q, expected in (("garage", by_camera), ("bicycle", by_type), ("parcel", by_notes)):
        assert ids(search(api_client, q)) == [expected.id]
        for found in full_text_and_fallback(q):
            assert found == {expected.id}


def test_filters_narrow_the_hits(api_client):
    front = CameraFactory(id="front", name="Front")
    a = event("Package delivered", 1, camera=front, risk_level="high", risk_score=70, reviewed=True)
    b = event("Package stolen", 2, risk_level="critical", risk_score=90, flagged=True, analysis_status="llm")
    c = event("Package moved", 60 * 24 * 3, object_types="car", risk_level="low")

    assert ids(search(api_client, "package", camera_id="front")) == [a.id]
    assert ids(search(api_client, "package", risk_level="high,critical")) == [b.id, a.id]
    assert ids(search(api_client, "package", severity="critical")) == [b.id]
    assert ids(search(api_client, "package", reviewed="true")) == [a.id]
    assert ids(search(api_client, "package", flagged="yes")) == [b.id]
    assert ids(search(api_client, "package", analysis_status="llm")) == [b.id]
    assert ids(search(api_client, "package", object_type="car")) == [c.id]
    assert ids(search(api_client, "package", start_date="2024-05-02")) == [c.id]
    assert ids(search(api_client, "package", end_date="2024-05-01")) == [b.id, a.id]


def test_soft_deleted_events_are_not_found(api_client):
    event("Ladder against wall", 1, deleted_at=at(2))

    assert search(api_client, "ladder")["pagination"]["total"] == 0


def test_paging_orders_by_relevance_then_newest(api_client):
    hits = [event("Raccoon near bins", minutes) for minutes in range(5)]

    first = search(api_client, "raccoon", limit=2)
    rest = search(api_client, "raccoon", limit=2, offset=4)
    past = search(api_client, "raccoon", limit=2, offset=10)
    far = search(api_client, "raccoon", offset=2**63)

    assert ids(first) == [hits[4].id, hits[3].id] and first["pagination"]["has_more"] is True
    assert first["pagination"]["total"] == 5
    assert ids(rest) == [hits[0].id] and rest["pagination"]["has_more"] is False
    assert past["items"] == [] and past["pagination"]["total"] == 5
    assert far["items"] == [] and far["pagination"]["total"] == 5


@pytest.mark.parametrize("q", ["!!!", '""', "OR AND NOT", "-"])
def test_query_without_terms_returns_an_empty_page(api_client, corpus, q):
    body = search(api_client, q)

    assert body["items"] == [] and body["pagination"]["total"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "x" * 501}, "q"),
        ({"q": "cat", "risk_level": "high,extreme"}, "risk_level"),
        ({"q": "cat", "severity": "bad"}, "severity"),
        ({"q": "cat", "analysis_status": "magic"}, "analysis_status"),
        ({"q": "cat", "reviewed": "maybe"}, "reviewed"),
        ({"q": "cat", "start_date": "yesterday"}, "start_date"),
        ({"q": "cat", "limit": "101"}, "limit"),
        ({"q": "cat", "limit": "0"}, "limit"),
        ({"q": "cat", "offset": "-1"}, "offset"),
    ],
)
def test_invalid_parameters_are_422_naming_the_field(api_client, params, field):
    response = api_client.get("/api/search", params)

    assert field in error_fields(response)


def test_query_of_500_characters_is_accepted(api_client):
    assert api_client.get("/api/search", {"q": "cat " * 125}).status_code == 200


def test_inverted_dates_are_400(api_client):
    response = api_client.get("/api/search", {"q": "cat", "start_date": "2024-05-02", "end_date": "2024-05-01"})

    assert "start_date" in problem(response, 400, "bad_request")["detail"]


@postgres_only
def test_search_uses_the_gin_index():
    camera = CameraFactory()
    # enough other rows that reading every live row (the partial started_at index) costs more than the GIN
    # lookup, whatever dead index entries earlier tests left behind
    Event.objects.bulk_create(
        Event(camera=camera, summary=f"Motion {n}", started_at=at(n), ended_at=at(n), analysis_status="rules")
        for n in range(2000)
    )
    EventFactory.create_batch(3, camera=camera, summary="Fox digging")
    sql, params = full_text_matches(parse_query("fox digging OR badger -cat")).query.sql_with_params()

    with connection.cursor() as cursor:
        # steady state: the GIN pending list merged (as autovacuum does) and statistics current
        cursor.execute("SELECT gin_clean_pending_list('events_search_vector_gin')")
        cursor.execute("ANALYZE events_event")
        cursor.execute("SET LOCAL enable_seqscan = off")  # small tables are otherwise read whole
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "Bitmap Index Scan on events_search_vector_gin" in plan, plan
