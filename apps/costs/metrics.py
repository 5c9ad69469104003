"""The cost-intelligence metrics: each one a set of figures per group over a period, with
the previous period beside it.

Every metric answers from the cost rollups (``selectors.cost_totals``: one grouped query per
period) or the workflow runs; margins add billed revenue. Figures are exact decimals as text:
costs at full precision, per-call and per-run costs rounded to 12 places, ratios to 6 places
(ROUND_HALF_UP). A figure whose denominator is zero is null.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from django.conf import settings

from apps.catalog.services.document import decimal_text
from apps.costs.errors import AnalyticsQueryInvalid
from apps.costs.selectors import (
    GROUPS,
    CostPeriod,
    GroupKey,
    analytics_max_groups,
    cost_daily,
    cost_totals,
    revenue_totals,
    workflow_runs,
)
from apps.tenants.models import Tenant

ZERO = Decimal(0)
_PER_UNIT = Decimal("1e-12")
_RATIO = Decimal("1e-6")

Figures = dict[str, Any]


def per(amount: Decimal | int, count: Decimal | int) -> Decimal | None:
    """``amount / count`` to 12 places, or None when ``count`` is 0."""
    if not count:
        return None
    return (Decimal(amount) / Decimal(count)).quantize(_PER_UNIT, rounding=ROUND_HALF_UP)


def ratio(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """``part / whole`` to 6 places, or None when ``whole`` is 0."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(_RATIO, rounding=ROUND_HALF_UP)


def slope(points: list[tuple[int, Decimal]]) -> Decimal | None:
    """The least-squares slope of cost over calls through daily (calls, cost) points: what
    one more call costs at the margin. None with fewer than two distinct call counts."""
    n = len(points)
    if n < 2:
        return None
    mean_x = Decimal(sum(x for x, _ in points)) / n
    mean_y = sum((y for _, y in points), ZERO) / n
    variance = sum(((x - mean_x) ** 2 for x, _ in points), ZERO)
    if variance == 0:
        return None
    covariance = sum(((x - mean_x) * (y - mean_y) for x, y in points), ZERO)
    return (covariance / variance).quantize(_PER_UNIT, rounding=ROUND_HALF_UP)


def growth(current: Decimal | int, previous: Decimal | int) -> Decimal | None:
    """``current / previous - 1`` to 6 places, or None without a previous value."""
    if not previous:
        return None
    return (Decimal(current) / Decimal(previous) - 1).quantize(_RATIO, rounding=ROUND_HALF_UP)


# --- the metrics ---------------------------------------------------------------------------


def _cost(t: Figures) -> Figures:
    return {"value": t["cost"], "cost": t["cost"], "calls": t["calls"]}


def _cost_per_call(t: Figures) -> Figures:
    return {"value": per(t["cost"], t["calls"]), "cost": t["cost"], "calls": t["calls"]}


def _requests(t: Figures) -> Figures:
    return {"value": t["calls"], "calls": t["calls"], "errors": t["errors"]}


def _amplification(t: Figures) -> Figures:
    return {
        "value": ratio(t["traced_calls"], t["root_calls"]),
        "traced_calls": t["traced_calls"],
        "root_calls": t["root_calls"],
    }


def _call_mix(t: Figures) -> Figures:
    return {
        "value": ratio(t["external_calls"], t["calls"]),
        "internal_calls": t["calls"] - t["external_calls"],
        "external_calls": t["external_calls"],
        "external_cost": t["external_cost"],
        "cost": t["cost"],
        "external_cost_share": ratio(t["external_cost"], t["cost"]),
    }


def _tokens_per_request(t: Figures) -> Figures:
    calls = t["llm_calls"]
    return {
        "value": ratio(t["input_tokens"] + t["output_tokens"], calls),
        "llm_calls": calls,
        "input_tokens_per_request": ratio(t["input_tokens"], calls),
        "output_tokens_per_request": ratio(t["output_tokens"], calls),
        "cache_read_tokens_per_request": ratio(t["cache_read_tokens"], calls),
        "reasoning_tokens_per_request": ratio(t["reasoning_tokens"], calls),
    }


def _retries(t: Figures) -> Figures:
    return {
        "value": ratio(t["retries"], t["calls"]),
        "calls": t["calls"],
        "retries": t["retries"],
        "errors": t["errors"],
        "retry_cost": t["wasted_cost"],
        "retry_cost_share": ratio(t["wasted_cost"], t["cost"]),
    }


def _cache(t: Figures) -> Figures:
    return {
        "value": ratio(t["hit_calls"], t["calls"]),
        "calls": t["calls"],
        "cache_hits": t["hit_calls"],
        "avoided_cost": t["avoided_cost"],
    }


def _cost_per_run(t: Figures) -> Figures:
    return {
        "value": per(t["workflow_cost"], t["workflow_runs"]),
        "workflow_cost": t["workflow_cost"],
        "runs": t["workflow_runs"],
    }


def _coverage(t: Figures) -> Figures:
    return {
        "value": ratio(t["calls"] - t["uncosted_calls"], t["calls"]),
        "calls": t["calls"],
        "event_costed_calls": t["event_costed_calls"],
        "price_book_calls": t["price_book_calls"],
        "uncosted_calls": t["uncosted_calls"],
    }


