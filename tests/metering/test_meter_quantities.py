"""meter_quantities: a meter's quantity from raw events over a half-open [start, end)."""

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.metering.models import Meter
from apps.metering.selectors import meter_quantities
from tests.metering.ingesting import ingest_events
from tests.metering.ingesting import llm_event as llm

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def ingest(*events: dict) -> None:
    result = ingest_events(*events)
    assert result.accepted == len(events), result.results


@pytest.fixture
def acme(make_tenant):
    """In [10:00, 11:00): m1 (at 10:00 exactly), m2, m3. Outside: m0 at 09:59:59.999, m4 at
    11:00 exactly, another event type, another tenant. m3 is sent first but is the latest."""
    tenant = make_tenant("acme")
    make_tenant("globex")
    ingest(llm("m3", "2026-11-20T10:45:00Z", "claude", 30, user_id="u1", plan="pro", units=0.25))
    ingest(
        llm("m0", "2026-11-20T09:59:59.999Z", "gpt-4o", 7000, user_id="u7", plan="pro", units=70),
        llm("m1", "2026-11-20T10:00:00Z", "gpt-4o", 100, user_id="u1", plan="pro", units=2.5),
        llm("m2", "2026-11-20T10:30:00Z", "gpt-4o", 50, user_id="u2", plan="free", units=1),
        llm("m4", "2026-11-20T11:00:00Z", "gpt-4o", 9000, user_id="u9", plan="pro", units=90),
        llm("x1", "2026-11-20T10:40:00Z", "gpt-4o", 8000, user_id="u8", plan="pro", units=80)
        | {"type": "api.call"},
        llm("g1", "2026-11-20T10:40:00Z", "gpt-4o", 6000, user_id="u6", plan="pro", units=60)
        | {"tenant": "globex"},
    )
    return tenant


_codes = itertools.count()


def meter(aggregation: str, field: str = "", **options) -> Meter:
    return Meter.objects.create(
        code=f"meter-{next(_codes)}",
        event_type="llm.call",
        aggregation=aggregation,
        field=field,
        **options,
    )


def quantities(m: Meter, tenant, start: datetime = START, end: datetime = END) -> dict:
    return meter_quantities(meter=m, tenant_id=tenant.id, start=start, end=end)


@pytest.mark.parametrize(
    ("aggregation", "field", "expected"),
    [
        pytest.param("count", "", Decimal(3), id="count"),
        pytest.param("sum", "input_tokens", Decimal(100 + 50 + 30), id="sum-column"),
        pytest.param("sum", "properties.units", Decimal("3.75"), id="sum-property"),  # 2.5+1+.25
        pytest.param("max", "input_tokens", Decimal(100), id="max-column"),
        pytest.param("max", "properties.units", Decimal("2.5"), id="max-property"),
        pytest.param("unique_count", "properties.user_id", Decimal(2), id="unique-users"),
        pytest.param("latest", "input_tokens", Decimal(30), id="latest-column"),  # m3, 10:45
        pytest.param("latest", "properties.units", Decimal("0.25"), id="latest-property"),
    ],
)
def test_each_aggregation_over_the_window(acme, aggregation, field, expected):
    # given m1, m2, m3 inside [10:00, 11:00); when the meter is evaluated
    result = quantities(meter(aggregation, field), acme)

    # then only those three count: one quantity, with no group-by key
    assert result == {(): expected}
    assert isinstance(result[()], Decimal)


def test_latest_is_by_timestamp_not_by_arrival(acme):
    # given m4 (11:00) is the latest in a wider window though m3 arrived first
    result = quantities(
        meter("latest", "input_tokens"), acme, end=datetime(2026, 11, 21, tzinfo=UTC)
    )

    assert result == {(): Decimal(9000)}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({"model": "gpt-4o"}, Decimal(100 + 50), id="model"),
        pytest.param({"properties.plan": "pro"}, Decimal(100 + 30), id="property"),
        pytest.param({"model": "gpt-4o", "properties.plan": "pro"}, Decimal(100), id="both"),
        pytest.param({"model": "gpt-5"}, Decimal(0), id="none-match"),
    ],
)
def test_filters_keep_only_matching_events(acme, filters, expected):
    result = quantities(meter("sum", "input_tokens", filters=filters), acme)

    assert result == {(): expected}


