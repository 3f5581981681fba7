"""The writer's own bool[]/int4[] COPY dumpers give the database what psycopg's would."""

from __future__ import annotations

import psycopg
import pytest

from store.arrays import register_array_dumpers

CASES = [
    ("bool[]", [True, False, True]),
    ("bool[]", [True]),
    ("bool[]", []),
    ("bool[]", [None, True]),
    ("int4[]", [0, -1, 2_147_483_647, -2_147_483_648]),
    ("int4[]", []),
    ("int4[]", [7, None]),
]


@pytest.mark.parametrize(("pg_type", "value"), CASES)
def test_copied_arrays_read_back_as_written(
    database_url: str, pg_type: str, value: list[bool | int | None]
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(f"CREATE TEMP TABLE a (ours {pg_type}, theirs {pg_type})")
        ours = conn.cursor()
        register_array_dumpers(ours)  # the cursor's own map: its COPY uses our dumper
        with ours.copy("COPY a (ours) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([pg_type])
            copy.write_row((value,))
        with conn.cursor().copy("COPY a (theirs) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([pg_type])
            copy.write_row((value,))
        rows = conn.execute("SELECT ours FROM a WHERE ours IS NOT NULL").fetchall()
        theirs = conn.execute("SELECT theirs FROM a WHERE theirs IS NOT NULL").fetchall()
    assert rows == theirs == [(value,)]
