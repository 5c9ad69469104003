"""Analytics query time: every cost metric over one month of cost rollups that summarize
``BENCH_ANALYTICS_EVENTS`` (10,000,000) events of ``BENCH_ANALYTICS_TENANTS`` (200) tenants.

Set-up, not timed: the cost rollup rows are written server-side on PostgreSQL (60 dimension
and call-class combinations per tenant and day, each summarizing an equal share of the
events), then ANALYZE. Each metric is answered ``BENCH_ANALYTICS_REPEATS`` (5) times through
``metric_answer``, the API's own path, and the median is reported.
"""

import statistics
import time
from dataclasses import dataclass, field

from tests.bench.scratch import ScratchDatabase, raw_connect, settle, tables_empty

_COMBOS = 60
_GENERATE = """
INSERT INTO costs_cost_rollup (tenant_id, day, event_type, endpoint, feature, workflow, team,
    service, environment, provider, model, cache_hit, wasted, external, source, events, retries,
    errors, traced_calls, root_calls, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, reasoning_tokens, cost, avoided_cost)
SELECT t.id, d::date, CASE WHEN c %% 3 = 0 THEN 'llm.call' ELSE 'api.call' END,
       '/v1/route-' || (c %% 6), 'feature-' || (c %% 6), 'workflow-' || (c %% 6),
       'team-' || (c %% 5), 'service-' || (c %% 10), 'production',
       CASE WHEN c %% 3 = 0 THEN 'provider-' || (c %% 2) ELSE '' END,
       CASE WHEN c %% 3 = 0 THEN 'model-' || (c %% 4) ELSE '' END,
       c %% 7 = 0, c %% 11 = 0, c %% 3 = 0,
       CASE WHEN c %% 13 = 0 THEN 'none' WHEN c %% 3 = 0 THEN 'event' ELSE 'price_book' END,
       %(per_row)s, c %% 4, c %% 5, %(per_row)s, 1 + %(per_row)s / 8,
       CASE WHEN c %% 3 = 0 THEN %(per_row)s * 900 ELSE 0 END,
       CASE WHEN c %% 3 = 0 THEN %(per_row)s * 150 ELSE 0 END, 0, 0, 0,
       CASE WHEN c %% 13 = 0 THEN 0 ELSE %(per_row)s * (0.0001 + (c %% 9) * 0.00037) END,
       CASE WHEN c %% 7 = 0 THEN %(per_row)s * 0.00005 ELSE 0 END
FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, %(tenants)s)) t,
     generate_series(DATE '2026-10-01', DATE '2026-10-31', interval '1 day') d,
     generate_series(0, %(combos)s - 1) c
"""
QUERIES: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("cost", ("tenant",)),
    ("cost_per_call", ("feature",)),
    ("requests", ("service",)),
    ("amplification", ("workflow",)),
    ("call_mix", ("provider",)),
    ("tokens_per_request", None),
    ("retries", ("feature", "model")),
    ("cache", ("model",)),
    ("cost_per_run", None),
    ("coverage", ("team",)),
    ("marginal_cost", ("feature",)),
    ("margin", ("tenant",)),
    ("full_cost_per_call", ("team",)),
)


@dataclass
class AnalyticsBench:
    events: int
    rows: int
    median_ms: dict[str, float] = field(default_factory=dict)


def analytics_measure(
    *, scratch: ScratchDatabase, tenants: int, events: int, repeats: int
) -> AnalyticsBench:
    from apps.chargeback.metrics import full_cost_per_call_metric
    from apps.costs.metrics import metric_answer
    from apps.costs.selectors import cost_period_parse

    tables_empty(scratch, ["costs_cost_rollup", "costs_workflow_depth"])
    per_row = max(1, -(-events // (tenants * 31 * _COMBOS)))  # rounded up: at least ``events``
    with raw_connect(scratch) as conn:
        conn.execute(_GENERATE, {"tenants": tenants, "per_row": per_row, "combos": _COMBOS})  # type: ignore[call-overload]
        conn.execute("ANALYZE costs_cost_rollup")
        rows, total = conn.execute(  # type: ignore[union-attr]
            "SELECT count(*), sum(events) FROM costs_cost_rollup"
        ).fetchone()
        conn.commit()
    settle(scratch)
    period = cost_period_parse("2026-10")
    result = AnalyticsBench(events=int(total), rows=int(rows))
    for name, group_by in QUERIES:
        timings = []
        for _ in range(repeats):
            began = time.perf_counter()
            if name == "full_cost_per_call":
                full_cost_per_call_metric(period=period, group_by=group_by)
            else:
                metric_answer(name, period=period, group_by=group_by)
            timings.append((time.perf_counter() - began) * 1000)
        result.median_ms[name] = round(statistics.median(timings), 1)
    return result
