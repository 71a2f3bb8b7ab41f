"""Local administrators: sign-in with CSRF, rate limits, expiring and revocable sessions."""

from __future__ import annotations

import time

from lti_tool.models import AuditEvent
from tests.admin.support import PASSWORD, csrf_from, logged_in, login, make_admin


def test_admin_pages_need_a_session(client):
    resp = client.get("/admin/platforms")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/admin/login?next=")
    assert client.post("/admin/keys/rotate").status_code == 403


def test_sign_in_and_out(client, app):
    make_admin()
    resp = login(client)
    assert resp.status_code == 303 and resp.headers["Location"] == "/admin/"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/admin/")
    assert page.status_code == 200 and "Local administrator" in page.text
    token = csrf_from(client.get("/admin/login").text)
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/admin/").status_code == 302
    assert [e.action for e in AuditEvent.query.order_by(AuditEvent.id)] == [
        "admin.login",
        "admin.logout",
    ]


def test_next_parameter_cannot_leave_the_admin_area(client):
    make_admin()
    page = client.get("/admin/login")
    resp = client.post(
        "/admin/login?next=https://evil.example/admin",
        data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_from(page.text)},
    )
    assert resp.headers["Location"] == "/admin/"


def test_sign_in_form_needs_its_csrf_token(client):
    make_admin()
    client.get("/admin/login")
    resp = client.post("/admin/login", data={"username": "alice", "password": PASSWORD})
    assert resp.status_code == 400
    assert client.get("/admin/").status_code == 302


def test_wrong_password_then_rate_limit_per_ip_and_username(client, app):
    make_admin()
    limit = app.config["MARGINALIA"].login_max_attempts
    for _ in range(limit):
        assert login(client, password="wrong password!").status_code == 401
    # Even the right password is refused while the limit holds.
    assert login(client).status_code == 429
    # Another client address is not affected.
    other = app.test_client()
    page = other.get("/admin/login", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    resp = other.post(
        "/admin/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_from(page.text)},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert resp.status_code == 303


def test_unknown_user_counts_as_a_failure(client):
    assert login(client, username="nobody").status_code == 401


def test_logout_revokes_a_copied_cookie(client, app):
    logged_in(client)
    stolen = client.get_cookie("marginalia_session") or client.get_cookie("session")
    token = csrf_from(client.get("/admin/login").text)
    client.post("/admin/logout", data={"csrf_token": token})
    replay = app.test_client()
    replay.set_cookie(stolen.key, stolen.value)
    assert replay.get("/admin/").status_code == 302


def test_idle_timeout(client, app, monkeypatch):
    logged_in(client)
    from lti_tool.extensions import kv_store

    # The idle timer lives in the kv store with a TTL; its expiry ends the session.
    with client.session_transaction() as sess:
        sid = sess["admin"]["sid"]
    kv_store().delete("admin-session:" + sid)
    assert client.get("/admin/").status_code == 302


def test_absolute_timeout(client, app, monkeypatch):
    logged_in(client)
    hours = app.config["MARGINALIA"].admin_session_max_hours
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + hours * 3600 + 5)
    assert client.get("/admin/").status_code == 302


def test_admin_pages_render(client):
    logged_in(client)
    for path in (
        "/admin/",
        "/admin/status",
        "/admin/platforms",
        "/admin/keys",
        "/admin/model",
        "/admin/defaults",
        "/admin/teacher",
        "/admin/privacy",
        "/admin/audit",
    ):
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.text[:500])
