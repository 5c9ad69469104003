"""The benchmark's own database, recreated empty at the start of every run so runs compare.

PostgreSQL when ``DATABASE_URL`` names a server: a scratch database (``percall_bench``, or
``BENCH_DATABASE``) on that server, dropped and recreated. SQLite otherwise: a scratch file under
/tmp. The bench process and the gunicorn it starts share one environment built here, with the
production settings module (DEBUG off, as served), and a Celery broker that is never consumed:
ingestion's rollup kick is a cheap send, as in production where a worker does the rollups.
"""

import contextlib
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

if TYPE_CHECKING:  # the workload imports app modules, which need settings first
    from tests.bench.workload import BenchTenant

DEFAULT_SQLITE_PATH = "/tmp/percall-bench.sqlite3"


@dataclass(frozen=True)
class ScratchDatabase:
    vendor: str  # "postgresql" or "sqlite"
    url: str  # a postgres:// URL, or the SQLite file path

    @property
    def pg_database(self) -> str | None:
        """The PostgreSQL database name; None on SQLite."""
        return urlsplit(self.url).path.lstrip("/") if self.vendor == "postgresql" else None

    def django_env(self) -> dict[str, str]:
        """Environment for Django in the bench process and in gunicorn."""
        env = {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            # memory:// is a broker nobody consumes: ingestion's rollup kick costs a send, not
            # a rollup per batch (the embedded default would run one inline after each commit).
            "CELERY_BROKER_URL": os.environ.get("BENCH_CELERY_BROKER_URL", "memory://"),
            "REDIS_URL": "",
            "LOG_LEVEL": "WARNING",
        }
        if self.vendor == "postgresql":
            env["DATABASE_URL"] = self.url
        else:
            env["DATABASE_URL"] = f"sqlite:///{self.url}"
            env["SQLITE_PATH"] = self.url
        return env


def scratch_database_recreate() -> ScratchDatabase:
    """Drop and recreate the scratch database named by the environment."""
    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url.startswith(("postgres://", "postgresql://")):
        path = Path(os.environ.get("BENCH_SQLITE_PATH", DEFAULT_SQLITE_PATH))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return ScratchDatabase(vendor="sqlite", url=str(path))
    parts = urlsplit(server_url)
    name = os.environ.get("BENCH_DATABASE", "percall_bench")
    if parts.path.lstrip("/") == name:
        raise SystemExit(f"bench: DATABASE_URL already names {name!r}; it would be dropped")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return ScratchDatabase(vendor="postgresql", url=urlunsplit(parts._replace(path=f"/{name}")))


def django_setup(scratch: ScratchDatabase) -> None:
    """Point this process's Django at the scratch database and migrate it."""
    os.environ.update(scratch.django_env())
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def tenants_and_key_create(*, count: int, now: datetime) -> tuple[list["BenchTenant"], str]:
    """Tenants and an operator-wide ingest key, through the services; partitions for the bench's
    months made ahead, as the daily beat task would, so no batch pays for DDL."""
    from django.db import transaction

    from apps.metering.services.partitions import event_partitions_ensure
    from apps.tenants.services.api_keys import api_key_create
    from apps.tenants.services.tenants import tenant_create
    from tests.bench.workload import BenchTenant, tenant_specs

    tenants = []
    for external_id, weight in tenant_specs(count):
        tenant = tenant_create(
            external_id=external_id,
            name=f"Bench {external_id}",
            currency="USD",
            billing_email=f"billing@{external_id}.example.com",
            registered_at=now - timedelta(days=90),
        )
        tenants.append(BenchTenant(external_id=external_id, id=tenant.id, weight=weight))
    key = api_key_create(name="bench ingest", scopes=["ingest"]).plaintext
    months = {(d.year, d.month) for d in (now - timedelta(days=n) for n in range(40))}
    with transaction.atomic():
        event_partitions_ensure(months=months)
    return tenants, key


def raw_connect(scratch: ScratchDatabase) -> psycopg.Connection | sqlite3.Connection:
    """A plain driver connection to the scratch database, outside Django."""
    if scratch.vendor == "postgresql":
        return psycopg.connect(scratch.url)
    return sqlite3.connect(scratch.url, timeout=30)


def settle(scratch: ScratchDatabase) -> None:
    """Flush dirty pages before a timed phase, so one phase's writes do not slow the next."""
    if scratch.vendor != "postgresql":
        return
    with (
        psycopg.connect(scratch.url, autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CHECKPOINT")


def tables_empty(scratch: ScratchDatabase, tables: list[str]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if scratch.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