@dataclass(frozen=True)
class Metric:
    name: str
    describe: str
    figures: Callable[[Figures], Figures]
    needs: tuple[str, ...]  # the sums of ``selectors.cost_totals`` it reads (calls always)
    default_group_by: tuple[str, ...] = ()
    allowed: tuple[str, ...] = GROUPS


SIMPLE_METRICS = {
    m.name: m
    for m in (
        Metric("cost", "direct cost", _cost, ("cost",)),
        Metric("cost_per_call", "direct cost per API call", _cost_per_call, ("cost",)),
        Metric("requests", "request volume", _requests, ("errors",)),
        Metric(
            "amplification",
            "calls in traces per root call",
            _amplification,
            ("traced_calls", "root_calls"),
        ),
        Metric(
            "call_mix",
            "external share of calls and of cost",
            _call_mix,
            ("external_calls", "external_cost", "cost"),
        ),
        Metric(
            "tokens_per_request",
            "tokens per LLM call",
            _tokens_per_request,
            ("llm_calls", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"),
            ("model",),
        ),
        Metric(
            "retries",
            "retry rate and retry cost",
            _retries,
            ("retries", "errors", "wasted_cost", "cost"),
        ),
        Metric("cache", "cache hit rate and avoided cost", _cache, ("hit_calls", "avoided_cost")),
        Metric(
            "cost_per_run",
            "cost per workflow run",
            _cost_per_run,
            ("workflow_cost", "workflow_runs"),
            ("workflow",),
        ),
        Metric(
            "coverage",
            "share of calls costed, by source",
            _coverage,
            ("event_costed_calls", "price_book_calls", "uncosted_calls"),
        ),
    )
}
METRICS = (
    *SIMPLE_METRICS,
    "workflow_depth",
    "margin",
    "marginal_cost",
    "full_cost_per_call",
)


# --- reports -------------------------------------------------------------------------------


def _text(value: Any) -> Any:
    return decimal_text(value) if isinstance(value, Decimal) else value


def _labels(group_by: tuple[str, ...], key: GroupKey, names: dict[str, str]) -> dict[str, str]:
    out = dict(zip(group_by, key, strict=True))
    if "tenant" in out:
        out["tenant_name"] = names.get(out["tenant"], "")
    return out


def report(
    *,
    metric: str,
    period: CostPeriod,
    previous: CostPeriod,
    group_by: tuple[str, ...],
    current: dict[GroupKey, Figures],
    before: dict[GroupKey, Figures],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON answer: a row per group (largest value first) with its figures, the
    previous period's value and the change."""
    tenant_ids = {k[group_by.index("tenant")] for k in current} if "tenant" in group_by else set()
    names = {
        str(i): n for i, n in Tenant.objects.filter(id__in=tenant_ids).values_list("id", "name")
    }
    rows = []
    for key, figures in current.items():
        prior = before.get(key, {}).get("value")
        value = figures["value"]
        rows.append(
            {
                "group": _labels(group_by, key, names),
                **{k: _text(v) for k, v in figures.items()},
                "previous": _text(prior),
                "change": _text(
                    growth(value, prior)
                    if isinstance(value, Decimal | int) and isinstance(prior, Decimal | int)
                    else None
                ),
            }
        )
    rows.sort(key=lambda r: -(Decimal(r["value"]) if r["value"] is not None else ZERO))
    return {
        "metric": metric,
        "period": period.label,
        "start": period.start_at().isoformat().replace("+00:00", "Z"),
        "end": period.end_at().isoformat().replace("+00:00", "Z"),
        "previous_period": previous.label,
        "currency": settings.PERCALL_OPERATOR_CURRENCY,
        "group_by": list(group_by),
        "rows": rows,
        **(extra or {}),
    }


def _checked(metric: Metric | None, name: str, group_by: tuple[str, ...]) -> tuple[str, ...]:
    allowed = metric.allowed if metric else GROUPS
    for g in group_by:
        if g not in allowed:
            raise AnalyticsQueryInvalid(
                f"group_by: {name} groups by {', '.join(allowed)} only, not {g!r}",
                field="group_by",
            )
    return group_by


def simple_metric(
    name: str,
    *,
    period: CostPeriod,
    group_by: tuple[str, ...] | None,
    tenant_id: UUID | None = None,
) -> dict[str, Any]:
    metric = SIMPLE_METRICS[name]
    groups = _checked(metric, name, metric.default_group_by if group_by is None else group_by)
    previous = period.previous()
    cap = analytics_max_groups()

    def figures(p: CostPeriod) -> dict[GroupKey, Figures]:
        totals = cost_totals(
            period=p, group_by=groups, tenant_id=tenant_id, sums=metric.needs, max_groups=cap
        )
        return {k: metric.figures(v) for k, v in totals.items()}

    return report(
        metric=name,
        period=period,
        previous=previous,
        group_by=groups,
        current=figures(period),
        before=figures(previous),
    )


def workflow_depth_metric(
    *, period: CostPeriod, group_by: tuple[str, ...] | None, tenant_id: UUID | None = None
) -> dict[str, Any]:
    """Calls per workflow run and the deepest span chain, by workflow (and tenant)."""
    groups = ("workflow",) if group_by is None else group_by
    cap = analytics_max_groups()
    for g in groups:
        if g not in ("tenant", "workflow"):
            raise AnalyticsQueryInvalid(
                f"group_by: workflow_depth groups by tenant, workflow only, not {g!r}",
                field="group_by",
            )

    def figures(p: CostPeriod) -> dict[GroupKey, Figures]:
        return {
            k: {
                "value": ratio(v["calls"], v["runs"]),
                "runs": v["runs"],
                "calls": v["calls"],
                "max_depth": v["max_depth"],
            }
            for k, v in workflow_runs(
                period=p, group_by=groups, tenant_id=tenant_id, max_groups=cap
            ).items()
        }

    previous = period.previous()
    return report(
        metric="workflow_depth",
        period=period,
        previous=previous,
        group_by=groups,
        current=figures(period),
        before=figures(previous),
    )


def margin_metric(
    *, period: CostPeriod, group_by: tuple[str, ...] | None, tenant_id: UUID | None = None
) -> dict[str, Any]:
    """Billed revenue (invoices, drafts and the running preview, before credits and tax, in
    the operator currency) minus direct cost, per tenant and/or feature."""
    groups = ("tenant",) if group_by is None else group_by
    if not groups or any(g not in ("tenant", "feature") for g in groups):
        raise AnalyticsQueryInvalid(
            "group_by: margin groups by tenant and/or feature", field="group_by"
        )
    cap = analytics_max_groups()

    def figures(p: CostPeriod) -> tuple[dict[GroupKey, Figures], list[str]]:
        costs = cost_totals(
            period=p, group_by=groups, tenant_id=tenant_id, sums=("cost",), max_groups=cap
        )
        revenue, missing = revenue_totals(period=p, group_by=groups, tenant_id=tenant_id)
        out = {}
        for key in sorted(set(costs) | set(revenue)):
            cost = costs.get(key, {}).get("cost", ZERO)
            income = revenue.get(key, ZERO)
            out[key] = {
                "value": income - cost,
                "revenue": income,
                "cost": cost,
                "margin": income - cost,
                "margin_pct": ratio((income - cost) * 100, income),
            }
        return out, missing

    previous = period.previous()
    current, missing = figures(period)
    before, _ = figures(previous)
    return report(
        metric="margin",
        period=period,
        previous=previous,
        group_by=groups,
        current=current,
        before=before,
        extra={"revenue_currencies_without_fx": missing},
    )


def marginal_cost_metric(
    *, period: CostPeriod, group_by: tuple[str, ...] | None, tenant_id: UUID | None = None
) -> dict[str, Any]:
    """The slope of daily cost over daily calls (what the next call costs), and cost growth
    against usage growth over the previous period, flagged where cost grows faster."""
    groups = () if group_by is None else _checked(None, "marginal_cost", group_by)
    previous = period.previous()
    cap = analytics_max_groups()
    daily = cost_daily(period=period, group_by=groups, tenant_id=tenant_id, max_groups=cap)
    totals = cost_totals(
        period=period, group_by=groups, tenant_id=tenant_id, sums=("cost",), max_groups=cap
    )
    before = cost_totals(
        period=previous, group_by=groups, tenant_id=tenant_id, sums=("cost",), max_groups=cap
    )
    current: dict[GroupKey, Figures] = {}
    for key, t in totals.items():
        days: dict[date, tuple[int, Decimal]] = daily.get(key, {})
        points = [days.get(d, (0, ZERO)) for d in period.days() if d in days]
        prior = before.get(key, {"calls": 0, "cost": ZERO})
        cost_growth = growth(t["cost"], prior["cost"])
        usage_growth = growth(t["calls"], prior["calls"])
        current[key] = {
            "value": slope(points),
            "days": len(points),
            "calls": t["calls"],
            "cost": t["cost"],
            "cost_growth": cost_growth,
            "usage_growth": usage_growth,
            "cost_grows_faster": (
                cost_growth is not None and usage_growth is not None and cost_growth > usage_growth
            ),
        }
    return report(
        metric="marginal_cost",
        period=period,
        previous=previous,
        group_by=groups,
        current=current,
        before={},
    )


def metric_answer(
    name: str,
    *,
    period: CostPeriod,
    group_by: tuple[str, ...] | None,
    tenant_id: UUID | None = None,
) -> dict[str, Any]:
    """The report of any metric of this app (``full_cost_per_call`` lives in chargeback)."""
    if name in SIMPLE_METRICS:
        return simple_metric(name, period=period, group_by=group_by, tenant_id=tenant_id)
    handlers = {
        "workflow_depth": workflow_depth_metric,
        "margin": margin_metric,
        "marginal_cost": marginal_cost_metric,
    }
    if name not in handlers:
        raise AnalyticsQueryInvalid(
            f"metric: {name!r} is not one of {', '.join(METRICS)}", field="metric"
        )
    return handlers[name](period=period, group_by=group_by, tenant_id=tenant_id)
