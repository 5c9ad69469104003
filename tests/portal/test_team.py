"""The team page: owners invite people (who set a password from the emailed link and sign in),
change roles and remove members; everyone else reads the list; the last owner stays."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache

from apps.core.models import AuditEntry
from apps.tenants.models import Membership
from tests.portal.conftest import NOW, PASSWORD, assert_no_beta

__all__ = ["NOW"]
LINK = re.compile(r"http://testserver(/portal/password-reset/\S+/)")


@pytest.fixture(autouse=True)
def _fresh_lockout_counts():
    cache.clear()
    yield
    cache.clear()


def _membership(world, user, tenant=None) -> Membership:
    return Membership.objects.get(user=user, tenant=tenant or world.alpha)


def test_an_invited_person_sets_a_password_from_the_email_and_signs_in(
    world, as_user, django_capture_on_commit_callbacks
):
    client = as_user(world.owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/portal/team/", {"email": "Nina@Alpha.example", "role": "billing"})

    assert response["Location"] == "/portal/team/"
    nina = get_user_model().objects.get(email="nina@alpha.example")
    assert _membership(world, nina).role == "billing"
    (message,) = mail.outbox
    assert message.to == ["nina@alpha.example"] and "Alpha Labs" in message.body
    (link,) = LINK.findall(message.body)

    client.logout()
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    new = "nina's own passphrase 7"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done["Location"] == "/portal/password-reset/done/"
    signed_in = client.post("/portal/login/", {"username": "nina@alpha.example", "password": new})
    assert signed_in.status_code == 302
    home = client.get("/portal/team/")
    assert home.status_code == 200 and "<td>nina@alpha.example</td>" in home.content.decode()
    # the link worked once
    client.logout()
    assert "not valid any more" in client.get(link, follow=True).content.decode()


def test_inviting_someone_with_an_account_reuses_it(
    world, as_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        as_user(world.owner).post("/portal/team/", {"email": "nora@example.com", "role": "viewer"})

    assert _membership(world, world.nobody).role == "viewer"
    assert get_user_model().objects.filter(email__iexact="nora@example.com").count() == 1
    world.nobody.refresh_from_db()
    assert world.nobody.check_password(PASSWORD)
    (message,) = mail.outbox
    assert "/portal/login/" in message.body and not LINK.search(message.body)


def test_a_duplicate_or_bad_invitation_names_the_field(world, as_user):
    client = as_user(world.owner)
    duplicate = client.post("/portal/team/", {"email": "vera@alpha.example", "role": "owner"})
    assert duplicate.status_code == 409
    assert "already a member of Alpha Labs" in duplicate.content.decode()
    assert _membership(world, world.viewer).role == "viewer"
    bad = client.post("/portal/team/", {"email": "not an address", "role": "viewer"})
    assert bad.status_code == 400 and "Enter a valid email address." in bad.content.decode()
    assert mail.outbox == []


def test_an_owner_changes_a_role_and_removes_a_member(world, as_user):
    client = as_user(world.owner)
    vera = _membership(world, world.viewer)

    response = client.post(f"/portal/team/{vera.id}/role/", {"role": "billing"})
    assert response["Location"] == "/portal/team/"
    assert _membership(world, world.viewer).role == "billing"
    assert "vera is now billing." in client.get("/portal/team/").content.decode()

    client.post(f"/portal/team/{vera.id}/remove/")
    assert not Membership.objects.filter(id=vera.id).exists()
    assert get_user_model().objects.filter(pk=world.viewer.pk).exists()

    # The audit log names the signed-in owner as the actor of both, with the roles.
    role_set, removed = (
        AuditEntry.objects.get(action=a, target_id=str(vera.id))
        for a in ("membership.role_set", "membership.remove")
    )
    actor = f"user:{world.owner.get_username()}"
    assert (role_set.actor, role_set.tenant_id) == (actor, world.alpha.id)
    assert role_set.before["role"] == "viewer" and role_set.after["role"] == "billing"
    assert (removed.actor, removed.before["role"], removed.after) == (actor, "billing", None)


def test_the_last_owner_is_kept(world, as_user):
    client = as_user(world.owner)
    olga = _membership(world, world.owner)

    demoted = client.post(f"/portal/team/{olga.id}/role/", {"role": "viewer"}, follow=True)
    assert "Cannot demote the only owner" in demoted.content.decode()
    removed = client.post(f"/portal/team/{olga.id}/remove/", follow=True)
    assert "Cannot remove the only owner" in removed.content.decode()
    assert _membership(world, world.owner).role == "owner"


def test_an_unknown_role_is_refused(world, as_user):
    vera = _membership(world, world.viewer)
    response = as_user(world.owner).post(
        f"/portal/team/{vera.id}/role/", {"role": "god"}, follow=True
    )
    assert "is not one of owner, billing, viewer" in response.content.decode()
    assert _membership(world, world.viewer).role == "viewer"


@pytest.mark.parametrize("who", ["viewer", "billing"])
def test_only_owners_manage_the_team(world, as_user, who):
    client = as_user(getattr(world, who))
    page = client.get("/portal/team/").content.decode()
    assert "<td>olga</td>" in page
    assert "Invite someone" not in page and "Remove" not in page and "<select" not in page

    olga = _membership(world, world.owner)
    assert (
        client.post("/portal/team/", {"email": "x@x.example", "role": "owner"}).status_code == 403
    )
    assert client.post(f"/portal/team/{olga.id}/role/", {"role": "viewer"}).status_code == 403
    assert client.post(f"/portal/team/{olga.id}/remove/").status_code == 403
    assert _membership(world, world.owner).role == "owner"
    assert not get_user_model().objects.filter(email="x@x.example").exists()
    assert mail.outbox == []


def test_an_owner_sees_the_controls(world, as_user):
    page = as_user(world.owner).get("/portal/team/").content.decode()
    vera = _membership(world, world.viewer)
    assert "Invite someone" in page
    assert f'action="/portal/team/{vera.id}/role/"' in page
    assert f'action="/portal/team/{vera.id}/remove/"' in page
    assert 'aria-label="Role of vera"' in page and "csrfmiddlewaretoken" in page


@pytest.mark.parametrize("action", ["role", "remove"])
def test_a_foreign_membership_is_404_and_unchanged(world, as_user, action):
    bert = _membership(world, world.beta_owner, world.beta)
    response = as_user(world.owner).post(f"/portal/team/{bert.id}/{action}/", {"role": "viewer"})
    assert response.status_code == 404
    assert_no_beta(response, world)
    assert _membership(world, world.beta_owner, world.beta).role == "owner"


def test_team_page_queries_do_not_grow(world, as_user, django_assert_max_num_queries):
    client = as_user(world.owner)
    with django_assert_max_num_queries(8):
        client.get("/portal/team/")
    users = get_user_model().objects
    for n in range(10):
        Membership.objects.create(
            user=users.create_user(f"extra{n}", f"extra{n}@alpha.example"), tenant=world.alpha
        )
    with django_assert_max_num_queries(8):
        assert "<td>extra9</td>" in client.get("/portal/team/").content.decode()
