import json
import logging
import os
import subprocess
import sys

import pytest
from celery import current_app

from apps.core.logging import JsonFormatter, RequestIdFilter, request_id_var

pytestmark = pytest.mark.django_db


def _records_of(caplog):
    return [r for r in caplog.records if r.name == "tests.request"]


@pytest.fixture
def logging_view(settings):
    """A URL whose view logs one line, to see which request id the line carries."""
    settings.ROOT_URLCONF = "tests.core.test_logging"


def view_that_logs(request):
    from django.http import HttpResponse

    logging.getLogger("tests.request").info("handling %s", request.path)
    return HttpResponse("ok")


def _urlpatterns():
    from django.urls import path

    return [path("logs", view_that_logs)]


urlpatterns = _urlpatterns()


def test_a_sane_request_id_is_returned_and_carried_by_the_requests_log_records(
    client, logging_view, caplog
):
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="tests.request"):
        response = client.get("/logs", headers={"X-Request-ID": "edge-7f3a.b_9"})
    assert response["X-Request-ID"] == "edge-7f3a.b_9"
    [record] = _records_of(caplog)
    assert record.request_id == "edge-7f3a.b_9"
    assert request_id_var.get() == ""  # nothing leaks past the request


@pytest.mark.parametrize(
    "given",
    ["a" * 65, "has space", "new\nline", "<script>", "", "é"],
    ids=["too-long", "space", "newline", "markup", "empty", "non-ascii"],
)
def test_an_invalid_request_id_is_replaced_by_a_new_one(client, logging_view, caplog, given):
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="tests.request"):
        response = client.get("/logs", headers={"X-Request-ID": given})
    returned = response["X-Request-ID"]
    assert returned != given
    assert len(returned) == 32 and int(returned, 16) >= 0  # uuid4 hex
    [record] = _records_of(caplog)
    assert record.request_id == returned


def test_djangos_own_line_for_a_4xx_answer_carries_the_request_id(client, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/api/v1/no-such-thing", headers={"X-Request-ID": "edge-404"})
    assert response.status_code == 404
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.request_id == "edge-404"


def test_each_request_without_an_id_gets_its_own(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert first != second


def test_json_formatter_writes_one_object_with_the_fields_and_the_exception():
    try:
        raise ValueError("bad meter")
    except ValueError:
        record = logging.LogRecord(
            "apps.billing", logging.ERROR, __file__, 1, "run %s failed", ("r1",), sys.exc_info()
        )
    record.created = 1_800_000_000.25  # the well-known 1.8e9 s: 2027-01-15T08:00:00Z
    token = request_id_var.set("req-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = JsonFormatter().format(record)
    assert "\n" not in line  # one line, the traceback's newlines escaped
    entry = json.loads(line)
    assert entry["time"] == "2027-01-15T08:00:00.250Z"
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "ERROR",
        "apps.billing",
        "run r1 failed",
    )
    assert entry["request_id"] == "req-1"
    assert "ValueError: bad meter" in entry["exception"]


def test_json_formatter_gives_null_request_id_outside_a_request():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "started", (), None)
    RequestIdFilter().filter(record)
    assert json.loads(JsonFormatter().format(record))["request_id"] is None


def test_a_task_logs_under_its_own_task_id(caplog):
    seen: list[str] = []

    @current_app.task(name="tests.core.log_request_id")
    def log_request_id() -> None:
        seen.append(request_id_var.get())

    result = log_request_id.apply(task_id="task-42")
    assert result.successful()
    assert seen == ["task-42"]
    assert request_id_var.get() == ""  # reset after the task


def test_a_task_run_eagerly_in_a_request_keeps_the_requests_id():
    seen: list[str] = []

    @current_app.task(name="tests.core.log_request_id_eager")
    def log_request_id() -> None:
        seen.append(request_id_var.get())

    token = request_id_var.set("req-9")
    try:
        log_request_id.apply(task_id="task-43")
        assert request_id_var.get() == "req-9"
    finally:
        request_id_var.reset(token)
    assert seen == ["req-9"]


def _log_one_line(settings_module: str, **env: str) -> str:
    """What one log call prints to stderr in a fresh process on the given settings."""
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('apps.billing').warning('invoice %s late', 'PC-1')"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "billing.example",
        **env,
    }
    environment.pop("LOG_FORMAT", None)
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    return done.stderr.strip().splitlines()[-1]


def test_production_logs_json_lines_by_default():
    entry = json.loads(_log_one_line("config.settings.production"))
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "WARNING",
        "apps.billing",
        "invoice PC-1 late",
    )
    assert entry["request_id"] is None


def test_local_logs_plain_lines_and_log_format_switches_them():
    assert _log_one_line("config.settings.local").endswith(
        "WARNING apps.billing [] invoice PC-1 late"
    )
    entry = json.loads(_log_one_line("config.settings.local", LOG_FORMAT="json"))
    assert entry["message"] == "invoice PC-1 late"
