"""Shared fixtures: a real PostgreSQL database and a real Redis, both on localhost.

``make test`` starts the services if they are down. Override the locations with
MARGINALIA_TEST_POSTGRES (a server URL without database) and MARGINALIA_TEST_REDIS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
import redis as redis_lib
from click.testing import CliRunner
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import text

from lti_tool import create_app
from lti_tool.cli import upgrade_database
from lti_tool.config import Settings
from lti_tool.extensions import db

PG_SERVER = os.environ.get("MARGINALIA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS_BASE = os.environ.get("MARGINALIA_TEST_REDIS", "redis://127.0.0.1:6379")
# Per run, so that two test runs on one machine never share rows or keys.
TEST_DB = os.environ.get("MARGINALIA_TEST_DB", f"marginalia_test_{os.getpid()}")
REDIS_PREFIX = f"marginalia-test-{os.getpid()}:"
SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _recreate_database(name: str) -> str:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    upgrade_database(url)
    return url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A freshly migrated PostgreSQL database for this test session, dropped at the end."""
    yield _recreate_database(TEST_DB)
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')


def _forget_keys(client: redis_lib.Redis) -> None:
    keys = list(client.scan_iter(match=REDIS_PREFIX + "*", count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = f"{REDIS_BASE}/15"
    client = redis_lib.Redis.from_url(url)
    _forget_keys(client)
    yield url
    _forget_keys(client)
    client.close()


def truncate_all() -> None:
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    db.session.rollback()
    db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.session.commit()


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> Settings:
    return Settings(
        mode="test",
        secret_key=SECRET,
        database_url=pg_url,
        redis_url=redis_url,
        redis_key_prefix=REDIS_PREFIX,
        sandbox_enabled=False,
        _env_file=None,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    with app.app_context():
        truncate_all()
        yield app
        truncate_all()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    # The test keeps one app context open, so `g` (the restored launch, the locale) would
    # outlive a request; forget it after each one, as a real server's fresh context does.
    @app.teardown_request
    def _fresh_g(exc: BaseException | None) -> None:
        for name in list(g):
            g.pop(name)

    return app.test_client()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> CliRunner:
    """The ``marginalia`` command line, configured (by environment) for the test services."""
    monkeypatch.setenv("MARGINALIA_MODE", "test")
    monkeypatch.setenv("MARGINALIA_SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("MARGINALIA_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MARGINALIA_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("MARGINALIA_REDIS_KEY_PREFIX", settings.redis_key_prefix)
    return CliRunner()
