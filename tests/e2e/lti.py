"""Steps of an LTI launch through the sandbox, and crafted id_tokens for negative tests."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lti_tool.sandbox import testing as sandbox
from tests.e2e.browser import Browser, Page

Claims = dict[str, Any]
PLATFORM_KID = "<the platform's current kid>"


def launch_path(user: str, link: str | None = None, **extra: str) -> str:
    params = {"user": user, **({"link": link} if link else {}), **extra}
    return "/sandbox/launch?" + urlencode(params)


def id_token_form(browser: Browser, user: str, link: str | None = None, **extra: str) -> Page:
    """Run login initiation and authentication; stop at the form that POSTs the id_token."""
    page = browser.get(launch_path(user, link, **extra), follow=False)
    page = browser.submit(page, follow=False)  # the initiation form -> tool /lti/login
    assert page.path == "/sandbox/auth", page
    form = page.form()
    assert form.action.endswith("/lti/launch") and "id_token" in form.fields, page
    return page


def claims_of(token: str) -> Claims:
    return jwt.decode(token, options={"verify_signature": False})


def sign(
    claims: Claims, key: str, headers: dict[str, Any] | None = None, algorithm: str = "RS256"
) -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def resign(
    app: Any,
    token: str,
    mutate: Callable[[Claims], None] | None = None,
    *,
    kid: str | None = PLATFORM_KID,
    key_pem: str | None = None,
) -> str:
    """The same id_token with ``mutate`` applied, signed with the platform key by default."""
    platform_kid, platform_pem = sandbox.platform_key(app)
    claims = claims_of(token)
    if mutate is not None:
        mutate(claims)
    headers = {} if kid is None else {"kid": platform_kid if kid == PLATFORM_KID else kid}
    return sign(claims, key_pem or platform_pem, headers)


@functools.cache
def other_key_pem() -> str:
    """A key the platform never published (generated once: RSA generation is slow)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def now() -> int:
    return int(time.time())
