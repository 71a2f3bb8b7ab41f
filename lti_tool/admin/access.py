"""Who may use the admin pages, and how: sessions, CSRF, login rate limits.

Two ways in, checked before every admin view:

- a local administrator's signed cookie session, bound to a server-side session id in the
  kv store (so logout and the idle timeout are enforced server-side) with an absolute
  lifetime; its forms carry a per-session CSRF token;
- a launch token from an LMS administrator's launch; its forms carry the launch token in
  the body (a cross-site form cannot know it). Such admins are scoped to their platform.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, redirect, request, session, url_for
from markupsafe import Markup, escape

from lti_tool import security
from lti_tool.auth import TOKEN_PARAM, load_launch
from lti_tool.constants import Audience
from lti_tool.extensions import db, kv_store
from lti_tool.models import AdminUser
from lti_tool.services.errors import Forbidden, MarginaliaError

from . import bp

SESSION_KEY = "admin"
CSRF_FIELD = "csrf_token"
PUBLIC_ENDPOINTS = {"admin.login", "admin.static"}


class TooManyAttempts(MarginaliaError):
    status_code = 429
    public_message = "Too many failed attempts. Wait a few minutes and try again."


@dataclass(frozen=True)
class AdminScope:
    """What the current admin may see: everything (local admin) or one platform (LMS admin)."""

    platform_id: int | None
    actor: str
    display: str

    @property
    def is_global(self) -> bool:
        return self.platform_id is None


def _settings() -> Any:
    return current_app.config["MARGINALIA"]


# -- sessions -----------------------------------------------------------------------------
def _session_key(sid: str) -> str:
    return "admin-session:" + sid


def start_session(user: AdminUser) -> None:
    """A fresh session (no fixation): new server-side id, new CSRF token."""
    settings = _settings()
    session.clear()
    sid = secrets.token_urlsafe(24)
    now = int(time.time())
    kv_store().set(_session_key(sid), user.id, exp=settings.admin_session_idle_minutes * 60)
    session[SESSION_KEY] = {"sid": sid, "uid": user.id, "iat": now}
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    session.permanent = True


def end_session() -> None:
    data = session.get(SESSION_KEY) or {}
    if data.get("sid"):
        kv_store().delete(_session_key(str(data["sid"])))
    session.clear()


def session_admin() -> AdminUser | None:
    """The local admin of a live session; refreshes the idle timer."""
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict) or not data.get("sid"):
        return None
    settings = _settings()
    if int(time.time()) - int(data.get("iat", 0)) > settings.admin_session_max_hours * 3600:
        end_session()
        return None
    key = _session_key(str(data["sid"]))
    if kv_store().get(key) != data.get("uid"):
        session.pop(SESSION_KEY, None)
        return None
    kv_store().set(key, data["uid"], exp=settings.admin_session_idle_minutes * 60)
    return db.session.get(AdminUser, int(data["uid"]))


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf() -> None:
    """Refuse a state-changing request whose body lacks this session's or launch's token."""
    if g.get("launch_token"):
        expected, sent = g.launch_token, request.form.get(TOKEN_PARAM, "")
    else:
        expected, sent = session.get(CSRF_FIELD, ""), request.form.get(CSRF_FIELD, "")
    if not expected or not sent or not hmac.compare_digest(str(expected), str(sent)):
        raise Forbidden("This form has expired or did not come from this site. Reload the page.")


def form_guard() -> Markup:
    """Hidden field(s) every admin form carries (``{{ form_guard() }}``)."""
    if g.get("launch_token"):
        name, value = TOKEN_PARAM, g.launch_token
    else:
        name, value = CSRF_FIELD, csrf_token()
    return Markup('<input type="hidden" name="{}" value="{}">').format(name, escape(value))


# -- login rate limit -----------------------------------------------------------------------
def _attempt_keys(username: str) -> list[str]:
    ip = request.remote_addr or "?"
    return [f"login-fail:{ip}:{username.strip().lower()[:150]}", f"login-fail-ip:{ip}"]


def _incr(key: str, window: int) -> int:
    store = kv_store()
    client = getattr(store, "client", None)
    if client is not None:  # Redis: atomic counter
        full = _settings().redis_key_prefix + key
        count = int(client.incr(full))
        if count == 1:
            client.expire(full, window)
        return count
    count = int(store.get(key) or 0) + 1  # embedded demo store
    store.set(key, count, exp=window)
    return count


def _count(key: str) -> int:
    store = kv_store()
    client = getattr(store, "client", None)
    if client is not None:
        raw = client.get(_settings().redis_key_prefix + key)
        return int(raw or 0)
    return int(store.get(key) or 0)


def check_attempts(username: str) -> None:
    settings = _settings()
    per_user, per_ip = _attempt_keys(username)
    if (
        _count(per_user) >= settings.login_max_attempts
        or _count(per_ip) >= settings.login_max_attempts * 4
    ):
        raise TooManyAttempts()


def failed_attempt(username: str) -> None:
    window = _settings().login_window_seconds
    for key in _attempt_keys(username):
        _incr(key, window)


def clear_attempts(username: str) -> None:
    kv_store().delete(_attempt_keys(username)[0])
    client = getattr(kv_store(), "client", None)
    if client is not None:
        client.delete(_settings().redis_key_prefix + _attempt_keys(username)[0])


# -- the guard ---------------------------------------------------------------------------------
@bp.before_request
def _guard() -> Any:
    if request.endpoint in PUBLIC_ENDPOINTS:
        if request.endpoint == "admin.login":
            security.deny_framing()
        return None
    launch = load_launch()
    if launch is not None:
        if launch.audience is not Audience.ADMIN:
            raise Forbidden()
        g.admin_scope = AdminScope(
            platform_id=launch.platform_id,
            actor=f"lti:{launch.platform_id}:{launch.user_id}",
            display="LMS administrator",
        )
    else:
        user = session_admin()
        if user is None:
            if request.method == "GET" and not request.is_json:
                return redirect(url_for("admin.login", next=request.full_path))
            raise Forbidden("Sign in first.")
        g.admin_user = user
        g.admin_scope = AdminScope(
            platform_id=None, actor=f"admin:{user.username}", display=user.username
        )
        security.deny_framing()
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        check_csrf()
    return None


@bp.context_processor
def _admin_helpers() -> dict[str, Any]:
    return {"form_guard": form_guard, "scope": g.get("admin_scope"), "pretty": _pretty}


def _pretty(value: Any) -> str:
    """JSON for people (the template escapes it)."""
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True, default=str)
