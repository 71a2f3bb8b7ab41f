"""Helpers shared by the admin and security tests: admins, launches, a model registry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from lti_tool.auth import issue_token
from lti_tool.constants import Claim, MessageType
from lti_tool.services import admins, launches

PASSWORD = "correct horse battery staple"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTITUTION_ADMIN = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"


def make_admin(username: str = "alice") -> None:
    admins.create(username, PASSWORD)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def login(client: FlaskClient, username: str = "alice", password: str = PASSWORD) -> Any:
    page = client.get("/admin/login")
    return client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
    )


def logged_in(client: FlaskClient) -> str:
    """Sign ``client`` in as a fresh local admin; returns the session's CSRF token."""
    make_admin()
    assert login(client).status_code == 303
    return csrf_from(client.get("/admin/login").text)


def launch_token(
    roles: list[str],
    *,
    iss: str = "https://lms.example.edu",
    sub: str = "user-1",
    context: str | None = "course-7",
    deployment: str = "dep-1",
    **claims: Any,
) -> str:
    body: dict[str, Any] = {
        "iss": iss,
        "aud": "client-1",
        "sub": sub,
        Claim.DEPLOYMENT_ID: deployment,
        Claim.MESSAGE_TYPE: MessageType.RESOURCE_LINK,
        Claim.ROLES: roles,
        Claim.RESOURCE_LINK: {"id": f"link-{context}"},
    }
    if context:
        body[Claim.CONTEXT] = {"id": context, "title": f"Course {context}"}
    body.update(claims)
    return issue_token(launches.sync_from_launch(body, 3600).id)


def make_model_dir(root: Path, name: str, metrics: dict[str, Any]) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps({"name": name}))
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "MODEL_CARD.md").write_text(f"# Model card: {name}\n\nIntended use: feedback.\n")
    return path
