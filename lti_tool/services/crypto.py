"""Encryption at rest for secrets kept in the database (Fernet: AES-128-CBC + HMAC-SHA256).

The Fernet key is derived with HKDF from ``MARGINALIA_ENCRYPTION_KEY`` when set, otherwise from
``MARGINALIA_SECRET_KEY``. Changing the source secret makes stored secrets unreadable: they
must then be entered again on the admin page.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from lti_tool.services.errors import MarginaliaError


class DecryptionError(MarginaliaError):
    status_code = 500
    public_message = "A stored secret could not be decrypted; enter it again."


def _source_secret() -> bytes:
    settings = current_app.config["MARGINALIA"]
    if settings.encryption_key is not None and settings.encryption_key.get_secret_value():
        return settings.encryption_key.get_secret_value().encode()
    return str(current_app.config["SECRET_KEY"]).encode()


def fernet_for(secret: bytes) -> Fernet:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"marginalia-at-rest", info=b"settings-v1"
    )
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret)))


def encrypt(plaintext: str) -> str:
    return fernet_for(_source_secret()).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet_for(_source_secret()).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError() from exc


def last4(secret: str) -> str:
    """What the admin page shows of a stored secret."""
    return "…" + secret[-4:] if len(secret) > 4 else "…"
