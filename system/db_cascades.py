"""Database-level ON DELETE actions for our foreign keys (CONTRACT §1.1, §1.6).

Django 5.2 emulates ``on_delete`` in Python and creates plain foreign keys. On PostgreSQL we rewrite each
foreign key of our apps so the database itself cascades (or sets NULL), which lets a camera with millions of
detections be deleted with one statement. Runs after every ``migrate`` and is idempotent.
"""

from __future__ import annotations

from django.apps import apps
from django.db import connections, models, transaction

OUR_APPS = ("cameras", "events", "alerts", "pipeline", "system")
_ACTIONS = {models.CASCADE: ("c", "CASCADE"), models.SET_NULL: ("n", "SET NULL")}


def desired_actions() -> list[tuple[str, str, str, str, str]]:
    """(table, column, referenced table, referenced column, action) for every FK that needs a DB action."""
    wanted = []
    for model in apps.get_models():
        if model._meta.app_label not in OUR_APPS:
            continue
        for field in model._meta.local_fields:
            if not isinstance(field, models.ForeignKey) or field.remote_field.on_delete not in _ACTIONS:
                continue
            target = field.target_field
            wanted.append(
                (
                    model._meta.db_table,
                    field.column,
                    target.model._meta.db_table,
                    target.column,
                    field.remote_field.on_delete,
                )
            )
    return wanted


def ensure_database_cascades(using: str = "default", **kwargs) -> int:
    """Recreate FK constraints whose ON DELETE action differs from the model's. Returns the count changed."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return 0
    changed = 0
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table, column, ref_table, ref_column, on_delete in desired_actions():
            code, sql_action = _ACTIONS[on_delete]
            cursor.execute(
                """
                SELECT c.conname, c.confdeltype, c.condeferrable, c.condeferred
                FROM pg_constraint c
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                WHERE c.contype = 'f' AND c.conrelid = %s::regclass AND a.attname = %s
                """,
                [table, column],
            )
            for name, current, deferrable, deferred in cursor.fetchall():
                if current == code:
                    continue
                timing = ""
                if deferrable:
                    timing = " DEFERRABLE INITIALLY DEFERRED" if deferred else " DEFERRABLE INITIALLY IMMEDIATE"
                definition = f"FOREIGN KEY ({qn(column)}) REFERENCES {qn(ref_table)} ({qn(ref_column)})"
                with transaction.atomic(using=using):  # never leave the table without its constraint
                    cursor.execute(f"ALTER TABLE {qn(table)} DROP CONSTRAINT {qn(name)}")
                    cursor.execute(
                        f"ALTER TABLE {qn(table)} ADD CONSTRAINT {qn(name)} {definition} ON DELETE {sql_action}{timing}"
                    )
                changed += 1
    return changed
