"""A real database failure on chosen rows: a PostgreSQL trigger that refuses some INSERTs (review finding 8).

Created inside the test's transaction, so it disappears with the rollback at the end of the test (PostgreSQL DDL is
transactional); nothing of our own code is replaced.
"""

from __future__ import annotations

from django.db import connection

REFUSED = "refused by the test trigger"


def refuse_inserts(table: str, when: str, *, name: str = "hsi_test_refuse") -> None:
    """Make every ``INSERT`` into ``table`` whose new row satisfies the SQL condition ``when`` (over ``NEW``) fail
    with a database error, as a broken disk, a constraint or a lost connection would."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{REFUSED}'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER {name}_{table} BEFORE INSERT ON {table} FOR EACH ROW WHEN ({when}) "
            f"EXECUTE FUNCTION {name}()"
        )