def test_group_by_a_column_and_a_property(acme):
    by_model = quantities(meter("sum", "input_tokens", group_by=["model"]), acme)
    by_plan = Meter.objects.create(
        code="calls-by-plan",
        event_type="llm.call",
        aggregation="count",
        group_by=["properties.plan"],
    )
    by_model_and_user = Meter.objects.create(
        code="users-by-model",
        event_type="llm.call",
        aggregation="unique_count",
        field="properties.user_id",
        group_by=["model"],
    )

    assert by_model == {("claude",): Decimal(30), ("gpt-4o",): Decimal(150)}
    assert quantities(by_plan, acme) == {("free",): Decimal(1), ("pro",): Decimal(2)}
    assert quantities(by_model_and_user, acme) == {("claude",): Decimal(1), ("gpt-4o",): Decimal(2)}


def test_group_by_with_filter_and_latest(acme):
    latest = quantities(
        meter("latest", "properties.units", group_by=["model"], filters={"properties.plan": "pro"}),
        acme,
    )

    assert latest == {("claude",): Decimal("0.25"), ("gpt-4o",): Decimal("2.5")}


def test_the_window_is_half_open(acme):
    count = meter("count")

    # an event exactly at start is in, one exactly at end is out
    assert quantities(count, acme, start=datetime(2026, 11, 20, 10, 0, tzinfo=UTC)) == {(): 3}
    assert quantities(count, acme, start=datetime(2026, 11, 20, 10, 0, 0, 1000, tzinfo=UTC)) == {
        (): 2  # m1 at 10:00:00.000 drops out one millisecond later
    }
    assert quantities(count, acme, end=datetime(2026, 11, 20, 11, 0, 0, 1000, tzinfo=UTC)) == {
        (): 4  # m4 at 11:00:00.000 comes in when the end moves past it
    }
    assert quantities(count, acme, start=datetime(2026, 11, 20, 9, 59, 59, 999000, tzinfo=UTC)) == {
        (): 4  # m0 at 09:59:59.999
    }


def test_an_empty_window(acme):
    start, end = datetime(2026, 11, 20, 12, tzinfo=UTC), datetime(2026, 11, 20, 13, tzinfo=UTC)

    assert quantities(meter("count"), acme, start, end) == {(): Decimal(0)}
    assert quantities(meter("sum", "input_tokens"), acme, start, end) == {(): Decimal(0)}
    assert quantities(meter("latest", "input_tokens"), acme, start, end) == {}
    assert quantities(meter("sum", "input_tokens", group_by=["model"]), acme, start, end) == {}


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        pytest.param("sum", Decimal("2.5") + 1, id="sum"),
        pytest.param("max", Decimal("2.5"), id="max"),
        pytest.param("latest", Decimal(0), id="latest"),  # the last event's is not a number
    ],
)
def test_a_property_that_is_not_a_json_number_counts_as_no_value(
    make_tenant, aggregation, expected
):
    # given units sent as numbers, as text, as a boolean and as an object in one hour; on
    # PostgreSQL casting the text "many" to a decimal would fail the whole query
    tenant = make_tenant("acme")
    ingest(
        llm("n1", "2026-11-20T10:00:00Z", "gpt-4o", 1, units=2.5),
        llm("n2", "2026-11-20T10:10:00Z", "gpt-4o", 1, units="many"),
        llm("n3", "2026-11-20T10:20:00Z", "gpt-4o", 1, units=1),
        llm("n4", "2026-11-20T10:30:00Z", "gpt-4o", 1, units=True),
        llm("n5", "2026-11-20T10:40:00Z", "gpt-4o", 1, units={"n": 9}),
        llm("n6", "2026-11-20T10:50:00Z", "gpt-4o", 1, units="7"),
    )

    # when a meter reads the property, then only the JSON numbers count, as the rollups read it
    assert quantities(meter(aggregation, "properties.units"), tenant) == {(): expected}
