import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _django_setup(settings: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS")}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            " print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER)",
        ],
        cwd=ROOT,
        env=clean | {"DJANGO_SETTINGS_MODULE": settings} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secret_key():
    result = _django_setup("config.settings.production", ALLOWED_HOSTS="billing.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = _django_setup("config.settings.production", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_embedded_default_is_sqlite_with_tasks_in_process():
    env = dict.fromkeys(("DATABASE_URL", "CELERY_BROKER_URL"), "")
    result = _django_setup("config.settings.local", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "True"]


def test_database_url_and_broker_switch_to_postgres_and_workers():
    result = _django_setup(
        "config.settings.local",
        DATABASE_URL="postgres://percall@db.example:5432/percall",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "False"]


def _deploy_check(**env: str) -> subprocess.CompletedProcess[str]:
    """``check --deploy --fail-level WARNING`` under production settings with only the
    three variables a deployment must set (anything else of the caller's left out)."""
    keep = ("PATH", "HOME", "LANG", "VIRTUAL_ENV")
    base = {k: v for k, v in os.environ.items() if k in keep}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=base | {"DJANGO_SETTINGS_MODULE": "config.settings.production"} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deploy_check_is_clean_with_only_the_required_variables():
    result = _deploy_check(
        SECRET_KEY="k" * 20 + "-Production-Secret-Value-9f8e7d6c5b4a",
        ALLOWED_HOSTS="billing.example.com",
        DATABASE_URL="postgres://percall@db.example:5432/percall",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_the_deploy_check_fails_on_a_weak_secret_key():
    # the check exists to catch this: a short, low-variety key is refused at WARNING level
    result = _deploy_check(
        SECRET_KEY="short",
        ALLOWED_HOSTS="billing.example.com",
        DATABASE_URL="postgres://percall@db.example:5432/percall",
    )
    assert result.returncode != 0
    assert "security.W009" in result.stderr + result.stdout


def test_a_killed_task_comes_back_and_a_running_one_is_never_handed_out_twice():
    """acks_late with reject-on-worker-lost, so a task whose worker dies is delivered again;
    and a broker visibility timeout longer than any task may run, so Redis does not give a
    task still running (up to its hard time limit) to a second worker."""
    from celery import current_app
    from django.conf import settings

    current_app.loader.import_default_modules()
    tasks = {n: t for n, t in current_app.tasks.items() if not n.startswith("celery.")}
    assert len(tasks) >= 15
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    assert all(t.acks_late is not False for t in tasks.values())
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    limits = {n: t.time_limit or settings.CELERY_TASK_TIME_LIMIT for n, t in tasks.items()}
    assert max(limits.values()) < timeout, limits
