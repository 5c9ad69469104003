"""The event store, its dedupe keys, hourly rollups and meters.

Events are written only by the ingestion fast path (``services.event_store``), never through ORM
objects; the ORM models describe the tables for reads, admin and migrations. On PostgreSQL the
event table is partitioned by month of ``timestamp`` (see ``partitions``).
"""

from django.db import models

from apps.core.models import BaseModel
from apps.tenants.models import Tenant

MONEY_DIGITS = 30  # up to 18 integer digits
MONEY_PLACES = 12  # sub-micro unit costs stay exact


def tenant_reference(*, db_index: bool = False) -> models.ForeignKey:
    """The tenant of a hot-path or derived row: no FK constraint, since ingestion and the
    rollups resolve tenants themselves and a per-row FK check would cost each insert an index
    probe. Tenants are closed, never deleted, so the reference cannot dangle. No index of its
    own unless asked: the tables index (tenant, hour) or (tenant, day), which serve a lookup by
    tenant alone as well, and every index more is paid for by each row a rollup writes."""
    return models.ForeignKey(
        Tenant,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=db_index,
        related_name="+",
    )


def _dimension(max_length: int = 200) -> models.CharField:
    return models.CharField(max_length=max_length, null=True, blank=True)


class Event(models.Model):
    """One metered call, stored once per (tenant, event_id); see ``EventKey`` for why.

    Append-only: events are facts that invoices and statements were computed from. Corrections
    arrive as new events (or, for billing, as adjustments); retention deletes only events that are
    already rolled up and billed.
    """

    pk = models.CompositePrimaryKey("tenant_id", "timestamp", "event_id")
    tenant = tenant_reference()
    timestamp = models.DateTimeField()
    event_id = models.CharField(max_length=128)
    type = models.CharField(max_length=64)
    received_at = models.DateTimeField()
    endpoint = _dimension()
    feature = _dimension()
    workflow = _dimension()
    trace_id = models.CharField(max_length=32, null=True, blank=True)
    span_id = models.CharField(max_length=16, null=True, blank=True)
    parent_span_id = models.CharField(max_length=16, null=True, blank=True)
    team = _dimension()
    service = _dimension()
    environment = _dimension(64)
    provider = _dimension(64)
    model = _dimension(128)
    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    cache_read_tokens = models.BigIntegerField(null=True, blank=True)
    cache_write_tokens = models.BigIntegerField(null=True, blank=True)
    reasoning_tokens = models.BigIntegerField(null=True, blank=True)
    credits = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True)
    quantity = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True)
    cost = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True)
    cost_currency = models.CharField(max_length=3, null=True, blank=True)
    latency_ms = models.DecimalField(max_digits=15, decimal_places=3, null=True, blank=True)
    status_code = models.SmallIntegerField(null=True, blank=True)
    attempt = models.IntegerField(null=True, blank=True)  # 1 on the first try
    cache_hit = models.BooleanField(null=True, blank=True)
    bytes_in = models.BigIntegerField(null=True, blank=True)
    bytes_out = models.BigIntegerField(null=True, blank=True)
    external = models.BooleanField(null=True, blank=True)  # a call to a third party
    user = _dimension()
    properties = models.JSONField(default=dict)
    backfill = models.BooleanField(default=False)

    class Meta:
        db_table = "metering_event"

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class EventKey(models.Model):
    """The dedupe index: one row per (tenant, event id), ever.

    A separate table because a unique constraint on the month-partitioned event table would have
    to include the timestamp, and then the same id sent with another timestamp would be stored
    twice. The payload hash tells a harmless duplicate from a conflicting reuse of an id.
    """

    pk = models.CompositePrimaryKey("tenant_id", "event_id")
    tenant = tenant_reference()
    event_id = models.CharField(max_length=128)
    payload_hash = models.CharField(max_length=32)
    timestamp = models.DateTimeField()

    class Meta:
        db_table = "metering_event_key"


