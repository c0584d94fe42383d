"""BRIN indexes on append-only time columns (PostgreSQL only, CONTRACT §1.5, §1.7)."""

from django.db import migrations

FORWARD = [
    "CREATE INDEX IF NOT EXISTS system_auditlog_timestamp_brin ON system_auditlog USING brin (timestamp)",
    "CREATE INDEX IF NOT EXISTS system_gpustat_recorded_brin ON system_gpustat USING brin (recorded_at)",
]
BACKWARD = [
    "DROP INDEX IF EXISTS system_gpustat_recorded_brin",
    "DROP INDEX IF EXISTS system_auditlog_timestamp_brin",
]


def _run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return apply


class Migration(migrations.Migration):
    dependencies = [("system", "0001_initial")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
