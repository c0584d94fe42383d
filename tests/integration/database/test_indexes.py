"""PostgreSQL-only objects of CONTRACT §1.7 and the query shapes that must use them (DESIGN §6)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from cameras.models import Camera
from events.models import Event
from hsi.api.pagination import PageRequest, decode_cursor, keyset_slice
from tests.factories import CameraFactory, EventFactory

pytestmark = pytest.mark.django_db

BASE = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


def object_type_filter(value: str) -> Q:
    """The object_types filter the API builds: exact, first, last or middle item of the comma list (§1.7)."""
    return (
        Q(object_types=value)
        | Q(object_types__startswith=value + ",")
        | Q(object_types__endswith="," + value)
        | Q(object_types__contains="," + value + ",")
    )


def indexes_of(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


def search_vector_of(event_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_vector::text FROM events_event WHERE id = %s", [event_id])
        return cursor.fetchone()[0] or ""


def matches(event_id: int, words: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT search_vector @@ plainto_tsquery('english', %s) FROM events_event WHERE id = %s", [words, event_id]
        )
        return cursor.fetchone()[0]


# --- Index inventory ----------------------------------------------------------------------------------------


def test_pg_trgm_extension_is_installed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        assert cursor.fetchone() == (1,)


def test_events_object_types_trigram_index_exists():
    definition = indexes_of("events_event")["events_object_types_trgm"]

    assert "USING gin" in definition and "object_types gin_trgm_ops" in definition


def test_other_postgresql_only_indexes_exist():
    events = indexes_of("events_event")

    assert "USING gin (search_vector)" in events["events_search_vector_gin"]
    assert "WHERE (deleted_at IS NULL)" in events["events_live_started_idx"]
    assert "USING brin (detected_at)" in indexes_of("events_detection")["events_detection_detected_brin"]
    assert 'USING brin ("timestamp")' in indexes_of("system_auditlog")["system_auditlog_timestamp_brin"]
    assert "USING brin (recorded_at)" in indexes_of("system_gpustat")["system_gpustat_recorded_brin"]


def test_open_batch_partial_unique_index_exists():
    definition = indexes_of("pipeline_batch")["batch_one_open_per_camera"]

    assert "UNIQUE" in definition and "WHERE ((status)::text = 'open'::text)" in definition


# --- object_types filter ------------------------------------------------------------------------------------


PERSON_TYPES = ["person", "car,person", "person,truck", "car,person,truck"]
OTHER_TYPES = ["car", "animal,car", "bicycle,truck", "car,truck", "dog"]


@pytest.fixture
def many_events():
    """20,000 events, one second apart, of which 20 mention ``person`` (each list position covered).

    Inserted server-side (the triggers still run for every row), then made planner-ready the way autovacuum
    leaves a production table: the GIN pending list merged and statistics gathered.
    """
    cameras = [CameraFactory(), CameraFactory()]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO events_event (
                created_at, updated_at, camera_id, started_at, ended_at, summary, reasoning, recommended_action,
                analysis_status, is_fast_path, object_types, detection_count, suppressed, reviewed, flagged, version
            )
            SELECT now(), now(), CASE WHEN g %% 2 = 0 THEN %s ELSE %s END,
                   %s - g * interval '1 second', %s - g * interval '1 second', '', '', '',
                   'rules', false,
                   CASE WHEN g %% 1000 = 0 THEN (%s::text[])[(g / 1000) %% 4 + 1]
                        ELSE (%s::text[])[g %% 5 + 1] END,
                   0, false, false, false, 1
            FROM generate_series(0, 19999) AS g
            """,
            [cameras[0].pk, cameras[1].pk, BASE, BASE, PERSON_TYPES, OTHER_TYPES],
        )
        assert cursor.rowcount == 20_000
        cursor.execute("SELECT gin_clean_pending_list('events_object_types_trgm'::regclass)")
        cursor.execute("ANALYZE events_event")


def test_object_type_filter_matches_every_position_and_nothing_else(many_events):
    found = set(Event.objects.filter(object_type_filter("person")).values_list("object_types", flat=True))

    assert found == set(PERSON_TYPES)
    assert Event.objects.filter(object_type_filter("person")).count() == 20
    assert not Event.objects.filter(object_type_filter("pers")).exists()  # no partial-word matches
    assert not Event.objects.filter(object_type_filter("ruck")).exists()


def test_object_type_filter_uses_the_trigram_index(many_events):
    """The list query as the API runs it (ordered, one page), with no planner settings changed."""
    plan = Event.objects.filter(object_type_filter("person")).order_by("-started_at", "-id")[:51].explain()

    assert "events_object_types_trgm" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_object_type_count_uses_the_trigram_index_too(many_events):
    plan = Event.objects.filter(object_type_filter("person")).order_by().values("id").explain()

    assert "events_object_types_trgm" in plan, plan


