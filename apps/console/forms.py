"""Input of the console's pages and forms: every field labelled, every error naming the field."""

from datetime import date

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from apps.assurance.errors import LeakageInvalid
from apps.assurance.models import Finding
from apps.assurance.selectors import finding_list, leakage_period_parse
from apps.billing.models import Invoice
from apps.core.periods import month_add
from apps.costs.errors import AnalyticsQueryInvalid
from apps.costs.metrics import METRICS
from apps.costs.selectors import GROUPS, CostPeriod, cost_period_parse


class SignInForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150)
    password = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)


def last_closed_month() -> str:
    """The month before this UTC month: its invoices are final and its usage complete."""
    today = timezone.now().date()
    return f"{month_add(date(today.year, today.month, 1), -1):%Y-%m}"


class MonthForm(forms.Form):
    """``?period=YYYY-MM``, defaulting to the last closed month."""

    period = forms.CharField(label="Month", required=False, max_length=7)

    def clean_period(self) -> CostPeriod:
        text = self.cleaned_data.get("period") or last_closed_month()
        if len(text) != 7:
            raise forms.ValidationError(f"{text!r} is not a month as YYYY-MM")
        try:
            return cost_period_parse(text)
        except AnalyticsQueryInvalid as exc:
            raise forms.ValidationError(f"{text!r} is not a month as YYYY-MM") from exc


def month_of(params: object) -> tuple[MonthForm, CostPeriod | None]:
    """The month form bound to the query string and its month, or None when it is invalid."""
    form = MonthForm(params or None)  # type: ignore[arg-type]
    if not form.is_bound:
        form = MonthForm({"period": last_closed_month()})
    return form, form.cleaned_data["period"] if form.is_valid() else None


UNRESOLVED = "unresolved"


class FindingFilterForm(forms.Form):
    """The findings queue's filters; the default is what still needs someone: unresolved."""

    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[(UNRESOLVED, "Unresolved"), *Finding.Status.choices, ("all", "All")],
    )
    category = forms.ChoiceField(
        label="Category", required=False, choices=[("", "All"), *Finding.Category.choices]
    )
    period = forms.CharField(label="Month", required=False, max_length=7)

    def clean_period(self) -> date | None:
        text = self.cleaned_data.get("period")
        if not text:
            return None
        try:
            return leakage_period_parse(text)
        except LeakageInvalid as exc:
            raise forms.ValidationError(f"{text!r} is not a month as YYYY-MM") from exc

    def findings(self) -> QuerySet[Finding]:
        data = self.cleaned_data
        status = data.get("status") or UNRESOLVED
        rows = finding_list(
            period_start=data.get("period"),
            status=None if status in (UNRESOLVED, "all") else status,
            category=data.get("category") or None,
        )
        return rows.exclude(status=Finding.Status.RESOLVED) if status == UNRESOLVED else rows


def last_closed_quarter() -> str:
    today = timezone.now().date()
    start = month_add(date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), -3)
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


class QuarterForm(forms.Form):
    """``?quarter=YYYY-Qn`` (calendar quarters, UTC), defaulting to the last closed one."""

    quarter = forms.CharField(label="Quarter", required=False, max_length=7)

    def clean_quarter(self) -> list[CostPeriod]:
        text = (self.cleaned_data.get("quarter") or last_closed_quarter()).upper()
        year, _, number = text.partition("-Q")
        if not (year.isdigit() and len(year) == 4 and number in ("1", "2", "3", "4")):
            raise forms.ValidationError(f"{text!r} is not a quarter as YYYY-Qn (n from 1 to 4)")
        first = date(int(year), 3 * (int(number) - 1) + 1, 1)
        return [CostPeriod(month_add(first, i), month_add(first, i + 1)) for i in range(3)]


class InvoiceFilterForm(forms.Form):
    """Drafts by default: they are what waits for review."""

    status = forms.ChoiceField(label="Status", required=False, choices=Invoice.Status.choices)


class ConfirmForm(forms.Form):
    """Every write asks for an explicit tick: finance must never finalize by a stray click."""

    confirm = forms.BooleanField(label="I confirm", required=True)


class VoidForm(ConfirmForm):
    reason = forms.CharField(label="Reason to void", max_length=500)
    reissue = forms.BooleanField(label="Reissue a new draft for the same period", required=False)


class CreditNoteForm(ConfirmForm):
    amount = forms.DecimalField(label="Credit amount", max_digits=20, decimal_places=4)
    reason = forms.CharField(label="Reason for the credit", max_length=500)


METRIC_CHOICES = [(name, name.replace("_", " ")) for name in (*METRICS, "full_cost_per_call")]


class MetricForm(MonthForm):
    """A cost-intelligence metric for a month, grouped by one dimension (or its default)."""

    metric = forms.ChoiceField(label="Metric", required=False, choices=METRIC_CHOICES)
    group_by = forms.ChoiceField(
        label="Group by",
        required=False,
        choices=[("", "metric's default"), *((g, g) for g in GROUPS)],
    )
