"""Cost rollups: price each rebuilt (tenant, UTC day) from its usage rollups and the price book.

Idempotent by construction, like the usage rollups: a rebuild deletes the day's cost rows and
writes them again from what is committed, under the row lock of the day in ``costs_cost_day``
(taken in (tenant, day) order), so reruns and concurrent runs converge on the same rows.

An event's own ``cost`` wins, converted to the operator currency at the latest FX rate on or
before its day; without one, the price book of the day prices its tokens (by provider and
model), its calls and credits (by provider and endpoint) and its compute (by service), every
price that applies added; with neither, the calls are costed 0 and counted as uncosted.
"""

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.catalog.models import PriceBookVersion, UpstreamPrice
from apps.catalog.selectors import fx_rates_by_currency, price_book_versions
from apps.costs.models import CostDay, CostRollup, WorkflowDepth
from apps.costs.pricing import (
    ZERO,
    CallPrices,
    ComputePrices,
    TokenPrices,
    Usage,
    price_book_cost,
)
from apps.metering.services.feeds import (
    DAY_DIMENSIONS,
    DAY_SUMS,
    TenantDay,
    purged_days,
    rollup_changes_claim,
    tenant_days_cte,
    usage_by_day,
    workflow_runs_by_day,
)

CLAIM_ROWS = 20000  # outbox rows per transaction
# What a cost rollup keeps of its usage rows as they are: dimensions, call classes, counts.
_COPIED = (
    *(d for d in DAY_DIMENSIONS if d != "cost_currency"),
    *(s for s in DAY_SUMS if s not in ("credits", "cost", "latency_ms_sum")),
)


@dataclass(frozen=True)
class _Book:
    """One price-book version's prices, looked up by key."""

    version_id: int
    content_hash: str
    tokens: dict[tuple[str, str], TokenPrices]
    calls: dict[tuple[str, str], CallPrices]
    compute: dict[str, ComputePrices]


def _book(version: PriceBookVersion) -> _Book:
    tokens, calls, compute = {}, {}, {}
    for p in version.prices.all():
        if p.kind == UpstreamPrice.Kind.LLM:
            tokens[(p.provider, p.model)] = TokenPrices(
                p.input_per_mtok,
                p.output_per_mtok,
                p.cache_read_per_mtok,
                p.cache_write_per_mtok,
                p.reasoning_per_mtok,
            )
        elif p.kind == UpstreamPrice.Kind.API:
            calls[(p.provider, p.endpoint)] = CallPrices(p.per_call, p.per_credit)
        else:
            compute[p.service] = ComputePrices(p.per_request, p.per_ms)
    return _Book(version.id, version.content_hash, tokens, calls, compute)