class IngestBatch(models.Model):
    """One accepted ingestion request and its outcome counts; append-only audit of intake.
    ``backfill`` marks admin-only writes of events older than the late window."""

    id = models.BigAutoField(primary_key=True)
    received_at = models.DateTimeField()
    api_key_prefix = models.CharField(max_length=16)
    content_type = models.CharField(max_length=64)
    backfill = models.BooleanField(default=False)
    accepted = models.IntegerField()
    duplicates = models.IntegerField()
    conflicts = models.IntegerField()
    rejected = models.IntegerField()
    # Rejections by outcome code ({"unknown_tenant": 2}); {} when none (most batches), so the
    # /metrics scrape can count each code without the per-event results.
    rejected_codes = models.JSONField(default=dict)

    class Meta:
        db_table = "metering_ingest_batch"


class IngestTally(models.Model):
    """How many events one batch stored for one tenant and hour. Append-only (no counter row that
    concurrent batches would fight over); the sum per hour is the intake side of the 3-way check."""

    id = models.BigAutoField(primary_key=True)
    # No FK constraints: ingestion writes these rows with the batch and tenants it has just
    # resolved, and per-row FK checks cost the hot path more than the insert itself.
    batch = models.ForeignKey(
        IngestBatch,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="tallies",
    )
    tenant = tenant_reference()
    hour = models.DateTimeField()
    accepted = models.IntegerField()

    class Meta:
        db_table = "metering_ingest_tally"
        indexes = [models.Index(fields=["tenant", "hour"], name="ingest_tally_tenant_hour")]


class RollupPending(models.Model):
    """A queue of (tenant, hour) pairs whose rollup must be recomputed: one row per ingest batch
    and hour, written in the batch's transaction. Insert-only, so concurrent batches never wait
    on each other; the rollup claims rows by deleting them (SKIP LOCKED), and a batch that commits
    later leaves its own row for the next run, so no event can slip between mark and recompute."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_reference()
    hour = models.DateTimeField()
    marked_at = models.DateTimeField()

    class Meta:
        db_table = "metering_rollup_pending"
        # Claims take the oldest hours first, so that each claim is a short range of time.
        indexes = [models.Index(fields=["hour", "tenant"], name="rollup_pending_hour")]


class RollupHour(models.Model):
    """One row per (tenant, hour) ever rolled up, with when it last was (and whether retention
    has purged its raw events since). A rebuild takes the row
    lock of each hour it rebuilds (in one order, so two workers never wait on each other in a
    cycle): row locks live in the rows, so a claim can hold tens of thousands, where advisory
    locks would fill the server's shared lock table."""

    pk = models.CompositePrimaryKey("tenant_id", "hour")
    tenant = tenant_reference()
    hour = models.DateTimeField()
    rolled_up_at = models.DateTimeField()
    # Set when retention deleted raw events of this hour: its rollups are the record from then
    # on, so a rebuild (which would count only the events left) skips the hour.
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "metering_rollup_hour"


