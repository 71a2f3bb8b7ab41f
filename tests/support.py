"""Helpers shared by the suites that run the app as a real server (e2e, worker)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import text

from lti_tool.extensions import db
from lti_tool.models import KeyStatus, ToolKey, utcnow
from lti_tool.services import keys

_TOOL_KEY: dict[str, Any] = {}


def reset_database(app: Flask) -> None:
    """Empty every table, then restore the tool's signing key (RSA generation is slow)."""
    with app.app_context():
        if not _TOOL_KEY:
            key = keys.ensure_current_key()
            _TOOL_KEY.update(
                kid=key.kid, private_key_pem=key.private_key_pem, public_jwk=key.public_jwk
            )
            db.session.remove()
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.add(ToolKey(**_TOOL_KEY, status=KeyStatus.CURRENT, activated_at=utcnow()))
        db.session.commit()
        db.session.remove()


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)
