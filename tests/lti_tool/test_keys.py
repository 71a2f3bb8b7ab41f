from __future__ import annotations

from datetime import timedelta

import jwt
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import KeyStatus, ToolKey, utcnow
from lti_tool.services import keys


def statuses() -> dict[str, str]:
    return {k.kid: k.status for k in db.session.scalars(select(ToolKey))}


def test_first_key_is_created_once(app):
    first = keys.ensure_current_key()
    again = keys.ensure_current_key()
    assert first.kid == again.kid
    assert statuses() == {first.kid: KeyStatus.CURRENT}


def test_jwks_endpoint_publishes_current_key_as_one_level_keyset(client):
    keys.ensure_current_key()
    body = client.get("/lti/jwks").get_json()
    assert list(body) == ["keys"]
    (key,) = body["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert "d" not in key  # never the private part


def test_rotation_publishes_next_key_before_it_signs(client):
    current = keys.ensure_current_key()
    phase, next_key = keys.rotate(grace_days=7)
    assert phase == "published"
    published = {k["kid"] for k in client.get("/lti/jwks").get_json()["keys"]}
    assert published == {current.kid, next_key.kid}
    # Still signing with the old key until the second phase.
    assert keys.current_signing_key().kid == current.kid

    phase, activated = keys.rotate(grace_days=7)
    assert phase == "activated" and activated.kid == next_key.kid
    assert keys.current_signing_key().kid == next_key.kid
    # The retired key stays published during its grace period.
    published = {k["kid"] for k in client.get("/lti/jwks").get_json()["keys"]}
    assert published == {current.kid, next_key.kid}
    assert statuses()[current.kid] == KeyStatus.RETIRED


def test_retired_key_leaves_jwks_after_grace_period(client):
    old = keys.ensure_current_key()
    keys.rotate(grace_days=7)
    keys.rotate(grace_days=7)
    retired = db.session.scalar(select(ToolKey).where(ToolKey.kid == old.kid))
    retired.retired_at = utcnow() - timedelta(days=8)
    db.session.commit()
    published = {k["kid"] for k in client.get("/lti/jwks").get_json()["keys"]}
    assert old.kid not in published


def test_signing_key_verifies_against_published_jwk(client):
    signing = keys.current_signing_key()
    token = jwt.encode({"iss": "x"}, signing.private_key_pem, "RS256", {"kid": signing.kid})
    (jwk,) = client.get("/lti/jwks").get_json()["keys"]
    public = jwt.PyJWK(jwk).key
    assert jwt.decode(token, public, algorithms=["RS256"]) == {"iss": "x"}
