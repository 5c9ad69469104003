"""API keys: stored as prefix + SHA-256 only, revocable, scoped; the create_api_key command."""

import hashlib
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.tenants.errors import ApiKeyInvalid
from apps.tenants.models import ApiKey
from apps.tenants.services.api_keys import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db
USAGE = "/api/v1/usage?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z"


def an_event(event_id="e1"):
    return {"events": [{"id": event_id, "tenant": "acme", "type": "api.call"}]}


def stored_row(api_key: ApiKey) -> str:
    """Every column of the key's row as the database holds it, as one string."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table} WHERE id = %s", [api_key.id])
        return repr(cursor.fetchone())


def test_key_is_stored_as_prefix_and_sha256_only(make_tenant):
    issued = api_key_create(name="gateway", scopes=["ingest"])
    plaintext = issued.plaintext

    marker, prefix, secret = plaintext.split("_", 2)
    assert (marker, len(prefix)) == ("pc", 8)
    assert len(secret) >= 32
    api_key = ApiKey.objects.get()
    assert api_key.prefix == prefix
    assert api_key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    row = stored_row(api_key)
    assert secret not in row
    assert plaintext not in row


def test_two_keys_never_share_a_prefix_or_a_secret():
    first = api_key_create(name="a", scopes=["read"]).plaintext
    second = api_key_create(name="b", scopes=["read"]).plaintext

    assert first.split("_")[1] != second.split("_")[1]
    assert first != second


def test_revoked_key_fails_on_the_next_request(make_tenant, api):
    issued = api_key_create(name="gateway", scopes=["read"])
    client = api(issued.plaintext)
    assert client.get("/api/v1/tenants").status_code == 200

    api_key_revoke(prefix=issued.api_key.prefix)

    response = client.get("/api/v1/tenants")
    assert response.status_code == 401
    assert ApiKey.objects.get().revoked_at is not None


def test_a_right_prefix_with_a_wrong_secret_is_refused(api):
    plaintext = api_key_create(name="gateway", scopes=["read"]).plaintext
    forged = plaintext[:-4] + ("AAAA" if not plaintext.endswith("AAAA") else "BBBB")

    assert api(forged).get("/api/v1/tenants").status_code == 401


@pytest.mark.parametrize(
    ("scopes", "ingest", "read", "create_tenant"),
    [
        (["ingest"], 200, 403, 403),
        (["read"], 403, 200, 403),
        (["ingest", "read"], 200, 200, 403),
        (["admin"], 200, 200, 201),  # admin implies read and ingest
    ],
)
def test_scopes_decide_what_a_key_may_do(
    make_tenant, make_key, api, scopes, ingest, read, create_tenant
):
    make_tenant("acme")
    client = api(make_key(scopes=scopes))

    assert client.post("/api/v1/events", an_event()).status_code == ingest
    assert client.get("/api/v1/tenants").status_code == read
    assert client.get("/api/v1/tenants/acme").status_code == read
    assert client.get(USAGE).status_code == read
    new_tenant = {"external_id": "new", "name": "New", "currency": "USD"}
    assert client.post("/api/v1/tenants", new_tenant).status_code == create_tenant


@pytest.mark.parametrize("scopes", [[], ["billing"], ["ingest", "superuser"]])
def test_unknown_or_missing_scopes_are_refused(scopes):
    with pytest.raises(ApiKeyInvalid) as error:
        api_key_create(name="x", scopes=scopes)

    assert error.value.field == "scopes"
    assert not ApiKey.objects.exists()


# --- manage.py create_api_key -------------------------------------------------------------


def create_api_key(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().rstrip("\n").split("\n")


def test_command_prints_the_plaintext_alone_on_its_last_line_and_it_works(make_tenant, api):
    make_tenant("acme")

    lines = create_api_key("--name", "gateway", "--scopes", "ingest,admin")

    plaintext = lines[-1]
    assert plaintext == plaintext.strip()
    assert plaintext.startswith("pc_")
    assert " " not in plaintext
    api_key = ApiKey.objects.get()
    assert (api_key.name, api_key.scopes, api_key.tenant) == ("gateway", ["admin", "ingest"], None)
    assert api_key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    response = api(plaintext).post("/api/v1/events", an_event())
    assert response.status_code == 200
    assert json.loads(response.content)["accepted"] == 1


def test_command_binds_the_key_to_a_tenant(make_tenant, api):
    acme = make_tenant("acme")
    make_tenant("beta")

    plaintext = create_api_key("--name", "acme gw", "--scopes", "read", "--tenant", "acme")[-1]

    assert ApiKey.objects.get().tenant == acme
    response = api(plaintext).get("/api/v1/tenants")
    assert [t["external_id"] for t in response.json()] == ["acme"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(("--scopes", "ingest,superuser"), "superuser", id="unknown-scope"),
        pytest.param(("--scopes", " , "), "scopes", id="no-scope"),
        pytest.param(("--scopes", "read", "--tenant", "nobody"), "nobody", id="unknown-tenant"),
    ],
)
def test_command_refuses_bad_scopes_and_unknown_tenants(make_tenant, args, named):
    make_tenant("acme")

    with pytest.raises(CommandError) as error:
        create_api_key("--name", "x", *args)

    assert named in str(error.value)
    assert not ApiKey.objects.exists()


def test_the_revoke_command_revokes_by_prefix_and_names_an_unknown_one(make_tenant, api):
    make_tenant("acme")
    issued = api_key_create(name="old", scopes=["ingest"])
    assert api(issued.plaintext).post("/api/v1/events", an_event("a")).status_code == 200
    out = StringIO()

    call_command("revoke_api_key", "--prefix", issued.api_key.prefix, stdout=out)

    assert f"Revoked key {issued.api_key.prefix} (old)" in out.getvalue()
    assert api(issued.plaintext).post("/api/v1/events", an_event("b")).status_code == 401
    with pytest.raises(CommandError, match="prefix: no API key 'nothere'"):
        call_command("revoke_api_key", "--prefix", "nothere")


# --- a presented key is never repeated -----------------------------------------------------


def _presented_keys(make_tenant) -> dict[str, str]:
    """Keys a caller may present that do not work: one of our shape that was never issued, a
    live key's prefix with a wrong secret, and a revoked key."""
    acme = make_tenant("acme")
    live = api_key_create(name="live", scopes=["read"], tenant=acme).plaintext
    revoked = api_key_create(name="old", scopes=["ingest", "read"], tenant=acme)
    api_key_revoke(prefix=revoked.api_key.prefix)
    marker, prefix, secret = live.split("_", 2)
    return {
        "never-issued": f"pc_0badc0de_{'Z' * len(secret)}",
        "wrong-secret": f"{marker}_{prefix}_{secret[::-1]}",
        "revoked": revoked.plaintext,
    }


