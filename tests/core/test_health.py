import pytest
from django.db import connection
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_healthz_answers_ok_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@override_settings(CELERY_BROKER_URL="")
def test_readyz_is_ok_when_database_and_cache_answer_and_skips_the_absent_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "broker": "skipped"},
        "failed": [],
    }


@override_settings(CELERY_BROKER_URL="")
def test_readyz_is_503_naming_the_database_when_it_fails(client, monkeypatch):
    def cursor_refused(*args, **kwargs):
        raise RuntimeError("connection to db.internal.example:5432 refused")

    monkeypatch.setattr(connection, "cursor", cursor_refused)
    response = client.get("/readyz")
    monkeypatch.undo()
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "failed", "cache": "ok", "broker": "skipped"},
        "failed": ["database"],
    }
    assert b"db.internal.example" not in response.content  # no hostnames to the world


@override_settings(CELERY_BROKER_URL="")
def test_readyz_is_503_when_the_cache_loses_what_was_set(client, monkeypatch):
    from django.core.cache import cache

    monkeypatch.setattr(cache, "get", lambda *args, **kwargs: None)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["cache"]


# Port 1 on loopback refuses at once: a broker that is down, without waiting on a timeout.
@override_settings(CELERY_BROKER_URL="redis://secret-user:hunter2@127.0.0.1:1/0")
def test_readyz_checks_a_configured_broker_and_hides_its_url(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "failed"
    assert response.json()["failed"] == ["broker"]
    for secret in (b"hunter2", b"secret-user", b"127.0.0.1"):
        assert secret not in response.content


def test_probes_need_no_credentials_and_refuse_writes(client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405
