"""Who gets into the console: finance staff (and superusers) in; other signed-in users get a
403 page; anonymous visitors go to sign-in. Sign-in uses the shared lockout; writes need
POST and a CSRF token."""

from datetime import UTC, datetime
from io import StringIO
from uuid import uuid4

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from tests.console.conftest import PASSWORD

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]

PAGES = [
    "/console/",
    "/console/accuracy/",
    "/console/assurance/",
    "/console/assurance/findings/",
    "/console/invoices/",
    "/console/chargeback/",
    "/console/chargeback/gl.csv",
    "/console/costs/",
    "/console/review/",
    "/console/review.pdf",
]


@pytest.mark.parametrize("path", PAGES)
def test_an_anonymous_visitor_is_sent_to_sign_in(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/?next=")


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(
    "staff, finance", [(True, False), (False, True), (False, False)], ids=["staff", "group", "none"]
)
def test_anyone_but_finance_staff_gets_a_403_page(make_user, path, staff, finance):
    client = Client()
    client.force_login(make_user("sam", staff=staff, finance=finance))

    response = client.get(path)

    assert response.status_code == 403
    assert b"No access to the finance console" in response.content


def test_a_superuser_is_let_in(db):
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", PASSWORD))

    assert client.get("/console/").status_code == 200


def test_a_finding_action_refuses_anonymous_and_non_finance_users(make_user):
    path = f"/console/assurance/findings/{uuid4()}/resolve/"
    assert Client().post(path, {"reason": "x"}).status_code == 302
    client = Client()
    client.force_login(make_user("sam", finance=False))
    assert client.post(path, {"reason": "x"}).status_code == 403


def test_signing_in_goes_to_the_page_asked_for(make_user):
    make_user("fiona")
    client = Client(enforce_csrf_checks=True)
    page = client.get("/console/login/?next=/console/assurance/")
    token = page.cookies["csrftoken"].value

    response = client.post(
        "/console/login/",
        {"username": "fiona", "password": PASSWORD, "next": "/console/assurance/",
         "csrfmiddlewaretoken": token},
    )  # fmt: skip

    assert response.status_code == 302
    assert response["Location"] == "/console/assurance/"
    assert client.get("/console/").status_code == 200


def test_sign_in_never_sends_anyone_off_the_console(make_user):
    make_user("fiona")
    response = Client().post(
        "/console/login/",
        {"username": "fiona", "password": PASSWORD, "next": "https://evil.example/console/"},
    )

    assert response["Location"] == "/console/"


def test_sign_in_without_a_csrf_token_is_refused(make_user):
    make_user("fiona")
    client = Client(enforce_csrf_checks=True)

    response = client.post("/console/login/", {"username": "fiona", "password": PASSWORD})

    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_a_wrong_password_is_said_so_on_the_password_field(make_user):
    make_user("fiona")

    response = Client().post("/console/login/", {"username": "fiona", "password": "nope"})

    assert response.status_code == 400
    assert b"The username or password is not right." in response.content


def test_five_failures_lock_the_username_even_with_the_right_password(make_user):
    make_user("fiona")
    client = Client()
    for _ in range(5):
        client.post("/console/login/", {"username": "fiona", "password": "nope"})

    response = client.post("/console/login/", {"username": "fiona", "password": PASSWORD})

    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


def test_a_user_without_finance_access_is_not_signed_in(make_user):
    make_user("sam", finance=False)
    client = Client()

    response = client.post("/console/login/", {"username": "sam", "password": PASSWORD})

    assert response.status_code == 403
    assert b"no access to the finance console" in response.content
    assert "_auth_user_id" not in client.session


def test_signing_out_takes_a_post_and_ends_the_session(finance):
    assert finance.get("/console/logout/").status_code == 405

    response = finance.post("/console/logout/")

    assert response["Location"] == "/console/login/"
    assert finance.get("/console/").status_code == 302


def test_the_sign_in_page_has_a_title_and_labelled_fields(client):
    body = client.get("/console/login/").content.decode()

    assert "<title>Sign in · Percall</title>" in body
    assert '<label for="id_username">Username</label>' in body
    assert '<label for="id_password">Password</label>' in body


def test_the_grant_command_lets_a_user_in(make_user):
    make_user("nina", staff=False, finance=False)
    out = StringIO()

    call_command("console_finance_grant", "nina", stdout=out)

    client = Client()
    client.force_login(User.objects.get(username="nina"))
    assert client.get("/console/").status_code == 200
    assert "nina can now use the finance console" in out.getvalue()
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("console_finance_grant", "nobody")
