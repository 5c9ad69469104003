"""Revenue assurance pages: the month's reconciliation, the findings queue and its filters,
and acknowledging or resolving a finding through the assurance services, as the user."""

import re
from uuid import uuid4

import pytest
from django.test import Client

from apps.assurance.models import Finding
from tests.console.program_setup import NOW

__all__ = ["NOW"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def finding(program) -> Finding:
    """acme's September call, made before its subscription began."""
    return Finding.objects.get(tenant=program["acme"], category="no_subscription")


def test_the_reconciliation_shows_the_month_per_partner(finance, program):
    body = finance.get("/console/assurance/?period=2026-10").content.decode()

    assert "<title>Reconciliation 2026-10 · Percall</title>" in body
    # usage only (base fees are not usage): acme's 32 events are stored and billable, worth
    # (30 - 10 free) x 0.10 + 2,000 tokens x 0.001 = 2.00 + 2.00 = 4.00, billed in full
    assert re.search(
        r"<td>acme</td><td class=\"num\">32</td><td class=\"num\">32</td><td class=\"num\">32"
        r"</td>\s*<td class=\"num\">4.00 USD</td><td class=\"num\">4.00 USD</td>",
        body,
    )
    # globex's 4 calls are free: nothing billable, so no accuracy of its own
    assert re.search(r"<td>globex</td>(.|\n)*?<td class=\"num\">\u2013</td></tr>", body)
    # in all: 4.00 + 0.00 billed of 4.00 billable, 100 %
    assert re.search(
        r"<td>USD</td><td class=\"num\">4.00</td><td class=\"num\">4.00</td>.*100.00 %", body
    )


def test_the_queue_lists_unresolved_findings_and_filters(finance, finding):
    body = finance.get("/console/assurance/findings/").content.decode()
    assert f'id="finding-{finding.id}"' in body
    assert "1 finding." in body

    resolved = finance.get("/console/assurance/findings/?status=resolved").content.decode()
    assert f'id="finding-{finding.id}"' not in resolved
    october = finance.get("/console/assurance/findings/?period=2026-10").content.decode()
    assert f'id="finding-{finding.id}"' not in october
    other = finance.get("/console/assurance/findings/?category=unpriced").content.decode()
    assert f'id="finding-{finding.id}"' not in other


def test_a_bad_filter_is_a_400_naming_the_field(finance, db):
    response = finance.get("/console/assurance/findings/?status=lost")

    assert response.status_code == 400
    assert "Status: Select a valid choice." in response.content.decode()


def test_acknowledging_records_who_did_it(finance, finding):
    response = finance.post(f"/console/assurance/findings/{finding.id}/acknowledge/")

    assert response.status_code == 302
    finding.refresh_from_db()
    assert (finding.status, finding.status_by) == ("acknowledged", "fiona")


def test_resolving_over_htmx_swaps_the_row(finance, finding):
    response = finance.post(
        f"/console/assurance/findings/{finding.id}/resolve/",
        {"reason": "Subscription backdated by sales"},
        headers={"HX-Request": "true"},
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith(f'<tr id="finding-{finding.id}">')
    assert "by fiona: Subscription backdated by sales" in body
    finding.refresh_from_db()
    assert finding.status == "resolved"
    assert finding.status_reason == "Subscription backdated by sales"


def test_resolving_without_a_reason_changes_nothing_and_says_why(finance, finding):
    response = finance.post(
        f"/console/assurance/findings/{finding.id}/resolve/",
        {"reason": "  "},
        headers={"HX-Request": "true"},
    )

    assert "reason: say why the finding is resolved" in response.content.decode()
    finding.refresh_from_db()
    assert (finding.status, finding.status_by) == ("open", "scan")


def test_a_plain_post_goes_back_to_the_filtered_queue(finance, finding):
    response = finance.post(
        f"/console/assurance/findings/{finding.id}/resolve/",
        {"reason": "ok", "back": "/console/assurance/findings/?period=2026-09"},
    )

    assert response["Location"] == "/console/assurance/findings/?period=2026-09"
    away = finance.post(
        f"/console/assurance/findings/{finding.id}/acknowledge/",
        {"back": "https://evil.example/console/assurance/findings/"},
    )
    assert away["Location"] == "/console/assurance/findings/"


def test_an_unknown_finding_or_action_is_a_404(finance, finding):
    assert finance.post(f"/console/assurance/findings/{uuid4()}/resolve/").status_code == 404
    assert finance.post(f"/console/assurance/findings/{finding.id}/delete/").status_code == 404
    finding.refresh_from_db()
    assert finding.status == "open"


def test_actions_need_post_and_a_csrf_token(make_user, finding):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("fiona"))
    path = f"/console/assurance/findings/{finding.id}/resolve/"

    assert client.get(path).status_code == 405
    assert client.post(path, {"reason": "ok"}).status_code == 403
    finding.refresh_from_db()
    assert finding.status == "open"


def test_the_queue_query_count_is_bounded(finance, finding, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        finance.get("/console/assurance/findings/")
