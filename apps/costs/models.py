"""Cost rollups: what each day's calls cost the operator, by every dimension, derived from the
hourly usage rollups and the price book.

Derived data, rebuilt per (tenant, UTC day) as a whole whenever an hour of that day is rolled
up again (``services.rollup``), never incremented; ``CostDay`` holds the row each rebuild locks.
"""

from django.db import models

from apps.metering.models import MONEY_PLACES, tenant_reference


class CostDay(models.Model):
    """One row per (tenant, UTC day) ever costed, with when it last was and with which prices.
    A rebuild locks the rows of its days in (tenant, day) order, so two workers never rebuild
    a day at once."""

    pk = models.CompositePrimaryKey("tenant_id", "day")
    tenant = tenant_reference()
    day = models.DateField()
    built_at = models.DateTimeField()
    # Which prices the day was costed with (the price-book version and its content, the FX
    # rates in effect): a day whose key no longer matches is costed again.
    prices_key = models.CharField(max_length=64, default="")

    class Meta:
        db_table = "costs_cost_day"


class CostRollup(models.Model):
    """The cost of one day's calls of a tenant with the same dimensions and call class, in the
    operator currency at full precision (12 places).

    ``source`` says where the cost came from: ``event`` (the events' own cost, converted at the
    day's FX rate), ``price_book`` (their tokens, calls and compute priced by the price book)
    or ``none`` (neither: counted as uncosted, cost 0). ``avoided_cost`` is what cache hits
    would have cost uncached at the price book, less what they cost."""

    class Source(models.TextChoices):
        EVENT = "event"
        PRICE_BOOK = "price_book"
        NONE = "none"

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_reference()
    day = models.DateField()
    event_type = models.CharField(max_length=64)
    endpoint = models.CharField(max_length=200, default="")
    feature = models.CharField(max_length=200, default="")
    workflow = models.CharField(max_length=200, default="")
    team = models.CharField(max_length=200, default="")
    service = models.CharField(max_length=200, default="")
    environment = models.CharField(max_length=64, default="")
    provider = models.CharField(max_length=64, default="")
    model = models.CharField(max_length=128, default="")
    cache_hit = models.BooleanField(default=False)
    wasted = models.BooleanField(default=False)  # attempt > 1 or failed (status >= 400)
    external = models.BooleanField(default=False)
    source = models.CharField(max_length=16, choices=Source.choices)
    # The price-book version that priced these rows (or whose day it was), for locking.
    price_book_version_id = models.BigIntegerField(null=True)
    events = models.BigIntegerField()
    retries = models.BigIntegerField(default=0)  # attempt > 1
    errors = models.BigIntegerField(default=0)  # status_code >= 400
    traced_calls = models.BigIntegerField(default=0)
    root_calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=38, decimal_places=MONEY_PLACES, default=0)
    avoided_cost = models.DecimalField(max_digits=38, decimal_places=MONEY_PLACES, default=0)

    class Meta:
        db_table = "costs_cost_rollup"
        indexes = [
            models.Index(fields=["day", "tenant"], name="cost_rollup_day_tenant"),
            models.Index(fields=["tenant", "day"], name="cost_rollup_tenant_day"),
        ]


class WorkflowDepth(models.Model):
    """Per (tenant, UTC day, workflow of the root span): how many workflow runs (traces) began
    that day and the deepest span chain among them (1 = a root alone). Rebuilt with the day's
    cost rollups from raw events: depth is a property of whole traces, not of any rollup."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_reference(db_index=True)  # its index leads with the day
    day = models.DateField()
    workflow = models.CharField(max_length=200, default="")
    runs = models.BigIntegerField()
    calls = models.BigIntegerField()  # spans reached from those roots
    max_depth = models.IntegerField()

    class Meta:
        db_table = "costs_workflow_depth"
        indexes = [models.Index(fields=["day", "tenant"], name="workflow_depth_day_tenant")]
