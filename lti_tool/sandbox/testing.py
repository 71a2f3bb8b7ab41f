"""Hooks for tests and demos: platform key rotation, failing endpoints, crafted tokens.

Everything takes the Flask ``app`` that serves the sandbox, so tests can call it from outside
a request.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask

from lti_tool.sandbox.store import SandboxStore, generate_key


def _store(app: Flask) -> SandboxStore:
    return app.extensions["marginalia.sandbox"]


def reset(app: Flask) -> None:
    """Back to an empty course (keeps the key pair, drops links, grades, tokens, failures)."""
    _store(app).reset(keep_key=True)


def rotate_platform_key(app: Flask) -> str:
    """Replace the signing key: the new kid is published, the old one disappears."""
    key = generate_key()
    with _store(app).write() as state:
        state["key"] = key
    return key["kid"]


def platform_key(app: Flask) -> tuple[str, str]:
    """(kid, private key PEM) the sandbox signs id_tokens with."""
    key = _store(app).read(lambda s: s["key"])
    return key["kid"], key["private_pem"]


def fail_next(app: Flask, endpoint: str, times: int = 1, status: int = 500) -> None:
    """Make ``endpoint`` answer ``status`` for its next ``times`` calls.

    Endpoints: "token", "lineitems", "lineitem", "score", "results", "memberships".
    """
    _store(app).failures.setdefault(endpoint, []).extend([status] * times)


def set_cookies_blocked(app: Flask, blocked: bool) -> None:
    """Toggle the course page's "cookies blocked" mode (lti_storage_target in logins)."""
    with _store(app).write() as state:
        state["cookies_blocked"] = blocked


def add_resource_link(
    app: Flask,
    title: str,
    *,
    custom: dict[str, str] | None = None,
    line_item: dict[str, Any] | None = None,
) -> str:
    """A resource link placed by hand (no deep linking); returns its id."""
    store = _store(app)
    link_id = store.next_id("rl")
    line_item_pk = None
    if line_item is not None:
        line_item_pk = store.next_id("li")
        with store.write() as state:
            state["line_items"].append(
                {"pk": line_item_pk, "resourceLinkId": link_id, **line_item, "created_at": 0}
            )
    with store.write() as state:
        state["links"].append(
            {
                "id": link_id,
                "title": title,
                "text": "",
                "url": None,
                "custom": dict(custom or {}),
                "line_item_id": line_item_pk,
                "created_at": time.time(),
            }
        )
    return link_id


def member(app: Flask, kind: str, index: int = 0) -> dict[str, Any]:
    """A roster member by kind ("instructor", "ta", "learner", "admin")."""
    members = _store(app).read(lambda s: [m for m in s["members"] if m["kind"] == kind])
    return members[index]


def state(app: Flask) -> dict[str, Any]:
    return _store(app).snapshot()