def test_object_type_filter_sql_is_plain_like_on_the_raw_column():
    sql, params = Event.objects.filter(object_type_filter("person")).query.sql_with_params()

    where = sql.split(" WHERE ", 1)[1]
    assert "UPPER(" not in where  # §1.7 / DESIGN §6: an upper-cased LIKE would not use the index
    assert where.count('"events_event"."object_types"::text LIKE %s') == 3
    assert '"events_event"."object_types" = %s' in where
    assert set(params) >= {"person", "person,%", "%,person", "%,person,%"}


# --- Full-text search vector --------------------------------------------------------------------------------


def test_search_vector_is_filled_on_insert_from_every_weighted_field():
    camera = CameraFactory(name="Driveway North")
    event = EventFactory(
        camera=camera,
        summary="Stranger lingering",
        object_types="bicycle,person",
        reasoning="Carrying a crowbar",
        notes="Neighbour notified",
    )

    vector = search_vector_of(event.pk)

    assert "'stranger':1A" in vector
    assert "'bicycl':" in vector and "B" in vector.split("'bicycl':")[1].split(" ")[0]
    assert "'driveway':" in vector and "'north':" in vector
    assert "'crowbar':" in vector and "C" in vector.split("'crowbar':")[1].split(" ")[0]
    assert "'neighbour':" in vector and "'notifi':" in vector
    assert matches(event.pk, "crowbar bicycle") and matches(event.pk, "driveway")


def test_search_vector_follows_updates_of_the_event():
    event = EventFactory(summary="Delivery van", notes=None)

    Event.objects.filter(pk=event.pk).update(notes="Package stolen")

    assert matches(event.pk, "package stolen")
    assert matches(event.pk, "delivery")


def test_search_vector_handles_null_and_empty_fields():
    event = EventFactory(summary="", reasoning="", notes=None, object_types="")

    assert matches(event.pk, Camera.objects.get(pk=event.camera_id).name.split()[0])


def test_renaming_a_camera_refreshes_the_search_vector_of_its_events():
    camera = CameraFactory(name="Back Garden")
    event = EventFactory(camera=camera, summary="Fox")
    other = EventFactory(summary="Cat")
    other_before = search_vector_of(other.pk)
    assert matches(event.pk, "garden")

    camera.name = "Carport Entrance"
    camera.save()

    assert matches(event.pk, "carport") and not matches(event.pk, "garden")
    assert matches(event.pk, "fox")
    assert search_vector_of(other.pk) == other_before


# --- Keyset pagination --------------------------------------------------------------------------------------


@pytest.fixture
def ties():
    """Seven events, three sharing one timestamp, so the id tie-break matters."""
    camera = CameraFactory()
    times = [BASE, BASE, BASE, BASE - dt.timedelta(seconds=1), BASE - dt.timedelta(seconds=2)]
    times += [BASE + dt.timedelta(seconds=1), BASE - dt.timedelta(minutes=1)]
    return [EventFactory(camera=camera, started_at=t, ended_at=t) for t in times]


def _walk(limit: int) -> list[int]:
    seen, page = [], PageRequest(limit=limit, offset=0)
    queryset = Event.objects.all()
    while True:
        rows, has_more, cursor = keyset_slice(queryset, page, "started_at", lambda e: (e.started_at, e.id))
        seen += [row.id for row in rows]
        if not has_more:
            assert cursor is None
            return seen
        assert cursor is not None
        page = PageRequest(limit=limit, offset=0, cursor=decode_cursor(cursor))


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
def test_keyset_pages_visit_every_row_once_in_time_then_id_order(ties, limit):
    expected = [e.id for e in sorted(ties, key=lambda e: (e.started_at, e.id), reverse=True)]

    assert _walk(limit) == expected


def test_offset_mode_also_returns_a_next_cursor_when_more_rows_exist(ties):
    rows, has_more, cursor = keyset_slice(
        Event.objects.all(), PageRequest(limit=2, offset=1), "started_at", lambda e: (e.started_at, e.id)
    )

    assert len(rows) == 2 and has_more and cursor is not None
    assert decode_cursor(cursor).id == rows[-1].id


def test_offset_far_past_the_end_returns_an_empty_page(ties):
    rows, has_more, cursor = keyset_slice(
        Event.objects.all(), PageRequest(limit=2, offset=10**30), "started_at", lambda e: (e.started_at, e.id)
    )

    assert (rows, has_more, cursor) == ([], False, None)


def test_keyset_page_query_seeks_through_the_time_id_index(many_events):
    cursor = decode_cursor(
        keyset_slice(
            Event.objects.all(), PageRequest(limit=50, offset=0), "started_at", lambda e: (e.started_at, e.id)
        )[2]
    )
    queryset = Event.objects.order_by("-started_at", "-id").filter(
        Q(started_at__lt=cursor.timestamp) | Q(started_at=cursor.timestamp, id__lt=cursor.id),
        started_at__lte=cursor.timestamp,
    )[:51]

    plan = queryset.explain()

    assert "event_time_id_idx" in plan, plan
    assert "Seq Scan" not in plan
    assert timezone.is_aware(cursor.timestamp)
