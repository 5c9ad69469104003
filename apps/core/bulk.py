"""Plain multi-row inserts for hot paths, where building an ORM object per row costs more than
the insert itself. Values are Python values (UUID, aware datetime, Decimal, str, int, bool), or
for ``uuid`` and ``timestamptz`` columns their text (a UUID's canonical text, an ISO 8601 time
with an offset), which hot paths already hold; this adapts them the way Django would for the
current database."""

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection


def _sqlite_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "uuid":
        return (value if isinstance(value, UUID) else UUID(value)).hex  # Django's SQLite form
    if kind == "timestamptz":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return connection.ops.adapt_datetimefield_value(moment)
    return value


_AS_TEXT: dict[str, Callable[[Any], str]] = {"uuid": str, "timestamptz": datetime.isoformat}


def rows_insert(
    *, table: str, columns: Sequence[str], types: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """INSERT ``rows`` into ``table`` in one statement. ``types`` are the PostgreSQL types of
    ``columns``. Identifiers and types come from code, never from input.

    On PostgreSQL the rows travel as one array per column through ``unnest``: the statement's
    text is the same whatever the row count, so psycopg parses it once per process, where a
    multi-row VALUES list would be new text, with a parameter per value, every time. Times and
    UUIDs are sent as text: psycopg's datetime dumper costs more than the rest of a row."""
    values = list(rows)
    if not values:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    if connection.vendor != "postgresql":
        marks = f"({', '.join('%s' for _ in columns)})"
        rows_sqlite = [
            tuple(_sqlite_value(v, kind) for v, kind in zip(row, types, strict=True))
            for row in values
        ]
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES {marks}", rows_sqlite)
        return
    arrays, columns_out = [], []
    for kind, column in zip(types, zip(*values, strict=True), strict=True):
        if kind in _AS_TEXT:  # sent as text[], cast by the server
            as_text = _AS_TEXT[kind]
            columns_out.append([v if isinstance(v, str) else as_text(v) for v in column])
            arrays.append(f"%s::text[]::{kind}[]")
        else:
            columns_out.append(list(column))
            arrays.append(f"%s::{kind}[]")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest({', '.join(arrays)})",
            columns_out,
        )


def rows_update(
    *,
    table: str,
    key: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """UPDATE many rows of ``table`` in one statement: each row is the ``key`` value, then the
    new values of ``columns`` (PostgreSQL types in ``types``). Django's bulk_update writes a
    CASE per column per row, whose compilation costs more than the update itself.

    On PostgreSQL, one ``UPDATE ... FROM unnest(...)``; on SQLite, one executemany."""
    values = list(rows)
    if not values:
        return
    if connection.vendor != "postgresql":
        sets = ", ".join(f'"{c}" = %s' for c in columns)
        with connection.cursor() as cursor:
            cursor.executemany(
                f'UPDATE {table} SET {sets} WHERE "{key}" = %s',
                [
                    [
                        *(_sqlite_value(v, k) for v, k in zip(row[1:], types, strict=True)),
                        _sqlite_value(row[0], "uuid"),
                    ]
                    for row in values
                ],
            )
        return
    arrays = ["%s::text[]::uuid[]"]
    data: list[list[Any]] = [[str(row[0]) for row in values]]
    for position, kind in enumerate(types, start=1):
        column = [row[position] for row in values]
        if kind in _AS_TEXT or kind == "numeric":  # text, cast by the server
            as_text = _AS_TEXT.get(kind, str)
            data.append([v if v is None or isinstance(v, str) else as_text(v) for v in column])
            arrays.append(f"%s::text[]::{kind}[]")
        else:
            data.append(column)
            arrays.append(f"%s::{kind}[]")
    names = ", ".join(f'"{c}"' for c in columns)
    sets = ", ".join(f'"{c}" = v."{c}"' for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET {sets} FROM unnest({', '.join(arrays)}) "
            f'AS v("{key}", {names}) WHERE t."{key}" = v."{key}"',
            data,
        )
