"""Sign-in, sign-out and the overview page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from lti_tool.auth import launch_url
from lti_tool.extensions import db
from lti_tool.models import Platform, PlatformStatus
from lti_tool.services import admins, audit, ops, settings_store

from . import bp
from .access import (
    CSRF_FIELD,
    check_attempts,
    clear_attempts,
    csrf_token,
    end_session,
    failed_attempt,
    start_session,
)

NOTICES = {
    "saved": "Saved.",
    "approved": "The platform was approved; launches from it are accepted now.",
    "disabled": "The platform was disabled; launches from it are refused.",
    "enabled": "The platform was enabled.",
    "added": "Added.",
    "published": "A next key is published. Rotate again once platforms have fetched it.",
    "activated": "The next key signs now; the old one stays published during the grace period.",
    "rolled_back": "The previous model version is active again.",
    "retried": "Queued again.",
    "key_cleared": "The API key was removed.",
}


def notice() -> str | None:
    code = request.args.get("notice", "")
    return _(NOTICES[code]) if code in NOTICES else None


def done(endpoint: str, code: str, **values: Any) -> Any:
    """Post/redirect/get, keeping the launch token for LMS administrators."""
    return redirect(launch_url(endpoint, notice=code, **values), code=303)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and not urlsplit(target).netloc:
        return target
    return url_for("admin.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    username = ""
    status = 200
    if request.method == "POST":
        username = request.form.get("username", "")[:150]
        password = request.form.get("password", "")
        sent = request.form.get(CSRF_FIELD, "")
        if not sent or sent != session.get(CSRF_FIELD):
            error, status = _("The form expired. Please sign in again."), 400
        else:
            check_attempts(username)  # 429 once the limit is reached
            user = admins.authenticate(username, password) if username and password else None
            if user is None:
                failed_attempt(username)
                current_app.logger.warning("admin sign-in failed", extra={"username": username})
                error, status = _("Wrong username or password."), 401
            else:
                clear_attempts(username)
                start_session(user)
                audit.record(f"admin:{user.username}", "admin.login", f"admin:{user.username}")
                db.session.commit()
                return redirect(_safe_next(request.args.get("next")), code=303)
    return (
        render_template(
            "admin/login.html", error=error, username=username, csrf_token=csrf_token()
        ),
        status,
    )


@bp.post("/logout")
def logout() -> Any:
    if g.get("admin_user") is not None:
        audit.record(None, "admin.logout", f"admin:{g.admin_user.username}", commit=True)
    end_session()
    return redirect(url_for("admin.login"), code=303)


@bp.get("/")
def home() -> Any:
    scope = g.admin_scope
    query = select(Platform).order_by(Platform.id)
    if not scope.is_global:
        query = query.where(Platform.id == scope.platform_id)
    platforms = list(db.session.scalars(query))
    pending = db.session.scalar(
        select(func.count(Platform.id)).where(Platform.status == PlatformStatus.PENDING)
    )
    return render_template(
        "admin/home.html",
        platforms=platforms,
        pending=pending if scope.is_global else 0,
        model=settings_store.model_settings(),
        queues=ops.queue_depths(),
        per_minute=ops.submissions_per_minute(),
        events=audit.recent(8, platform_id=scope.platform_id),
        notice=notice(),
    )
