"""The console in a real Chromium: sign in and see the dashboard's charts drawn, resolve a
finding from the queue without a reload, and the dashboard at phone width."""

import pytest
import time_machine

from apps.assurance.models import Finding
from apps.chargeback.models import Statement
from apps.chargeback.services.statements import statements_run
from tests.chargeback.chargeback_setup import call, center, october, record, rule
from tests.conftest import PHONE
from tests.console.conftest import PASSWORD
from tests.console.program_setup import NOW, program_load

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(make_tenant, make_user):
    """The program fixture, built at its own moment; the browser then runs on real time (a
    frozen clock would hand the browser session cookies that expired long ago)."""
    with time_machine.travel(NOW, tick=False):
        tenants = program_load(make_tenant)
    make_user("fiona")
    return tenants


def sign_in(page, next_path: str = "/console/?period=2026-10") -> None:
    page.goto(f"/console/login/?next={next_path}")
    page.get_by_label("Username").fill("fiona")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_a_finance_user_signs_in_and_sees_the_dashboard_drawn(page, demo):
    sign_in(page)

    page.wait_for_selector("#accuracy-card [data-figure=accuracy]")
    assert page.title() == "API program 2026-10 · Percall"
    assert page.locator("[data-figure=active]").inner_text() == "2"
    assert page.locator("[data-figure=accuracy]").inner_text() == "100.00 %"
    # both charts are Chart.js charts with the figures of the fixture
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('canvas[data-chart]')].map(c => {
             const chart = Chart.getChart(c);
             return chart && chart.data.datasets.map(d => d.data.reduce((a, b) => a + +b, 0));
           })"""
    )
    # growth: registered 1 + 3, active 1 + 2; volume: acme 32, globex 4
    assert drawn == [[4, 3], [32, 4]]


def test_a_finding_is_resolved_from_the_queue(page, demo):
    finding = Finding.objects.get(category="no_subscription")
    sign_in(page, "/console/assurance/findings/")
    row = page.locator(f"#finding-{finding.id}")

    row.get_by_label("Reason to resolve").fill("Backdated subscription agreed")
    row.get_by_role("button", name="Resolve").click()

    page.wait_for_selector(f"#finding-{finding.id} .badge.resolved")
    assert "by fiona: Backdated subscription agreed" in row.inner_text()
    finding.refresh_from_db()
    assert (finding.status, finding.status_by) == ("resolved", "fiona")


@pytest.mark.parametrize("page", [PHONE], indirect=True)
def test_the_dashboard_fits_a_phone(page, demo):
    sign_in(page)
    page.wait_for_selector("#accuracy-card [data-figure=accuracy]")

    width = page.evaluate("document.documentElement.scrollWidth")

    assert width <= PHONE["width"]
    assert page.locator("canvas[data-chart]").first.bounding_box()["width"] <= PHONE["width"]


def test_a_finance_user_issues_a_statement(page, make_tenant, make_user):
    with time_machine.travel(NOW, tick=False):
        make_tenant("acme")
        rule("feature", "search", center("search"))
        record(call("1.25", feature="search"))
        statements_run(period=october())
    make_user("fiona")
    sign_in(page, "/console/chargeback/?period=2026-10")
    draft = Statement.objects.get(cost_center__code="search")
    row = page.locator(f"#statement-{draft.id}")

    row.get_by_label("Yes, issue").check()
    row.get_by_role("button", name="Issue").click()

    page.wait_for_selector("text=issued by fiona")
    draft.refresh_from_db()
    assert draft.status == "issued" and draft.issued_by.username == "fiona"
    assert "1.25 USD" in page.locator(f"#statement-{draft.id}").inner_text()
