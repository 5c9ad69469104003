"""Every page of the portal and the console in a real Chromium, at laptop and phone width:
it answers 200, has a title of its own, every form control has a label, nothing overflows
the screen sideways, and (the ``page`` fixture) no JavaScript or console error and no failed
load happened."""

import pytest
import time_machine

from tests.conftest import PHONE
from tests.console.conftest import PASSWORD as CONSOLE_PASSWORD
from tests.console.conftest import make_user  # noqa: F401  (a fixture)
from tests.console.program_setup import NOW as PROGRAM_NOW
from tests.console.program_setup import program_load
from tests.portal.conftest import PASSWORD as PORTAL_PASSWORD
from tests.portal.conftest import world  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LAPTOP = {"width": 1366, "height": 800}

PORTAL_PAGES = ["/portal/", "/portal/usage/", "/portal/invoices/", "/portal/credits/",
                "/portal/keys/", "/portal/webhooks/", "/portal/team/"]  # fmt: skip
CONSOLE_PAGES = ["/console/?period=2026-10", "/console/assurance/?period=2026-10",
                 "/console/assurance/findings/?period=2026-10", "/console/invoices/",
                 "/console/chargeback/?period=2026-10", "/console/costs/?period=2026-10",
                 "/console/review/"]  # fmt: skip

_UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => !['hidden', 'submit', 'button'].includes(e.type))
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !e.getAttribute('aria-labelledby'))
  .map(e => e.name || e.id || e.outerHTML.slice(0, 60))"""
_OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _sweep(page, paths: list[str]) -> list[str]:
    """The problems of each page, by path: titles must differ, so a page cannot pass with the
    layout's bare title."""
    problems, titles = [], set()
    for path in paths:
        answer = page.goto(path)
        page.wait_for_load_state("networkidle")
        title = page.title()
        if answer is None or answer.status != 200:
            problems.append(f"{path}: {answer and answer.status}")
        if not title or title in titles:
            problems.append(f"{path}: title {title!r} is missing or repeats another page's")
        titles.add(title)
        if unlabelled := page.evaluate(_UNLABELLED):
            problems.append(f"{path}: controls without a label: {unlabelled}")
        if (overflow := page.evaluate(_OVERFLOW)) > 0:
            problems.append(f"{path}: {overflow}px wider than the screen")
    return problems


def _portal_sign_in(page) -> None:
    page.goto("/portal/login/")
    page.get_by_label("Username").fill("olga")
    page.get_by_label("Password").fill(PORTAL_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal/")


@pytest.mark.parametrize("page", [LAPTOP, PHONE], indirect=True, ids=["laptop", "phone"])
def test_every_portal_page(world, page):  # noqa: F811
    _portal_sign_in(page)
    invoice = f"/portal/invoices/{world.alpha_invoice.id}/"
    webhook = f"/portal/webhooks/{world.alpha_hook.id}/"
    assert _sweep(page, [*PORTAL_PAGES, invoice, webhook]) == []


@pytest.fixture
def program(make_tenant, make_user):  # noqa: F811
    with time_machine.travel(PROGRAM_NOW, tick=False):
        tenants = program_load(make_tenant)
    make_user("fiona")
    return tenants


@pytest.mark.parametrize("page", [LAPTOP, PHONE], indirect=True, ids=["laptop", "phone"])
def test_every_console_page(program, page):
    page.goto("/console/login/")
    page.get_by_label("Username").fill("fiona")
    page.get_by_label("Password").fill(CONSOLE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/**")
    assert _sweep(page, CONSOLE_PAGES) == []
