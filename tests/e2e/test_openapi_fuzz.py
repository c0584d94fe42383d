"""The OpenAPI document against a live server (issue 5 "Done when"): schemathesis over real HTTP.

A daphne web process on the test database, with demo data and API-key auth on, throttling off; every operation
of ``/api/schema`` gets a bounded number of generated requests (valid and invalid, with ids that exist and ids
that do not), and every response must be no server error and conform to the document: a documented status, a
documented Content-Type, a body matching the documented schema, documented headers present. The fuzzing itself
is ``bench/schema_fuzz.py`` (``python -m bench.schema_fuzz`` runs it with more examples and prints the report).
"""

from __future__ import annotations

import pytest

from bench.schema_fuzz import fuzz

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

POSITIVE_EXAMPLES = 4
NEGATIVE_EXAMPLES = 2
POOL_MAX_SIZE = 10  # DATABASE_POOL_MAX_SIZE's default
RUN_DEADLINE_SECONDS = 120  # a bound, not a target: the run takes about a third of it


@pytest.fixture
def live_api(deployment, settings):
    """A web process serving demo data (cameras, events, detections with media, alerts) behind an API key."""
    from system.seeding import demo_seed
    from system.services import Actor, api_key_create

    settings.FOSCAM_BASE_PATH = str(deployment.foscam_root)
    demo_seed(cameras=2, events=12, days=3, clear_existing=False, create_media=True, actor=Actor.system("cli"))
    key = api_key_create("schema-fuzz").plaintext
    web = deployment.web(API_KEY_ENABLED="true", THROTTLE_ENABLED="false", LOG_LEVEL="warning")
    return web.base_url, key


def test_every_operation_answers_as_the_openapi_document_says(live_api):
    base_url, key = live_api

    # When every operation of the published document is fuzzed over HTTP
    report = fuzz(
        base_url,
        api_key=key,
        examples=POSITIVE_EXAMPLES,
        negative=NEGATIVE_EXAMPLES,
        deadline_seconds=RUN_DEADLINE_SECONDS,
    )

    # Then every operation was reached and sent requests
    summary = report.format()
    assert len(report.operations) >= 100, summary
    assert not [label for label, _reason in report.skipped], summary
    assert all(result.examples > 0 for result in report.operations), summary
    # And no response was a server error or strayed from the document
    assert report.server_errors == 0, summary
    assert report.schema_violations == 0, summary
    assert report.harness_errors == 0, summary
    # And the web process kept its connections in the pool: under ASGI each request runs in a thread of its own,
    # and Django's persistent connections used to stay behind with every finished thread
    assert _connections_of_others() <= POOL_MAX_SIZE


def _connections_of_others() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("get", "/api/events?camera_id=%00", 422),
        ("get", "/api/search?q=door&object_type=car%00", 422),
        ("get", "/api/cameras/front%00door/baseline", 404),
        ("delete", "/api/notifications/preferences/cameras/%00", 404),
    ],
)
def test_a_nul_byte_the_fuzzer_sent_is_a_client_error_not_a_database_error(api_client, method, url, status):
    # Given a NUL in a list filter or a path parameter (PostgreSQL text cannot hold one)
    # When it is sent
    response = getattr(api_client, method)(url)

    # Then it is refused as a problem document, not a 500
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
