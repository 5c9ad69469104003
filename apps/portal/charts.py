"""Chart data for ``app.js``'s ``<canvas data-chart>``: JSON strings for the data attributes
(escaped like any text by the template). Values stay exact decimal literals: a chart is drawn
from them, nothing is computed."""

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal


def chart_labels(labels: Sequence[str]) -> str:
    return json.dumps(list(labels))


def chart_series(series: Mapping[str, Sequence[Decimal | int]]) -> str:
    """``[{"label": name, "data": [1, 2.5]}, ...]`` with each number written as its exact
    decimal (never through binary floating point)."""
    parts = []
    for label, values in series.items():
        numbers = ",".join(format(Decimal(v), "f") for v in values)
        parts.append(f'{{"label": {json.dumps(label)}, "data": [{numbers}]}}')
    return "[" + ", ".join(parts) + "]"
