"""Forecast a period's total from its daily values. Pure Python: Decimal in and out, no
Django, no clock, no I/O (the spirit of STYLE 5), so it is tested without a database.

``period_forecast`` projects the remaining days of a period and adds them to what has
already happened. The model depends on how much history there is:

- ``holt_winters``: additive Holt-Winters (level, trend, one seasonal term per weekday) once
  there are at least two seasons of days. The first two seasons initialise the state exactly
  (level and trend from their means, seasonal terms detrended), so a constant series, a
  straight line and a pure weekly pattern are predicted without error whatever the smoothing
  weights; the weights are then picked from a small grid by the smallest in-sample squared
  one-step error.
- ``seasonal_naive``: with at least one season, each remaining day repeats the same day of
  the last season.
- ``run_rate``: fewer days than a season; each remaining day is the mean day.
- ``none``: nothing to go on; the forecast is zero.

History before the period (e.g. last month's days) may be passed as ``history``, oldest
first and ending the day before the period starts: it is used to fit the model only, never
counted in the total.

The band is an ~80 % interval (z = 1.2816) for the period total, built from the in-sample
one-step residuals (their root mean square, sigma) and widening with the horizon: see
``_band_variance``. Only the remaining days are uncertain, so the band is around the
projection and what has happened is added to both ends. When no day is negative (cost and
revenue) neither the projection nor the lower bound goes below zero.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import product

ZERO = Decimal(0)
Z_80 = Decimal("1.2816")  # two-sided 80 % normal quantile
PLACES = Decimal("0.000001")  # well inside the 12 decimal places of the stored figures
ALPHAS = (Decimal("0.2"), Decimal("0.5"), Decimal("0.8"))  # level
BETAS = (Decimal("0.05"), Decimal("0.2"))  # trend
GAMMAS = (Decimal("0.1"), Decimal("0.3"))  # season


@dataclass(frozen=True)
class PeriodForecast:
    """The whole period's expected total and its ~80 % band, with the days they rest on."""

    total: Decimal  # actual so far + projected remaining days
    lower: Decimal
    upper: Decimal
    method: str  # holt_winters, seasonal_naive, run_rate or none
    actual_to_date: Decimal
    days_observed: int


@dataclass(frozen=True)
class _Fit:
    projection: list[Decimal]  # one value per remaining day
    residuals: list[Decimal]  # in-sample one-step errors
    alpha: Decimal  # weight of the newest error in the level (drives band growth)


def period_forecast(
    daily: Sequence[Decimal],
    *,
    days_total: int,
    season: int = 7,
    history: Sequence[Decimal] = (),
) -> PeriodForecast:
    """Forecast the period total from ``daily`` (whole days from the period start up to
    yesterday) for a period of ``days_total`` days; ``history`` optionally holds whole days
    before the period (fit only). Raises ``ValueError`` when more days than the period has."""
    if days_total < len(daily) or season < 1:
        raise ValueError("daily holds more days than days_total, or season < 1")
    actual = sum(daily, ZERO)
    series = [*history, *daily]
    remaining = days_total - len(daily)
    if not series:
        return PeriodForecast(ZERO, ZERO, ZERO, "none", ZERO, 0)
    if len(series) >= 2 * season:
        method, fit = "holt_winters", _holt_winters_best(series, season, remaining)
    elif len(series) >= season:
        method, fit = "seasonal_naive", _seasonal_naive(series, season, remaining)
    else:
        method, fit = "run_rate", _run_rate(series, remaining)
    non_negative = all(value >= ZERO for value in series)
    projection = [max(v, ZERO) for v in fit.projection] if non_negative else fit.projection
    projected = sum(projection, ZERO)
    half = Z_80 * _band_variance(fit, method, season, len(series), remaining).sqrt()
    lower = projected - half
    if non_negative:
        lower = max(lower, ZERO)
    return PeriodForecast(
        total=_q(actual + projected),
        lower=_q(actual + lower),
        upper=_q(actual + projected + half),
        method=method,
        actual_to_date=actual,
        days_observed=len(daily),
    )


def _q(value: Decimal) -> Decimal:
    return value.quantize(PLACES)


def _run_rate(series: list[Decimal], remaining: int) -> _Fit:
    mean = sum(series, ZERO) / len(series)
    return _Fit([mean] * remaining, [x - mean for x in series], Decimal(1))


def _seasonal_naive(series: list[Decimal], season: int, remaining: int) -> _Fit:
    last = series[-season:]
    residuals = [series[t] - series[t - season] for t in range(season, len(series))]
    if not residuals:  # exactly one season: no same-day pairs yet, use the spread of the days
        mean = sum(series, ZERO) / len(series)
        residuals = [x - mean for x in series]
    return _Fit([last[h % season] for h in range(remaining)], residuals, Decimal(1))


def _holt_winters_best(series: list[Decimal], season: int, remaining: int) -> _Fit:
    fits = [
        _holt_winters(series, season, remaining, a, b, g)
        for a, b, g in product(ALPHAS, BETAS, GAMMAS)
    ]
    return min(fits, key=lambda fit: sum((e * e for e in fit.residuals), ZERO))


def _holt_winters(
    series: list[Decimal],
    season: int,
    remaining: int,
    alpha: Decimal,
    beta: Decimal,
    gamma: Decimal,
) -> _Fit:
    first = sum(series[:season], ZERO) / season
    second = sum(series[season : 2 * season], ZERO) / season
    trend = (second - first) / season
    # The first season's mean sits at its middle, (season - 1) / 2: move it to its last day.
    level = first + trend * (season - 1) / 2
    seasonal = [series[i] - (first + trend * (i - Decimal(season - 1) / 2)) for i in range(season)]
    residuals = []
    for t in range(season, len(series)):
        s_old = seasonal[t % season]
        residuals.append(series[t] - (level + trend + s_old))
        new_level = alpha * (series[t] - s_old) + (1 - alpha) * (level + trend)
        trend = beta * (new_level - level) + (1 - beta) * trend
        level = new_level
        seasonal[t % season] = gamma * (series[t] - level) + (1 - gamma) * s_old
    n = len(series)
    projection = [
        level + trend * h + seasonal[(n + h - 1) % season] for h in range(1, remaining + 1)
    ]
    return _Fit(projection, residuals, alpha)


def _band_variance(fit: _Fit, method: str, season: int, n: int, remaining: int) -> Decimal:
    """Variance of the error of the sum of the remaining days, in units squared.

    sigma^2 is the mean squared one-step residual. Each model's error grows with the horizon:
    - holt_winters: as for exponential smoothing, the error of day h carries the shocks of
      days 1..h-1 through the level (weight alpha), so the error of the sum of H days is
      sum_k (1 + alpha k) e_k and its variance sigma^2 * sum_{k=0}^{H-1} (1 + alpha k)^2;
    - seasonal_naive: day h is copied from ceil(h / season) seasons back, variance
      sigma^2 * ceil(h / season) per day, days taken as independent;
    - run_rate: H independent days plus the error of the estimated mean,
      sigma^2 * (H + H^2 / n).
    """
    if not fit.residuals or remaining == 0:
        return ZERO
    sigma2 = sum((e * e for e in fit.residuals), ZERO) / len(fit.residuals)
    if method == "holt_winters":
        return sigma2 * sum(((1 + fit.alpha * k) ** 2 for k in range(remaining)), ZERO)
    if method == "seasonal_naive":
        return sigma2 * sum(-(-h // season) for h in range(1, remaining + 1))
    return sigma2 * (remaining + Decimal(remaining * remaining) / n)
