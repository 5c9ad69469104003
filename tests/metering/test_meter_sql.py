"""Meter definitions reach the rollup's SQL as column names: only the allowlisted ones do.

catalog_apply and meter_upsert check a meter's field, filters and group-by, but the SQL is built
from the stored row. A row written another way (the admin's form before it checked, a shell,
a migration) with a name outside the allowlists makes the statement fail before it is run,
never become part of it; and the admin's form refuses such a definition in the first place."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from django.db import connection

from apps.metering.models import Meter
from apps.metering.services.meters import (
    MeterFieldInvalid,
    meter_rollups_recompute,
    windows_distinct_sql,
)
from apps.tenants.models import Tenant

pytestmark = pytest.mark.django_db
HOUR = datetime(2026, 11, 20, 10, tzinfo=UTC)
INJECTED = "input_tokens) FROM metering_event; DROP TABLE tenants_tenant; --"


def _meter(**fields) -> Meter:
    # Straight to the table: what the services would refuse.
    defaults = {"code": "m", "event_type": "llm.call", "aggregation": "sum", "field": "quantity"}
    return Meter.objects.create(**(defaults | fields))


@pytest.mark.parametrize(
    "fields",
    [
        {"field": INJECTED},
        {"aggregation": "max", "field": INJECTED},
        {"filters": {INJECTED: "x"}},
        {"group_by": [INJECTED]},
        {"field": "properties.a'b"},  # a properties key is letters, digits and _ . : - only
    ],
    ids=["sum-field", "max-field", "filter", "group-by", "property-key"],
)
def test_a_stored_meter_outside_the_allowlists_never_reaches_sql(make_tenant, fields):
    meter = _meter(**fields)
    acme = make_tenant("acme")

    with connection.cursor() as cursor, pytest.raises(MeterFieldInvalid):
        meter_rollups_recompute(cursor=cursor, pairs=[(acme.id, HOUR)], meters=[meter])

    assert Tenant.objects.filter(id=acme.id).exists()


def test_a_unique_count_with_a_foreign_column_or_filter_never_reaches_sql():
    windows = [(uuid4(), HOUR, HOUR.replace(hour=11))]
    counted = _meter(code="u", aggregation="unique_count", field="user")

    with pytest.raises(MeterFieldInvalid):
        windows_distinct_sql(meter=_meter(code="v", aggregation="unique_count", field=INJECTED),
                             windows=windows, also={})  # fmt: skip
    with pytest.raises(MeterFieldInvalid):
        windows_distinct_sql(meter=counted, windows=windows, also={"1=1 OR model": "x"})
    # Control: allowlisted names and properties keys build, with the values as parameters.
    sql, params = windows_distinct_sql(
        meter=counted, windows=windows, also={"model": "x' OR '1'='1", "properties.plan": "pro"}
    )
    assert "x' OR" not in sql and "x' OR '1'='1" in params


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@x.test", "pw"))
    return client


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"field": INJECTED}, "field"),
        ({"aggregation": "count", "field": "quantity"}, "field"),
        ({"filters": '{"x) OR (1=1": "a"}'}, "filters"),
        ({"group_by": '["model", "x; DROP TABLE y"]'}, "group_by"),
        ({"group_by": '{"model": 1}'}, "group_by"),
    ],
)
def test_the_admin_refuses_a_meter_the_catalog_file_could_not_state(staff, changes, named):
    form = {
        "code": "bad", "name": "", "event_type": "llm.call", "aggregation": "sum",
        "field": "input_tokens", "filters": "{}", "group_by": "[]",
    } | changes  # fmt: skip

    response = staff.post("/admin/metering/meter/add/", form)

    assert response.status_code == 200
    assert named in response.context["adminform"].form.errors
    assert not Meter.objects.filter(code="bad").exists()


def test_the_admin_takes_a_meter_the_catalog_file_could_state(staff):
    form = {
        "code": "ok", "name": "Tokens", "event_type": "llm.call", "aggregation": "sum",
        "field": "properties.gen_ai.usage.input_tokens", "filters": '{"model": "gpt-4o"}',
        "group_by": '["feature", "properties.plan"]',
    }  # fmt: skip

    response = staff.post("/admin/metering/meter/add/", form)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Meter.objects.get(code="ok").group_by == ["feature", "properties.plan"]
