"""Settings are read from the environment: defaults for a laptop, overrides for production."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings as s; django.setup();"
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']),"
    "'redis': s.REDIS_URL, 'debug': s.DEBUG, 'hosts': s.ALLOWED_HOSTS,"
    "'storage': s.STORAGES['artifacts']['BACKEND'], 'broker': s.CELERY_BROKER_URL,"
    "'bucket': s.STORAGES['artifacts'].get('OPTIONS', {}).get('bucket_name')}))"
)
SETTING_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SECRET_KEY",
    "PORTAL_MODE",
    "AWS_STORAGE_BUCKET_NAME",
    "CELERY_BROKER_URL",
    "MEDIA_ROOT",
)


def load_settings(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env.update(DJANGO_SETTINGS_MODULE="mlops_portal.settings", **overrides)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr}
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_defaults_are_sqlite_local_redis_and_local_storage():
    s = load_settings()
    assert s["engine"] == "django.db.backends.sqlite3"
    assert s["name"].endswith("db.sqlite3")
    assert s["redis"] == "redis://127.0.0.1:6379/0"
    assert s["broker"] == s["redis"]
    assert s["debug"] is True
    assert s["storage"] == "django.core.files.storage.FileSystemStorage"


def test_environment_overrides_database_redis_hosts_and_storage():
    s = load_settings(
        DATABASE_URL="postgres://u:p@db.example:5433/portal",
        REDIS_URL="redis://cache.example:6380/2",
        DEBUG="false",
        ALLOWED_HOSTS="portal.example, api.example",
        AWS_STORAGE_BUCKET_NAME="models",
    )
    assert s["engine"] == "django.db.backends.postgresql"
    assert s["name"] == "portal"
    assert s["redis"] == "redis://cache.example:6380/2"
    assert s["debug"] is False
    assert s["hosts"] == ["portal.example", "api.example"]
    assert s["storage"] == "storages.backends.s3.S3Storage"
    assert s["bucket"] == "models"


@pytest.mark.parametrize(
    "var,value,message",
    [
        ("DEBUG", "maybe", "DEBUG must be a boolean"),
        ("PORTAL_MODE", "staging", "PORTAL_MODE must be"),
    ],
)
def test_it_rejects_unparseable_values_with_the_variable_named(var, value, message):
    assert message in load_settings(**{var: value})["error"]


def test_production_mode_requires_a_secret_key():
    assert "SECRET_KEY must be set" in load_settings(PORTAL_MODE="production")["error"]


def test_production_mode_passes_check_deploy_with_zero_warnings():
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env.update(
        PORTAL_MODE="production",
        SECRET_KEY="k" * 20 + "-Zx9!qLm2#Vb7&Pw4$Rt6^Yu8*Io0(Kj3)Hg5" + "a" * 10,
        ALLOWED_HOSTS="portal.example",
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues (0 silenced)" in out.stdout


def test_production_refuses_the_repositorys_development_secret_key():
    from mlops_portal.settings import DEVELOPMENT_SECRET_KEY

    error = load_settings(PORTAL_MODE="production", SECRET_KEY=DEVELOPMENT_SECRET_KEY, ALLOWED_HOSTS="portal.example")[
        "error"
    ]
    assert "SECRET_KEY is the repository's development key" in error


def test_production_refuses_a_secret_key_shorter_than_50_characters():
    error = load_settings(
        PORTAL_MODE="production",
        SECRET_KEY="Zx9!qLm2#Vb7&Pw4$Rt6^Yu8*Io0(Kj3)Hg5-abcdefghijkl",
        ALLOWED_HOSTS="portal.example",
    )["error"]
    assert "SECRET_KEY must be at least 50 characters" in error and "got 49" in error


def test_check_deploy_fails_in_production_with_the_development_key():
    from mlops_portal.settings import DEVELOPMENT_SECRET_KEY

    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env.update(PORTAL_MODE="production", SECRET_KEY=DEVELOPMENT_SECRET_KEY, ALLOWED_HOSTS="portal.example")
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode != 0 and "development key" in out.stderr


def test_development_keeps_its_default_key_so_make_run_needs_no_setup():
    assert "error" not in load_settings()
