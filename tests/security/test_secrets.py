"""Admin secrets (teacher API key, private keys) never appear in pages, logs or API answers."""

from __future__ import annotations

import json
import logging

from lti_tool.extensions import db
from lti_tool.models import AuditEvent, ToolKey
from lti_tool.services import keys, settings_store
from tests.admin.support import INSTITUTION_ADMIN, launch_token, logged_in
from tests.lti_tool.factories import make_platform

API_KEY = "sk-teacher-SECRET-5f2c9a7e1d3b"


def _private_material() -> list[str]:
    material = []
    for key in db.session.query(ToolKey):
        body = "".join(key.private_key_pem.strip().splitlines()[1:-1])
        material += [body[:40], body[-40:]]
    return material


def _assert_clean(text: str, where: str) -> None:
    assert API_KEY not in text and API_KEY[-12:] not in text, where
    assert "PRIVATE KEY" not in text, where
    for fragment in _private_material():
        assert fragment not in text, where


def test_secrets_stay_out_of_pages_logs_and_answers(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    make_platform()
    keys.ensure_current_key()
    keys.rotate(7)  # a NEXT key as well
    csrf = logged_in(client)
    client.post(
        "/admin/teacher",
        data={
            "url": "https://llm.example.edu/v1",
            "model": "m",
            "api_key": API_KEY,
            "csrf_token": csrf,
        },
    )
    assert settings_store.teacher_endpoint().api_key == API_KEY

    lms_admin = launch_token([INSTITUTION_ADMIN], context=None)
    paths = [
        "/admin/",
        "/admin/status",
        "/admin/platforms",
        "/admin/platforms/1",
        "/admin/keys",
        "/admin/model",
        "/admin/defaults",
        "/admin/teacher",
        "/admin/privacy",
        "/admin/audit",
    ]
    for path in paths:
        _assert_clean(client.get(path).text, path)
        _assert_clean(client.get(path, query_string={"lt": lms_admin}).text, "lms " + path)
    for path in ("/lti/jwks", "/metrics", "/readyz", "/healthz"):
        _assert_clean(client.get(path).text, path)
    jwks = client.get("/lti/jwks").json
    assert all(set(k) <= {"kty", "n", "e", "kid", "alg", "use"} for k in jwks["keys"])
    # JSON error answers and the audit log are clean too.
    error = client.post(
        "/admin/teacher", data={"url": "ftp://x"}, headers={"Accept": "application/json"}
    )
    _assert_clean(error.text, "error")
    for event in AuditEvent.query.all():
        _assert_clean(json.dumps([event.before, event.after]), event.action)
    _assert_clean(caplog.text, "logs")
    # The key is stored encrypted, not merely hidden.
    _assert_clean(json.dumps(settings_store.raw("teacher")), "database row")


def test_a_wrong_encryption_key_cannot_read_the_stored_secret(app, client):
    from lti_tool.services import crypto

    csrf = logged_in(client)
    client.post(
        "/admin/teacher", data={"url": "", "model": "", "api_key": API_KEY, "csrf_token": csrf}
    )
    token = settings_store.raw("teacher")["api_key_enc"]
    other = crypto.fernet_for(b"another installation's secret key, 32+ chars")
    try:
        other.decrypt(token.encode())
        raise AssertionError("decrypted with the wrong key")
    except Exception as exc:  # InvalidToken
        assert type(exc).__name__ == "InvalidToken"
    # A dedicated MARGINALIA_ENCRYPTION_KEY takes precedence over the secret key.
    from pydantic import SecretStr

    app.config["MARGINALIA"].encryption_key = SecretStr("dedicated-encryption-key-0123456789")
    assert crypto.decrypt(crypto.encrypt("x")) == "x"
    assert crypto.encrypt("x") != token
