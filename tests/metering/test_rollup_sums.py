"""The rollup's own sums on PostgreSQL (migration 0011) give what SUM gives: NULLs skipped, NULL
over no values, exact decimals at the widest scale, and an error, never a wrapped total, past
the bigint range."""

from decimal import Decimal

import pytest
from django.db import DataError, connection, transaction

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def aggregate(function: str, kind: str, values: list) -> object:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(v) FROM unnest(%s::{kind}[]) AS u(v)", [values])
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        ("bigint", [100, None, 200, 300], 600),
        ("bigint", [None, None], None),
        ("bigint", [], None),
        ("bigint", [9_000_000_000_000_000_000, 223_372_036_854_775_807], 2**63 - 1),
        ("numeric", ["1.5", None, "0.25"], Decimal("1.75")),
        ("numeric", [None], None),
        # 18 significant digits each, at different scales: exact, at the widest scale
        (
            "numeric",
            ["999999999999999999", "0.000000000001", "123456.789012345678"],
            Decimal("1000000000000123455.789012345679"),
        ),
    ],
)
def test_the_rollup_sums_equal_sum(kind, values, expected):
    name = f"percall_sum_{kind}"
    result = aggregate(name, kind, values)
    assert result == expected
    assert result == aggregate("SUM", kind, values)  # and the built-in agrees


def test_a_bigint_total_past_its_range_is_an_error_not_a_wrapped_number():
    with pytest.raises(DataError, match="out of range"), transaction.atomic():
        aggregate("percall_sum_bigint", "bigint", [2**63 - 1, 1])
