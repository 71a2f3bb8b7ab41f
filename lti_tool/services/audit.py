"""The audit log: who changed what, when, with the state before and after.

Any service may call ``record(actor, action, target, before, after)``; it adds the row to the
caller's transaction (``commit=True`` commits it at once). Secrets are redacted before they
are stored, so the log can be shown and exported freely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import g, has_request_context
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import AuditEvent

REDACTED = "[redacted]"
_SECRET_NAMES = (
    "api_key",
    "password",
    "private_key",
    "secret",
    "token",
)


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_NAMES) and not lowered.endswith("_last4")


def redact(value: Any) -> Any:
    """A JSON-safe copy of ``value`` with secret-looking fields and PEM blocks replaced."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _is_secret_name(str(k)) else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set):
        return [redact(v) for v in value]
    if isinstance(value, str) and "-----BEGIN" in value:
        return REDACTED
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def current_actor() -> str:
    """The person behind the current request: a local admin or an LMS user (by launch)."""
    if not has_request_context():
        return "system"
    admin = g.get("admin_user")
    if admin is not None:
        return f"admin:{admin.username}"
    launch = g.get("launch")
    if launch is not None:
        return f"lti:{launch.platform_id}:{launch.user_id}"
    return "anonymous"


def record(
    actor: str | None,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    *,
    platform_id: int | None = None,
    commit: bool = False,
) -> AuditEvent:
    from lti_tool.observability import current_request_id

    if platform_id is None and has_request_context() and g.get("launch") is not None:
        platform_id = g.launch.platform_id  # an LMS user's action belongs to their platform
    event = AuditEvent(
        actor=(actor or current_actor())[:300],
        action=action[:100],
        target=target[:300],
        before=redact(before),
        after=redact(after),
        platform_id=platform_id,
        request_id=current_request_id(),
    )
    db.session.add(event)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return event


def recent(
    limit: int = 100,
    *,
    platform_id: int | None = None,
    action: str | None = None,
    offset: int = 0,
) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if platform_id is not None:
        query = query.where(AuditEvent.platform_id == platform_id)
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    return list(db.session.scalars(query.offset(offset).limit(limit)))
