"""The sandbox LMS's own state: keys, roster, resource links, line items, scores, tokens.

It is an independent platform, so nothing here lives in the tool's database. One
``SandboxStore`` per app, guarded by a lock (the dev server is threaded); in demo and
development mode it is saved to a JSON file so the course survives a restart.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK

T = TypeVar("T")

CONTEXT_MEMBER = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
INSTITUTION = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"

COURSE = {
    "id": "sandbox-course-net101",
    "label": "NET101",
    "title": "Introduction to Networks",
    "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
}

# (sub, given name, family name, roles, institution roles). Subs are opaque and stable.
ROSTER: list[dict[str, Any]] = [
    {
        "sub": "sbx-3f9a1c0e-instructor",
        "given_name": "Grace",
        "family_name": "Hopper",
        "roles": [CONTEXT_MEMBER + "Instructor", INSTITUTION + "Faculty"],
        "kind": "instructor",
    },
    {
        "sub": "sbx-7b2d44a1-ta",
        "given_name": "Alan",
        "family_name": "Turing",
        "roles": [
            CONTEXT_MEMBER + "Instructor",
            "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant",
        ],
        "kind": "ta",
    },
    {
        "sub": "sbx-0c11e5d2-learner",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "roles": [CONTEXT_MEMBER + "Learner", INSTITUTION + "Student"],
        "kind": "learner",
    },
    {
        "sub": "sbx-58e0b7f3-learner",
        "given_name": "Katherine",
        "family_name": "Johnson",
        "roles": [CONTEXT_MEMBER + "Learner", INSTITUTION + "Student"],
        "kind": "learner",
    },
    {
        "sub": "sbx-a94f2c6b-learner",
        "given_name": "Edsger",
        "family_name": "Dijkstra",
        "roles": [CONTEXT_MEMBER + "Learner", INSTITUTION + "Student"],
        "kind": "learner",
    },
    {
        "sub": "sbx-d2c8e911-admin",
        "given_name": "Margaret",
        "family_name": "Hamilton",
        "roles": [INSTITUTION + "Administrator"],
        "kind": "admin",
    },
]


def _member(entry: dict[str, Any]) -> dict[str, Any]:
    member = dict(entry)
    member["name"] = f"{entry['given_name']} {entry['family_name']}"
    member["email"] = f"{entry['given_name']}.{entry['family_name']}@sandbox.example".lower()
    return member


def generate_key() -> dict[str, str]:
    """A fresh RSA key: {"kid": thumbprint, "private_pem": PKCS8 PEM}."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {"kid": JWK.from_pem(pem.encode()).thumbprint(), "private_pem": pem}


def initial_state(key: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "key": key or generate_key(),
        "course": dict(COURSE),
        "members": [_member(m) for m in ROSTER],
        "links": [],  # resource links, in creation order
        "line_items": [],
        "scores": [],  # every score POST accepted, in order
        "messages": {},  # lti_message_hint -> pending launch
        "tokens": {},  # access token -> {"scopes": [...], "exp": ...}
        "dl_data": {},  # deep linking `data` values handed out -> created at
        "cookies_blocked": False,
        "counter": 0,
    }


class SandboxStore:
    """Thread-safe state; ``read``/``write`` run a function on it under the lock."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._path = path
        self._state: dict[str, Any] | None = None
        # Failure injection (testing hooks): endpoint name -> statuses to answer next.
        self.failures: dict[str, list[int]] = {}

    def _load(self) -> dict[str, Any]:
        if self._state is None:
            if self._path is not None and self._path.exists():
                self._state = json.loads(self._path.read_text())
            else:
                self._state = initial_state()
                self._save()
        return self._state

    def _save(self) -> None:
        if self._path is None or self._state is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=1))
        tmp.replace(self._path)

    def read(self, fn: Callable[[dict[str, Any]], T]) -> T:
        with self._lock:
            return copy.deepcopy(fn(self._load()))

    @contextmanager
    def write(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            state = self._load()
            yield state
            self._save()

    def snapshot(self) -> dict[str, Any]:
        return self.read(lambda s: s)

    def reset(self, keep_key: bool = True) -> None:
        with self._lock:
            key = self._load()["key"] if keep_key else None
            self._state = initial_state(key)
            self.failures.clear()
            self._save()

    def next_id(self, prefix: str) -> str:
        with self.write() as state:
            state["counter"] += 1
            return f"{prefix}-{state['counter']}-{secrets.token_hex(3)}"

    def take_failure(self, endpoint: str) -> int | None:
        with self._lock:
            pending = self.failures.get(endpoint)
            return pending.pop(0) if pending else None

    # -- access tokens ---------------------------------------------------------------------
    def issue_token(self, scopes: list[str], ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.write() as state:
            state["tokens"] = {t: v for t, v in state["tokens"].items() if v["exp"] > now}
            state["tokens"][token] = {"scopes": scopes, "exp": now + ttl}
        return token

    def token_scopes(self, token: str) -> list[str] | None:
        entry = self.read(lambda s: s["tokens"].get(token))
        if entry is None or entry["exp"] < time.time():
            return None
        return list(entry["scopes"])