class PriceContext:
    """The price book and FX table as of one rebuild: which version prices a day, and the
    rate of a currency on a day."""

    def __init__(self) -> None:
        versions = price_book_versions()
        self._starts = [v.effective_from for v in versions]
        self._books = [_book(v) for v in versions]
        self._fx = fx_rates_by_currency()
        self._fx_days = {c: [d for d, _ in rates] for c, rates in self._fx.items()}
        self.operator_currency = settings.PERCALL_OPERATOR_CURRENCY

    def book(self, day: date) -> _Book | None:
        index = bisect_right(self._starts, day) - 1
        return self._books[index] if index >= 0 else None

    def fx(self, currency: str, day: date) -> Decimal | None:
        """Operator-currency units per unit of ``currency`` on ``day`` (latest on or before)."""
        if currency == self.operator_currency:
            return Decimal(1)
        days = self._fx_days.get(currency)
        if not days:
            return None
        index = bisect_right(days, day) - 1
        return self._fx[currency][index][1] if index >= 0 else None

    def key(self, day: date) -> str:
        """A digest of the prices that cost ``day``: its price-book version and every FX rate
        in effect on it."""
        book = self.book(day)
        parts = [f"{book.version_id}:{book.content_hash}" if book else "-"]
        for currency in sorted(self._fx):
            index = bisect_right(self._fx_days[currency], day) - 1
            if index >= 0:
                parts.append(f"{currency}:{self._fx[currency][index][1]}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


def cost_row(row: dict[str, Any], prices: PriceContext) -> CostRollup:
    """The cost rollup of one usage-by-day row (see ``feeds.usage_by_day``)."""
    day: date = row["day"]
    book = prices.book(day)
    out = CostRollup(
        tenant_id=row["tenant_id"],
        day=day,
        price_book_version_id=book.version_id if book else None,
        **{name: row[name] for name in _COPIED},
    )
    usage = Usage(
        calls=row["events"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        credits=Decimal(row["credits"] or 0),
        latency_ms=Decimal(row["latency_ms_sum"] or 0),
    )
    priced = (
        price_book_cost(
            usage,
            tokens=book.tokens.get((row["provider"], row["model"])),
            call=book.calls.get((row["provider"], row["endpoint"])),
            compute=None if row["external"] else book.compute.get(row["service"]),
        )
        if book
        else None
    )
    currency = row["cost_currency"]
    if currency:
        rate = prices.fx(currency, day)
        if rate is None:  # an own cost we cannot convert: uncosted, never guessed
            out.source, out.cost = CostRollup.Source.NONE, ZERO
        else:
            out.source, out.cost = CostRollup.Source.EVENT, Decimal(row["cost"]) * rate
    elif priced is not None and priced.priced:
        out.source, out.cost = CostRollup.Source.PRICE_BOOK, priced.cost
    else:
        out.source, out.cost = CostRollup.Source.NONE, ZERO
    if row["cache_hit"] and priced is not None and priced.priced:
        out.avoided_cost = max(priced.uncached_cost - out.cost, ZERO)
    return out


def _days_lock(pairs: Sequence[TenantDay], prices: PriceContext) -> None:
    now = timezone.now()
    keys = {d: prices.key(d) for d in {d for _, d in pairs}}
    upsert = (
        "ON CONFLICT (tenant_id, day) DO UPDATE SET built_at = excluded.built_at, "
        "prices_key = excluded.prices_key"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "INSERT INTO costs_cost_day (tenant_id, day, built_at, prices_key) "
                "SELECT t, d, %s, k FROM unnest(%s::uuid[], %s::date[], %s::text[]) "
                f"AS p(t, d, k) ORDER BY t, d {upsert}",
                [now, [p[0] for p in pairs], [p[1] for p in pairs], [keys[p[1]] for p in pairs]],
            )
            return
        adapt = connection.ops.adapt_datetimefield_value
        cursor.executemany(
            "INSERT INTO costs_cost_day (tenant_id, day, built_at, prices_key) "
            f"VALUES (%s, %s, %s, %s) {upsert}",
            [(t.hex, d.isoformat(), adapt(now), keys[d]) for t, d in pairs],
        )


def cost_days_rebuild(*, pairs: Sequence[TenantDay], prices: PriceContext | None = None) -> int:
    """Rebuild the cost rollups and workflow depths of ``pairs`` (tenant, UTC day) in the
    caller's transaction; returns the cost rows written."""
    pairs = sorted(set(pairs))
    if not pairs:
        return 0
    prices = prices or PriceContext()
    _days_lock(pairs, prices)
    # Workflow depths come from raw traces: on a day retention purged they are kept as built.
    purged = purged_days(tenant_days=pairs)
    traced = [pair for pair in pairs if pair not in purged]
    with connection.cursor() as cursor:
        for table, days in (
            (CostRollup._meta.db_table, pairs),
            (WorkflowDepth._meta.db_table, traced),
        ):
            if not days:
                continue
            cte, params, _, _ = tenant_days_cte(days)
            cursor.execute(
                f"WITH {cte} DELETE FROM {table} WHERE (tenant_id, day) IN "
                "(SELECT tenant_id, day FROM c)",
                params,
            )
    rows = [cost_row(row, prices) for row in usage_by_day(tenant_days=pairs)]
    CostRollup.objects.bulk_create(rows, batch_size=5000)
    depths = [
        WorkflowDepth(
            tenant_id=tenant, day=day, workflow=w, runs=runs, calls=calls, max_depth=depth
        )
        for tenant, day, w, runs, calls, depth in workflow_runs_by_day(tenant_days=traced)
    ]
    WorkflowDepth.objects.bulk_create(depths, batch_size=5000)
    return len(rows)


def cost_rollup_pending_run(*, batch_size: int = CLAIM_ROWS, max_batches: int = 1000) -> int:
    """Rebuild the cost rollups of every day whose usage was rolled up again since the last
    run; returns how many (tenant, day) pairs were rebuilt. Safe to run twice or concurrently."""
    rebuilt = 0
    prices = PriceContext()
    for _ in range(max_batches):
        with transaction.atomic():
            pairs = rollup_changes_claim(limit=batch_size)
            if not pairs:
                break
            cost_days_rebuild(pairs=pairs, prices=prices)
        rebuilt += len(pairs)
    return rebuilt


def cost_days_reprice(*, limit: int = CLAIM_ROWS) -> int:
    """Cost again, up to ``limit`` pairs per transaction, every (tenant, day) costed with prices
    that have changed since (a new or edited price-book version, a new FX rate); returns the
    pairs rebuilt. Days an issued statement used cannot change prices (their versions are
    locked, and so are FX rates on or before their last day)."""
    rebuilt = 0
    while True:
        prices = PriceContext()
        with transaction.atomic():
            stale = [
                (day, prices.key(day))
                for day, key in CostDay.objects.values_list("day", "prices_key").distinct()
                if key != prices.key(day)
            ]
            pairs: list[TenantDay] = []
            for day, current in stale:
                room = limit - len(pairs)
                if room <= 0:
                    break
                pairs += list(
                    CostDay.objects.filter(day=day)
                    .exclude(prices_key=current)
                    .order_by("tenant_id")
                    .values_list("tenant_id", "day")[:room]
                )
            if not pairs:
                return rebuilt
            cost_days_rebuild(pairs=pairs, prices=prices)
        rebuilt += len(pairs)
