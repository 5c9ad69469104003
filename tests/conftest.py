import pytest
import time_machine
from django.db import connection

from apps.tenants.services.api_keys import api_key_create
from apps.tenants.services.tenants import tenant_create


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL-only tests (concurrency, locking, partitions) skip, with the reason, on SQLite."""
    from django.conf import settings

    if settings.USING_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def make_tenant(db):
    def make(external_id: str = "acme", **kwargs):
        kwargs.setdefault("name", external_id.title())
        kwargs.setdefault("currency", "USD")
        return tenant_create(external_id=external_id, **kwargs)

    return make


@pytest.fixture
def make_key(db):
    def make(scopes=("ingest", "read", "admin"), tenant=None, name="test key"):
        return api_key_create(name=name, scopes=list(scopes), tenant=tenant).plaintext

    return make


@pytest.fixture
def api(client):
    """A Django test client bound to a bearer key: api(key).post(path, json_body)."""

    class Api:
        def __init__(self, key: str) -> None:
            self.headers = {"Authorization": f"Bearer {key}"}

        def get(self, path, params=None):
            return client.get(path, params or {}, headers=self.headers)

        def post(self, path, data=None, content_type="application/json", **headers):
            body = data if isinstance(data, bytes | str) else __import__("json").dumps(data)
            return client.post(
                path, body, content_type=content_type, headers=self.headers | headers
            )

    return Api


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def clock(request):
    """Time stands still at the test module's ``NOW`` (aware UTC); yields the traveller so a
    test can move it with ``clock.shift(...)``."""
    with time_machine.travel(request.module.NOW, tick=False) as traveller:
        yield traveller
