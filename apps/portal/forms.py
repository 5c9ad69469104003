"""The portal's forms: input parsing only; what they decide goes to a service."""

from datetime import date, timedelta

from django import forms

from apps.alerts.models import EVENT_TYPES
from apps.portal.selectors import EXPLORER_DIMENSIONS, EXPLORER_MEASURES

MAX_EXPLORER_DAYS = 400  # the rollup queries' own bound (metering.selectors.MAX_RANGE)
VALUES_DAYS = 92  # filter choices: the values the tenant's usage took in this many days


class SignInForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(strip=False, widget=forms.PasswordInput)


class ExplorerForm(forms.Form):
    """Dates are local calendar days in the tenant's timezone; ``to`` is inclusive."""

    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    meter = forms.ChoiceField(required=False)
    feature = forms.ChoiceField(required=False)
    endpoint = forms.ChoiceField(required=False)
    model = forms.ChoiceField(required=False)
    group_by = forms.ChoiceField(
        label="Group by",
        required=False,
        choices=[("", "nothing"), *((d, d.replace("_", " ")) for d in EXPLORER_DIMENSIONS)],
    )
    measure = forms.ChoiceField(
        required=False,
        choices=[(m, m.replace("_", " ")) for m in EXPLORER_MEASURES],
        initial="events",
    )

    def __init__(self, *args: object, values: dict[str, list[str]], meters: list[str], **kw):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        for name in ("feature", "endpoint", "model"):
            choice = self._choice(name)
            choice.choices = [("", "all"), *((v, v) for v in values[name])]
            choice.error_messages["invalid_choice"] = (
                f"{name.title()}: not one of the values your usage had "
                f"in the last {VALUES_DAYS} days."
            )
        self._choice("meter").choices = [("", "all"), *((m, m) for m in meters)]

    def _choice(self, name: str) -> forms.ChoiceField:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        return field

    def clean(self) -> dict:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "To: must be on or after From.")
            elif end - start > timedelta(days=MAX_EXPLORER_DAYS):
                self.add_error("end", f"To: at most {MAX_EXPLORER_DAYS} days after From.")
        return data


def default_range(today: date) -> tuple[date, date]:
    """The explorer's default: the month so far."""
    return today.replace(day=1), today


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=[
            ("ingest", "ingest: send events"),
            ("read", "read: usage, invoices, credits"),
            ("admin", "admin: also buy packs and manage webhooks"),
        ],
        widget=forms.CheckboxSelectMultiple,
        initial=["read"],
        help_text="The key acts for this tenant only.",
    )


class WebhookForm(forms.Form):
    url = forms.URLField(label="URL", max_length=500, assume_scheme="https")
    description = forms.CharField(max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        label="Event types",
        required=False,
        choices=[(t, t) for t in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type.",
    )


class PurchaseForm(forms.Form):
    pack = forms.CharField(max_length=64)
    # Made when the form is shown, so a double submit buys once (billing's idempotent()).
    token = forms.UUIDField(widget=forms.HiddenInput)


# Bare names (what each may do is said under the table): long option texts widen the select
# past a phone's screen.
ROLE_CHOICES = [("viewer", "viewer"), ("billing", "billing"), ("owner", "owner")]


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="viewer")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)
