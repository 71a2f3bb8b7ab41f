"""The tool's signing keys: created on first start, rotated with a publish-before-use window.

Rotation (``marginalia keys rotate``) is two-phased so platforms that cache our JWKS never
see a signature from a key they have not fetched:
1. the first call creates a NEXT key, published but not yet signing;
2. the next call (after platforms had time to refresh) promotes NEXT to CURRENT and retires
   the old CURRENT, which stays published for ``key_grace_days``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import KeyStatus, ToolKey, utcnow


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key_pem: str


def _generate() -> ToolKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    jwk = JWK.from_pem(pem.encode())
    kid = jwk.thumbprint()
    public = json.loads(jwk.export_public())
    public.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return ToolKey(kid=kid, private_key_pem=pem, public_jwk=public)


def ensure_current_key() -> ToolKey:
    """Create the first signing key if there is none (idempotent)."""
    key = db.session.scalar(select(ToolKey).where(ToolKey.status == KeyStatus.CURRENT))
    if key is None:
        key = _generate()
        key.status = KeyStatus.CURRENT
        key.activated_at = utcnow()
        db.session.add(key)
        db.session.commit()
    return key


def current_signing_key() -> SigningKey:
    key = ensure_current_key()
    return SigningKey(kid=key.kid, private_key_pem=key.private_key_pem)


def rotate(grace_days: int) -> tuple[str, ToolKey]:
    """Advance rotation one phase; returns ("published" | "activated", key)."""
    next_key = db.session.scalar(select(ToolKey).where(ToolKey.status == KeyStatus.NEXT))
    if next_key is None:
        ensure_current_key()
        next_key = _generate()
        next_key.status = KeyStatus.NEXT
        db.session.add(next_key)
        db.session.commit()
        return "published", next_key

    now = utcnow()
    for old in db.session.scalars(select(ToolKey).where(ToolKey.status == KeyStatus.CURRENT)):
        old.status = KeyStatus.RETIRED
        old.retired_at = now
    next_key.status = KeyStatus.CURRENT
    next_key.activated_at = now
    purge_expired(grace_days)
    db.session.commit()
    return "activated", next_key


def purge_expired(grace_days: int) -> int:
    cutoff = utcnow() - timedelta(days=grace_days)
    expired = db.session.scalars(
        select(ToolKey).where(ToolKey.status == KeyStatus.RETIRED, ToolKey.retired_at < cutoff)
    ).all()
    for key in expired:
        db.session.delete(key)
    return len(expired)


def published_jwks(grace_days: int) -> dict[str, list[dict]]:
    """Current, next and in-grace retired keys, as ``{"keys": [...]}``."""
    cutoff = utcnow() - timedelta(days=grace_days)
    keys = db.session.scalars(select(ToolKey).order_by(ToolKey.id)).all()
    published = [
        k.public_jwk
        for k in keys
        if k.status != KeyStatus.RETIRED or (k.retired_at and k.retired_at >= cutoff)
    ]
    return {"keys": published}
