"""The admin's audit trail: a change through the admin records who changed which field from
what to what; the trail lists it and can be neither edited nor deleted."""

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model

from apps.core.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("auditor", "a@example.com", "pw-123456")
    client.force_login(user)
    return user


def test_a_change_records_the_values_before_and_after(client, staff, make_tenant):
    acme = make_tenant("acme", name="Acme Ltd", billing_email="old@acme.example")
    page = client.get(f"/admin/tenants/tenant/{acme.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data |= {"name": "Acme Group", "billing_email": "ap@acme.example"}
    data["registered_at_0"], data["registered_at_1"] = (
        acme.registered_at.strftime("%Y-%m-%d"),
        acme.registered_at.strftime("%H:%M:%S"),
    )
    data.pop("registered_at", None)
    if "first_call_at" in data:
        data.pop("first_call_at")
        data["first_call_at_0"] = data["first_call_at_1"] = ""

    answer = client.post(f"/admin/tenants/tenant/{acme.pk}/change/", data)

    assert answer.status_code == 302, answer.context["adminform"].form.errors
    entry = LogEntry.objects.get(object_id=str(acme.pk))
    assert entry.user == staff
    values = next(p["values"] for p in json.loads(entry.change_message) if "values" in p)
    assert values == {
        "name": ["Acme Ltd", "Acme Group"],
        "billing_email": ["old@acme.example", "ap@acme.example"],
    }
    # the audit log has it too, with the person as the actor
    audit = AuditEntry.objects.get(action="admin.change", target_id=str(acme.pk))
    assert (audit.actor, audit.target_type, audit.tenant_id) == (
        "user:auditor",
        "tenants.tenant",
        acme.id,
    )
    assert audit.before == {"name": "Acme Ltd", "billing_email": "old@acme.example"}
    assert audit.after == {"name": "Acme Group", "billing_email": "ap@acme.example"}
    # the trail shows it, before and after
    detail = client.get(f"/admin/admin/logentry/{entry.pk}/change/")
    assert b"name: Acme Ltd \xe2\x86\x92 Acme Group" in detail.content


def test_the_trail_is_read_only(client, staff, make_tenant):
    entry = LogEntry.objects.log_actions(
        user_id=staff.pk, queryset=[make_tenant("acme")], action_flag=2, change_message="[]"
    )[0]
    assert client.get("/admin/admin/logentry/").status_code == 200
    assert client.get(f"/admin/admin/logentry/{entry.pk}/delete/").status_code == 403
    assert client.post(f"/admin/admin/logentry/{entry.pk}/change/", {}).status_code == 403
    assert LogEntry.objects.filter(pk=entry.pk).exists()
