"""Memberships: inviting (a new account with a set-your-password link, or an existing one
reused), role changes and removals scoped to one tenant, and the last owner kept."""

import re
import threading

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction

from apps.tenants.errors import LastOwner, MembershipExists, MembershipInvalid, MembershipNotFound
from apps.tenants.models import Membership
from apps.tenants.services.memberships import (
    membership_invite,
    membership_remove,
    membership_role_set,
)
from tests.concurrency import lock_waiters, run_together

pytestmark = pytest.mark.django_db
BASE = "https://portal.example"
LINK = re.compile(r"https://portal\.example(/portal/password-reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def olga(acme):
    user = get_user_model().objects.create_user("olga", "olga@acme.example", "pw-olga-123!")
    Membership.objects.create(user=user, tenant=acme, role="owner")
    return user


def invite(tenant, inviter, email="new@acme.example", role="viewer"):
    return membership_invite(
        tenant=tenant, email=email, role=role, invited_by=inviter, base_url=BASE
    )


def test_inviting_a_stranger_creates_the_account_and_emails_one_link(
    acme, olga, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        membership = invite(acme, olga, email=" New@Acme.Example ", role="billing")

    user = membership.user
    assert (user.username, user.email) == ("new@acme.example", "new@acme.example")
    assert not user.has_usable_password()
    assert (membership.tenant_id, membership.role) == (acme.id, "billing")
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["new@acme.example"]
    assert "olga" in sent.body and "billing" in sent.body and acme.name in sent.body
    assert len(LINK.findall(sent.body)) == 1


def test_inviting_someone_with_an_account_reuses_it(
    make_tenant, acme, olga, django_capture_on_commit_callbacks
):
    other = make_tenant("other")
    existing = get_user_model().objects.create_user("sam", "Sam@Other.example", "pw-sam-123!")
    Membership.objects.create(user=existing, tenant=other, role="owner")
    users_before = get_user_model().objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        membership = invite(acme, olga, email="sam@other.example")

    assert membership.user == existing
    assert get_user_model().objects.count() == users_before
    existing.refresh_from_db()
    assert existing.check_password("pw-sam-123!")  # their password is untouched
    assert set(existing.memberships.values_list("tenant__external_id", flat=True)) == {
        "acme",
        "other",
    }
    # they have a password already: told where to sign in, no reset link
    (sent,) = mail.outbox
    assert "/portal/login/" in sent.body and not LINK.search(sent.body)


def test_a_duplicate_invitation_is_refused_and_sends_nothing(
    acme, olga, django_capture_on_commit_callbacks
):
    invite(acme, olga)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(MembershipExists) as exc:
        invite(acme, olga, email="NEW@acme.example", role="owner")

    assert exc.value.field == "email" and "already a member" in exc.value.message
    assert Membership.objects.get(user__username="new@acme.example").role == "viewer"
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("email", "role", "field"),
    [("not-an-address", "viewer", "email"), ("ok@acme.example", "admin", "role")],
)
def test_bad_input_names_the_field_and_stores_nothing(acme, olga, email, role, field):
    users_before = get_user_model().objects.count()
    with pytest.raises(MembershipInvalid) as exc:
        invite(acme, olga, email=email, role=role)
    assert exc.value.field == field
    assert get_user_model().objects.count() == users_before
    assert Membership.objects.filter(tenant=acme).count() == 1


def test_role_changes_and_removal(acme, olga):
    member = invite(acme, olga)

    assert membership_role_set(membership_id=member.id, role="owner", scope_tenant_id=acme.id)
    assert Membership.objects.get(id=member.id).role == "owner"
    # two owners now: olga may step down to billing, and then leave
    membership_role_set(
        membership_id=Membership.objects.get(user=olga).id, role="billing", scope_tenant_id=acme.id
    )
    membership_remove(membership_id=Membership.objects.get(user=olga).id, scope_tenant_id=acme.id)

    assert list(Membership.objects.filter(tenant=acme).values_list("role", flat=True)) == ["owner"]
    assert get_user_model().objects.filter(pk=olga.pk).exists()  # the account stays


def test_the_last_owner_can_be_neither_removed_nor_demoted(acme, olga):
    viewer = invite(acme, olga)
    own = Membership.objects.get(user=olga)

    with pytest.raises(LastOwner) as removed:
        membership_remove(membership_id=own.id, scope_tenant_id=acme.id)
    with pytest.raises(LastOwner) as demoted:
        membership_role_set(membership_id=own.id, role="viewer", scope_tenant_id=acme.id)

    assert removed.value.field == demoted.value.field == "membership_id"
    assert "only owner" in removed.value.message
    assert Membership.objects.get(id=own.id).role == "owner"
    # others come and go freely
    membership_remove(membership_id=viewer.id, scope_tenant_id=acme.id)
    assert not Membership.objects.filter(id=viewer.id).exists()


def test_another_tenants_membership_is_not_found_and_unchanged(make_tenant, acme, olga):
    beta = make_tenant("beta")
    bert = get_user_model().objects.create_user("bert", "bert@beta.example", "pw")
    theirs = Membership.objects.create(user=bert, tenant=beta, role="viewer")
    Membership.objects.create(
        user=get_user_model().objects.create_user("bo", "bo@beta.example", "pw"),
        tenant=beta,
        role="owner",
    )

    with pytest.raises(MembershipNotFound):
        membership_role_set(membership_id=theirs.id, role="owner", scope_tenant_id=acme.id)
    with pytest.raises(MembershipNotFound):
        membership_remove(membership_id=theirs.id, scope_tenant_id=acme.id)

    assert Membership.objects.get(id=theirs.id).role == "viewer"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_owners_removing_each_other_at_once_leave_one(make_tenant):
    """The first removal stays open until the second is seen waiting for the lock (or has
    finished, which without the lock it would, both passing): then it commits, and the second,
    counting owners again, is refused."""
    acme = make_tenant("acme")
    users = get_user_model().objects
    first, second = (
        Membership.objects.create(
            user=users.create_user(name, f"{name}@acme.example", "pw"), tenant=acme, role="owner"
        )
        for name in ("ann", "ben")
    )
    first_removed, second_done = threading.Event(), threading.Event()

    def outcome(membership_id) -> str:
        try:
            membership_remove(membership_id=membership_id, scope_tenant_id=acme.id)
        except LastOwner:
            return "refused"
        return "removed"

    def remove_first() -> str:
        with transaction.atomic():
            result = outcome(first.id)
            first_removed.set()
            while not second_done.is_set() and not lock_waiters():
                second_done.wait(0.01)
        return result

    def remove_second() -> str:
        first_removed.wait()
        try:
            return outcome(second.id)
        finally:
            second_done.set()

    outcomes = run_together(remove_first, remove_second)

    assert outcomes == ["removed", "refused"]
    assert list(Membership.objects.filter(tenant=acme).values_list("id", "role")) == [
        (second.id, "owner")
    ]
