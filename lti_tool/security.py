"""Security headers for every response.

Pages that the LMS frames (launches, student and instructor pages, LMS admins' admin pages)
may be framed only by the registered platforms: ``Content-Security-Policy: frame-ancestors``
lists 'self' (the sandbox LMS) and the origins of each active platform's issuer and OIDC
authorization URL; they never send ``X-Frame-Options`` (which cannot name several origins).
Local administrators' pages (cookie session, never framed) answer ``frame-ancestors 'none'``
and ``X-Frame-Options: DENY``.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from sqlalchemy import select

from lti_tool.extensions import db, kv_store
from lti_tool.models import Platform, PlatformStatus

ORIGINS_KEY = "csp:frame-ancestors"
ORIGINS_TTL = 60  # seconds; platform edits on the admin pages forget the cache at once


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def platform_origins() -> list[str]:
    """Origins of active platforms (issuer and OIDC auth URL), cached briefly in the kv store."""
    cached = kv_store().get(ORIGINS_KEY)
    if isinstance(cached, list):
        return cached
    rows = db.session.execute(
        select(Platform.issuer, Platform.auth_login_url).where(
            Platform.status == PlatformStatus.ACTIVE
        )
    ).all()
    origins = sorted({o for row in rows for o in map(_origin, row) if o})
    kv_store().set(ORIGINS_KEY, origins, exp=ORIGINS_TTL)
    return origins


def forget_origins() -> None:
    kv_store().delete(ORIGINS_KEY)


def deny_framing() -> None:
    """Call from a view (or before_request) whose page must never be framed."""
    g.deny_framing = True


def frame_ancestors() -> str:
    try:
        origins = platform_origins()
    except Exception:  # never fail a response on a header: fall back to 'self' only
        db.session.rollback()
        origins = []
    return " ".join(["'self'", *origins])


def init_app(app: Flask) -> None:
    settings = app.config["MARGINALIA"]
    production = settings.is_production
    # The only cookie session is the local administrators' (never framed): keep it strict.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = production
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=settings.admin_session_max_hours)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # Launch tokens ride in URLs: never leak them to another site in a Referer.
        headers.setdefault("Referrer-Policy", "no-referrer")
        if g.get("deny_framing"):
            policy = "frame-ancestors 'none'"
            headers["X-Frame-Options"] = "DENY"
            headers.setdefault("Cache-Control", "no-store")
        else:
            policy = f"frame-ancestors {frame_ancestors()}"
        headers.setdefault(
            "Content-Security-Policy", f"{policy}; base-uri 'self'; object-src 'none'"
        )
        if production and request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
