import os

import pytest
import time_machine
from django.db import connection

from apps.tenants.services.api_keys import api_key_create
from apps.tenants.services.tenants import tenant_create

CHROMIUM = os.environ.get("PERCALL_CHROMIUM", "/usr/bin/chromium")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL-only tests (concurrency, locking, partitions) skip, with the reason, on
    SQLite; worker tests (real Celery workers) without PostgreSQL and Redis; browser
    tests skip, with the reason, where Debian's chromium is not installed."""
    from django.conf import settings

    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    skip_browser = pytest.mark.skip(
        reason=f"needs Chromium at {CHROMIUM}: apt-get install chromium (or set PERCALL_CHROMIUM)"
    )
    skip_worker = pytest.mark.skip(
        reason="starts real Celery workers: needs PostgreSQL (DATABASE_URL=postgres://...) and "
        "a Redis broker (CELERY_BROKER_URL=redis://...)"
    )
    broker = settings.CELERY_BROKER_URL_FOR_WORKER_TESTS
    has_workers = settings.USING_POSTGRES and broker.startswith("redis")
    has_chromium = os.access(CHROMIUM, os.X_OK)
    for item in items:
        if "postgres" in item.keywords and not settings.USING_POSTGRES:
            item.add_marker(skip_pg)
        if "worker" in item.keywords and not has_workers:
            item.add_marker(skip_worker)
        if "browser" in item.keywords and not has_chromium:
            item.add_marker(skip_browser)


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


# Browser tests run on pytest-playwright's fixtures (``browser``, ``context``, its CLI
# options such as ``--headed``, ``--slowmo``, ``--tracing``), pointed at Debian's chromium
# (Playwright downloads no browser here) and at pytest-django's live server.
LAPTOP = {"width": 1366, "height": 800}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch ``/usr/bin/chromium`` (or ``PERCALL_CHROMIUM``). Test code uses the ORM while
    Playwright's loop runs in the same thread, which Django refuses unless told it is safe
    (it is: the loop only drives the browser)."""
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args, live_server):
    """Every page's relative URLs go to the live server."""
    return {**browser_context_args, "base_url": live_server.url, "viewport": LAPTOP}


def _page_problem(response) -> str | None:
    """A failed load worth failing a test for (a browser's own favicon probe is not)."""
    if response.status < 400 or response.url.endswith("/favicon.ico"):
        return None
    return f"{response.status} for {response.url}"


@pytest.fixture(params=[LAPTOP], ids=["laptop"])
def page(request, context):
    """pytest-playwright's page on the live server (``page.goto(path)`` takes a path), failing
    the test on any JavaScript error, console error, or failed load (4xx/5xx, favicon aside)
    the page had. Parametrize the viewport indirectly
    (``@pytest.mark.parametrize("page", [PHONE], indirect=True)``) for phones."""
    page = context.new_page()
    page.set_viewport_size(request.param)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("response", lambda r: (problem := _page_problem(r)) and errors.append(problem))
    # Failed loads are reported above with their address; the console's own line for them
    # names none, so it is left out here.
    page.on(
        "console",
        lambda msg: (
            errors.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield page
    assert errors == [], errors


PHONE = {"width": 390, "height": 844}
