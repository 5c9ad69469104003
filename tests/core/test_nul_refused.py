"""A NUL character (%00) in an API path or query string is the API's 400, never a lookup:
PostgreSQL refuses NUL in every text value, so it would be a server error there."""

import pytest


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/tenants/ac%00me", "path"),
        ("/api/v1/limits/%00", "path"),
        ("/api/v1/invoices?tenant=%00", "tenant"),
        ("/api/v1/leakage/report?period=2026-10&tenant=a%00", "tenant"),
        ("/api/v1/usage/check?tenant=%00&hour=2026-10-05T12:00:00Z", "tenant"),
    ],
)
def test_a_nul_in_the_path_or_query_is_a_400_naming_it(make_key, api, path, field):
    response = api(make_key()).get(path)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["field"] == field
    assert "NUL" in response.json()["error"]["message"]
