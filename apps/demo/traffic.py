"""When the demo business calls: hour by hour, tenant by tenant, a stream of event batches.

Each tenant's traffic per UTC hour is its power-law size times a diurnal curve and a weekly dip in
its own timezone, its growth over the period, an onboarding ramp after its first call, day-to-day
noise and the odd spike day. The weights are scaled so the whole period holds about the number of
events asked for, then every (tenant, hour) draws its count of API calls, and each call becomes a
trace (see ``workflows``). Deterministic for a seed: one ``random.Random`` drives it all, in a
fixed order.
"""

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apps.demo.business import FEATURES, TenantPlan
from apps.demo.workflows import INCIDENT, Event, trace_events

_HOUR = timedelta(hours=1)
_CALIBRATION_TRACES = 200  # per feature: enough for the mean trace size within a few percent


@dataclass(frozen=True)
class TrafficWindow:
    """The demo period, half-open ``[start, end)``, in whole UTC hours."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> int:
        return (self.end - self.start) // _HOUR

    def signup_at(self, plan: TenantPlan) -> datetime:
        """When ``plan``'s tenant registered: whole seconds, so it reads back exactly."""
        seconds = int((self.end - self.start).total_seconds() * plan.signup)
        return self.start + timedelta(seconds=seconds)

    def first_call_at(self, plan: TenantPlan) -> datetime:
        return self.signup_at(plan) + timedelta(days=plan.onboarding_days)


def _tenant_weights(rng: random.Random, plan: TenantPlan, window: TrafficWindow) -> list[float]:
    """Relative traffic of one tenant in each hour of the window (0 before its first call)."""
    zone = ZoneInfo(plan.spec.timezone)
    first_call = window.first_call_at(plan)
    days = window.hours // 24 + 1
    daily = [rng.uniform(0.8, 1.2) for _ in range(days)]
    if rng.random() < 0.3:  # a batch job or a launch: one day at several times the usual
        daily[rng.randrange(days)] *= rng.uniform(3, 6)
    weights = []
    for hour in range(window.hours):
        at = window.start + hour * _HOUR
        if plan.size == 0 or at + _HOUR <= first_call:
            weights.append(0.0)
            continue
        local = at.astimezone(zone)
        diurnal = 0.12 + math.exp(-((local.hour - 13.5) ** 2) / 24.5)  # peak after lunch
        weekly = 0.4 if local.weekday() >= 5 else 1.0
        growth = plan.growth ** (hour / window.hours)
        onboarding = min(1.0, 0.15 + (at - first_call) / timedelta(days=7))
        weights.append(plan.size * diurnal * weekly * growth * onboarding * daily[hour // 24])
    return weights


def _mean_trace_sizes(seed: int, window: TrafficWindow) -> dict[str, float]:
    """Events per API call of each feature, measured on sample traces from their own stream
    (so calibrating does not shift the traffic's random stream)."""
    rng = random.Random(f"percall-demo:{seed}:calibration")  # noqa: S311 (reproducible)
    sizes = {}
    for feature in FEATURES:
        total = 0
        for n in range(_CALIBRATION_TRACES):
            total += len(
                trace_events(
                    rng=rng,
                    tenant="calibration",
                    feature=feature,
                    user="u0",
                    start=window.start,
                    id_prefix=f"c{n}",
                    rate_limited=0.0,
                )
            )
        sizes[feature] = total / _CALIBRATION_TRACES
    return sizes


@dataclass(frozen=True)
class _TenantTraffic:
    plan: TenantPlan
    calls: list[float]  # expected API calls per hour of the window
    features: list[str]
    cumulative: list[float]  # cumulative feature shares, for rng.choices


def _schedule(
    rng: random.Random, plans: list[TenantPlan], window: TrafficWindow, events: int, seed: int
) -> list[_TenantTraffic]:
    sizes = _mean_trace_sizes(seed, window)
    weights = [_tenant_weights(rng, plan, window) for plan in plans]
    per_call = [sum(sizes[f] * share for f, share in plan.mix.items()) for plan in plans]
    expected = sum(sum(w) * size for w, size in zip(weights, per_call, strict=True))
    scale = events / expected if expected else 0.0
    schedule = []
    for plan, tenant_weights in zip(plans, weights, strict=True):
        features = list(plan.mix)
        shares = [plan.mix[f] for f in features]
        cumulative = [sum(shares[: i + 1]) for i in range(len(shares))]
        calls = [w * scale for w in tenant_weights]
        schedule.append(_TenantTraffic(plan, calls, features, cumulative))
    return schedule


def traffic_events(
    *, seed: int, plans: list[TenantPlan], window: TrafficWindow, events: int
) -> Iterator[Event]:
    """About ``events`` events over ``window``, hour by hour. Event ids are
    ``demo-<seed>-<call number>[r<retry>]-<span number>``: the same for the same seed, plans,
    window and size, so a re-run sends duplicates, never new events."""
    rng = random.Random(f"percall-demo:{seed}:traffic")  # noqa: S311 (reproducible)
    schedule = _schedule(rng, plans, window, events, seed)
    call_number = 0
    for hour in range(window.hours):
        hour_start = window.start + hour * _HOUR
        incident = hour >= window.hours - INCIDENT.hours
        for tenant in schedule:
            expected = tenant.calls[hour]
            count = int(expected) + (rng.random() < expected - int(expected))
            for _ in range(count):
                plan = tenant.plan
                feature = rng.choices(tenant.features, cum_weights=tenant.cumulative)[0]
                # End users are skewed too: a few power users make most calls.
                user = f"user-{int(plan.users * rng.random() ** 2.5)}"
                hit = incident and feature == INCIDENT.feature
                yield from trace_events(
                    rng=rng,
                    tenant=plan.spec.external_id,
                    feature=feature,
                    user=user,
                    start=hour_start + timedelta(milliseconds=rng.randrange(3_600_000)),
                    id_prefix=f"demo-{seed}-{call_number}",
                    rate_limited=plan.rate_limited,
                    deployment=INCIDENT.deployment if hit else "",
                )
                call_number += 1


def traffic_batches(
    *, seed: int, plans: list[TenantPlan], window: TrafficWindow, events: int, batch_size: int
) -> Iterator[list[Event]]:
    """``traffic_events`` in lists of at most ``batch_size``."""
    batch: list[Event] = []
    for event in traffic_events(seed=seed, plans=plans, window=window, events=events):
        batch.append(event)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
