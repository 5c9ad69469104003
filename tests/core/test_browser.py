"""The browser harness itself: Debian's chromium loads a page of ours from the live server,
with our static files (htmx, Chart.js, app.js) and no JavaScript error, and a page that
throws fails the test."""

import pytest

from tests.conftest import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_page_loads_our_static_scripts_without_errors(page):
    page.goto("/admin/login/")
    assert page.title().startswith("Log in")
    # the vendored libraries are served from our own static files
    for path in ("percall/vendor/htmx-2.0.11.min.js", "percall/vendor/chart-4.6.1.umd.min.js"):
        answer = page.request.get(f"/static/{path}")
        assert answer.status == 200 and len(answer.body()) > 10_000


@pytest.mark.parametrize("page", [PHONE], indirect=True)
def test_the_harness_runs_at_phone_width(page):
    page.goto("/admin/login/")
    assert page.viewport_size == PHONE


def test_a_script_error_on_a_page_is_caught(context):
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/admin/login/")
    page.evaluate("setTimeout(() => { throw new Error('boom') }, 0)")
    page.wait_for_timeout(100)
    assert errors and "boom" in errors[0]