def _secret_parts(plaintext: str) -> list[str]:
    # The whole key, and its secret part alone (the prefix is public: it names the key).
    return [plaintext, plaintext.split("_", 2)[2]]


@pytest.mark.parametrize("which", ["never-issued", "wrong-secret", "revoked"])
def test_a_refused_key_is_never_in_the_answer_or_the_logs(
    make_tenant, client, caplog, settings, which
):
    import logging

    from apps.core.logging import JsonFormatter, RequestIdFilter

    plaintext = _presented_keys(make_tenant)[which]
    settings.DEBUG = True  # so that Django logs every SQL statement, with its parameters
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    caplog.handler.addFilter(RequestIdFilter())  # as the console handler has it
    headers = {"Authorization": f"Bearer {plaintext}"}

    answers = [
        client.get("/api/v1/tenants", headers=headers),
        client.get(USAGE, headers=headers),
        client.post("/api/v1/events", json.dumps(an_event()), "application/json", headers=headers),
        client.get("/api/v1/invoices/00000000-0000-0000-0000-000000000000", headers=headers),
    ]

    assert [r.status_code for r in answers] == [401] * 4
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    lines = []
    for record in caplog.records:
        lines += [plain.format(record), JsonFormatter().format(record), repr(record.args)]
    # Django's request log line (every 4xx and 5xx) is there, and nowhere the key.
    assert any("Unauthorized: /api/v1/tenants" in line for line in lines)
    for response in answers:
        text = response.content.decode() + repr(dict(response.items()))
        for part in _secret_parts(plaintext):
            assert part not in text
    for line in lines:
        for part in _secret_parts(plaintext):
            assert part not in line


def test_a_key_revoked_in_the_portal_fails_on_the_very_next_request(make_tenant, client, api):
    from django.contrib.auth import get_user_model

    from apps.tenants.models import Membership

    acme = make_tenant("acme")
    issued = api_key_create(name="gateway", scopes=["read"], tenant=acme)
    caller = api(issued.plaintext)
    assert caller.get("/api/v1/tenants").status_code == 200
    owner = get_user_model().objects.create_user("olga", "olga@acme.example", "pw")
    Membership.objects.create(user=owner, tenant=acme, role="owner")
    client.force_login(owner)

    revoked = client.post(f"/portal/keys/{issued.api_key.prefix}/revoke/")

    assert revoked.status_code == 302
    response = caller.get("/api/v1/tenants")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert caller.post("/api/v1/events", an_event()).status_code == 401
