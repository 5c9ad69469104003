"""Queue every hour rolled up before call classes joined the rollup grain, so that each is
rebuilt with them and costed (the cost rollups read the outbox those rebuilds fill). On a new
database there is nothing to queue."""

from django.db import migrations

REQUEUE = (
    "INSERT INTO metering_rollup_pending (tenant_id, hour, marked_at) "
    "SELECT tenant_id, hour, rolled_up_at FROM metering_rollup_hour"
)


class Migration(migrations.Migration):
    dependencies = [("metering", "0006_rollup_call_classes")]

    operations = [migrations.RunSQL(REQUEUE, reverse_sql=migrations.RunSQL.noop)]
