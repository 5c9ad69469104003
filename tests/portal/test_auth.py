"""Signing in (with the lockout), out, choosing a tenant, no tenant, password reset."""

import re

import pytest
from django.core import mail
from django.core.cache import cache

from tests.portal.conftest import NOW, PASSWORD

__all__ = ["NOW"]


@pytest.fixture(autouse=True)
def _fresh_lockout_counts():
    cache.clear()
    yield
    cache.clear()


def _sign_in(client, username, password=PASSWORD, **extra):
    return client.post("/portal/login/", {"username": username, "password": password, **extra})


def test_a_page_asks_a_stranger_to_sign_in(world, client):
    response = client.get("/portal/invoices/")
    assert response.status_code == 302
    assert response["Location"] == "/portal/login/?next=/portal/invoices/"


def test_signing_in_lands_on_the_page_asked_for(world, client):
    response = _sign_in(client, "olga", next="/portal/invoices/")
    assert (response.status_code, response["Location"]) == (302, "/portal/invoices/")
    assert client.get("/portal/invoices/").status_code == 200


def test_sign_in_never_redirects_off_the_portal(world, client):
    response = _sign_in(client, "olga", next="https://evil.example/")
    assert response["Location"] == "/portal/"


def test_a_wrong_password_is_refused_and_five_lock_the_account(world, client):
    refused = _sign_in(client, "olga", "wrong")
    assert refused.status_code == 400
    assert "The username or password is not right." in refused.content.decode()
    for _ in range(4):
        _sign_in(client, "olga", "wrong")
    # the right password, after 5 failures, is refused too
    locked = _sign_in(client, "olga")
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_in_is_csrf_protected(world):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert _sign_in(strict, "olga").status_code == 403


def test_signing_out_needs_a_post_and_ends_the_session(world, as_user):
    client = as_user(world.owner)
    assert client.get("/portal/logout/").status_code == 405
    assert client.post("/portal/logout/").status_code == 302
    assert client.get("/portal/").status_code == 302


def test_someone_in_no_tenant_gets_a_clear_page(world, as_user):
    response = as_user(world.nobody).get("/portal/")
    assert response.status_code == 403
    assert "not part of any tenant" in response.content.decode()


def test_someone_in_two_tenants_chooses_one_and_acts_in_it_only(world, as_user):
    client = as_user(world.both)
    assert client.get("/portal/")["Location"] == "/portal/tenants/"
    choices = client.get("/portal/tenants/").content.decode()
    assert "Alpha Labs" in choices and "Beta Secret Holdings" in choices

    client.post("/portal/tenants/", {"tenant": str(world.alpha.id)})
    home = client.get("/portal/").content.decode()
    assert "<h1>Alpha Labs</h1>" in home and "/beta-secret" not in home

    client.post("/portal/tenants/", {"tenant": str(world.beta.id)})
    home = client.get("/portal/").content.decode()
    assert "<h1>Beta Secret Holdings</h1>" in home and "/v1/search" not in home


def test_the_switcher_refuses_a_tenant_one_is_not_in(world, as_user):
    client = as_user(world.beta_owner)
    response = client.post("/portal/tenants/", {"tenant": str(world.alpha.id)})
    assert response.status_code == 404
    assert "Alpha Labs" not in client.get("/portal/").content.decode()


def test_password_reset_by_email(world, client):
    response = client.post("/portal/password-reset/", {"email": "olga@alpha.example"})
    assert response["Location"] == "/portal/password-reset/sent/"
    (message,) = mail.outbox
    assert message.to == ["olga@alpha.example"]
    link = re.search(r"http://testserver(/portal/password-reset/\S+/)", message.body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    new = "a brand new passphrase 42"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done["Location"] == "/portal/password-reset/done/"
    assert _sign_in(client, "olga", new).status_code == 302
