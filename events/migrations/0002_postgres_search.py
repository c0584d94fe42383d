"""PostgreSQL-only objects of CONTRACT §1.7: pg_trgm, the events search vector and its triggers, GIN/BRIN and
partial indexes. On SQLite this migration does nothing."""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "ALTER TABLE events_event ADD COLUMN IF NOT EXISTS search_vector tsvector",
    """
    CREATE OR REPLACE FUNCTION events_event_search_vector_update() RETURNS trigger AS $$
    BEGIN
      NEW.search_vector :=
        setweight(to_tsvector('english', coalesce(NEW.summary, '')), 'A') ||
        setweight(to_tsvector('english', replace(coalesce(NEW.object_types, ''), ',', ' ')), 'B') ||
        setweight(to_tsvector('english',
            coalesce((SELECT c.name FROM cameras_camera c WHERE c.id = NEW.camera_id), '')), 'B') ||
        setweight(to_tsvector('english', coalesce(NEW.reasoning, '')), 'C') ||
        setweight(to_tsvector('english', coalesce(NEW.notes, '')), 'D');
      RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER events_event_search_vector_trg
    BEFORE INSERT OR UPDATE OF summary, object_types, reasoning, notes, camera_id, search_vector
    ON events_event FOR EACH ROW EXECUTE FUNCTION events_event_search_vector_update()
    """,
    """
    CREATE OR REPLACE FUNCTION cameras_camera_refresh_event_search() RETURNS trigger AS $$
    BEGIN
      UPDATE events_event SET search_vector = NULL WHERE camera_id = NEW.id;
      RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER cameras_camera_refresh_event_search_trg
    AFTER UPDATE OF name ON cameras_camera FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION cameras_camera_refresh_event_search()
    """,
    "CREATE INDEX IF NOT EXISTS events_search_vector_gin ON events_event USING gin (search_vector)",
    "CREATE INDEX IF NOT EXISTS events_object_types_trgm ON events_event USING gin (object_types gin_trgm_ops)"
    " WITH (fastupdate = off)",
    "CREATE INDEX IF NOT EXISTS events_live_started_idx ON events_event (started_at) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS events_detection_detected_brin ON events_detection USING brin (detected_at)",
]

BACKWARD = [
    "DROP INDEX IF EXISTS events_detection_detected_brin",
    "DROP INDEX IF EXISTS events_live_started_idx",
    "DROP INDEX IF EXISTS events_object_types_trgm",
    "DROP INDEX IF EXISTS events_search_vector_gin",
    "DROP TRIGGER IF EXISTS cameras_camera_refresh_event_search_trg ON cameras_camera",
    "DROP FUNCTION IF EXISTS cameras_camera_refresh_event_search()",
    "DROP TRIGGER IF EXISTS events_event_search_vector_trg ON events_event",
    "DROP FUNCTION IF EXISTS events_event_search_vector_update()",
    "ALTER TABLE events_event DROP COLUMN IF EXISTS search_vector",
]


def _run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return apply


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial"), ("cameras", "0001_initial")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
