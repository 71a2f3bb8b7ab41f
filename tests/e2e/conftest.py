"""The app served over real HTTP on loopback, with the sandbox LMS enabled.

One server per session (its port is random) on its own PostgreSQL database
(``marginalia_e2e_<pid>``) and Redis key prefix (database 14); between tests the tool's
tables are truncated, its Redis keys deleted and the sandbox reset.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import redis as redis_lib
from flask import Flask
from werkzeug.serving import make_server

from lti_tool import create_app
from lti_tool.cli import upgrade_database
from lti_tool.config import Settings
from lti_tool.extensions import db
from lti_tool.kvstore import RedisStore
from lti_tool.sandbox import testing as sandbox
from tests.e2e.browser import Browser
from tests.support import reset_database

PG_SERVER = os.environ.get("MARGINALIA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = (
    os.environ.get("MARGINALIA_TEST_REDIS", "redis://127.0.0.1:6379")
    + "/"
    + (os.environ.get("MARGINALIA_E2E_REDIS_DB", "14"))
)
# Its own database (the unit tests' one is recreated by every pytest session), one per session
# so that concurrent runs on a shared machine do not truncate each other's tables.
E2E_DB = os.environ.get("MARGINALIA_E2E_DB", f"marginalia_e2e_{os.getpid()}")
# Likewise the tool's Redis keys carry a per-session prefix instead of a flushed database.
REDIS_PREFIX = f"marginalia-e2e-{os.getpid()}:"
SECRET = "e2e-secret-key-that-is-long-enough-0123456789"


@dataclass
class Live:
    app: Flask
    base_url: str

    def browser(self, *, cookies: bool = True) -> Browser:
        return Browser(self.base_url, cookies=cookies)


@pytest.fixture(scope="session")
def e2e_db_url() -> Iterator[str]:
    """A freshly migrated PostgreSQL database for the e2e session."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (E2E_DB,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{E2E_DB}"')
        conn.execute(f'CREATE DATABASE "{E2E_DB}"')
    url = f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://', 1)}/{E2E_DB}"
    upgrade_database(url)
    yield url
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{E2E_DB}" WITH (FORCE)')


@pytest.fixture(scope="session")
def live_server(e2e_db_url: str) -> Iterator[Live]:
    settings = Settings(
        mode="test",
        secret_key=SECRET,
        database_url=e2e_db_url,
        redis_url=REDIS_URL,
        sandbox_enabled=True,
        _env_file=None,
    )
    app = create_app(settings)
    app.extensions["marginalia.store"] = RedisStore(REDIS_URL, prefix=REDIS_PREFIX)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield Live(app, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.engine.dispose()
        _clear_redis()


def _clear_redis() -> None:
    client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=REDIS_PREFIX + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def live(live_server: Live) -> Iterator[Live]:
    _clear_redis()
    reset_database(live_server.app)
    sandbox.reset(live_server.app)
    yield live_server


@pytest.fixture
def browser(live: Live) -> Iterator[Browser]:
    b = live.browser()
    yield b
    b.close()
