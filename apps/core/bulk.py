"""Plain multi-row inserts for hot paths, where building an ORM object per row costs more than
the insert itself. Values are Python values (UUID, aware datetime, Decimal, str, int, bool);
this adapts them the way Django would for the current database."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, UUID):
        return value.hex  # Django stores UUIDs as 32 hex digits on SQLite
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def rows_insert(*, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """INSERT ``rows`` into ``table`` in one round of statements. Identifiers come from code,
    never from input."""
    values = list(rows)
    if not values:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    marks = f"({', '.join('%s' for _ in columns)})"
    if connection.vendor != "postgresql":
        rows_sqlite = [tuple(_sqlite_value(v) for v in row) for row in values]
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES {marks}", rows_sqlite)
        return
    # One multi-row statement per chunk: executemany would send one INSERT per row.
    chunk = max(1, 30_000 // len(columns))  # well under PostgreSQL's 65,535 parameters
    with connection.cursor() as cursor:
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join(marks for _ in part)}",
                [value for row in part for value in row],
            )