class RollupChanged(models.Model):
    """An outbox of (tenant, hour) pairs whose usage rollup was rebuilt, written in the rebuild's
    transaction: what derives from usage rollups (the cost rollups) claims these rows (SKIP
    LOCKED) and rebuilds its own rows, so no rebuilt hour is missed however the work is timed."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_reference()
    hour = models.DateTimeField()

    class Meta:
        db_table = "metering_rollup_changed"


ROLLUP_DIMENSIONS = (
    "event_type",
    "endpoint",
    "feature",
    "workflow",
    "team",
    "service",
    "environment",
    "provider",
    "model",
    "cost_currency",
)
# Call classes, also part of the grain, so that what a class of calls costs can be priced
# exactly from the rollup: a cache hit, an attempt after the first or a failed one (what
# retries cost), a call to a third party.
ROLLUP_FLAGS = ("cache_hit", "wasted", "external")


class UsageRollup(models.Model):
    """Hourly usage of one tenant by every well-known dimension ('' where an event had none)
    and call class (``ROLLUP_FLAGS``). ``cost_currency`` is '' exactly where the events carried
    no cost of their own, so the price book can price those rows.

    Derived data: each (tenant, hour) is recomputed from raw events as a whole, never
    incremented, so reruns and concurrent runs converge on the same rows.
    """

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_reference()
    hour = models.DateTimeField()
    event_type = models.CharField(max_length=64)
    endpoint = models.CharField(max_length=200, default="")
    feature = models.CharField(max_length=200, default="")
    workflow = models.CharField(max_length=200, default="")
    team = models.CharField(max_length=200, default="")
    service = models.CharField(max_length=200, default="")
    environment = models.CharField(max_length=64, default="")
    provider = models.CharField(max_length=64, default="")
    model = models.CharField(max_length=128, default="")
    cost_currency = models.CharField(max_length=3, default="")
    cache_hit = models.BooleanField(default=False)
    wasted = models.BooleanField(default=False)  # attempt > 1 or status_code >= 400
    external = models.BooleanField(default=False)
    events = models.BigIntegerField()
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    credits = models.DecimalField(max_digits=38, decimal_places=MONEY_PLACES, default=0)
    quantity = models.DecimalField(max_digits=38, decimal_places=MONEY_PLACES, default=0)
    cost = models.DecimalField(max_digits=38, decimal_places=MONEY_PLACES, default=0)
    latency_ms_sum = models.DecimalField(max_digits=24, decimal_places=3, default=0)
    latency_ms_max = models.DecimalField(max_digits=15, decimal_places=3, null=True)
    errors = models.BigIntegerField(default=0)  # status_code >= 400
    retries = models.BigIntegerField(default=0)  # attempt > 1
    cache_hits = models.BigIntegerField(default=0)
    external_calls = models.BigIntegerField(default=0)
    traced_calls = models.BigIntegerField(default=0)  # with a trace id
    root_calls = models.BigIntegerField(default=0)  # with a trace id and no parent span
    bytes_in = models.BigIntegerField(default=0)
    bytes_out = models.BigIntegerField(default=0)

    class Meta:
        db_table = "metering_usage_rollup"
        # No unique constraint on the 12-column grain: its index cost more than the rollup's
        # whole aggregation. Uniqueness comes from rebuilding a (tenant, hour) as a whole, under
        # the hour's row lock in metering_rollup_hour; tests check rollups against raw events.
        indexes = [models.Index(fields=["tenant", "hour"], name="usage_rollup_tenant_hour")]


class Meter(BaseModel):
    """How events of one type become a billable quantity. Defined through the catalog; kept here
    because metering owns the queries that evaluate it.

    ``field`` and the keys of ``filters`` and ``group_by`` are a well-known attribute
    (``input_tokens``, ``model``) or ``properties.<key>``, a top-level key of the event's
    properties taken literally (``properties.gen_ai.request.model`` is the key
    ``gen_ai.request.model``)."""

    class Aggregation(models.TextChoices):
        COUNT = "count"
        SUM = "sum"
        MAX = "max"
        UNIQUE_COUNT = "unique_count"
        LATEST = "latest"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    event_type = models.CharField(max_length=64)
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices)
    # A well-known attribute ("input_tokens") or "properties.<key>"; empty for count.
    field = models.CharField(max_length=128, blank=True)
    # Dimension equality filters, e.g. {"model": "gpt-4o", "properties.plan": "pro"}.
    filters = models.JSONField(default=dict, blank=True)
    group_by = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class MeterRollup(models.Model):
    """Hourly aggregates of one meter for one tenant and group: derived data, rebuilt with the
    hour's usage rollup (or for one meter by ``meter_rollups_rebuild``), never incremented.

    Invoice runs read these instead of raw events; only unique counts need the raw events.
    ``group_key`` is the JSON array of the meter's group-by values in its order ('' for an event
    without one), ``[]`` without group-by."""

    id = models.BigAutoField(primary_key=True)
    meter = models.ForeignKey(  # indexed by (meter, hour)
        Meter, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    tenant = tenant_reference()
    hour = models.DateTimeField()
    group_key = models.TextField(default="[]")
    events = models.BigIntegerField()
    sum = models.DecimalField(max_digits=38, decimal_places=MONEY_PLACES, null=True)
    max = models.DecimalField(max_digits=38, decimal_places=MONEY_PLACES, null=True)
    latest = models.DecimalField(max_digits=38, decimal_places=MONEY_PLACES, null=True)
    latest_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "metering_meter_rollup"
        indexes = [
            models.Index(fields=["tenant", "hour"], name="meter_rollup_tenant_hour"),
            models.Index(fields=["meter", "hour"], name="meter_rollup_meter_hour"),
        ]
